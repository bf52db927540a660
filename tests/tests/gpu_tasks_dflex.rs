//! The DFlex locomotion tasks' Post-stage systems on the GPU (`diffsim_tasks::hopper_gpu`):
//! per-system CPU/GPU parity, forward and adjoint, on random states that reach every branch of
//! the reward and the termination flag, and Hopper whole on the GPU (`GpuSim`: the articulation
//! substeps with ground contact and the task systems) against the CPU `Sim` over a rollout with
//! random torques.
//!
//! With no adapter at all each test prints `SKIPPED: ...` and returns; with
//! `DIFFSIM_REQUIRE_GPU=1` that fails instead. Any other GPU failure fails the test.

use diffsim_engine::gpu_sim::{GpuOptions, Scatter};
use diffsim_engine::{Columns, GpuSim, Schedule, Sim, SimFactory, Stage, StepCx, System};
use diffsim_tasks::hopper::{self, Observe, Reward, Terminate};
use diffsim_tasks::{Hopper, HopperConfig};
use diffsim_tests::Rng;
use diffsim_tests::gpu::{self, gpu_or_skip, worst_column};
use proptest::test_runner::{Config, TestRunner};

/// Per-system tolerance (relative; values below `FLOOR` × the column's max |value| are compared
/// against that scale). See `gpu_hopper_task_systems_match_cpu`.
const TOL: f64 = 1e-5;
const FLOOR: f64 = 1e-4;

fn random_columns(rng: &mut Rng, like: &Columns<f32>, lo: f64, hi: f64) -> Columns<f32> {
    let mut c = like.clone();
    for (_, col) in c.columns_mut() {
        col.iter_mut().for_each(|x| *x = rng.uniform(lo, hi) as f32);
    }
    c
}

/// The largest `max_rel_err` over the columns of a set, checked against `tol`.
fn columns_err(what: &str, gpu: &Columns<f32>, cpu: &Columns<f32>, tol: f64) -> f64 {
    let mut worst = 0.0f64;
    for ((spec, g), (_, c)) in gpu.columns().zip(cpu.columns()) {
        let e = gpu::max_rel_err(g, c, FLOOR);
        assert!(e <= tol, "{what}: column `{}`: max relative error {e:e} > {tol:e}", spec.name);
        worst = worst.max(e);
    }
    worst
}

/// Torso heights (joint_q[1], relative to the start) of the hopper parity test's first five envs
/// are drawn from these bands, one each: below the reward's lower clip (c = −1), the quadratic
/// penalty while terminated, the quadratic penalty above the termination height, the linear
/// part, above the upper clip (c = 0.3). With c = clip(h + 0.3, −1, 0.3) and termination at
/// h < −0.45.
const HEIGHT_BANDS: [(f64, f64); 5] = [(-1.6, -1.31), (-1.29, -0.46), (-0.44, -0.31), (-0.29, -0.01), (0.01, 0.5)];

/// The branch of H(h) in f64: 0 lower clip, 1 quadratic, 2 linear, 3 upper clip.
fn height_branch(h: f32) -> usize {
    let d = f64::from(h) - f64::from((hopper::TERMINATION_HEIGHT + 0.15) as f32);
    match d {
        d if d < -1.0 => 0,
        d if d < 0.0 => 1,
        d if d <= 0.3 => 2,
        _ => 3,
    }
}

