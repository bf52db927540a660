//! `particles.integrate` on the GPU: the WGSL kernel `integrate.wgsl` (semi-implicit Euler,
//! qd' = qd + dt · f / m ; q' = q + dt · qd', one invocation per particle of every environment,
//! workgroups of 64) and its host side: [`IntegrateKernel`] (the compiled pipeline),
//! [`IntegrateBuffers`] (the particle columns resident on the GPU, for several steps without a
//! round trip) and [`integrate_gpu`] (upload, one step, read back). The semantics are those of
//! the CPU system [`crate::particles::Integrate`], including the order of the f32 operations;
//! the parity tests below compare the two. Forward only: the adjoint stays on the CPU for now.
//!
//! Layout: `q`, `qd`, `f` are `[env][particle][3]` flattened f32 (the `particle_q`,
//! `particle_qd`, `particle_f` state columns), `mass` is `[env][particle]` flattened f32.

use diffsim_engine::gpu::Kernel;
use diffsim_engine::{EngineError, Gpu, GpuMirror};

/// The WGSL source of the kernel.
pub const INTEGRATE_WGSL: &str = include_str!("integrate.wgsl");

/// The uniform block of the kernel, laid out by encase (WGSL `struct IntegrateParams`).
#[derive(Clone, Copy, Debug, PartialEq, encase::ShaderType)]
pub struct IntegrateParams {
    /// Substep length, seconds.
    pub dt: f32,
    /// Number of particles over all environments (`num_envs * count`).
    pub n: u32,
}

/// The compiled integrator pipeline. Build it once per [`Gpu`] and reuse it.
#[derive(Debug)]
pub struct IntegrateKernel {
    kernel: Kernel,
}

impl IntegrateKernel {
    /// Invocations per workgroup (`@workgroup_size(64)` in the WGSL).
    pub const WORKGROUP_SIZE: u32 = 64;

    pub fn new(gpu: &Gpu) -> Result<Self, EngineError> {
        Ok(Self { kernel: Kernel::new(gpu, "particles.integrate", INTEGRATE_WGSL, "integrate")? })
    }

    /// One step on the `particle_q`, `particle_qd`, `particle_f` columns of a state mirror with
    /// the `particle_mass` column of a model mirror (both resident; nothing is read back).
    pub fn step_mirror(&self, gpu: &Gpu, state: &GpuMirror, model: &GpuMirror, dt: f32) -> Result<(), EngineError> {
        let count = model.layout().spec("particle_mass").map_or(0, |s| s.count);
        let n = particle_count(3 * count, 3 * count, 3 * count, count)? * model.num_envs() as u32;
        if n == 0 {
            return Ok(());
        }
        let params = gpu.uniform("particles.integrate params", &IntegrateParams { dt, n })?;
        let columns = [state.buffer("particle_q")?, state.buffer("particle_qd")?, state.buffer("particle_f")?];
        let [q, qd, f] = columns;
        self.kernel.dispatch(
            gpu,
            &[q, qd, f, model.buffer("particle_mass")?, &params],
            n.div_ceil(Self::WORKGROUP_SIZE),
        )
    }

    /// One step on resident buffers.
    pub fn step(&self, gpu: &Gpu, buffers: &IntegrateBuffers) -> Result<(), EngineError> {
        if buffers.n == 0 {
            return Ok(());
        }
        let b = buffers;
        self.kernel.dispatch(gpu, &[&b.q, &b.qd, &b.f, &b.mass, &b.params], b.n.div_ceil(Self::WORKGROUP_SIZE))
    }
}

/// Checks the lengths of the four arrays against `mass.len()` particles and returns that count.
fn particle_count(q: usize, qd: usize, f: usize, mass: usize) -> Result<u32, EngineError> {
    for (column, found) in [("particle_q", q), ("particle_qd", qd), ("particle_f", f)] {
        if found != 3 * mass {
            return Err(EngineError::ShapeMismatch { column: column.to_string(), expected: 3 * mass, found });
        }
    }
    u32::try_from(mass).map_err(|_| {
        EngineError::Gpu(format!("particles.integrate: {mass} particles exceed the u32 index of the kernel"))
    })
}

/// The particle columns and the parameters resident on the GPU.
#[derive(Debug)]
pub struct IntegrateBuffers {
    pub q: wgpu::Buffer,
    pub qd: wgpu::Buffer,
    pub f: wgpu::Buffer,
    pub mass: wgpu::Buffer,
    pub params: wgpu::Buffer,
    n: u32,
}

