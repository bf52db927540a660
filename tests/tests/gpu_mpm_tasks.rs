//! CPU/GPU parity of FluidMove and HandFlip on `GpuSim`, on whatever adapter wgpu finds
//! (lavapipe here and in CI):
//! - every system of each task's debug-sized schedule, forward and adjoint, against the CPU
//!   system in f32 on random states and adjoints that put the container / the hand's links in
//!   contact with occupied grid nodes and FluidMove's particles on the spill box's faces, where
//!   the 1e-5-wide sigmoid has its slope (proptest, few cases: lavapipe is slow). Each test
//!   also asserts that the coupling's pose adjoint was non-zero in some case, so a projection
//!   that does nothing fails;
//! - a short rollout of each task (debug size, 2 envs, random actions): obs and rewards of every
//!   step, then ∂L/∂act of every step for L = −mean reward + a random linear function of the
//!   last observation, against the CPU `Sim` in f32; for scale the test also prints how far the
//!   CPU's own f32 gradients are from f64.
//! - (without a device) that every system of both tasks at their full size has GPU kernels.
//!
//! Tolerances (values relative to max(|value|, floor × the column's max |value|)): the GPU
//! differs from the CPU's f32 path because P2G scatters with atomics (each node's sums in a
//! run-to-run varying order), the CPU computes its SVD in f64, and the CPU's pose adjoints of
//! the coupling and of the FK run in f64 (reverse tape) where the GPU's are hand-written f32.
//!
//! With no adapter at all, each test prints `SKIPPED: ...` and returns, unless
//! `DIFFSIM_REQUIRE_GPU=1`, where it fails.

use std::sync::Arc;

use diffsim_engine::gpu_sim::Scatter;
use diffsim_engine::{Columns, Gpu, GpuSim, Sim, SimFactory};
use diffsim_tasks::fluid_move::{self, FluidMove, FluidMoveConfig};
use diffsim_tasks::{HandFlip, HandFlipConfig};
use diffsim_tests::Rng;
use diffsim_tests::gpu::{self, Cases, RolloutSpec, Tol, Visit, gpu_or_skip};

const CASES: u32 = 6;
/// The FK kernels against the CPU's f32 forward and f64 reverse-tape adjoint: 24 joints of
/// quaternion products in f32 accumulate a few ulps per level (up to 6 deep): measured up to
/// 2e-6 forward and 1.2e-4 adjoint (`kin_q`, where the two poses' shares cancel).
const FK_TOL: f64 = 5e-4;
/// Transfer with the container (FluidMove): over 40 fixed seeds (6 cases per test run draw new
/// ones) the worst column's error had median 7e-5 and maximum 3.4e-4, but random cases reach
/// further: 1.06e-3 (`mpm_C`) in one run, and seed 13699807112761172128 gave 3.1e-3 and 4.2e-3
/// on two runs (atomic order) in env 1's
/// `collider_q` adjoint, where its seed −0.958 and the nodes' sum +0.94 cancel to −0.017 while the
/// column's scale (env 0's entry) is 26: an absolute 1.1e-4 on a sum over the touched nodes of
/// terms carrying 1/Δt (the container's node velocity, as `TRANSFER_TOL_BODIES` explains for the
/// hand), summed in f32 with atomics on the GPU and in f64 on the CPU's tape. Held to 1e-2 as the
/// hand's: a missing or wrong term of the pose adjoint shows as O(1) (the pose columns keep their
/// seeds where the kernel does nothing). (It was 1e-3, which such cases failed.)
const TRANSFER_TOL_RIGID: f64 = 1e-2;
/// Transfer with the hand (HandFlip), on the well-conditioned poses of `hand_state`: over 150
/// random states the worst column's error had median 1.0e-4, 99th percentile 1.6e-3, maximum
/// 2.5e-3 (`mpm_C`); the CPU's own f32 path differs from f64 by up to 1.3e-3. The body velocity
/// (X_next X⁻¹ x_g − x_g)/Δt is a difference of positions ~0.5 divided by Δt = 5e-4, and the
/// Coulomb rule's adjoint divides by the tangential speed, so f32 rounding of the poses is
/// amplified at nodes sliding slowly past a link (the adjoint evaluates v_b in a form without
/// the worst cancellation, `body_velocity` in collider_bodies.wgsl, the CPU in f64). For the
/// tiny motions of random joint rates (1.5e-4 m per substep) that still leaves a tail (median
/// 1.8e-3, maximum 3.8e-2 over 150 states): f32 resolution of Rewarped's formula, not a kernel
/// error, so the check uses end poses a 0.05 rad joint step away. 1e-2 is 4× the worst seen; a
/// missing or wrong term of the pose adjoint shows as O(1) (the pose columns keep their seeds
/// where the kernel does nothing).
const TRANSFER_TOL_BODIES: f64 = 1e-2;

