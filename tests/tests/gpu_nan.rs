//! A NaN in one env on the GPU backend is isolated as on the CPU (issue #8):
//! - `VecEnv` on chain_reach with a NaN written into env 1's velocities mid-rollout: the step
//!   returns Ok with `diverged` naming env 1 and the system and column the CPU backend names
//!   for the same fault; the other envs' obs and rewards are bitwise those of an un-poisoned GPU
//!   run; backward is finite, bitwise the un-poisoned run's for the other envs, exactly zero
//!   for env 1 at the diverged step and, before it, what the un-poisoned run gives with env 1's
//!   loss terms from the diverged step on removed; and all of it matches the CPU backend.
//! - `GpuSim` with nothing read back: the on-device check catches a NaN in a physics column,
//!   naming system, column and env as the CPU `Sim` does, in `EveryStep` (replay) and
//!   `EverySystem` modes; with `NanCheck::Off` nothing is checked.
//!
//! With no adapter each test prints `SKIPPED` (`DIFFSIM_REQUIRE_GPU=1` fails instead).

use diffsim_engine::gpu_sim::{GpuOptions, NonFiniteEnv, Scatter};
use diffsim_engine::{ColumnSet, EngineError, GpuSim, NanCheck, Sim, SimFactory};
use diffsim_tasks::vec_env::{NanEvent, VecEnv};
use diffsim_tasks::{ChainReach, ChainReachConfig, TaskRng};
use diffsim_tests::gpu::{self, gpu_or_skip};
use ndarray::{Array1, Array2};

/// GPU vs CPU tolerance of obs and ∂L/∂act (relative, floored at 1e-3 of the scale): the
/// chain_reach rollout tolerance of `gpu_parity.rs` (measured 0 on lavapipe, where the
/// deterministic kernels keep the CPU's f32 operation order; a GPU that contracts multiply-adds
/// differs in the last bits).
const TOL: f64 = 1e-4;

const N: usize = 3;
const H: usize = 6;
/// The step before which env 1's velocities are poisoned.
const POISON: usize = 3;

fn task() -> ChainReach {
    ChainReach::new(ChainReachConfig { num_envs: N, links: 4, episode_length: 100, ..Default::default() })
}

fn actions() -> Vec<Array2<f32>> {
    let mut rng = TaskRng::new(3);
    (0..H).map(|_| Array2::from_shape_simple_fn((N, 3), || rng.uniform(-0.5, 0.5) as f32)).collect()
}

/// Loss seeds: every obs and reward of every step, with weights that differ per env and step;
/// `drop_env1_from` removes env 1's terms from that step on.
fn seeds(drop_env1_from: usize) -> (Vec<Array2<f32>>, Vec<Array1<f32>>) {
    let w =
        |t: usize, e: usize| if e == 1 && t >= drop_env1_from { 0.0 } else { 0.1 + 0.05 * ((t + 2 * e) % 4) as f32 };
    let obs = (0..H).map(|t| Array2::from_shape_fn((N, 24), |(e, k)| w(t, e) * (1.0 + 0.1 * (k % 3) as f32))).collect();
    let reward = (0..H).map(|t| Array1::from_shape_fn(N, |e| w(t, e))).collect();
    (obs, reward)
}

/// What one rollout returned: per step (obs, reward, diverged), and the action gradients.
type Run = (Vec<(Array2<f32>, Array1<f32>, Vec<NanEvent>)>, Vec<Array2<f32>>);

/// Runs `env` over the actions, poisoning env 1's `particle_qd` before step `POISON` if `poison`
/// (on the CPU through `sim_mut`, on the GPU through `GpuSim::write_state_row`, neither a tape
/// cut), then backward with `seeds(drop_env1_from)`.
fn run(mut env: VecEnv<ChainReach>, poison: bool, drop_env1_from: usize) -> Run {
    env.reset(5).unwrap();
    env.record();
    let mut steps = Vec::new();
    for (t, a) in actions().iter().enumerate() {
        if poison && t == POISON {
            if env.is_on_gpu() {
                let g = env.gpu_sim().unwrap().unwrap();
                let mut row = g.read_state().unwrap().env("particle_qd", 1).unwrap().to_vec();
                row[4] = f32::NAN;
                g.write_state_row("particle_qd", 1, &row).unwrap();
            } else {
                env.sim_mut().state.env_mut("particle_qd", 1).unwrap()[4] = f32::NAN;
            }
        }
        let out = env.step(a.view()).unwrap();
        if !(poison && t == POISON) {
            assert!(out.diverged.is_empty(), "step {t}: {:?}", out.diverged);
        }
        assert!(out.obs.iter().chain(&out.reward).all(|x| x.is_finite()), "step {t}");
        steps.push((out.obs, out.reward, out.diverged));
    }
    assert_eq!(env.nan_events(), usize::from(poison));
    let (adj_obs, adj_reward) = seeds(drop_env1_from);
    let grads = env.backward(&adj_obs, &adj_reward).unwrap();
    assert!(grads.iter().all(|g| g.iter().all(|x| x.is_finite())), "finite gradients");
    (steps, grads)
}

