//! AntRun whole on the GPU: the articulation systems (clear, fk, joint_forces, integrate), the
//! ground and shape contacts and the task's observe/reward/terminate, stepped by `GpuSim`
//! against the CPU `Sim` in f32 (and f64, for scale) over a rollout with random torques.
//!
//! With no adapter at all the test prints `SKIPPED: ...` and returns; any other GPU failure
//! fails it.

use diffsim_engine::SimFactory;
use diffsim_tasks::{AntRun, AntRunConfig};
use diffsim_tests::gpu::{self, gpu_or_skip};

/// Rollout tolerances (max relative error, floored at 1e-3 of each column's scale). The GPU's
/// kernels each match the CPU's f32 path to ~1e-5 (contacts to 1e-4: `gpu_contact.rs`), and a
/// walking ant's stiff penalty contacts (ke = 4e3, 16 substeps) grow last-bit differences over
/// the steps. Measured on lavapipe (32 steps, 2 envs): obs 1.6e-4, rewards 1.7e-7, ∂L/∂act
/// 9.7e-4, ∂L/∂(initial state) 2.2e-4 (`joint_qd`); for scale, the CPU's own f32 ∂L/∂act is
/// 1.5e-3 from the f64 rollout's, and the GPU's is closer to it (5.0e-4), which is asserted (up
/// to 2× + 1e-5), so the difference is rounding, not a kernel error. The tolerances leave 6× (obs)
/// and 5× (gradients) room for a GPU that rounds differently; a gradient tolerance below the
/// CPU's own f32 error would be testing rounding.
const OBS_TOL: f64 = 1e-3;
const GRAD_TOL: f64 = 5e-3;

/// AntRun whole on the GPU: 2 envs, 32 steps of random torques, GpuSim (deterministic
/// scatter) against the CPU `Sim` in f32 and f64; a rerun must reproduce the GPU's gradients
/// bit for bit.
#[test]
fn gpu_ant_run_rollout_matches_cpu() {
    let test = "gpu_ant_run_rollout_matches_cpu";
    let Some(gpu) = gpu_or_skip(test) else { return };
    let n = 2;
    let task = AntRun::new(AntRunConfig { num_envs: n, threads: 1, ..AntRunConfig::default() });
    let e = gpu::deterministic_rollout(test, gpu, task.sim().unwrap(), task.sim().unwrap(), 32, 8 * n, 5);
    assert!(e.obs <= OBS_TOL && e.reward <= OBS_TOL, "{e:?}");
    assert!(e.act <= GRAD_TOL && e.init <= GRAD_TOL, "{e:?}");
    assert!(e.act_f64[1] <= 2.0 * e.act_f64[0] + 1e-5, "∂L/∂act from f64: {e:?}");
}