/// FluidMove on a 16³ grid with 100 particles and 8 substeps (tests/tests/fluid.rs's size).
fn small_fluid_move(num_envs: usize) -> FluidMove {
    FluidMove::new(FluidMoveConfig {
        num_envs,
        threads: 1,
        grid_res: 16,
        particles: [5, 4, 5],
        substeps: 8,
        ..Default::default()
    })
}

/// Random FluidMove state: the container near its start, the water around and inside it (so
/// nodes inside, near and away from the walls all occur), every third particle within ±3e-5
/// of the spill box's face on a random axis, F within ±0.3 of the identity, stresses and velocities of
/// order of a step, the target near or far (the reward's doubled branch).
fn fluid_state(rng: &mut Rng, like: &Columns<f32>, np: usize) -> Columns<f32> {
    let mut s = like.clone();
    let b = fluid_move::outer_half();
    let n_env = s.get("collider_q").unwrap().len() / 4;
    let q: Vec<f32> = (0..n_env)
        .flat_map(|_| {
            [rng.uniform(0.45, 0.55), rng.uniform(0.17, 0.25), rng.uniform(0.45, 0.55), 0.0].map(|x| x as f32)
        })
        .collect();
    for (spec, col) in s.columns_mut() {
        let n = col.len();
        let v: Vec<f32> = match spec.name.as_str() {
            "collider_q" => q.clone(),
            "mpm_x" => (0..n)
                .map(|i| {
                    let (p, d) = (i / 3, i % 3);
                    let e = p / np;
                    let c = f64::from(q[4 * e + d]);
                    if p % 3 == 0 && (p / 3) % 3 == d {
                        let side = if rng.uniform(-1.0, 1.0) < 0.0 { -1.0 } else { 1.0 };
                        c + side * (b[d] + rng.uniform(-3e-5, 3e-5))
                    } else {
                        c + rng.uniform(-1.3, 1.3) * b[d]
                    }
                })
                .map(|x| x.clamp(0.07, 0.9) as f32)
                .collect(),
            "mpm_F" | "mpm_Fp" => {
                (0..n).map(|i| (if (i % 9) % 4 == 0 { 1.0 } else { 0.0 } + rng.uniform(-0.3, 0.3)) as f32).collect()
            }
            "mpm_stress" => (0..n).map(|_| rng.uniform(-300.0, 300.0) as f32).collect(),
            "mpm_C" => (0..n).map(|_| rng.uniform(-20.0, 20.0) as f32).collect(),
            "target_q" => (0..n)
                .map(|i| {
                    let near = (i / 3) % 2 == 0;
                    let off = if near { rng.uniform(-0.01, 0.01) } else { rng.uniform(-0.3, 0.3) };
                    (f64::from(q[4 * (i / 3) + i % 3]) + off) as f32
                })
                .collect(),
            _ => (0..n).map(|_| rng.uniform(-1.0, 1.0) as f32).collect(),
        };
        col.copy_from_slice(&v);
    }
    s
}

