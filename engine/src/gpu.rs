//! The `Gpu` backend skeleton: it owns the wgpu device and queue (any adapter wgpu finds, on this
//! machine lavapipe, the Vulkan driver that runs on the CPU), the helpers that move `f32` data and
//! encase-laid-out structs into storage and uniform buffers and read them back, and `Kernel`, a
//! compiled WGSL compute pipeline with an automatic bind group layout that dispatches over a list
//! of buffers and waits for the result. It holds no physics: the kernels live next to the CPU
//! systems in `diffsim-systems`. Every failure (no adapter, an invalid shader, a bad binding, a
//! buffer over the device limits, a failed map) is returned as [`EngineError::Gpu`] with a
//! message naming the operation, never as a panic of the default wgpu error handler.

use std::future::Future;
use std::pin::pin;
use std::sync::mpsc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::error::EngineError;

/// How long [`block_on`] spins on a future before giving up. On native backends the wgpu futures
/// are ready on their first poll, so this only guards against a hang.
const BLOCK_ON_TIMEOUT: Duration = Duration::from_secs(30);

/// Polls `fut` on the current thread until it is ready, with a no-op waker.
///
/// wgpu's futures (`request_adapter`, `request_device`, `pop_error_scope`) are already ready on
/// native backends, so this returns at once; `what` names the operation in the timeout error.
fn block_on<F: Future>(what: &str, fut: F) -> Result<F::Output, EngineError> {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    let start = Instant::now();
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return Ok(out);
        }
        if start.elapsed() > BLOCK_ON_TIMEOUT {
            return Err(EngineError::Gpu(format!(
                "{what}: the wgpu future did not complete within {BLOCK_ON_TIMEOUT:?}"
            )));
        }
        std::thread::yield_now();
    }
}

/// `f32` values as little-endian bytes, the byte order of GPU buffers.
fn f32_to_bytes(data: &[f32]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(data.len() * 4);
    for x in data {
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    bytes
}

/// Little-endian bytes as `f32` values; a trailing partial value is ignored.
fn bytes_to_f32(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// A wgpu device and queue. Create one with [`Gpu::new`] and share it by reference.
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter_info: wgpu::AdapterInfo,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu")
            .field("adapter", &self.adapter_info.name)
            .field("backend", &self.adapter_info.backend)
            .field("device_type", &self.adapter_info.device_type)
            .finish()
    }
}

impl Gpu {
    /// Opens the first adapter wgpu offers for the backends in `WGPU_BACKEND` (for example
    /// `vulkan` or `gl`; all backends when unset) and requests a device with the adapter's own
    /// limits (wgpu's defaults are lower, e.g. for the storage binding size).
    pub fn new() -> Result<Gpu, EngineError> {
        Self::open(None, true)
    }

    /// [`Gpu::new`] with the storage binding limit lowered to at most `bytes` (wgpu then rejects
    /// larger bindings as a smaller device would). For testing the code paths that split data
    /// over several bindings (`mpm.transfer`'s env chunks) without allocating what a real limit
    /// takes (128 MiB on lavapipe).
    pub fn with_storage_binding_limit(bytes: u64) -> Result<Gpu, EngineError> {
        Self::open(Some(bytes), true)
    }

    /// [`Gpu::new`] without `SHADER_FLOAT32_ATOMIC`, even where the adapter has it, so the
    /// `Scatter::Atomic` kernels take their compare-exchange loop on the u32 bits: the path of
    /// adapters without native f32 atomics, tested on one that has them (lavapipe, NVIDIA).
    pub fn without_f32_atomics() -> Result<Gpu, EngineError> {
        Self::open(None, false)
    }