#[test]
fn gpu_vec_env_isolates_a_diverged_env_as_the_cpu() {
    let Some(gpu) = gpu_or_skip("gpu_vec_env_isolates_a_diverged_env_as_the_cpu") else { return };
    let on_gpu = || VecEnv::new(task()).unwrap().on_gpu(gpu.clone(), Scatter::Deterministic).unwrap();
    let (g_steps, g_grads) = run(on_gpu(), true, H);
    let (clean_steps, clean_grads) = run(on_gpu(), false, H);
    let (_, masked_grads) = run(on_gpu(), false, POISON);
    let (c_steps, c_grads) = run(VecEnv::new(task()).unwrap(), true, H);

    // The report: Ok, env 1 at step 3, the system and column the CPU names.
    let d = &g_steps[POISON].2;
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!((d[0].env, d[0].step), (1, POISON));
    assert!(d[0].system.starts_with("particles.") && !d[0].column.is_empty(), "{d:?}");
    assert_eq!(d, &c_steps[POISON].2, "the GPU and CPU backends report the same divergence");
    assert_eq!(g_steps[POISON].1[1], 0.0, "a diverged env's reward is zeroed");

    for t in 0..H {
        let (obs, reward, _) = &g_steps[t];
        for e in [0, 2] {
            assert_eq!(obs.row(e), clean_steps[t].0.row(e), "step {t}, env {e}: obs");
            assert_eq!(reward[e], clean_steps[t].1[e], "step {t}, env {e}: reward");
        }
        let eo = gpu::max_rel_err(obs.as_slice().unwrap(), c_steps[t].0.as_slice().unwrap(), 1e-3);
        assert!(eo <= TOL, "step {t}: GPU vs CPU obs {eo:e}");
        assert_eq!(reward[1] == 0.0, c_steps[t].1[1] == 0.0, "step {t}");
    }

    for t in 0..H {
        let (g, clean) = (&g_grads[t], &clean_grads[t]);
        for e in [0, 2] {
            assert_eq!(g.row(e), clean.row(e), "∂L/∂act of step {t}, env {e}: the other envs are untouched");
        }
        if t == POISON {
            assert!(g.row(1).iter().all(|&x| x == 0.0), "no gradient through the diverged step: {g:?}");
        }
        if t < POISON {
            // Before the diverged step env 1 gets exactly its earlier loss terms.
            assert_eq!(g.row(1), masked_grads[t].row(1), "∂L/∂act of step {t}, env 1");
            assert!(g.row(1).iter().any(|&x| x != 0.0), "step {t}: env 1's earlier rewards still count");
        }
        let e = gpu::max_rel_err(g.as_slice().unwrap(), c_grads[t].as_slice().unwrap(), 1e-3);
        assert!(e <= TOL, "∂L/∂act of step {t}: GPU vs CPU {e:e}");
    }
    assert!(g_grads[POISON + 1].row(1).iter().any(|&x| x != 0.0), "env 1's new episode has gradients");

    // A NaN action stays an error (nothing to isolate), naming the env and the GPU's step count.
    let mut env = on_gpu();
    env.reset(5).unwrap();
    let a = actions();
    env.step(a[0].view()).unwrap();
    env.step(a[1].view()).unwrap();
    let mut bad = a[2].clone();
    bad[[1, 2]] = f32::NAN;
    let err = env.step(bad.view()).unwrap_err();
    assert!(
        matches!(&err, EngineError::NonFinite { env: 1, component: 2, step: 2, set: ColumnSet::Control, .. }),
        "{err}"
    );
}

/// `GpuSim` with no read-back columns and `mode`: a NaN in env 1's velocity is caught on the
/// device; the error and `non_finite` name what the CPU `Sim` names with the same mode.
fn gpu_sim_catches(mode: NanCheck, test: &str) {
    let Some(gpu) = gpu_or_skip(test) else { return };
    let mut sim: Sim<f32> = task().sim().unwrap();
    sim.schedule.nan_check = mode;
    let mut g = GpuSim::new(gpu, &sim, GpuOptions { scatter: Scatter::Deterministic, readback: Vec::new() }).unwrap();
    let init = sim.state.clone();
    let mut row = sim.state.env("particle_qd", 1).unwrap().to_vec();
    row[4] = f32::NAN;
    g.write_state_row("particle_qd", 1, &row).unwrap();
    sim.state.env_mut("particle_qd", 1).unwrap().copy_from_slice(&row);
    let got = g.step();
    let want = sim.step();
    assert_eq!(g.steps_taken(), 1, "a non-finite step still counts");
    if mode == NanCheck::Off {
        assert!(got.is_ok() && g.non_finite().is_empty(), "{got:?}");
        return;
    }
    let (got, want) = match (got, want) {
        (Err(g), Err(c)) => (g, c),
        other => panic!("both backends must fail: {other:?}"),
    };
    let (
        EngineError::NonFinite { system: gs, column: gc, env: ge, step: gt, .. },
        EngineError::NonFinite { system: cs, column: cc, env: ce, step: ct, .. },
    ) = (&got, &want)
    else {
        panic!("{got} / {want}")
    };
    assert_eq!((gs, gc, ge, gt), (cs, cc, ce, ct), "GPU: {got}\nCPU: {want}");
    assert!(got.to_string().contains("environment 1"), "{got}");
    assert_eq!(g.non_finite(), &[NonFiniteEnv { env: 1, system: gs.clone(), column: gc.clone() }]);
    assert_eq!(sim.non_finite_envs(), vec![1]);
    // Reset, the next step is finite and clears the report.
    g.reset_envs(&[1], &init).unwrap();
    g.step().unwrap();
    assert!(g.non_finite().is_empty());
}

