//! AntRun whole on the GPU: the articulation systems (clear, fk, joint_forces, integrate), the
//! ground and shape contacts and the task's observe/reward/terminate, stepped by `GpuSim`
//! against the CPU `Sim` in f32 (and f64, for scale) over a rollout with random torques.
//!
//! With no adapter at all the test prints `SKIPPED: ...` and returns; any other GPU failure
//! fails it.

use diffsim_engine::gpu_sim::{GpuOptions, Scatter};
use diffsim_engine::{GpuSim, Sim, SimFactory};
use diffsim_tasks::{AntRun, AntRunConfig};
use diffsim_tests::Rng;
use diffsim_tests::gpu::{self, gpu_or_skip, worst_column};

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
    let (n, h) = (2, 16);
    let task = AntRun::new(AntRunConfig { num_envs: n, threads: 1, ..AntRunConfig::default() });
    let mut cpu: Sim<f32> = task.sim().unwrap();
    let mut cpu64: Sim<f64> = task.sim().unwrap();
    assert_eq!(GpuSim::first_without_kernels(&cpu), None);
    let readback = vec!["obs".to_string(), "reward".to_string()];
    let mut g = GpuSim::new(gpu, &cpu, GpuOptions { scatter: Scatter::Deterministic, readback }).unwrap();
    let init = cpu.state.clone();
    let mut rng = Rng::new(5);
    let actions = gpu::random_actions(&mut rng, h, 8 * n);
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
    // Deterministic mode: the same rollout again gives the same gradients bit for bit.
    let again = gpu::gpu_rerun(&mut g, &init, &actions, &obs_seed).unwrap();
    assert_eq!(&again.controls, &gpu_grads.controls, "a deterministic rerun differs");
    assert!(cpu_grads.controls[0].get("act").unwrap().iter().any(|x| x.abs() > 1e-6), "a trivially zero gradient");
    assert!(obs <= OBS_TOL && reward <= OBS_TOL, "obs {obs:e}, reward {reward:e}");
    assert!(act <= GRAD_TOL, "∂L/∂act {act:e}");
    assert!(init_err <= GRAD_TOL, "∂L/∂(initial state) `{col}`: {init_err:e}");
    assert!(gpu_f64 <= 2.0 * cpu_f64 + 1e-5, "∂L/∂act from f64: GPU {gpu_f64:e}, CPU f32 {cpu_f64:e}");
}