/// Hopper's observe, reward and terminate on 10 envs, GPU vs the CPU's f32 path, over random
/// states, controls and adjoints. Envs 0–4 draw their height from [`HEIGHT_BANDS`]; envs 5–9
/// sit exactly on the edges, where an f32 comparison against an f64 constant could go either
/// way: −0.45 as f32 (just above −0.45: not terminated) and the next f32 below it (terminated),
/// h = 0 (d = 0.3 as f32 > 0.3: upper clip, dH = 0), h = −0.3 as f32 (c = 0: the linear
/// branch, dH = 1), h = −1.3 as f32. Every branch of H (both clips, the quadratic and the linear
/// part) and both values of the flag are asserted to occur on the CPU side.
///
/// Tolerance 1e-5 relative, values below 1e-4 of the column's scale compared against that
/// scale (the random adjoint plus 400 c r̄ of the quadratic branch cancel at some entries):
/// the kernels do the CPU's f32 operations in its order, except that a compiler may contract
/// a product and a sum into an FMA and WGSL's division is allowed 2.5 ulp (lavapipe does
/// neither here: measured 0, bit-identical, over 24 cases of 10 envs). The flag is compared
/// exactly.
#[test]
fn gpu_hopper_task_systems_match_cpu() {
    let test = "gpu_hopper_task_systems_match_cpu";
    let Some(gpu) = gpu_or_skip(test) else { return };
    let n = 10;
    let mut sim: Sim<f32> =
        Hopper::new(HopperConfig { num_envs: n, threads: 1, ..HopperConfig::default() }).sim().unwrap();
    sim.schedule = Schedule::new(sim.schedule.dt, sim.schedule.substeps)
        .with(Stage::Post, Observe)
        .with(Stage::Post, Reward)
        .with(Stage::Post, Terminate);
    let g = std::cell::RefCell::new(GpuSim::new(gpu, &sim, GpuOptions::default()).unwrap());
    let systems: Vec<&dyn System<f32>> = sim.schedule.systems().map(|(_, s)| s).collect();
    assert_eq!(g.borrow().system_names(), systems.iter().map(|s| s.name()).collect::<Vec<_>>());
    let cx = StepCx { dt: sim.schedule.substep_dt(), step: 0, substep: 0 };
    let model = sim.model.view_all();
    let edges = [-0.45f32, (-0.45f32).next_down(), 0.0, -0.3, -1.3];
    let worst = std::cell::Cell::new([0.0f64; 2]);
    // Cases per branch of H, and flags set / clear, over all cases (CPU side).
    let branches = std::cell::Cell::new([0usize; 4]);
    let flags = std::cell::Cell::new([0usize; 2]);
    let mut runner = TestRunner::new(Config { cases: 8, failure_persistence: None, ..Config::default() });
    runner
        .run(&proptest::num::u64::ANY, |seed| {
            let mut rng = Rng::new(seed);
            let mut state = random_columns(&mut rng, &sim.state, -1.0, 1.0);
            let q = state.get_mut("joint_q").unwrap();
            for e in 0..n {
                q[6 * e + 1] = match e {
                    0..5 => rng.uniform(HEIGHT_BANDS[e].0, HEIGHT_BANDS[e].1) as f32,
                    _ => edges[e - 5],
                };
            }
            let hs: Vec<f32> = (0..n).map(|e| q[6 * e + 1]).collect();
            let control = random_columns(&mut rng, &sim.control, -1.0, 1.0);
            let adj = random_columns(&mut rng, &sim.state, -1.0, 1.0);
            let adj_c = random_columns(&mut rng, &sim.control, -1.0, 1.0);
            let mut g = g.borrow_mut();
            g.write_control(&control).unwrap();
            for (i, sys) in systems.iter().enumerate() {
                let name = sys.name();
                let run = gpu::run_system(&mut g, i, *sys, &cx, &model, &control, &state, &adj, &adj_c).unwrap();
                let [got, cpu] = &run.forward;
                if name == "hopper.terminate" {
                    let (t, tc) = (got.get("terminated").unwrap(), cpu.get("terminated").unwrap());
                    assert_eq!(t, tc, "terminate flags (seed {seed}), heights {hs:?}");
                    let set = tc.iter().filter(|&&x| x == 1.0).count();
                    let f = flags.get();
                    flags.set([f[0] + set, f[1] + n - set]);
                    // The edges: −0.45 as f32 is above −0.45, the next f32 down below.
                    assert_eq!((tc[5], tc[6]), (0.0, 1.0));
                }
                if name == "hopper.reward" {
                    let mut b = branches.get();
                    hs.iter().for_each(|&h| b[height_branch(h)] += 1);
                    branches.set(b);
                }
                let w = columns_err(&format!("{name} forward (seed {seed})"), got, cpu, TOL);
                let ([ga, a], [gac, ac]) = (&run.adjoint, &run.adjoint_control);
                let wa = columns_err(&format!("{name} adjoint state (seed {seed})"), ga, a, TOL).max(columns_err(
                    &format!("{name} adjoint control (seed {seed})"),
                    gac,
                    ac,
                    TOL,
                ));
                worst.set([worst.get()[0].max(w), worst.get()[1].max(wa)]);
            }
            Ok(())
        })
        .unwrap();
    let (b, f) = (branches.get(), flags.get());
    assert!(b.iter().all(|&k| k > 0), "branches of H (lower clip, quadratic, linear, upper clip): {b:?}");
    assert!(f[0] > 0 && f[1] > 0, "flags set / clear: {f:?}");
    let [fw, aw] = worst.get();
    eprintln!("{test}: branches {b:?}, flags set/clear {f:?}; max relative error forward {fw:e}, adjoint {aw:e}");
}

