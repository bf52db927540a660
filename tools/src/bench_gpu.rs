//! `--backend cpu|gpu|auto` of `diffsim bench` and `diffsim train`: which backend a bench row or
//! a training run uses, and the GPU timing of a bench row (the same protocol as the CPU's in
//! `bench.rs`, on a `GpuSim`).
//!
//! - forward: per step, the actions are written to the GPU, one command buffer runs all
//!   substeps, and `obs` and `reward` are read back (what a learner needs every step);
//! - forward+backward: H recorded steps as above, then `GpuSim::backward` seeding the reward
//!   adjoint with −1/(H·N) every step, one command buffer per step, the action gradients of all
//!   H steps read back at the end.
//!
//! `--backend gpu` fails with the wgpu adapter error when no adapter exists, names the first
//! system without GPU kernels for tasks that have one, and gives the GPU's error for a task it
//! refuses when building its kernels (a scene the GPU mirror lacks, a device limit); `auto` falls
//! back to the CPU in all three cases and says why on stderr.

use std::hint::black_box;
use std::sync::Arc;

use anyhow::Context;
use clap::ValueEnum;
use diffsim_engine::gpu_sim::{GpuOptions, Scatter, Seeds};
use diffsim_engine::{Columns, Gpu, GpuSim, Sim};
use diffsim_tasks::{Task, VecEnv};
use diffsim_tests::Rng;

use crate::bench::{ACTION_POOL, Measurement, best_of};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    Cpu,
    /// wgpu on any adapter (lavapipe where there is no GPU).
    Gpu,
    /// gpu if an adapter exists and every system of the task has GPU kernels, else cpu.
    Auto,
}

/// How the GPU's spring kernels reduce (`--gpu-scatter`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum GpuScatter {
    /// Fixed-order gather: bitwise reproducible.
    Deterministic,
    /// Atomic adds: order varies run to run.
    Atomic,
}

/// The device, opened once per bench run when the backend may need it.
pub enum Device {
    Cpu,
    Gpu(Arc<Gpu>),
    /// auto without an adapter: the reason, printed once.
    NoAdapter(String),
}

pub fn open(backend: Backend) -> anyhow::Result<Device> {
    match backend {
        Backend::Cpu => Ok(Device::Cpu),
        Backend::Gpu => Ok(Device::Gpu(Arc::new(Gpu::new().context("--backend gpu: cannot open a wgpu adapter")?))),
        Backend::Auto => Ok(match Gpu::new() {
            Ok(g) => Device::Gpu(Arc::new(g)),
            Err(e) => Device::NoAdapter(e.to_string()),
        }),
    }
}

/// The GPU a task's row runs on, `None` for the CPU (auto explains its fallbacks on stderr).
pub fn choose(device: &Device, backend: Backend, sim: &Sim<f32>, task: &str) -> anyhow::Result<Option<Arc<Gpu>>> {
    let missing = GpuSim::first_without_kernels(sim);
    match (device, backend, missing) {
        (Device::Cpu, ..) => Ok(None),
        (Device::NoAdapter(e), ..) => {
            eprintln!("note: --backend auto: `{task}` on the CPU: no wgpu adapter ({e})");
            Ok(None)
        }
        (Device::Gpu(_), Backend::Gpu, Some((name, stage))) => anyhow::bail!(
            "--backend gpu: task `{task}` cannot run on the GPU: system `{name}` ({stage} stage) has no GPU kernels \
             yet; use --backend cpu or auto"
        ),
        (Device::Gpu(_), _, Some((name, _))) => {
            eprintln!("note: --backend auto: `{task}` on the CPU: system `{name}` has no GPU kernels");
            Ok(None)
        }
        (Device::Gpu(g), _, None) => Ok(Some(g.clone())),
    }
}

/// Moves `env` onto the GPU where `choose` says so. A task the GPU refuses when its kernels are
/// built is an error with `--backend gpu`; with `auto` it stays on the CPU, with a note naming why.
#[cfg_attr(not(feature = "learn"), allow(dead_code))] // used by `train`
pub fn place<T: Task>(
    env: &mut VecEnv<T>,
    device: &Device,
    backend: Backend,
    scatter: GpuScatter,
    task: &str,
) -> anyhow::Result<()> {
    let Some(gpu) = choose(device, backend, env.sim(), task)? else { return Ok(()) };
    match env.try_on_gpu(gpu, scatter.into()) {
        Ok(()) => Ok(()),
        Err(e) if backend == Backend::Auto => {
            eprintln!("note: --backend auto: `{task}` on the CPU: the GPU refused it: {e}");
            Ok(())
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("moving `{task}` onto the GPU"))),
    }
}

impl From<GpuScatter> for Scatter {
    fn from(s: GpuScatter) -> Self {
        match s {
            GpuScatter::Deterministic => Scatter::Deterministic,
            GpuScatter::Atomic => Scatter::Atomic,
        }
    }
}