/// Per-system tolerance (max relative error, floor), forward and adjoint:
/// - material: f32 vs f64 SVD (tests/tests/gpu_mpm.rs), on water and HandFlip's softer
///   plasticine, in `mpm_stress`;
/// - transfer: atomic P2G order, and the coupling's pose adjoint (f32 hand-written here, f64
///   on the CPU), summed over every touched node with atomics: `TRANSFER_TOL_*`;
/// - the drives: the CPU rounds 1/(K dt) from the f64 dt, the GPU from the f32 one; where
///   ā + g s cancels, that ulp of g shows (inside the limits the drives no longer sum q̄ + g − g,
///   whose rounding gave 6.0e-4 in `kin_q` at seed 11740046413943252157);
/// - FK: `FK_TOL`;
/// - FluidMove's reward adjoint goes through s(1 − s)/w of the 1e-5-wide sigmoid at z up to ±3,
///   where the GPU's exp and the CPU's differ by an ulp or two, and the container pose's
///   adjoint sums those slopes (~2.5e4 /m) over the particles, which cancel: 1e-4;
/// - the other per-env kernels keep the CPU's order of f32 operations: held to 1e-5.
///
/// Floors, from sweeps of seeds 0..1 500 of each task (the reward: 0..5 000), worst against a
/// floor of 1e-3 → against the floor used: material forward 1.3e-3 → 1.6e-4 (1e-2); transfer
/// adjoint 4.5e-3 → 7.8e-4 (1e-2); drive adjoint 5.5e-5 → 8.1e-6 (1e-2); FluidMove's reward
/// adjoint 5.6e-4, over its 1e-4 bound at seed 1359 (1.1e-4 on an entry of 0.20 in a column
/// of scale 140), → 8.8e-5 (1e-2) → 1.1e-5 (0.1, used); FK adjoint 1.5e-4 (1e-3, kept); the
/// per-env kernels 0.
fn tol(name: &str, transfer: f64) -> [Tol; 2] {
    let (t, floor) = match name {
        "mpm.material" => (3e-3, 1e-2),
        "mpm.transfer" => (transfer, 1e-2),
        "mpm.collider_drive" | "mpm.joint_drive" => (1e-4, 1e-2),
        "fluid_move.reward" => (1e-4, 0.1),
        "mpm.kinematic_fk" => (FK_TOL, 1e-3),
        _ => (1e-5, 1e-3),
    };
    [(t, floor); 2]
}

/// Every system of `sim`'s schedule, GPU vs CPU, over `CASES` random inputs from `random`:
/// forward and adjoint. Returns how many cases gave the coupling's pose column `pose` a
/// non-zero adjoint (in the CPU's transfer adjoint).
fn kernels_match(
    gpu: Arc<Gpu>,
    sim: &Sim<f32>,
    pose: &str,
    test: &str,
    transfer: f64,
    random: impl Fn(&mut Rng) -> Columns<f32>,
) -> usize {
    let mut touched = 0;
    let count = |v: &Visit| {
        if v.name == "mpm.transfer" && v.run.adjoint[1].get(pose) != v.case.adj.get(pose) {
            touched += 1;
        }
    };
    let (cases, tol) = (Cases::Random(CASES), |name: &str| tol(name, transfer));
    gpu::for_each_system(test, gpu, sim, Scatter::Atomic, cases, &|_| true, random, tol, count);
    eprintln!("{test}: the coupling touched the material in {touched} of {CASES} cases");
    touched
}

/// Every system of the debug FluidMove schedule (container drive, water, transfer against the
/// 5-box container, integrate, observe, reward), GPU vs CPU.
#[test]
fn gpu_fluid_move_kernels_match_cpu() {
    let test = "gpu_fluid_move_kernels_match_cpu";
    let Some(gpu) = gpu_or_skip(test) else { return };
    let task = small_fluid_move(2);
    let sim: Sim<f32> = task.sim().unwrap();
    let np = task.num_particles();
    let touched =
        kernels_match(gpu, &sim, "collider_q", test, TRANSFER_TOL_RIGID, |rng| fluid_state(rng, &sim.state, np));
    assert!(touched > 0, "no case exercised the container's projection");
}

/// Rollout tolerances. Obs and rewards: the atomics' order and the f32 SVD, carried over the
/// rollout, measured below 1e-4 (`OBS_TOL`). ∂L/∂act: see each test.
const OBS_TOL: f64 = 1e-4;

/// The spill term's share of a reward: one particle moves r by up to 1/N = 1e-2 as it crosses a
/// face of the spill box, and the sigmoid is 1e-5 m wide, so a position difference δ near the
/// face moves r by up to δ/(4 w N) = 250 δ.
const SPILL_REWARD_TOL: f64 = 2e-3;
/// ∂L/∂act of every step, normwise, GPU vs CPU f32.
const FLUID_GRAD_TOL: f64 = 0.1;

