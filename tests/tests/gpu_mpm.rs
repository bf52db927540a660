//! CPU/GPU parity of the MPM kernels (`diffsim_systems::mpm::gpu`) and RollingFlat's observe and
//! reward kernels, on whatever adapter wgpu finds (lavapipe here and in CI):
//! - every system of a small RollingFlat schedule (collider drive, material, transfer, collider
//!   integrate, observe, reward), forward and adjoint, against the CPU system in f32 on random
//!   states and adjoints, with the four materials mixed over the particles (proptest, few cases:
//!   lavapipe is slow);
//! - a 32-step rollout of a debug-sized RollingFlat (16³ grid, 108 particles, 8 substeps):
//!   obs and rewards of every step against the CPU `Sim`.
//!
//! Tolerances: the GPU differs from the CPU's f32 path for two stated reasons, (1) the CPU's
//! SVD runs in f64 and the GPU's in f32, (2) P2G scatters with atomics, so each node's sums are
//! added in a run-to-run varying order. Values are compared relative to max(|value|, floor ×
//! the column's max |value|) (sums that cancel have no meaningful relative error of their own).
//!
//! With no adapter at all, each test prints `SKIPPED: ...` and returns, unless
//! `DIFFSIM_REQUIRE_GPU=1`, where it fails.

use std::sync::Arc;

use diffsim_engine::gpu_sim::{GpuOptions, Scatter};
use diffsim_engine::{Columns, Cpu, Gpu, GpuSim, Sim, SimFactory};
use diffsim_systems::mpm::material::{COROTATED, NEO_HOOKEAN, PLASTICINE, WATER};
use diffsim_systems::mpm::{self, Floor, Grid};
use diffsim_tasks::{RollingFlat, RollingFlatConfig};
use diffsim_tests::Rng;
use diffsim_tests::gpu::{self, Cases, Tol, Visit, compare_exchange_gpu_or_skip, gpu_or_skip, worst_column as worst};

fn debug_task(num_envs: usize) -> RollingFlat {
    RollingFlat::new(RollingFlatConfig {
        num_envs,
        threads: 1,
        grid_res: 16,
        particles: [6, 3, 6],
        substeps: 8,
        substep_dt: 1e-4,
        ..Default::default()
    })
}

/// The debug RollingFlat with the particles' materials cycling through the four kinds (same μ,
/// λ, τ_y), so every material kernel branch runs.
fn mixed_sim(num_envs: usize) -> Sim<f32> {
    debug_task(num_envs).sim().unwrap()
}

fn mix_materials(sim: &mut Sim<f32>) {
    let mat = sim.model.params.get_mut("mpm_material").unwrap();
    for (p, row) in mat.chunks_exact_mut(diffsim_systems::mpm::material::PARAMS).enumerate() {
        row[0] = [PLASTICINE, COROTATED, NEO_HOOKEAN, WATER][p % 4];
    }
}

fn random_like(rng: &mut Rng, like: &[f32], lo: f64, hi: f64) -> Vec<f32> {
    like.iter().map(|_| rng.uniform(lo, hi) as f32).collect()
}

/// Random MPM state: particles spread over the middle of the domain down into the floor
/// layer, the roller among them (so nodes inside, near and away from it all occur), F near the
/// identity (strains up to ±0.3: plasticine yields), stresses and velocities of order of a step.
fn random_state(rng: &mut Rng, like: &Columns<f32>) -> Columns<f32> {
    let mut s = like.clone();
    for (spec, col) in s.columns_mut() {
        let n = col.len();
        let v: Vec<f32> = match spec.name.as_str() {
            "mpm_x" => (0..n)
                .map(|i| if i % 3 == 1 { rng.uniform(0.08, 0.45) } else { rng.uniform(0.25, 0.75) } as f32)
                .collect(),
            "mpm_F" | "mpm_Fp" => {
                (0..n).map(|i| (if (i % 9) % 4 == 0 { 1.0 } else { 0.0 } + rng.uniform(-0.3, 0.3)) as f32).collect()
            }
            "mpm_stress" => random_like(rng, col, -300.0, 300.0),
            "mpm_C" => random_like(rng, col, -20.0, 20.0),
            "collider_q" => (0..n)
                .map(|i| match i % 4 {
                    0 | 2 => rng.uniform(0.4, 0.6),
                    1 => rng.uniform(0.15, 0.35),
                    _ => rng.uniform(-1.0, 1.0),
                } as f32)
                .collect(),
            _ => random_like(rng, col, -1.0, 1.0),
        };
        col.copy_from_slice(&v);
    }
    s
}