    fn open(storage_binding_limit: Option<u64>, f32_atomics: bool) -> Result<Gpu, EngineError> {
        let backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all());
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        desc.backends = backends;
        let instance = wgpu::Instance::new(desc);
        let adapter = block_on(
            "request_adapter",
            instance.request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::from_env().unwrap_or_default(),
                ..Default::default()
            }),
        )?
        .map_err(|e| {
            EngineError::Gpu(format!(
                "no wgpu adapter found (backends tried: {backends:?}, set WGPU_BACKEND to choose): \
                 {e}. Install a driver: on Debian/Ubuntu `apt-get install mesa-vulkan-drivers \
                 libvulkan1` gives lavapipe, a Vulkan driver that runs on the CPU"
            ))
        })?;
        let adapter_info = adapter.get_info();
        let (device, queue) = block_on(
            "request_device",
            adapter.request_device(&wgpu::DeviceDescriptor {
                label: Some("diffsim"),
                // Native f32 atomics where the adapter has them (Vulkan/lavapipe, most GPUs); the
                // scatter kernels fall back to a compare-exchange loop on the u32 bits otherwise.
                required_features: if f32_atomics {
                    adapter.features() & wgpu::Features::SHADER_FLOAT32_ATOMIC
                } else {
                    wgpu::Features::empty()
                },
                required_limits: {
                    let mut limits = adapter.limits();
                    if let Some(b) = storage_binding_limit {
                        limits.max_storage_buffer_binding_size = limits.max_storage_buffer_binding_size.min(b);
                    }
                    limits
                },
                ..Default::default()
            }),
        )?
        .map_err(|e| {
            EngineError::Gpu(format!(
                "request_device on adapter `{}` ({:?}) failed: {e}",
                adapter_info.name, adapter_info.backend
            ))
        })?;
        Ok(Gpu { device, queue, adapter_info })
    }

    /// The adapter's name, e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub fn adapter_name(&self) -> &str {
        &self.adapter_info.name
    }

    /// Whether the device supports `atomic<f32>` with `atomicAdd` (`SHADER_FLOAT32_ATOMIC`).
    pub fn has_f32_atomics(&self) -> bool {
        self.device.features().contains(wgpu::Features::SHADER_FLOAT32_ATOMIC)
    }

    /// The limits the device was created with (the adapter's own).
    pub fn limits(&self) -> wgpu::Limits {
        self.device.limits()
    }

    /// Runs `f` inside validation, out-of-memory and internal error scopes and turns the first
    /// captured error into [`EngineError::Gpu`] prefixed with `what`.
    ///
    /// Error scopes are per thread in wgpu, so the errors of other threads are not caught here.
    pub fn scoped<T>(&self, what: &str, f: impl FnOnce() -> T) -> Result<T, EngineError> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let internal = self.device.push_error_scope(wgpu::ErrorFilter::Internal);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f();
        // Pop in the reverse order of the pushes: the scopes form a stack.
        let validation = block_on(what, validation.pop())?;
        let internal = block_on(what, internal.pop())?;
        let oom = block_on(what, oom.pop())?;
        match validation.or(internal).or(oom) {
            Some(e) => Err(EngineError::Gpu(format!("{what}: {e}"))),
            None => Ok(out),
        }
    }

    /// Checks that a buffer of `size` bytes fits the device limits for its use.
    fn check_size(&self, label: &str, size: u64, usage: wgpu::BufferUsages) -> Result<(), EngineError> {
        let limits = self.device.limits();
        let (binding_limit, kind) = if usage.contains(wgpu::BufferUsages::UNIFORM) {
            (limits.max_uniform_buffer_binding_size, "uniform")
        } else {
            (limits.max_storage_buffer_binding_size, "storage")
        };
        if size > binding_limit.min(limits.max_buffer_size) {
            return Err(EngineError::Gpu(format!(
                "buffer `{label}`: {size} bytes exceed the device limit of {} bytes for one {kind} \
                 binding on `{}`; split the data into several buffers",
                binding_limit.min(limits.max_buffer_size),
                self.adapter_info.name
            )));
        }
        Ok(())
    }

    /// Creates a buffer holding `bytes` (padded with zeros to a multiple of 4 bytes, and to at
    /// least `min_size` bytes, since a binding cannot be empty).
    fn buffer_with_bytes(
        &self,
        label: &str,
        bytes: &[u8],
        min_size: u64,
        usage: wgpu::BufferUsages,
    ) -> Result<wgpu::Buffer, EngineError> {
        let size = (bytes.len() as u64).max(min_size).next_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT);
        self.check_size(label, size, usage)?;
        self.scoped(&format!("create buffer `{label}` ({size} bytes)"), || {
            let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage,
                mapped_at_creation: true,
            });
            {
                let mut view =
                    buffer.slice(..).get_mapped_range_mut().expect("a buffer mapped at creation has a mapped range");
                let mut padded = vec![0u8; view.len()];
                padded[..bytes.len()].copy_from_slice(bytes);
                view.copy_from_slice(&padded);
            }
            buffer.unmap();
            buffer
        })
    }

    /// Uploads `data` as a read-write storage buffer (`STORAGE | COPY_SRC | COPY_DST`), bound in
    /// WGSL as `var<storage, read_write> x: array<f32>`.
    ///
    /// An empty slice gives a buffer of one zero `f32`, because a binding cannot be empty; so
    /// [`Gpu::read_f32`] of that buffer returns `[0.0]`.
    pub fn storage_f32(&self, label: &str, data: &[f32]) -> Result<wgpu::Buffer, EngineError> {
        self.buffer_with_bytes(
            label,
            &f32_to_bytes(data),
            4,
            wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
        )
    }

    /// Uploads `data` as a storage buffer of `u32` (topology: spring endpoints, adjacency lists),
    /// bound in WGSL as `array<u32>`; an empty slice gives one zero, as [`Gpu::storage_f32`].
    pub fn storage_u32(&self, label: &str, data: &[u32]) -> Result<wgpu::Buffer, EngineError> {
        let bytes: Vec<u8> = data.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.buffer_with_bytes(
            label,
            &bytes,
            4,
            wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
        )
    }

    /// A read-write storage buffer of `len` zeros (at least one, see [`Gpu::storage_f32`]).
    pub fn storage_f32_zeroed(&self, label: &str, len: usize) -> Result<wgpu::Buffer, EngineError> {
        let size = (len.max(1) as u64) * 4;
        let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
        self.check_size(label, size, usage)?;
        // wgpu zero-initializes new buffers.
        self.scoped(&format!("create buffer `{label}` ({size} bytes)"), || {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage,
                mapped_at_creation: false,
            })
        })
    }

    /// Overwrites the start of `buffer` with `data` (the buffer needs `COPY_DST`, which
    /// [`Gpu::storage_f32`] buffers have). The write happens before the next submitted dispatch.
    pub fn write_f32(&self, buffer: &wgpu::Buffer, data: &[f32]) -> Result<(), EngineError> {
        let size = data.len() as u64 * 4;
        if size > buffer.size() {
            return Err(EngineError::Gpu(format!(
                "write_f32: {} values ({size} bytes) do not fit a buffer of {} bytes",
                data.len(),
                buffer.size()
            )));
        }
        if data.is_empty() {
            return Ok(());
        }
        self.scoped("write_f32", || self.queue.write_buffer(buffer, 0, &f32_to_bytes(data)))
    }

    /// Uploads `value`, laid out by encase with the uniform address space rules, as a uniform
    /// buffer (`UNIFORM | COPY_DST`), bound in WGSL as `var<uniform> p: T`. The size is padded
    /// to a multiple of 16 bytes.
    ///
    /// # Panics
    /// encase panics if `T` cannot live in the uniform address space (e.g. it holds an array with
    /// a stride that is not a multiple of 16); that is a bug in the type, not in the data.
    pub fn uniform<T>(&self, label: &str, value: &T) -> Result<wgpu::Buffer, EngineError>
    where
        T: encase::ShaderType + encase::internal::WriteInto,
    {
        let mut ub = encase::UniformBuffer::new(Vec::<u8>::new());
        ub.write(value).map_err(|e| EngineError::Gpu(format!("uniform `{label}`: encase write failed: {e}")))?;
        let bytes = ub.into_inner();
        let min = (bytes.len() as u64).next_multiple_of(16).max(16);
        self.buffer_with_bytes(label, &bytes, min, wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST)
    }

    /// Uploads `value` (a struct or a `Vec`/slice of structs), laid out by encase with the
    /// storage address space rules, as a read-write storage buffer. Read it back with
    /// [`Gpu::read_bytes`] and `encase::StorageBuffer::new(bytes).create::<T>()`.
    pub fn storage_encase<T>(&self, label: &str, value: &T) -> Result<wgpu::Buffer, EngineError>
    where
        T: ?Sized + encase::ShaderType + encase::internal::WriteInto,
    {
        let mut sb = encase::StorageBuffer::new(Vec::<u8>::new());
        sb.write(value).map_err(|e| EngineError::Gpu(format!("storage `{label}`: encase write failed: {e}")))?;
        self.buffer_with_bytes(
            label,
            sb.as_ref(),
            4,
            wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
        )
    }

    /// Copies the whole of `buffer` (which needs `COPY_SRC`) to a staging buffer, waits for the
    /// GPU, and returns its bytes.
    pub fn read_bytes(&self, buffer: &wgpu::Buffer) -> Result<Vec<u8>, EngineError> {
        let size = buffer.size();
        let label = format!("read back {size} bytes");
        let staging = self.scoped(&label, || {
            let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("diffsim readback"),
                size,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let mut encoder =
                self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("diffsim readback") });
            encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, size);
            self.queue.submit([encoder.finish()]);
            staging
        })?;
        let (tx, rx) = mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            // The receiver outlives the poll below; a send error cannot happen.
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| EngineError::Gpu(format!("{label}: device poll failed: {e}")))?;
        match rx.try_recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(EngineError::Gpu(format!("{label}: map_async failed: {e}"))),
            Err(_) => {
                return Err(EngineError::Gpu(format!("{label}: map_async callback did not run after the device poll")));
            }
        }
        let bytes = {
            let view = staging
                .get_mapped_range(..)
                .map_err(|e| EngineError::Gpu(format!("{label}: get_mapped_range failed: {e}")))?;
            view.to_vec()
        };
        staging.unmap();
        Ok(bytes)
    }

    /// Reads back the whole of `buffer` as `f32` values (`buffer.size() / 4` of them).
    pub fn read_f32(&self, buffer: &wgpu::Buffer) -> Result<Vec<f32>, EngineError> {
        Ok(bytes_to_f32(&self.read_bytes(buffer)?))
    }

    /// Splits a count of workgroups into an `[x, y, 1]` grid within the device's per-dimension
    /// limit (65535 on lavapipe). See [`Kernel::dispatch`] for how a shader linearizes it.
    pub fn grid(&self, workgroups: u32) -> Result<[u32; 3], EngineError> {
        let max = self.device.limits().max_compute_workgroups_per_dimension;
        if workgroups <= max {
            return Ok([workgroups, 1, 1]);
        }
        let y = workgroups.div_ceil(max);
        if y > max {
            return Err(EngineError::Gpu(format!(
                "{workgroups} workgroups exceed the {max} x {max} grid of `{}`",
                self.adapter_info.name
            )));
        }
        Ok([workgroups.div_ceil(y), y, 1])
    }
}