#[test]
fn gpu_sim_catches_a_nan_in_a_column_not_read_back() {
    gpu_sim_catches(NanCheck::EveryStep, "gpu_sim_catches_a_nan_in_a_column_not_read_back");
}

#[test]
fn gpu_sim_every_system_check_names_the_system() {
    gpu_sim_catches(NanCheck::EverySystem, "gpu_sim_every_system_check_names_the_system");
}

#[test]
fn gpu_sim_nan_check_off_checks_nothing() {
    gpu_sim_catches(NanCheck::Off, "gpu_sim_nan_check_off_checks_nothing");
}

/// AntRun (more state columns than one end-of-step dispatch checks): a NaN written into each
/// state column of env 1 in turn is found by `check_state` in that column, then one step each:
/// wherever the CPU `Sim` reports it, the GPU
/// reports the same system, column, env and step; where the CPU step is Ok, the NaN either
/// vanished (an overwritten column: the GPU is Ok too) or sits in a column no system writes,
/// which the CPU's check skips and the GPU's end-of-step pass names.
#[test]
fn gpu_sim_reports_a_nan_in_any_column_as_the_cpu() {
    use diffsim_tasks::{AntRun, AntRunConfig};
    let Some(gpu) = gpu_or_skip("gpu_sim_reports_a_nan_in_any_column_as_the_cpu") else { return };
    let task = AntRun::new(AntRunConfig { num_envs: 2, substeps: 2, threads: 1, ..Default::default() });
    let mut sim: Sim<f32> = task.sim().unwrap();
    let init = sim.state.clone();
    let mut g = GpuSim::new(gpu, &sim, GpuOptions { scatter: Scatter::Deterministic, readback: Vec::new() }).unwrap();
    let names: Vec<String> = init.layout().specs.iter().filter(|s| s.per_env() > 0).map(|s| s.name.clone()).collect();
    assert!(names.len() > 6, "{} columns: the end-of-step check needs several dispatches", names.len());
    let mut caught = 0;
    for name in &names {
        sim.state = init.clone();
        g.write_state(&init).unwrap();
        let mut row = init.env(name, 1).unwrap().to_vec();
        let last = row.len() - 1;
        row[last] = f32::NAN;
        sim.state.env_mut(name, 1).unwrap().copy_from_slice(&row);
        g.write_state_row(name, 1, &row).unwrap();
        let found = g.check_state().unwrap();
        assert_eq!(found, [NonFiniteEnv { env: 1, system: "(state check)".into(), column: name.clone() }]);
        let (want, got) = (sim.step(), g.step());
        match (&want, &got) {
            (Err(want), Err(got)) => {
                let (
                    EngineError::NonFinite { system: cs, column: cc, env: ce, step: ct, .. },
                    EngineError::NonFinite { system: gs, column: gc, env: ge, step: gt, .. },
                ) = (want, got)
                else {
                    panic!("{want} / {got}")
                };
                assert_eq!((gs, gc, ge, gt), (cs, cc, ce, ct), "NaN in `{name}`:\nGPU: {got}\nCPU: {want}");
                assert_eq!(g.non_finite().iter().map(|b| b.env).collect::<Vec<_>>(), vec![1], "`{name}`");
                caught += 1;
            }
            (Ok(()), Ok(())) => assert!(sim.non_finite_envs().is_empty(), "`{name}`: the CPU kept a NaN"),
            (Ok(()), Err(got)) => {
                assert_eq!(sim.non_finite_envs(), vec![1], "`{name}`: GPU {got}");
                assert_eq!(
                    g.non_finite(),
                    &[NonFiniteEnv { env: 1, system: "(end of step)".into(), column: name.clone() }]
                );
            }
            (Err(want), Ok(())) => panic!("NaN in `{name}`: the CPU reports {want}, the GPU nothing"),
        }
    }
    // ant's joint coordinates and rates; every other column is overwritten before it is read.
    assert!(caught >= 2, "only {caught} of {} columns carried the NaN into the step", names.len());
}