/// Tolerance per system, [forward, adjoint]: (max relative error, floor). Measured over seeds
/// 0..4 000 (material) and 0..6 000 (transfer) of `Scatter::Atomic`, against each floor:
/// - material: f32 vs f64 SVD; σ near 1 carries a few ulps of absolute error, which moves
///   log σ (Hencky) by as much, and a stress entry is a sum of such terms that can cancel. Worst
///   forward / adjoint (`mpm_stress` / `mpm_F`): 1.1e-3 / 5.3e-4 against a floor of 1e-3 (seed
///   538 failed the 1e-3 bound), 1.1e-4 / 5.3e-5 against 1e-2, which is used. On strains of
///   3e-3 the same absolute error is 2–5e-2 of the small stresses (not tested here: that is f32
///   resolution of σ, not a kernel error). Its adjoint uses divided differences of the f32
///   singular values (see `material_adjoint.wgsl`);
/// - transfer: atomic P2G order, and grid velocities (mv)/m and affine C = 4/Δx² Σ w v (xᵢ − xₚ)ᵀ
///   that cancel over the stencil: forward worst 9.4e-4 against a floor of 1e-3 (`mpm_C`; seed
///   8193586487619134220 reached 4.1e-3: 1.7e-4 on an entry of 0.029 in a column of scale 40),
///   1.2e-4 against 1e-2, which is used. Its adjoint scatters v̄ into the grid and the roller's
///   pose adjoint with atomics (or sums them per row in deterministic mode): worst 2.8e-3, in
///   the roller's pose adjoint (`collider_q`, a sum over the ~10³ nodes the roller touches whose
///   terms cancel, added in f32 on the GPU and in f64 on the CPU), held to 5e-3;
/// - the others keep the CPU's order of f32 operations: measured 0, held to 1e-5.
fn tol(name: &str) -> [Tol; 2] {
    match name {
        "mpm.material" => [(1e-3, 1e-2); 2],
        "mpm.transfer" => [(1e-3, 1e-2), (5e-3, 1e-3)],
        _ => [(1e-5, 1e-3); 2],
    }
}

const CASES: u32 = 6;
/// Rollout tolerances (see `gpu_rolling_flat_rollout_matches_cpu`). Measured on lavapipe: obs
/// 8.8e-6, rewards 8.2e-6; ∂L/∂act 4.7e-3 to 7.0e-3 (floor 1e-3); ∂L/∂(initial state) 1.4e-2
/// (`mpm_C`, floor 0.1: near-zero entries of the C and F adjoints differ most). For scale: the
/// same rollout on the CPU in f32 against f64 differs by 9.6e-2 in ∂L/∂act and 1.4e-1 in
/// ∂L/∂(initial state) (floor 1e-3), and two GPU runs (atomic order only) by 3e-5 and 2.3e-3.
const OBS_TOL: f64 = 1e-4;
const GRAD_TOL: f64 = 5e-2;
/// ∂L/∂(initial state) entries below this fraction of their column's scale are compared
/// against it.
const INIT_FLOOR: f64 = 0.1;

/// Every system of the debug RollingFlat schedule (mixed materials), GPU vs CPU, over random
/// inputs: forward and adjoint.
#[test]
fn gpu_mpm_kernels_match_cpu() {
    let test = "gpu_mpm_kernels_match_cpu";
    let Some(gpu) = gpu_or_skip(test) else { return };
    let mut sim = mixed_sim(2);
    mix_materials(&mut sim);
    kernels_match(gpu, &sim, true, Scatter::Atomic, test);
}

/// As `gpu_mpm_kernels_match_cpu`, with the atomic adds as compare-exchange loops on the u32
/// bits (adapters without native f32 atomics), forced on a device that has them.
#[test]
fn gpu_mpm_kernels_match_cpu_atomic_compare_exchange() {
    let test = "gpu_mpm_kernels_match_cpu_atomic_compare_exchange";
    let Some(gpu) = compare_exchange_gpu_or_skip(test) else { return };
    let mut sim = mixed_sim(2);
    mix_materials(&mut sim);
    kernels_match(gpu, &sim, true, Scatter::Atomic, test);
}

/// As `gpu_mpm_kernels_match_cpu`, with the fixed-order reduction (binned P2G gather, reverse
/// G2P gather, per-row pose adjoint sums): the same tolerances hold, since only the order of
/// the additions differs from the CPU's in both modes.
#[test]
fn gpu_mpm_kernels_match_cpu_deterministic() {
    let test = "gpu_mpm_kernels_match_cpu_deterministic";
    let Some(gpu) = gpu_or_skip(test) else { return };
    let mut sim = mixed_sim(2);
    mix_materials(&mut sim);
    kernels_match(gpu, &sim, true, Scatter::Deterministic, test);
}

/// The MPM substep without a collider and with a slip floor (the transfer's other binding and
/// boundary paths), mixed materials.
#[test]
fn gpu_mpm_kernels_match_cpu_without_collider() {
    let test = "gpu_mpm_kernels_match_cpu_without_collider";
    let Some(gpu) = gpu_or_skip(test) else { return };
    let task = debug_task(2);
    let scene = task.scene();
    let mut packed = scene.pack().unwrap();
    mpm::pack(&scene, &mut packed).unwrap();
    let grid = Grid { floor: Floor::Slip, ..task.grid().unwrap() };
    let schedule = mpm::schedule::<f32>(4e-4, 4, grid, None, 1);
    let mut sim = Sim::new(packed.model, packed.state, packed.control, schedule, Cpu::new(1)).unwrap();
    mix_materials(&mut sim);
    kernels_match(gpu, &sim, false, Scatter::Atomic, test);
}