impl IntegrateBuffers {
    /// Uploads the columns (see the module docs for the layout) and `dt`.
    pub fn new(gpu: &Gpu, q: &[f32], qd: &[f32], f: &[f32], mass: &[f32], dt: f32) -> Result<Self, EngineError> {
        let n = particle_count(q.len(), qd.len(), f.len(), mass.len())?;
        Ok(Self {
            q: gpu.storage_f32("particle_q", q)?,
            qd: gpu.storage_f32("particle_qd", qd)?,
            f: gpu.storage_f32("particle_f", f)?,
            mass: gpu.storage_f32("particle_mass", mass)?,
            params: gpu.uniform("particles.integrate params", &IntegrateParams { dt, n })?,
            n,
        })
    }

    /// Number of particles over all environments.
    pub fn len(&self) -> usize {
        self.n as usize
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Replaces the forces (e.g. computed on the CPU for the next step).
    pub fn set_forces(&self, gpu: &Gpu, f: &[f32]) -> Result<(), EngineError> {
        if f.len() != 3 * self.len() {
            return Err(EngineError::ShapeMismatch {
                column: "particle_f".to_string(),
                expected: 3 * self.len(),
                found: f.len(),
            });
        }
        gpu.write_f32(&self.f, f)
    }

    /// Reads back `q` and `qd` into the given slices (each `3 * len()` long).
    pub fn read(&self, gpu: &Gpu, q: &mut [f32], qd: &mut [f32]) -> Result<(), EngineError> {
        for (column, dst, buf) in [("particle_q", &mut *q, &self.q), ("particle_qd", &mut *qd, &self.qd)] {
            if dst.len() != 3 * self.len() {
                return Err(EngineError::ShapeMismatch {
                    column: column.to_string(),
                    expected: 3 * self.len(),
                    found: dst.len(),
                });
            }
            if !dst.is_empty() {
                dst.copy_from_slice(&gpu.read_f32(buf)?[..dst.len()]);
            }
        }
        Ok(())
    }
}

/// One integrator step on the GPU: uploads `q`, `qd`, `f`, `mass`, dispatches, and writes the
/// new `q` and `qd` back into the slices. Lengths: `q`, `qd`, `f` are `3 * mass.len()`.
pub fn integrate_gpu(
    gpu: &Gpu,
    kernel: &IntegrateKernel,
    q: &mut [f32],
    qd: &mut [f32],
    f: &[f32],
    mass: &[f32],
    dt: f32,
) -> Result<(), EngineError> {
    let buffers = IntegrateBuffers::new(gpu, q, qd, f, mass, dt)?;
    if buffers.is_empty() {
        return Ok(());
    }
    kernel.step(gpu, &buffers)?;
    buffers.read(gpu, q, qd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::particles::Integrate;
    use diffsim_engine::{ColumnSpec, Columns, Layout, ModelView, StepCx, System};

    /// GPU tests fail, never skip, when there is no adapter.
    fn gpu() -> Gpu {
        Gpu::new()
            .unwrap_or_else(|e| panic!("GPU test needs a wgpu adapter (install mesa-vulkan-drivers for lavapipe): {e}"))
    }

    /// xorshift64*: uniform f32 in [lo, hi).
    struct Rng(u64);
    impl Rng {
        fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let u = (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32;
            lo + (hi - lo) * u
        }
        fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
            (0..n).map(|_| self.uniform(lo, hi)).collect()
        }
    }

    const ENVS: usize = 4;
    const COUNT: usize = 37;
    const DT: f32 = 1e-3;

    struct Case {
        q: Vec<f32>,
        qd: Vec<f32>,
        f: Vec<f32>,
        mass: Vec<f32>,
    }

    fn case(seed: u64) -> Case {
        let mut rng = Rng(seed);
        let n = ENVS * COUNT;
        Case {
            q: rng.vec(3 * n, -1.0, 1.0),
            qd: rng.vec(3 * n, -1.0, 1.0),
            f: rng.vec(3 * n, -10.0, 10.0),
            mass: rng.vec(n, 0.5, 2.0),
        }
    }

    /// The reference: a plain f32 loop with the CPU system's operation order.
    fn cpu_loop(q: &mut [f32], qd: &mut [f32], f: &[f32], mass: &[f32], dt: f32) {
        for (k, &m) in mass.iter().enumerate() {
            let inv_m = 1.0 / m;
            for c in 0..3 {
                let i = 3 * k + c;
                qd[i] += dt * f[i] * inv_m;
                q[i] += dt * qd[i];
            }
        }
    }

    /// The reference through the CPU system `particles.integrate` (f32 state, f64 mass model).
    fn cpu_system(q: &mut [f32], qd: &mut [f32], f: &[f32], mass: &[f32], dt: f32) {
        let state_layout = Layout::new(vec![
            ColumnSpec::new("particle_q", COUNT, 3),
            ColumnSpec::new("particle_qd", COUNT, 3),
            ColumnSpec::new("particle_f", COUNT, 3),
        ]);
        let mut state = Columns::<f32>::zeros(state_layout, ENVS);
        state.set("particle_q", q).unwrap();
        state.set("particle_qd", qd).unwrap();
        state.set("particle_f", f).unwrap();
        let mut params = Columns::<f64>::zeros(Layout::new(vec![ColumnSpec::new("particle_mass", COUNT, 1)]), ENVS);
        params.set("particle_mass", &mass.iter().map(|&m| f64::from(m)).collect::<Vec<_>>()).unwrap();
        let topology = Columns::<u32>::zeros(Layout::default(), ENVS);
        let control = Columns::<f32>::zeros(Layout::default(), ENVS);
        let model = ModelView { params: params.view_all(), topology: topology.view_all() };
        let cx = StepCx { dt: f64::from(dt), step: 0, substep: 0 };
        System::<f32>::forward(&Integrate, &cx, &model, &control.view_all(), &mut state.view_all_mut());
        q.copy_from_slice(state.get("particle_q").unwrap());
        qd.copy_from_slice(state.get("particle_qd").unwrap());
    }

    /// Max of |a - b| / max(|b|, 1e-3 · max|b|) over the arrays. Both are f32; the differences
    /// are rounding only (a real GPU may fuse multiply-adds; lavapipe measured exactly equal), so
    /// values near zero are compared against the array's scale rather than themselves.
    fn max_rel_err(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        let floor = 1e-3 * b.iter().fold(0.0f32, |m, x| m.max(x.abs())).max(f32::MIN_POSITIVE);
        a.iter().zip(b).map(|(&x, &y)| (x - y).abs() / y.abs().max(floor)).fold(0.0, f32::max)
    }

    /// Within a few f32 ulps per step (20 chained steps in the longest test).
    fn assert_close(what: &str, gpu: &[f32], cpu: &[f32]) {
        let e = max_rel_err(gpu, cpu);
        assert!(e <= 1e-5, "{what}: max relative error {e:e} > 1e-5");
    }

    #[test]
    fn gpu_integrate_one_step_matches_cpu() {
        let gpu = gpu();
        let kernel = IntegrateKernel::new(&gpu).unwrap();
        let c = case(0x5eed);
        let (mut q, mut qd) = (c.q.clone(), c.qd.clone());
        integrate_gpu(&gpu, &kernel, &mut q, &mut qd, &c.f, &c.mass, DT).unwrap();

        let (mut lq, mut lqd) = (c.q.clone(), c.qd.clone());
        cpu_loop(&mut lq, &mut lqd, &c.f, &c.mass, DT);
        let (mut sq, mut sqd) = (c.q.clone(), c.qd.clone());
        cpu_system(&mut sq, &mut sqd, &c.f, &c.mass, DT);

        // The step must have moved every particle.
        assert!(q.iter().zip(&c.q).all(|(a, b)| a != b));
        assert_close("q vs loop", &q, &lq);
        assert_close("qd vs loop", &qd, &lqd);
        assert_close("q vs Integrate", &q, &sq);
        assert_close("qd vs Integrate", &qd, &sqd);
    }

    #[test]
    fn gpu_integrate_several_steps_match_cpu() {
        let gpu = gpu();
        let kernel = IntegrateKernel::new(&gpu).unwrap();
        let c = case(42);
        let mut rng = Rng(7);
        let steps = 20;
        // New forces every step, as the force systems would produce.
        let forces: Vec<Vec<f32>> = (0..steps).map(|_| rng.vec(c.f.len(), -10.0, 10.0)).collect();

        let (mut q, mut qd) = (c.q.clone(), c.qd.clone());
        let (mut lq, mut lqd) = (c.q.clone(), c.qd.clone());
        let (mut sq, mut sqd) = (c.q.clone(), c.qd.clone());
        let resident = IntegrateBuffers::new(&gpu, &c.q, &c.qd, &forces[0], &c.mass, DT).unwrap();
        for f in &forces {
            integrate_gpu(&gpu, &kernel, &mut q, &mut qd, f, &c.mass, DT).unwrap();
            cpu_loop(&mut lq, &mut lqd, f, &c.mass, DT);
            cpu_system(&mut sq, &mut sqd, f, &c.mass, DT);
            resident.set_forces(&gpu, f).unwrap();
            kernel.step(&gpu, &resident).unwrap();
        }
        let (mut rq, mut rqd) = (vec![0.0; q.len()], vec![0.0; qd.len()]);
        resident.read(&gpu, &mut rq, &mut rqd).unwrap();

        for (name, gq, gqd) in [("round trip", &q, &qd), ("resident", &rq, &rqd)] {
            assert_close(&format!("{name}: q vs loop"), gq, &lq);
            assert_close(&format!("{name}: qd vs loop"), gqd, &lqd);
            assert_close(&format!("{name}: q vs Integrate"), gq, &sq);
            assert_close(&format!("{name}: qd vs Integrate"), gqd, &sqd);
        }
        // Round trips through the host change nothing.
        assert_eq!(q, rq);
        assert_eq!(qd, rqd);
    }

    #[test]
    fn gpu_integrate_rejects_bad_shapes_and_handles_empty() {
        let gpu = gpu();
        let kernel = IntegrateKernel::new(&gpu).unwrap();
        let (mut q, mut qd) = (vec![0.0; 6], vec![0.0; 6]);
        let err = integrate_gpu(&gpu, &kernel, &mut q, &mut qd, &[0.0; 5], &[1.0, 1.0], DT).unwrap_err();
        assert!(
            matches!(err, EngineError::ShapeMismatch { ref column, expected: 6, found: 5 } if column == "particle_f")
        );
        let (mut q, mut qd) = (vec![], vec![]);
        integrate_gpu(&gpu, &kernel, &mut q, &mut qd, &[], &[], DT).unwrap();
    }

    /// More particles than 65535 workgroups of 64 cover: `Kernel::dispatch` switches to an
    /// `[x, y]` grid and the kernel linearizes it; every particle must be stepped exactly once.
    /// The mirror path: a packed scene's state and model columns on the GPU, stepped by the
    /// kernel, against the CPU system stepping the same columns.
    #[test]
    fn gpu_integrate_on_mirrors_matches_cpu_system() {
        use diffsim_engine::{GpuMirror, Scene, StepCx, System};
        let gpu = gpu();
        let kernel = IntegrateKernel::new(&gpu).unwrap();
        let mut scene = Scene::new();
        let mut rng = Rng(11);
        scene.spawn_envs(3, |env| {
            for _ in 0..5 {
                let v = glam::Vec3::from_slice(&rng.vec(3, -1.0, 1.0));
                env.particle(v, -v, rng.uniform(0.5, 2.0), 0.01);
            }
        });
        let packed = scene.pack().unwrap();
        let mut cpu = packed.state.clone();
        for x in cpu.get_mut("particle_f").unwrap() {
            *x = rng.uniform(-10.0, 10.0);
        }
        let state = GpuMirror::upload(&gpu, &cpu).unwrap();
        let model = GpuMirror::upload(&gpu, &packed.model.params).unwrap();
        let dt = 1e-3;
        for _ in 0..4 {
            kernel.step_mirror(&gpu, &state, &model, dt).unwrap();
            let cx = StepCx { dt: dt as f64, step: 0, substep: 0 };
            let control = diffsim_engine::Columns::<f32>::zeros(Default::default(), 3);
            System::<f32>::forward(
                &Integrate,
                &cx,
                &packed.model.view_all(),
                &control.view_all(),
                &mut cpu.view_all_mut(),
            );
        }
        let mut back = cpu.zeros_like::<f32>();
        state.download(&gpu, &mut back).unwrap();
        assert_close("q", back.get("particle_q").unwrap(), cpu.get("particle_q").unwrap());
        assert_close("qd", back.get("particle_qd").unwrap(), cpu.get("particle_qd").unwrap());
    }

    #[test]
    fn gpu_integrate_beyond_one_grid_dimension() {
        let gpu = gpu();
        let kernel = IntegrateKernel::new(&gpu).unwrap();
        let max = gpu.limits().max_compute_workgroups_per_dimension as usize;
        let n = max * IntegrateKernel::WORKGROUP_SIZE as usize + 3;
        // f / m = k + 1 per particle and q = qd = 0, dt = 1: qd' = q' = k + 1 exactly.
        let mass = vec![1.0; n];
        let f: Vec<f32> = (0..3 * n).map(|i| (i / 3 + 1) as f32).collect();
        let (mut q, mut qd) = (vec![0.0; 3 * n], vec![0.0; 3 * n]);
        integrate_gpu(&gpu, &kernel, &mut q, &mut qd, &f, &mass, 1.0).unwrap();
        assert_eq!(qd, f);
        assert_eq!(q, f);
    }

    #[test]
    fn integrate_params_layout() {
        use encase::ShaderType;
        assert_eq!(u64::from(IntegrateParams::min_size()), 8);
    }
}
