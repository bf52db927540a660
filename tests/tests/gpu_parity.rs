//! CPU/GPU parity of the GPU pipeline (`diffsim_engine::gpu_sim`) on whatever adapter wgpu finds
//! (lavapipe here and in CI):
//! - every kernel of chain_reach's schedule (the particle systems and the task's observe and
//!   reward), forward and adjoint, in both scatter modes, against the CPU system in f32 on
//!   random states and adjoints (proptest, few cases: lavapipe is slow);
//! - a whole 32-step chain_reach rollout: obs and rewards of every step and the action adjoints
//!   of a backward over the 32 steps, against the CPU `Sim`;
//! - a task whose systems have no GPU kernels is an error naming the first such system.
//!
//! With no adapter at all, each test prints `SKIPPED: ...` and returns; any other GPU failure
//! (device creation, shader compilation, validation) fails the test.

use std::sync::Arc;

use diffsim_engine::gpu_sim::{GpuOptions, Scatter};
use diffsim_engine::{Columns, Gpu, GpuSim, Sim, SimFactory, StepCx};
use diffsim_tasks::{ChainReach, ChainReachConfig};
use diffsim_tests::Rng;
use diffsim_tests::gpu::{self, Cases, compare_exchange_gpu_or_skip, gpu_or_skip};

/// `max_rel_err` with values below 1e-3 × the column's max |value| compared against that.
fn max_rel_err(a: &[f32], b: &[f32]) -> f64 {
    gpu::max_rel_err(a, b, 1e-3)
}

fn assert_columns_close(what: &str, gpu: &Columns<f32>, cpu: &Columns<f32>, tol: f64) {
    assert_columns_close_floor(what, gpu, cpu, tol, 1e-3);
}

/// As `assert_columns_close`, values below `floor` × the column's max |value| compared against
/// that floor.
fn assert_columns_close_floor(what: &str, gpu: &Columns<f32>, cpu: &Columns<f32>, tol: f64, floor: f64) {
    for ((spec, g), (_, c)) in gpu.columns().zip(cpu.columns()) {
        let e = gpu::max_rel_err(g, c, floor);
        assert!(e <= tol, "{what}: column `{}`: max relative error {e:e} > {tol:e}", spec.name);
    }
}

fn chain(num_envs: usize, links: usize) -> ChainReach {
    ChainReach::new(ChainReachConfig { num_envs, links, ..ChainReachConfig::default() })
}

/// A random state near the ground: heights straddle the contact radius, so free, sticking and
/// sliding particles all occur; velocities and forces of order one.
fn random_state(rng: &mut Rng, like: &Columns<f32>) -> Columns<f32> {
    let mut s = gpu::random_columns(rng, like, -1.0, 1.0);
    for (i, y) in s.get_mut("particle_q").unwrap().iter_mut().enumerate() {
        *y = if i % 3 == 1 { rng.uniform(-0.01, 0.04) as f32 } else { rng.uniform(-0.5, 0.5) as f32 };
    }
    for f in s.get_mut("particle_f").unwrap() {
        *f = rng.uniform(-5.0, 5.0) as f32;
    }
    s
}

/// Every system of chain_reach's schedule, forward and adjoint, GPU vs CPU, over random inputs.
///
/// Atomic scatter adds a particle's spring terms in another order than the CPU: the rounding of
/// a reordered sum is bounded by a few ulps of the sum of |terms|, not of the (possibly cancelled)
/// result, so there values are compared relative to max(|value|, 1e-2 × the column's scale)
/// (measured: up to 1.4e-5 against 1e-3 × scale, from cancellation in ∂L/∂q). Deterministic
/// mode keeps the CPU's order and is held to 1e-3 × scale.
fn kernels_match_cpu(scatter: Scatter, gpu: Option<Arc<Gpu>>, test: &str) {
    let floor = if scatter == Scatter::Atomic { 1e-2 } else { 1e-3 };
    let Some(gpu) = gpu else { return };
    let sim: Sim<f32> = chain(3, 5).sim().unwrap();
    let tol = |_: &str| [(1e-5, floor); 2];
    let cases = Cases::Random(16);
    gpu::for_each_system(test, gpu, &sim, scatter, cases, &|_| true, |rng| random_state(rng, &sim.state), tol, |_| {});
}