pub fn measure(
    gpu: Arc<Gpu>,
    sim: &Sim<f32>,
    scatter: GpuScatter,
    steps: usize,
    horizon: usize,
    rng: &mut Rng,
) -> anyhow::Result<Measurement> {
    let scatter = Scatter::from(scatter);
    let readback: Vec<String> =
        ["obs", "reward"].iter().filter(|c| sim.state.get(c).is_ok()).map(|c| c.to_string()).collect();
    sim.state.get("reward").context("the task has no `reward` state column to seed backward with")?;
    let mut g = GpuSim::new(gpu, sim, GpuOptions { scatter, readback })?;
    let envs = sim.num_envs();
    let actions: Vec<Columns<f32>> =
        (0..ACTION_POOL).map(|_| rng.like(&sim.control.map(f64::from)).map(|x| x as f32)).collect();
    let init = sim.state.clone();
    let run_steps = |g: &mut GpuSim, n: usize| -> anyhow::Result<()> {
        for i in 0..n {
            g.write_control(&actions[i % ACTION_POOL])?;
            g.step()?;
            black_box(g.host("reward")?);
        }
        Ok(())
    };
    let weight = vec![-1.0 / (horizon * envs) as f32; envs];
    let rollout = |g: &mut GpuSim| -> anyhow::Result<()> {
        g.write_state(&init)?;
        g.record();
        run_steps(g, horizon)?;
        let grads = g.backward(|_, s: &mut Seeds| s.add("reward", weight.clone()))?;
        black_box(&grads);
        Ok(())
    };
    // Warm-up (shader compilation happened in GpuSim::new; this fills the bind group cache).
    g.write_state(&init)?;
    run_steps(&mut g, steps.min(8))?;
    rollout(&mut g)?;
    let t = best_of(|| {
        g.write_state(&init)?;
        run_steps(&mut g, steps)
    })?;
    let fwd = (envs * steps) as f64 / t.as_secs_f64();
    let rollouts = steps.div_ceil(horizon);
    let t = best_of(|| (0..rollouts).try_for_each(|_| rollout(&mut g)))?;
    let tape = g.tape_bytes() as usize;
    Ok(Measurement {
        fwd: Some(fwd),
        fwd_bwd: Some((envs * horizon * rollouts) as f64 / t.as_secs_f64()),
        tape_bytes: Some(tape),
        tape_per_env_step: Some(tape as f64 / (envs * horizon) as f64),
        peak_rss: None,
        profile: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use diffsim_engine::{ColumnAccess, ModelView, SimFactory, Stage, StepCx, System, View, ViewMut};
    use diffsim_tasks::{ChainReach, ChainReachConfig};
    use diffsim_tests::gpu::gpu_or_skip;

    /// A system with no GPU mirror (every shipped task's systems have one).
    struct NoKernels;
    impl System<f32> for NoKernels {
        fn name(&self) -> &str {
            "test.no_kernels"
        }
        fn access(&self) -> Vec<ColumnAccess> {
            Vec::new()
        }
        fn forward(&self, _: &StepCx, _: &ModelView, _: &View<f32>, _: &mut ViewMut<f32>) {}
        fn adjoint(
            &self,
            _: &StepCx,
            _: &ModelView,
            _: &View<f32>,
            _: &View<f32>,
            _: &mut ViewMut<f32>,
            _: &mut ViewMut<f32>,
        ) {
        }
    }

    fn chain(n: usize) -> ChainReach {
        ChainReach::new(ChainReachConfig { num_envs: n, ..ChainReachConfig::default() })
    }

    #[test]
    fn a_task_without_gpu_kernels_is_named_by_gpu_and_falls_back_under_auto() {
        let Some(gpu) = gpu_or_skip("a_task_without_gpu_kernels_is_named_by_gpu_and_falls_back_under_auto") else {
            return;
        };
        let device = Device::Gpu(gpu);
        let mut sim: Sim<f32> = chain(1).sim().unwrap();
        sim.schedule.push(Stage::Post, Box::new(NoKernels));
        let err = choose(&device, Backend::Gpu, &sim, "chain-reach").unwrap_err().to_string();
        assert!(err.contains("`chain-reach`") && err.contains("system `test.no_kernels` (post stage)"), "{err}");
        assert!(err.contains("--backend cpu or auto"), "{err}");
        assert!(choose(&device, Backend::Auto, &sim, "chain-reach").unwrap().is_none());
        assert!(choose(&device, Backend::Cpu, &sim, "chain-reach").unwrap().is_none());
    }

    /// A device whose storage bindings are too small for the task: `GpuSim::new` refuses it.
    /// `gpu` is that error; `auto` keeps the env on the CPU, where it still steps.
    #[test]
    fn a_task_the_gpu_refuses_is_an_error_under_gpu_and_runs_on_the_cpu_under_auto() {
        if gpu_or_skip("a_task_the_gpu_refuses_is_an_error_under_gpu_and_runs_on_the_cpu_under_auto").is_none() {
            return;
        }
        let tiny = Device::Gpu(Arc::new(Gpu::with_storage_binding_limit(16).unwrap()));
        let mut env = VecEnv::new(chain(2)).unwrap();
        env.reset(0).unwrap();
        let err = place(&mut env, &tiny, Backend::Gpu, GpuScatter::Deterministic, "chain-reach").unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("moving `chain-reach` onto the GPU") && msg.contains("bytes"), "{msg}");
        assert!(!env.is_on_gpu());
        place(&mut env, &tiny, Backend::Auto, GpuScatter::Deterministic, "chain-reach").unwrap();
        assert!(!env.is_on_gpu());
        let out = env.step(ndarray::Array2::zeros((2, 3)).view()).unwrap();
        assert!(out.obs.iter().all(|x| x.is_finite()));
    }
}