/// A compiled WGSL compute pipeline with an automatic bind group layout (group 0).
#[derive(Debug)]
pub struct Kernel {
    label: String,
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
}

impl Kernel {
    /// Compiles `wgsl_source` and builds the compute pipeline for `entry_point`. A WGSL parse or
    /// validation error, or a missing entry point, is returned as an error naming `label`.
    pub fn new(gpu: &Gpu, label: &str, wgsl_source: &str, entry_point: &str) -> Result<Kernel, EngineError> {
        let (pipeline, layout) =
            gpu.scoped(&format!("kernel `{label}` (entry point `{entry_point}`): shader compilation"), || {
                let module = gpu.device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(label),
                    source: wgpu::ShaderSource::Wgsl(wgsl_source.into()),
                });
                let pipeline = gpu.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(label),
                    layout: None,
                    module: &module,
                    entry_point: Some(entry_point),
                    compilation_options: Default::default(),
                    cache: None,
                });
                let layout = pipeline.get_bind_group_layout(0);
                (pipeline, layout)
            })?;
        Ok(Kernel { label: label.to_owned(), pipeline, layout })
    }

    /// The label given to [`Kernel::new`].
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Binds `bindings[i]` to `@group(0) @binding(i)` (whole buffers), dispatches `workgroups`
    /// workgroups, submits and waits for the GPU to finish. Zero workgroups is a no-op.
    ///
    /// Above the device's per-dimension limit (65535 on lavapipe) the workgroups are laid out as
    /// an `[x, y, 1]` grid (see [`Gpu::grid`]) and some trailing workgroups are surplus; a shader
    /// that may see that many linearizes its invocation index as
    /// `gid.x + gid.y * nwg.x * WORKGROUP_SIZE` (with `@builtin(num_workgroups) nwg`) and
    /// bounds-checks it.
    pub fn dispatch(&self, gpu: &Gpu, bindings: &[&wgpu::Buffer], workgroups: u32) -> Result<(), EngineError> {
        if workgroups == 0 {
            return Ok(());
        }
        let [x, y, z] = gpu.grid(workgroups)?;
        gpu.scoped(&format!("kernel `{}`: dispatch", self.label), || {
            let entries: Vec<wgpu::BindGroupEntry<'_>> = bindings
                .iter()
                .enumerate()
                .map(|(i, b)| wgpu::BindGroupEntry { binding: i as u32, resource: b.as_entire_binding() })
                .collect();
            let bind_group = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(&self.label),
                layout: &self.layout,
                entries: &entries,
            });
            let mut encoder =
                gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(&self.label) });
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some(&self.label),
                    timestamp_writes: None,
                });
                pass.set_pipeline(&self.pipeline);
                pass.set_bind_group(0, &bind_group, &[]);
                pass.dispatch_workgroups(x, y, z);
            }
            gpu.queue.submit([encoder.finish()]);
        })?;
        gpu.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| EngineError::Gpu(format!("kernel `{}`: device poll failed: {e}", self.label)))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GPU tests fail, never skip, when there is no adapter.
    fn gpu() -> Gpu {
        Gpu::new()
            .unwrap_or_else(|e| panic!("GPU test needs a wgpu adapter (install mesa-vulkan-drivers for lavapipe): {e}"))
    }

    const SAXPY: &str = r#"
