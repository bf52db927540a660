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
/// the steps. Measured on lavapipe (16 steps, 2 envs): obs 8.0e-5, rewards 1.6e-7, ∂L/∂act
/// 8.2e-5, ∂L/∂(initial state) 1.3e-4; and the GPU's ∂L/∂act is closer to the f64 rollout
/// (5.1e-5) than the CPU's f32 path is (1.3e-4), which is asserted too (up to 2× + 1e-5), so the
/// difference is rounding, not a kernel error. The tolerances leave ~10× room for a GPU that
/// rounds differently.
const OBS_TOL: f64 = 1e-3;
const GRAD_TOL: f64 = 2e-3;

#[test]
fn gpu_ant_run_rollout_matches_cpu() {
    let test = "gpu_ant_run_rollout_matches_cpu";
    let Some(gpu) = gpu_or_skip(test) else { return };
    let n = 2;
    let task = AntRun::new(AntRunConfig { num_envs: n, threads: 1, ..AntRunConfig::default() });
    let e = gpu::deterministic_rollout(test, gpu, task.sim().unwrap(), task.sim().unwrap(), 16, 8 * n, 5);
    assert!(e.obs <= OBS_TOL && e.reward <= OBS_TOL, "{e:?}");
    assert!(e.act <= GRAD_TOL && e.init <= GRAD_TOL, "{e:?}");
    assert!(e.act_f64[1] <= 2.0 * e.act_f64[0] + 1e-5, "∂L/∂act from f64: {e:?}");
}