/// A 32-step FluidMove rollout (debug size, 2 envs, random actions in ±1), GPU (atomic scatter)
/// vs CPU f32, with the f64 rollout for scale. The container is shaken hard enough that water
/// spills from env 0 at steps 15–18 (its reward drops from 0.095 to 0.034), and a particle on a
/// face of the spill box meets the 1e-5 m sigmoid, whose slope (2.5e4 /m) and curvature turn
/// last-bit position differences into reward differences of 1e-4 and into gradients that no f32
/// path resolves: every gradient that reaches back over the spill (steps 0–17) differs between
/// the CPU's own f32 and f64 rollouts by up to 4.5e-2 normwise (0.32 in the worst entry).
/// Measured on lavapipe (seed 21): obs 1.8e-5 (max relative, floored), rewards 2.2e-4 absolute
/// (6.1e-3 relative: one particle's sigmoid on the face), ∂L/∂act per step 5.0e-2 normwise GPU vs
/// CPU (0.47 in the worst entry); from f64, GPU 1.4e-2, CPU f32 4.5e-2 normwise. Asserted: obs
/// within `OBS_TOL`, rewards within `SPILL_REWARD_TOL` absolute (250 × a 1e-5 m position
/// difference, 9× the measured), ∂L/∂act within `FLUID_GRAD_TOL` normwise per step (2× the
/// measured), and the GPU no farther from f64 than 2 × the CPU f32 path + 1e-5 (the kernel
/// check: a wrong term would put the GPU, not the CPU, away from f64). 16 steps, before the
/// spill, measured 3.4e-3 in the worst entry.
#[test]
fn gpu_fluid_move_rollout_matches_cpu() {
    let test = "gpu_fluid_move_rollout_matches_cpu";
    let Some(gpu) = gpu_or_skip(test) else { return };
    let spec = RolloutSpec { steps: 32, action_width: 3 * 2, seed: 21, scatter: Scatter::Atomic };
    let task = small_fluid_move(2);
    let r = gpu::task_rollout(test, gpu, task.sim().unwrap(), task.sim().unwrap(), spec);
    assert!(r.obs <= OBS_TOL && r.reward_abs <= SPILL_REWARD_TOL, "obs {:e}, reward (abs) {:e}", r.obs, r.reward_abs);
    assert!(r.act_norm <= FLUID_GRAD_TOL, "∂L/∂act: {:e} normwise", r.act_norm);
    let [cpu_f64, gpu_f64] = r.act_norm_f64;
    assert!(gpu_f64 <= 2.0 * cpu_f64 + 1e-5, "∂L/∂act from f64: GPU {gpu_f64:e}, CPU f32 {cpu_f64:e}");
}

/// HandFlip on a 16³ grid with 120 particles and 4 substeps (tests/tests/hand_flip.rs's size).
fn small_hand_flip(num_envs: usize) -> HandFlip {
    HandFlip::new(HandFlipConfig {
        num_envs,
        threads: 1,
        grid_res: 16,
        half_particles: 60,
        substeps: 4,
        substep_dt: 5e-4,
        disc_center: [0.5, 0.345, 0.6],
        ..Default::default()
    })
}

/// Random HandFlip state: joint angles inside the limits and their rates, the links posed by
/// the FK at the substep's start and, for joint angles up to ±0.05 rad away, at its end
/// (`body_pose`, `body_pose_next`: unit quaternions; see `TRANSFER_TOL_BODIES`), every particle within ±0.04 of a random link's origin (so nodes
/// inside, near and away from the links all have mass), F within ±0.3 of the identity (as in
/// tests/tests/gpu_mpm.rs: at small strains the f32 SVD's absolute error is a large part of the
/// small stresses), `flip_d0` unset,
/// armed or set (the reward's three branches).
fn hand_state(rng: &mut Rng, like: &Columns<f32>, task: &HandFlip) -> Columns<f32> {
    let mut s = like.clone();
    let tree = task.tree();
    let n = tree.dof();
    let envs = s.get("kin_q").unwrap().len() / n;
    let mut q = Vec::new();
    let mut qd = Vec::new();
    let (mut p0, mut p1) = (Vec::new(), Vec::new());
    for _ in 0..envs {
        let qe: Vec<f64> = tree.joints.iter().map(|j| rng.uniform(j.lo, j.hi)).collect();
        let qde: Vec<f64> = (0..n).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let qn: Vec<f64> = qe.iter().map(|q| q + rng.uniform(-0.05, 0.05)).collect();
        let (mut a, mut b) = (vec![0.0; 7 * n], vec![0.0; 7 * n]);
        tree.poses(&qe, &mut a);
        tree.poses(&qn, &mut b);
        q.extend(qe);
        qd.extend(qde);
        p0.extend(a);
        p1.extend(b);
    }
    let np = task.num_particles();
    for (spec, col) in s.columns_mut() {
        let len = col.len();
        let v: Vec<f64> = match spec.name.as_str() {
            "kin_q" => q.clone(),
            "kin_qd" => qd.clone(),
            "body_pose" => p0.clone(),
            "body_pose_next" => p1.clone(),
            "mpm_x" => (0..len / 3)
                .flat_map(|p| {
                    let e = p / np;
                    let b = (rng.uniform(0.0, n as f64) as usize).min(n - 1);
                    let o = 7 * (n * e + b);
                    let c = [p0[o], p0[o + 1], p0[o + 2]];
                    c.map(|c| (c + rng.uniform(-0.04, 0.04)).clamp(0.07, 0.9))
                })
                .collect(),
            "mpm_F" | "mpm_Fp" => {
                (0..len).map(|i| if (i % 9) % 4 == 0 { 1.0 } else { 0.0 } + rng.uniform(-0.3, 0.3)).collect()
            }
            "mpm_stress" => (0..len).map(|_| rng.uniform(-30.0, 30.0)).collect(),
            "mpm_C" => (0..len).map(|_| rng.uniform(-20.0, 20.0)).collect(),
            "flip_d0" => (0..len)
                .map(|_| match (rng.uniform(0.0, 3.0) as usize).min(2) {
                    0 => 0.0,
                    1 => -1.0,
                    _ => rng.uniform(0.05, 0.3),
                })
                .collect(),
            _ => (0..len).map(|_| rng.uniform(-1.0, 1.0)).collect(),
        };
        col.iter_mut().zip(v).for_each(|(c, v)| *c = v as f32);
    }
    s
}