#[test]
fn gpu_kernels_match_cpu_deterministic() {
    let test = "gpu_kernels_match_cpu_deterministic";
    kernels_match_cpu(Scatter::Deterministic, gpu_or_skip(test), test);
}

#[test]
fn gpu_kernels_match_cpu_atomic() {
    let test = "gpu_kernels_match_cpu_atomic";
    kernels_match_cpu(Scatter::Atomic, gpu_or_skip(test), test);
}

/// Atomic scatter through the compare-exchange loop on the u32 bits (adapters without native
/// f32 atomics), forced on a device that has them.
#[test]
fn gpu_kernels_match_cpu_atomic_compare_exchange() {
    let test = "gpu_kernels_match_cpu_atomic_compare_exchange";
    kernels_match_cpu(Scatter::Atomic, compare_exchange_gpu_or_skip(test), test);
}

/// Rollout tolerance (max relative error, floored at 1e-3 of each column's scale) of obs,
/// rewards, ∂L/∂act and ∂L/∂(initial state) over 32 env steps in deterministic mode. Measured on
/// lavapipe: 0 (bitwise equal; the kernels keep the CPU's order of f32 operations). A GPU that
/// contracts multiply-adds differs in the last bits, which 32 × 8 substeps of stiff penalty
/// contact amplify; 1e-4 leaves room for that and still catches a 1e-4 change in one kernel's
/// adjoint (which moved ∂L/∂act by 1.2e-3 when tried).
const ROLLOUT_TOL: f64 = 1e-4;
/// The same rollout with atomic scatter: the spring forces of a particle add up in a run-to-run
/// varying order, so last-bit differences appear from the first substep and grow through the
/// contact dynamics. Measured on lavapipe: obs 3.7e-4, rewards 0, ∂L/∂act 8.2e-6.
const ATOMIC_ROLLOUT_TOL: f64 = 1e-2;

#[test]
fn gpu_chain_reach_rollout_matches_cpu() {
    let task = chain(4, 4);
    rollout_matches_cpu(
        || task.sim().unwrap(),
        32,
        Scatter::Deterministic,
        ROLLOUT_TOL,
        "gpu_chain_reach_rollout_matches_cpu",
    );
}

#[test]
fn gpu_chain_reach_rollout_matches_cpu_atomic() {
    let task = chain(4, 4);
    let test = "gpu_chain_reach_rollout_matches_cpu_atomic";
    rollout_matches_cpu(|| task.sim().unwrap(), 32, Scatter::Atomic, ATOMIC_ROLLOUT_TOL, test);
}

/// chain_reach with an extra substep in the Post stage before observe and reward:
/// [clear, gravity, springs, integrate, observe, reward]. The reward's adjoint reads `particle_q`,
/// which `integrate` wrote earlier in the same segment, so backward cannot use the segment's
/// boundary state for it and must recompute its pre-state (in chain_reach's own schedule no
/// adjoint needs that); this checks that path against the CPU.
#[test]
fn gpu_backward_recomputes_pre_states_a_segment_changed() {
    use diffsim_engine::Stage;
    use diffsim_systems::particles::{ClearForces, Gravity, Integrate, Springs};
    use diffsim_tasks::chain_reach::{Observe, Reward};
    // Falling from 5 cm with 2 substeps, so one substep moves the tail visibly: with the
    // boundary state in place of the recomputed pre-state (tried), ∂L/∂(initial state) is off by
    // 2.9e-4 relative, ∂L/∂act by less; the correct path is bitwise equal on lavapipe.
    let task =
        ChainReach::new(ChainReachConfig { num_envs: 3, links: 4, lift: 0.05, substeps: 2, ..Default::default() });
    let build = || {
        let mut sim: Sim<f32> = task.sim().unwrap();
        let c = &task.cfg;
        let actuation = diffsim_systems::particles::Actuation { particles: vec![0], scale: c.action_scale };
        sim.schedule = diffsim_systems::particles::schedule(c.dt, c.substeps, true, Some(actuation))
            .with(Stage::Post, ClearForces)
            .with(Stage::Post, Gravity)
            .with(Stage::Post, Springs)
            .with(Stage::Post, Integrate)
            .with(Stage::Post, Observe { links: c.links })
            .with(Stage::Post, Reward { tail: c.links - 1, action_cost: c.action_cost });
        sim.schedule.validate(sim.state.layout(), sim.control.layout(), &sim.model).unwrap();
        sim
    };
    let test = "gpu_backward_recomputes_pre_states_a_segment_changed";
    rollout_matches_cpu(build, 8, Scatter::Deterministic, ROLLOUT_TOL, test);
}