struct Params { a: f32, n: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i < p.n) {
        y[i] = p.a * x[i] + y[i];
    }
}
"#;

    #[derive(encase::ShaderType)]
    struct SaxpyParams {
        a: f32,
        n: u32,
    }

    /// A small deterministic generator (xorshift64*), values in [-1, 1).
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.max(1);
        (0..n)
            .map(|_| {
                s ^= s >> 12;
                s ^= s << 25;
                s ^= s >> 27;
                let r = s.wrapping_mul(0x2545_F491_4F6C_DD1D);
                ((r >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn gpu_adapter_opens() {
        let gpu = gpu();
        assert!(!gpu.adapter_name().is_empty());
        assert!(format!("{gpu:?}").contains(gpu.adapter_name()));
    }

    #[test]
    fn gpu_saxpy_matches_cpu_exactly() {
        let gpu = gpu();
        let n = 10_007;
        let a = 1.75_f32;
        let x = values(n, 1);
        let y = values(n, 2);
        let kernel = Kernel::new(&gpu, "saxpy", SAXPY, "main").unwrap();
        assert_eq!(kernel.label(), "saxpy");
        let xb = gpu.storage_f32("x", &x).unwrap();
        let yb = gpu.storage_f32("y", &y).unwrap();
        let pb = gpu.uniform("params", &SaxpyParams { a, n: n as u32 }).unwrap();
        kernel.dispatch(&gpu, &[&xb, &yb, &pb], (n as u32).div_ceil(64)).unwrap();
        let got = gpu.read_f32(&yb).unwrap();
        assert_eq!(got.len(), n);
        for i in 0..n {
            // A single multiply-add: exact unless the GPU fuses it; allow only the fused result.
            let unfused = a * x[i] + y[i];
            let fused = a.mul_add(x[i], y[i]);
            assert!(got[i] == unfused || got[i] == fused, "saxpy[{i}]: gpu {} cpu {unfused} (fused {fused})", got[i]);
        }
        // x was bound read-only and must come back unchanged.
        assert_eq!(gpu.read_f32(&xb).unwrap(), x);
    }

    #[test]
    fn gpu_roundtrip_and_write() {
        let gpu = gpu();
        let data = values(1000, 7);
        let b = gpu.storage_f32("roundtrip", &data).unwrap();
        assert_eq!(gpu.read_f32(&b).unwrap(), data);
        let other = values(1000, 8);
        gpu.write_f32(&b, &other).unwrap();
        assert_eq!(gpu.read_f32(&b).unwrap(), other);
        assert!(gpu.write_f32(&b, &values(1001, 9)).is_err());
        let z = gpu.storage_f32_zeroed("zeros", 17).unwrap();
        assert_eq!(gpu.read_f32(&z).unwrap(), vec![0.0; 17]);
        let e = gpu.storage_f32("empty", &[]).unwrap();
        assert_eq!(gpu.read_f32(&e).unwrap(), vec![0.0]);
    }

    #[test]
    fn gpu_invalid_wgsl_is_an_error_not_a_panic() {
        let gpu = gpu();
        let err = Kernel::new(&gpu, "broken", "fn main( { this is not wgsl", "main").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("broken"), "{msg}");
        // A valid module with a missing entry point is an error too.
        let err = Kernel::new(&gpu, "saxpy", SAXPY, "nope").unwrap_err();
        assert!(err.to_string().contains("saxpy"), "{err}");
        // The device is still usable afterwards.
        let k = Kernel::new(&gpu, "saxpy", SAXPY, "main").unwrap();
        let x = gpu.storage_f32("x", &[1.0]).unwrap();
        let y = gpu.storage_f32("y", &[2.0]).unwrap();
        let p = gpu.uniform("p", &SaxpyParams { a: 3.0, n: 1 }).unwrap();
        k.dispatch(&gpu, &[&x, &y, &p], 1).unwrap();
        assert_eq!(gpu.read_f32(&y).unwrap(), vec![5.0]);
    }

    #[test]
    fn gpu_bad_bindings_are_an_error_not_a_panic() {
        let gpu = gpu();
        let k = Kernel::new(&gpu, "saxpy", SAXPY, "main").unwrap();
        let x = gpu.storage_f32("x", &[1.0]).unwrap();
        let err = k.dispatch(&gpu, &[&x], 1).unwrap_err();
        assert!(err.to_string().contains("saxpy"), "{err}");
    }

    #[test]
    fn gpu_grid_splits_large_dispatches() {
        let gpu = gpu();
        let max = gpu.limits().max_compute_workgroups_per_dimension;
        assert_eq!(gpu.grid(5).unwrap(), [5, 1, 1]);
        let [x, y, z] = gpu.grid(max + 1).unwrap();
        assert!(x <= max && y >= 2 && z == 1 && x as u64 * y as u64 > max as u64);
    }

    #[test]
    fn block_on_ready_future() {
        assert_eq!(block_on("test", async { 42 }).unwrap(), 42);
    }
}
