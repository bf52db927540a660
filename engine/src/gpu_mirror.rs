//! `GpuMirror`: a column set (`State`, `Control` or `Model` params) held on the GPU, one storage
//! buffer per column with the same `[env][entity][width]` f32 layout as the CPU mirror, so a
//! kernel indexes `(env * count + entity) * width + c` exactly like the CPU system does.
//!
//! It owns upload, download and lookup by name; it runs no kernels. Data moves only when asked
//! (`upload`/`download`), never implicitly per step.

use wgpu::Buffer;

use crate::columns::{Columns, Layout};
use crate::error::EngineError;
use crate::gpu::Gpu;

pub struct GpuMirror {
    layout: Layout,
    num_envs: usize,
    buffers: Vec<Buffer>,
}

impl GpuMirror {
    /// Uploads every column of `set` (converted to f32: model params are stored in f64).
    pub fn upload<T: Copy + Into<f64>>(gpu: &Gpu, set: &Columns<T>) -> Result<Self, EngineError> {
        let buffers = set
            .columns()
            .map(|(spec, col)| {
                let data: Vec<f32> = col.iter().map(|&x| x.into() as f32).collect();
                gpu.storage_f32(&spec.name, &data)
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { layout: set.layout().clone(), num_envs: set.num_envs(), buffers })
    }

    /// Uploads an integer column set (model topology) as `u32` buffers, bit for bit.
    pub fn upload_u32(gpu: &Gpu, set: &Columns<u32>) -> Result<Self, EngineError> {
        let buffers = set.columns().map(|(spec, col)| gpu.storage_u32(&spec.name, col)).collect::<Result<_, _>>()?;
        Ok(Self { layout: set.layout().clone(), num_envs: set.num_envs(), buffers })
    }

    /// A mirror of `layout` for `num_envs` environments, all zeros (adjoints, scratch, tape).
    pub fn zeros(gpu: &Gpu, label: &str, layout: &Layout, num_envs: usize) -> Result<Self, EngineError> {
        let buffers = layout
            .specs
            .iter()
            .map(|s| gpu.storage_f32_zeroed(&format!("{label}.{}", s.name), s.per_env() * num_envs))
            .collect::<Result<_, _>>()?;
        Ok(Self { layout: layout.clone(), num_envs, buffers })
    }

    /// The column buffers in layout order.
    pub fn buffers(&self) -> &[Buffer] {
        &self.buffers
    }

    /// Bytes of GPU memory the mirror holds.
    pub fn bytes(&self) -> u64 {
        self.buffers.iter().map(Buffer::size).sum()
    }

    /// Records a copy of every column into `dst` (same layout and env count) on `encoder`; it
    /// runs in submission order with the kernels around it, with no host round trip.
    pub fn encode_copy_to(&self, encoder: &mut wgpu::CommandEncoder, dst: &GpuMirror) {
        debug_assert!(self.layout == dst.layout && self.num_envs == dst.num_envs);
        for (s, d) in self.buffers.iter().zip(&dst.buffers) {
            encoder.copy_buffer_to_buffer(s, 0, d, 0, s.size());
        }
    }

    /// Records zeroing every column on `encoder`.
    pub fn encode_clear(&self, encoder: &mut wgpu::CommandEncoder) {
        for b in &self.buffers {
            encoder.clear_buffer(b, 0, None);
        }
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }
    pub fn num_envs(&self) -> usize {
        self.num_envs
    }

    /// The storage buffer of a column, to bind in a kernel.
    pub fn buffer(&self, name: &str) -> Result<&Buffer, EngineError> {
        let i = self.layout.index_of(name).ok_or_else(|| EngineError::UnknownColumn {
            column: name.to_string(),
            available: self.layout.specs.iter().map(|s| s.name.clone()).collect(),
        })?;
        Ok(&self.buffers[i])
    }

    /// Overwrites the GPU copy of every column from `set` (same layout and env count).
    pub fn write(&self, gpu: &Gpu, set: &Columns<f32>) -> Result<(), EngineError> {
        self.check(set)?;
        for ((_, col), buf) in set.columns().zip(&self.buffers) {
            gpu.write_f32(buf, col)?;
        }
        Ok(())
    }

    /// Copies every column back into `set` (same layout and env count).
    pub fn download(&self, gpu: &Gpu, set: &mut Columns<f32>) -> Result<(), EngineError> {
        self.check(set)?;
        for ((_, col), buf) in set.columns_mut().zip(&self.buffers) {
            let data = gpu.read_f32(buf)?;
            // Empty columns are backed by one padding scalar (a binding cannot be empty).
            let n = col.len();
            col.copy_from_slice(&data[..n]);
        }
        Ok(())
    }

    fn check(&self, set: &Columns<f32>) -> Result<(), EngineError> {
        if set.layout() != &self.layout || set.num_envs() != self.num_envs {
            return Err(EngineError::Gpu(format!(
                "mirror holds {} envs of columns {:?}; the CPU set has {} envs of {:?}",
                self.num_envs,
                self.layout.specs.iter().map(|s| (&s.name, s.count, s.width)).collect::<Vec<_>>(),
                set.num_envs(),
                set.layout().specs.iter().map(|s| (&s.name, s.count, s.width)).collect::<Vec<_>>(),
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::columns::ColumnSpec;

    fn gpu() -> Gpu {
        Gpu::new()
            .unwrap_or_else(|e| panic!("GPU test needs a wgpu adapter (install mesa-vulkan-drivers for lavapipe): {e}"))
    }

    fn set(num_envs: usize) -> Columns<f32> {
        let layout = Layout::new(vec![
            ColumnSpec::new("particle_q", 5, 3),
            ColumnSpec::new("empty", 0, 3),
            ColumnSpec::new("reward", 1, 1),
        ]);
        let mut c = Columns::zeros(layout, num_envs);
        for (_, col) in c.columns_mut() {
            for (i, x) in col.iter_mut().enumerate() {
                *x = i as f32 * 0.5 - 3.0;
            }
        }
        c
    }

    #[test]
    fn gpu_mirror_roundtrips_every_column_bit_exactly() {
        let gpu = gpu();
        let cpu = set(3);
        let mirror = GpuMirror::upload(&gpu, &cpu).unwrap();
        let mut back = cpu.zeros_like::<f32>();
        mirror.download(&gpu, &mut back).unwrap();
        assert_eq!(back, cpu);
        let mut changed = cpu.clone();
        changed.get_mut("reward").unwrap()[2] = 42.0;
        mirror.write(&gpu, &changed).unwrap();
        mirror.download(&gpu, &mut back).unwrap();
        assert_eq!(back.get("reward").unwrap()[2], 42.0);
        assert_eq!(mirror.buffer("particle_q").unwrap().size(), 3 * 5 * 3 * 4);
    }

    #[test]
    fn gpu_mirror_rejects_other_layouts_and_names_unknown_columns() {
        let gpu = gpu();
        let mirror = GpuMirror::upload(&gpu, &set(2)).unwrap();
        let err = mirror.download(&gpu, &mut set(3)).unwrap_err();
        assert!(err.to_string().contains("2 envs"), "{err}");
        let err = mirror.buffer("particle_qd").unwrap_err();
        assert!(err.to_string().contains("particle_qd") && err.to_string().contains("particle_q"), "{err}");
    }

    #[test]
    fn model_params_upload_from_f64() {
        let gpu = gpu();
        let mut model: Columns<f64> = Columns::zeros(Layout::new(vec![ColumnSpec::new("particle_mass", 4, 1)]), 2);
        model.get_mut("particle_mass").unwrap().copy_from_slice(&[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]);
        let mirror = GpuMirror::upload(&gpu, &model).unwrap();
        let data = gpu.read_f32(mirror.buffer("particle_mass").unwrap()).unwrap();
        assert_eq!(data, vec![0.1f32, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]);
    }
}