fn rollout_matches_cpu(build: impl Fn() -> Sim<f32>, h: usize, scatter: Scatter, tol: f64, test: &str) {
    let Some(gpu) = gpu_or_skip(test) else { return };
    let mut cpu = build();
    let init = cpu.state.clone();
    let readback = vec!["obs".to_string(), "reward".to_string()];
    let mut g = GpuSim::new(gpu, &cpu, GpuOptions { scatter, readback }).unwrap();
    let mut rng = Rng::new(7);
    let actions = gpu::random_actions(&mut rng, h, 3 * cpu.num_envs());
    let obs_seed: Vec<f32> = (0..cpu.state.get("obs").unwrap().len()).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
    let run = gpu::rollout(&mut g, &mut cpu, None, &actions, &obs_seed).unwrap();
    assert_eq!(g.tape_len(), h);
    let (worst_obs, worst_rew) = (gpu::worst_step(&run.obs, 1e-3), gpu::worst_step(&run.reward, 1e-3));
    assert!(worst_obs <= tol && worst_rew <= tol, "obs rel err {worst_obs:e}, reward rel err {worst_rew:e}");
    let [gpu_grads, cpu_grads] = &run.grads;
    assert_eq!(gpu_grads.controls.len(), h);
    let worst_grad = gpu::worst_act(gpu_grads, cpu_grads, 1e-3);
    assert!(worst_grad <= tol, "∂L/∂act: max relative error {worst_grad:e}");
    assert_columns_close("∂L/∂(initial state)", &gpu_grads.initial_state, &cpu_grads.initial_state, tol);
    // The gradient is not trivially zero.
    assert!(cpu_grads.controls[0].get("act").unwrap().iter().any(|x| x.abs() > 1e-6));
    eprintln!(
        "{test}: {scatter:?} rollout parity ({h} steps): max rel err obs {worst_obs:e}, reward {worst_rew:e}, ∂L/∂act {worst_grad:e}"
    );

    // A second rollout on the same GpuSim reuses the tape and gives the same gradients.
    let again = gpu::gpu_rerun(&mut g, &init, &actions, &obs_seed).unwrap();
    if scatter == Scatter::Deterministic {
        for t in 0..h {
            assert_eq!(again.controls[t], gpu_grads.controls[t], "deterministic mode reproduces step {t} bitwise");
        }
    } else {
        let e = gpu::worst_act(&again, gpu_grads, 1e-3);
        assert!(e <= tol, "atomic rerun: {e:e}");
    }
}

/// A Post-stage system with no GPU kernels (a CPU-only system after systems that have them).
struct CpuOnly;

impl<R: diffsim_engine::Real> diffsim_engine::System<R> for CpuOnly {
    fn name(&self) -> &str {
        "test.cpu_only"
    }
    fn access(&self) -> Vec<diffsim_engine::ColumnAccess> {
        Vec::new()
    }
    fn forward(
        &self,
        _: &StepCx,
        _: &diffsim_engine::ModelView,
        _: &diffsim_engine::View<R>,
        _: &mut diffsim_engine::ViewMut<R>,
    ) {
    }
    fn adjoint(
        &self,
        _: &StepCx,
        _: &diffsim_engine::ModelView,
        _: &diffsim_engine::View<R>,
        _: &diffsim_engine::View<R>,
        _: &mut diffsim_engine::ViewMut<R>,
        _: &mut diffsim_engine::ViewMut<R>,
    ) {
    }
}