/// Rollout tolerances (max relative error, floored at 1e-3 of each column's scale). The task
/// kernels are bit-identical to the CPU's f32 path (above), the articulation kernels match it to
/// ~1e-5 (`gpu_articulation.rs`) and the ground contact to 1e-4 (`gpu_contact.rs`); the stiff
/// penalty contact (kₑ 2e4, k_d 1e3, 16 substeps) and the falling hopper's impacts grow those
/// last-bit differences over the steps. Measured on lavapipe (16 steps, 2 envs): obs 2.1e-5,
/// rewards 2.4e-6, ∂L/∂act 1.9e-5, ∂L/∂(initial state) 6.9e-6; against the f64 rollout the GPU's
/// ∂L/∂act (2.7e-5) is as close as the CPU's f32 path (3.5e-5), which is asserted (up to 2× +
/// 1e-5), so the difference is rounding, not a kernel error. The tolerances leave ~25× room for
/// a GPU that rounds differently (FMA contraction, division).
const OBS_TOL: f64 = 5e-4;
const GRAD_TOL: f64 = 1e-3;

/// Hopper whole on the GPU: 2 envs, 16 steps of random torques, GpuSim (deterministic scatter)
/// against the CPU `Sim` in f32, and the f64 CPU rollout as the reference for the gradients; a
/// rerun must reproduce the GPU's gradients bit for bit.
#[test]
fn gpu_hopper_rollout_matches_cpu() {
    let test = "gpu_hopper_rollout_matches_cpu";
    let Some(gpu) = gpu_or_skip(test) else { return };
    let (n, h) = (2, 16);
    let task = Hopper::new(HopperConfig { num_envs: n, threads: 1, ..HopperConfig::default() });
    let mut cpu: Sim<f32> = task.sim().unwrap();
    let mut cpu64: Sim<f64> = task.sim().unwrap();
    assert_eq!(GpuSim::first_without_kernels(&cpu), None);
    let readback = vec!["obs".to_string(), "reward".to_string()];
    let mut g = GpuSim::new(gpu, &cpu, GpuOptions { scatter: Scatter::Deterministic, readback }).unwrap();
    let init = cpu.state.clone();
    let mut rng = Rng::new(7);
    let actions = gpu::random_actions(&mut rng, h, 3 * n);
    let obs_seed: Vec<f32> = (0..cpu.state.get("obs").unwrap().len()).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
    let run = gpu::rollout(&mut g, &mut cpu, Some(&mut cpu64), &actions, &obs_seed).unwrap();
    let (obs, reward) = (gpu::worst_step(&run.obs, 1e-3), gpu::worst_step(&run.reward, 1e-3));
    let [gpu_grads, cpu_grads] = &run.grads;
    let exact = run.exact.as_ref().unwrap();
    let act = gpu::worst_act(gpu_grads, cpu_grads, 1e-3);
    let (init_err, col) = worst_column(&gpu_grads.initial_state, &cpu_grads.initial_state, 1e-3);
    let (cpu_f64, gpu_f64) = (gpu::worst_act(cpu_grads, exact, 1e-3), gpu::worst_act(gpu_grads, exact, 1e-3));
    eprintln!(
        "{test}: ({h} steps, {n} envs) max rel err obs {obs:e}, reward {reward:e}, ∂L/∂act {act:e}, ∂L/∂(initial \
         state) {init_err:e} (`{col}`); ∂L/∂act vs f64: CPU f32 {cpu_f64:e}, GPU {gpu_f64:e}"
    );
    let again = gpu::gpu_rerun(&mut g, &init, &actions, &obs_seed).unwrap();
    assert_eq!(&again.controls, &gpu_grads.controls, "a deterministic rerun differs");
    assert!(cpu_grads.controls[0].get("act").unwrap().iter().any(|x| x.abs() > 1e-6), "a trivially zero gradient");
    assert!(obs <= OBS_TOL && reward <= OBS_TOL, "obs {obs:e}, reward {reward:e}");
    assert!(act <= GRAD_TOL, "∂L/∂act {act:e}");
    assert!(init_err <= GRAD_TOL, "∂L/∂(initial state) `{col}`: {init_err:e}");
    assert!(gpu_f64 <= 2.0 * cpu_f64 + 1e-5, "∂L/∂act from f64: GPU {gpu_f64:e}, CPU f32 {cpu_f64:e}");
}