fn kernels_match(gpu: Arc<Gpu>, sim: &Sim<f32>, collider: bool, scatter: Scatter, test: &str) {
    // Cases where the roller touched grid nodes with mass (its pose got an adjoint).
    let mut touched = 0;
    let count = |v: &Visit| {
        if collider && v.name == "mpm.transfer" && v.run.adjoint[1].get("collider_q") != v.case.adj.get("collider_q") {
            touched += 1;
        }
    };
    let state = |rng: &mut Rng| random_state(rng, &sim.state);
    gpu::for_each_system(test, gpu, sim, scatter, Cases::Random(CASES), &|_| true, state, tol, count);
    if collider {
        eprintln!("{test}: the roller touched the material in {touched} of {CASES} cases");
        assert!(touched > 0, "no case exercised the collider projection");
    }
}

/// A 32-step RollingFlat rollout (debug size, 2 envs, random actions), GPU vs CPU: obs and
/// rewards of every step, then a backward of L = −mean reward + a random linear function of the
/// last observation: ∂L/∂act of every step and ∂L/∂(initial state). Atomic P2G and the f32 SVD
/// differ from the CPU in the last bits from the first substep on, and 256 substeps of
/// plasticine under a moving roller carry those along; the gradients go through the SVD
/// adjoint's divided differences of nearly equal singular values (F stays near a rotation),
/// which is where f32 loses the most (tolerances at `OBS_TOL`). Also prints, for scale, how far
/// the CPU's own f32 gradients are from f64 and how far two GPU runs are apart.
#[test]
fn gpu_rolling_flat_rollout_matches_cpu() {
    let test = "gpu_rolling_flat_rollout_matches_cpu";
    let Some(gpu) = gpu_or_skip(test) else { return };
    let h = 32;
    let mut cpu: Sim<f32> = debug_task(2).sim().unwrap();
    let n = cpu.num_envs();
    let readback = vec!["obs".to_string(), "reward".to_string()];
    let mut g = GpuSim::new(gpu, &cpu, GpuOptions { scatter: Scatter::Atomic, readback }).unwrap();
    let init = cpu.state.clone();
    let mut rng = Rng::new(11);
    let actions = gpu::random_actions(&mut rng, h, 3 * n);
    let obs_seed: Vec<f32> = (0..cpu.state.get("obs").unwrap().len()).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
    // The CPU's own f32 rounding, for scale: the same rollout in f64.
    let mut cpu64: Sim<f64> = debug_task(2).sim().unwrap();
    let run = gpu::rollout(&mut g, &mut cpu, Some(&mut cpu64), &actions, &obs_seed).unwrap();
    let (worst_obs, worst_rew) = (gpu::worst_step(&run.obs, 1e-3), gpu::worst_step(&run.reward, 1e-3));
    let [gpu_grads, cpu_grads] = &run.grads;
    let g64 = run.exact.as_ref().unwrap();
    // The same rollout again on the GPU: how far the atomics' run-to-run order moves the result.
    let again = gpu::gpu_rerun(&mut g, &init, &actions, &obs_seed).unwrap();
    let rerun_act = gpu::worst_act(&again, gpu_grads, 1e-3);
    let (rerun_init, _) = worst(&again.initial_state, &gpu_grads.initial_state, 1e-3);
    eprintln!("{test}: GPU rerun vs GPU: ∂L/∂act {rerun_act:e}, ∂L/∂(initial state) {rerun_init:e}");
    let worst_act = gpu::worst_act(gpu_grads, cpu_grads, 1e-3);
    let (worst_init, col) = worst(&gpu_grads.initial_state, &cpu_grads.initial_state, INIT_FLOOR);
    let f32_act = gpu::worst_act(cpu_grads, g64, 1e-3);
    let (f32_init, fcol) = worst(&cpu_grads.initial_state, &g64.initial_state, 1e-3);
    eprintln!("{test}: CPU f32 vs CPU f64: ∂L/∂act {f32_act:e}, ∂L/∂(initial state) {f32_init:e} (column `{fcol}`)");
    assert!(cpu_grads.controls[0].get("act").unwrap().iter().any(|x| x.abs() > 1e-6), "a trivially zero gradient");
    eprintln!(
        "{test}: max rel err obs {worst_obs:e}, reward {worst_rew:e}, ∂L/∂act {worst_act:e}, ∂L/∂(initial state) \
         {worst_init:e} (column `{col}`)"
    );
    assert!(worst_obs <= OBS_TOL && worst_rew <= OBS_TOL, "obs {worst_obs:e}, reward {worst_rew:e}");
    assert!(worst_act <= GRAD_TOL, "∂L/∂act: {worst_act:e}");
    assert!(worst_init <= GRAD_TOL, "∂L/∂(initial state) column `{col}`: {worst_init:e}");
}