#[test]
fn gpu_sim_names_the_first_system_without_kernels() {
    let mut sim: Sim<f32> = chain(1, 3).sim().unwrap();
    assert_eq!(GpuSim::first_without_kernels(&sim), None);
    let schedule = std::mem::replace(&mut sim.schedule, diffsim_engine::Schedule::new(1.0, 1));
    sim.schedule = schedule.with(diffsim_engine::Stage::Post, CpuOnly);
    let first = "test.cpu_only".to_string();
    assert_eq!(GpuSim::first_without_kernels(&sim).map(|(n, _)| n), Some(first.clone()));
    let Some(gpu) = gpu_or_skip("gpu_sim_names_the_first_system_without_kernels") else { return };
    let err = GpuSim::new(gpu, &sim, GpuOptions::default()).unwrap_err().to_string();
    assert!(err.contains(&format!("`{first}`")) && err.contains("no GPU kernels"), "{err}");
}

/// Resets of some envs in the middle of a recorded rollout (the tape cuts their gradient paths),
/// `run_stage(Post)` refreshing observations after them, and the gradient-bridge sweep (seeds
/// that depend on ∂L/∂act_{t+1}), all against the CPU `Sim`.
#[test]
fn gpu_resets_and_bridge_sweep_match_cpu() {
    use diffsim_engine::Stage;
    let Some(gpu) = gpu_or_skip("gpu_resets_and_bridge_sweep_match_cpu") else { return };
    let task = chain(4, 4);
    let mut cpu: Sim<f32> = task.sim().unwrap();
    let readback = vec!["obs".to_string(), "reward".to_string()];
    let mut g = GpuSim::new(gpu, &cpu, GpuOptions { scatter: Scatter::Deterministic, readback }).unwrap();
    let mut reset_state = cpu.state.clone();
    for (i, x) in reset_state.get_mut("particle_q").unwrap().iter_mut().enumerate() {
        if i % 3 == 0 {
            *x += 0.01 * (i % 7) as f32;
        }
    }
    let mut rng = Rng::new(11);
    let n = cpu.num_envs();
    let h = 12;
    cpu.record();
    g.record();
    for t in 0..h {
        let resets: &[usize] = match t {
            5 => &[1, 3],
            9 => &[0],
            _ => &[],
        };
        if !resets.is_empty() {
            cpu.reset_envs(resets, &reset_state).unwrap();
            let step = cpu.steps_taken();
            let model = cpu.model.view_all();
            cpu.schedule
                .forward_stage(Stage::Post, step, &model, &cpu.control.view_all(), &mut cpu.state.view_all_mut())
                .unwrap();
            g.reset_envs(resets, &reset_state).unwrap();
            g.run_stage(Stage::Post).unwrap();
            assert_eq!(g.host("obs").unwrap(), cpu.state.get("obs").unwrap(), "obs refreshed after the reset at {t}");
        }
        let a: Vec<f32> = (0..3 * n).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
        cpu.set_control("act", &a).unwrap();
        cpu.step().unwrap();
        g.set_control("act", &a).unwrap();
        g.step().unwrap();
        let e = max_rel_err(g.host("obs").unwrap(), cpu.state.get("obs").unwrap());
        assert!(e <= ROLLOUT_TOL, "step {t}: obs rel err {e:e}");
    }
    // A bridge-like seed: ∂L/∂obs_t gets a linear function of ∂L/∂act_{t+1}.
    let w = -1.0 / (h * n) as f32;
    let od = cpu.state.layout().spec("obs").unwrap().per_env();
    let bridge = |next: Option<&Columns<f32>>| -> Vec<f32> {
        let mut v = vec![0.0f32; n * od];
        if let Some(c) = next {
            let act = c.get("act").unwrap();
            for e in 0..n {
                for k in 0..od {
                    v[e * od + k] = 0.5 * act[3 * e + k % 3] * (1.0 + k as f32 / od as f32);
                }
            }
        }
        v
    };
    let cpu_grads = cpu
        .backward_sweep(|_, adj, next| {
            adj.get_mut("reward").unwrap().iter_mut().for_each(|x| *x += w);
            adj.get_mut("obs").unwrap().iter_mut().zip(bridge(next)).for_each(|(x, s)| *x += s);
        })
        .unwrap();
    let gpu_grads = g
        .backward_sweep(|_, seeds, next| {
            seeds.add("reward", vec![w; n]);
            seeds.add("obs", bridge(next));
        })
        .unwrap();
    for t in 0..h {
        let e = max_rel_err(gpu_grads.controls[t].get("act").unwrap(), cpu_grads.controls[t].get("act").unwrap());
        assert!(e <= ROLLOUT_TOL, "∂L/∂act of step {t}: max relative error {e:e}");
    }
    assert_columns_close("∂L/∂(initial state)", &gpu_grads.initial_state, &cpu_grads.initial_state, ROLLOUT_TOL);
    // Parity covers the cuts: ignoring them on the GPU (tried) leaves
    // ∂L/∂act of step 0 off by 25× relative.
}