/// Every system of the debug HandFlip schedule (joint drive, arm_d0, plasticine, FK, transfer
/// against the hand's 19 shapes on 24 links, joint integrate, observe, reward), GPU vs CPU.
#[test]
fn gpu_hand_flip_kernels_match_cpu() {
    let test = "gpu_hand_flip_kernels_match_cpu";
    let Some(gpu) = gpu_or_skip(test) else { return };
    let task = small_hand_flip(2);
    let sim: Sim<f32> = task.sim().unwrap();
    let touched =
        kernels_match(gpu, &sim, "body_pose", test, TRANSFER_TOL_BODIES, |rng| hand_state(rng, &sim.state, &task));
    assert!(touched > 0, "no case exercised the hand's projection");
}

/// A 32-step HandFlip rollout (debug size, 2 envs), GPU vs CPU f32. Rewards compared in absolute
/// terms: r = 1 − dist/d0 ∈ [−1, 1] is ~1e-2 over the first steps, so its relative error is that
/// of dist (the obs', ~1e-5) divided by |r|. Measured on lavapipe (seed 23): obs 1.4e-5, rewards
/// 1.3e-6 absolute, ∂L/∂act 2.7e-4 (max relative, floored at 1e-3); for scale, the CPU's own f32
/// ∂L/∂act is 7.8e-4 from f64's and the GPU's 1.1e-3 (the CPU's coupling and FK pose adjoints
/// run in f64, the GPU's in f32). ∂L/∂act held to 5e-3: 18× the measured, above the f32 paths'
/// own distance from f64. Run in `Scatter::Deterministic` (FluidMove's runs atomic), which also
/// checks that a rerun is bitwise equal.
#[test]
fn gpu_hand_flip_rollout_matches_cpu() {
    let test = "gpu_hand_flip_rollout_matches_cpu";
    let Some(gpu) = gpu_or_skip(test) else { return };
    let task = small_hand_flip(2);
    let dof = task.tree().dof();
    let spec = RolloutSpec { steps: 32, action_width: dof * 2, seed: 23, scatter: Scatter::Deterministic };
    let r = gpu::task_rollout(test, gpu, task.sim().unwrap(), task.sim().unwrap(), spec);
    assert!(r.obs <= OBS_TOL && r.reward_abs <= OBS_TOL, "obs {:e}, reward (abs) {:e}", r.obs, r.reward_abs);
    assert!(r.act <= 5e-3, "∂L/∂act: {:e}", r.act);
}

/// Every system of FluidMove's and HandFlip's schedules (the task sizes) has GPU kernels, so
/// `--backend gpu` runs them (checked without a device).
#[test]
fn fluid_move_and_hand_flip_have_gpu_kernels() {
    let fluid: Sim<f32> = FluidMove::new(FluidMoveConfig { num_envs: 1, ..Default::default() }).sim().unwrap();
    assert_eq!(GpuSim::first_without_kernels(&fluid), None);
    let hand: Sim<f32> = HandFlip::new(HandFlipConfig { num_envs: 1, ..Default::default() }).sim().unwrap();
    assert_eq!(GpuSim::first_without_kernels(&hand), None);
}