/// The `VecEnv` on the GPU (`VecEnv::on_gpu`) against the same env on the CPU: observations,
/// rewards and autoresets over 24 steps with 10-step episodes, and the gradient-bridge sweep
/// (`backward_sweep` with seeds that use ∂L/∂a_{t+1}) through those resets.
#[test]
fn gpu_vec_env_matches_cpu() {
    use diffsim_tasks::vec_env::{StepSeeds, VecEnv};
    use ndarray::{Array1, Array2};
    let Some(gpu) = gpu_or_skip("gpu_vec_env_matches_cpu") else { return };
    let cfg = ChainReachConfig { num_envs: 4, links: 4, episode_length: 10, ..ChainReachConfig::default() };
    let mut cpu = VecEnv::new(ChainReach::new(cfg.clone())).unwrap();
    let mut g = VecEnv::new(ChainReach::new(cfg)).unwrap().on_gpu(gpu, Scatter::Deterministic).unwrap();
    assert!(g.is_on_gpu() && !cpu.is_on_gpu());
    assert_eq!(g.reset(3).unwrap(), cpu.reset(3).unwrap());
    cpu.record();
    g.record();
    let (n, h) = (4, 24);
    let mut rng = Rng::new(5);
    let mut resets = 0;
    for t in 0..h {
        let a = Array2::from_shape_fn((n, 3), |_| rng.uniform(-1.2, 1.2) as f32);
        let rc = cpu.step(a.view()).unwrap();
        let rg = g.step(a.view()).unwrap();
        assert_eq!(rg.truncated, rc.truncated, "step {t}");
        resets += rc.truncated.iter().filter(|&&x| x).count();
        let eo = max_rel_err(rg.obs.as_slice().unwrap(), rc.obs.as_slice().unwrap());
        let er = max_rel_err(rg.reward.as_slice().unwrap(), rc.reward.as_slice().unwrap());
        assert!(eo <= ROLLOUT_TOL && er <= ROLLOUT_TOL, "step {t}: obs {eo:e}, reward {er:e}");
    }
    assert_eq!(resets, 8, "two autoresets of every env");
    let seeds = |t: usize, next: Option<ndarray::ArrayView2<f32>>| {
        let mut obs = Array2::from_shape_fn((n, 24), |(e, k)| 0.01 * ((e + k + t) % 5) as f32);
        if let Some(next) = next {
            obs.indexed_iter_mut().for_each(|((e, k), o)| *o += 0.3 * next[[e, k % 3]]);
        }
        Ok(StepSeeds { obs, reward: Array1::from_elem(n, -1.0 / (h * n) as f32), final_obs: vec![None; n] })
    };
    let gc = cpu.backward_sweep(seeds).unwrap();
    let gg = g.backward_sweep(seeds).unwrap();
    assert_eq!(gg.len(), h);
    for t in 0..h {
        let e = max_rel_err(gg[t].as_slice().unwrap(), gc[t].as_slice().unwrap());
        assert!(e <= ROLLOUT_TOL, "∂L/∂action of step {t}: {e:e}");
    }
    assert!(gc[0].iter().any(|x| x.abs() > 1e-6));
}
