//! `VecEnv` on chain_reach: reset determinism, step shapes and errors, truncation with autoreset,
//! clipping, and the differentiable path (against an f64 replay of the same rollout, and with a
//! per-env reset inside the horizon).

use diffsim_engine::cpu::Split;
use diffsim_engine::{ColumnSet, Cpu, EngineError, Sim, SimFactory};
use diffsim_tasks::chain_reach::INIT_JITTER;
use diffsim_tasks::{ChainReach, ChainReachConfig, TaskRng, VecEnv};
use ndarray::{Array1, Array2};

fn env(num_envs: usize, episode_length: usize) -> VecEnv<ChainReach> {
    VecEnv::new(ChainReach::new(ChainReachConfig { num_envs, episode_length, ..Default::default() })).unwrap()
}

fn random(rng: &mut TaskRng, shape: (usize, usize), amp: f64) -> Array2<f32> {
    Array2::from_shape_simple_fn(shape, || rng.uniform(-amp, amp) as f32)
}

fn random1(rng: &mut TaskRng, n: usize, amp: f64) -> Array1<f32> {
    Array1::from_shape_simple_fn(n, || rng.uniform(-amp, amp) as f32)
}

#[test]
fn reset_is_deterministic_per_seed_and_env() {
    let mut a = env(3, 60);
    let nominal = a.obs().unwrap();
    let o1 = a.reset(7).unwrap();
    let o2 = a.reset(7).unwrap();
    let o3 = a.reset(8).unwrap();
    assert_eq!(o1, o2);
    assert_ne!(o1, o3);
    assert_ne!(o1.row(0), o1.row(1), "envs draw independent noise");
    // Fresh env, same seed: same obs.
    assert_eq!(env(3, 60).reset(7).unwrap(), o1);
    // Env 1's noise does not depend on how many envs there are.
    assert_eq!(env(2, 60).reset(7).unwrap().row(1), o1.row(1));
    // Noise: x and z of positions only, within the jitter; velocities stay zero.
    let links = 4;
    for e in 0..3 {
        for i in 0..links {
            let d = [0, 1, 2].map(|c| o1[[e, 3 * i + c]] - nominal[[e, 3 * i + c]]);
            assert!(d[0].abs() <= INIT_JITTER as f32 + 1e-6 && d[2].abs() <= INIT_JITTER as f32 + 1e-6, "{d:?}");
            assert_eq!(d[1], 0.0);
        }
        assert!(o1.row(e).iter().skip(3 * links).all(|&v| v == 0.0));
    }
}

#[test]
fn reset_and_steps_do_not_depend_on_thread_count() {
    let mut one = env(4, 60);
    let mut two =
        VecEnv::new(ChainReach::new(ChainReachConfig { num_envs: 4, threads: 2, ..Default::default() })).unwrap();
    two.sim_mut().cpu = Cpu::new(2).with_split(Split::Always);
    assert_eq!(one.reset(3).unwrap(), two.reset(3).unwrap());
    let mut rng = TaskRng::new(1);
    for _ in 0..5 {
        let a = random(&mut rng, (4, 3), 1.0);
        let (r1, r2) = (one.step(a.view()).unwrap(), two.step(a.view()).unwrap());
        assert_eq!(r1, r2);
    }
}

#[test]
fn step_returns_batched_shapes() {
    let mut e = env(3, 60);
    let o = e.reset(0).unwrap();
    assert_eq!(o.dim(), (3, 24));
    let r = e.step(Array2::zeros((3, 3)).view()).unwrap();
    assert_eq!(r.obs.dim(), (3, 24));
    assert_eq!(r.reward.len(), 3);
    assert_eq!(r.terminated.len(), 3);
    assert_eq!(r.truncated.len(), 3);
    assert_eq!(r.final_obs, vec![None; 3]);
    assert!(r.reward.iter().all(|x| x.is_finite() && *x < 0.0));
    assert_eq!(e.progress(), &[1, 1, 1]);
}

#[test]
fn wrong_action_shape_is_an_error_naming_the_control_column() {
    let mut e = env(2, 60);
    e.reset(0).unwrap();
    for shape in [(2, 2), (3, 2), (1, 3)] {
        let err = e.step(Array2::zeros(shape).view()).unwrap_err();
        assert!(matches!(&err, EngineError::ShapeMismatch { column, expected: 6, .. } if column == "act"), "{err}");
        assert!(err.to_string().contains("`act`"), "{err}");
    }
    assert_eq!(e.progress(), &[0, 0], "a rejected step does not advance");
}

#[test]
fn nan_action_is_an_error_naming_the_env() {
    let mut e = env(3, 60);
    e.reset(0).unwrap();
    let mut a = Array2::zeros((3, 3));
    a[[1, 2]] = f32::NAN;
    let err = e.step(a.view()).unwrap_err();
    assert!(
        matches!(&err, EngineError::NonFinite { env: 1, component: 2, set: ColumnSet::Control, column, .. } if column == "act"),
        "{err}"
    );
    assert!(err.to_string().contains("environment 1"), "{err}");
}

#[test]
fn truncation_autoresets_and_keeps_the_final_obs() {
    let (len, n) = (3, 2);
    let mut short = env(n, len);
    let mut long = env(n, 100);
    let first = short.reset(9).unwrap();
    assert_eq!(long.reset(9).unwrap(), first);
    let mut rng = TaskRng::new(2);
    for t in 0..len {
        let a = random(&mut rng, (n, 3), 1.0);
        let (r, l) = (short.step(a.view()).unwrap(), long.step(a.view()).unwrap());
        assert_eq!(r.reward, l.reward, "the reward is computed before the reset");
        if t + 1 < len {
            assert!(!r.truncated.iter().any(|&x| x) && r.final_obs.iter().all(Option::is_none));
            assert_eq!(r.obs, l.obs);
        } else {
            assert!(r.truncated.iter().all(|&x| x) && !r.terminated.iter().any(|&x| x));
            for e in 0..n {
                assert_eq!(r.final_obs[e].as_ref().unwrap(), &l.obs.row(e), "terminal obs is kept");
                // The returned obs is episode 1's root: at rest, with noise other than episode 0's.
                assert!(r.obs.row(e).iter().skip(12).all(|&v| v == 0.0));
                assert_ne!(r.obs.row(e), first.row(e));
            }
            assert_eq!(r.obs, short.obs().unwrap());
            assert_eq!(short.progress(), &[0, 0]);
        }
    }
    // The new episode runs its full length again.
    for t in 0..len {
        let r = short.step(Array2::zeros((n, 3)).view()).unwrap();
        assert_eq!(r.truncated.iter().all(|&x| x), t + 1 == len);
    }
    // Episode numbering is part of the seed scheme: reset(9) again reproduces episode 0.
    assert_eq!(short.reset(9).unwrap(), first);
}

#[test]
fn actions_are_clipped_to_unit_box() {
    let mut a = env(2, 60);
    let mut b = env(2, 60);
    a.reset(4).unwrap();
    b.reset(4).unwrap();
    let big = Array2::from_shape_vec((2, 3), vec![5.0f32, -7.0, 1.0, 0.3, 1e6, -2.0]).unwrap();
    let unit = big.mapv(|x: f32| x.clamp(-1.0, 1.0));
    for _ in 0..3 {
        assert_eq!(a.step(big.view()).unwrap(), b.step(unit.view()).unwrap());
    }
}

/// A recorded f32 rollout of `venv` with `actions`; returns its action gradients for the loss
/// Σ_t ⟨adj_reward_t, reward_t⟩ + ⟨adj_obs_t, obs_t⟩.
fn recorded_grads(
    venv: &mut VecEnv<ChainReach>,
    actions: &[Array2<f32>],
    adj_obs: &[Array2<f32>],
    adj_reward: &[Array1<f32>],
) -> (Vec<Array2<f32>>, Vec<Vec<usize>>) {
    venv.record();
    let mut resets = Vec::new();
    for a in actions {
        let r = venv.step(a.view()).unwrap();
        resets.push((0..venv.num_envs()).filter(|&e| r.final_obs[e].is_some()).collect());
    }
    (venv.backward(adj_obs, adj_reward).unwrap(), resets)
}

#[test]
fn action_gradients_match_an_f64_replay() {
    let (n, h) = (2, 6);
    let task = ChainReach::new(ChainReachConfig { num_envs: n, ..Default::default() });
    let mut venv = VecEnv::new(task.clone()).unwrap();
    venv.reset(11).unwrap();
    let start = venv.sim().state.map(f64::from);

    let mut rng = TaskRng::new(5);
    // Some actions beyond the box, so some entries are clipped.
    let actions: Vec<Array2<f32>> = (0..h).map(|_| random(&mut rng, (n, 3), 1.4)).collect();
    assert!(actions.iter().flatten().any(|a| a.abs() > 1.0) && actions.iter().flatten().any(|a| a.abs() < 1.0));
    let adj_obs: Vec<Array2<f32>> = (0..h).map(|_| random(&mut rng, (n, 24), 1.0)).collect();
    let adj_reward: Vec<Array1<f32>> = (0..h).map(|_| random1(&mut rng, n, 1.0)).collect();
    let (grads, resets) = recorded_grads(&mut venv, &actions, &adj_obs, &adj_reward);
    assert!(resets.iter().all(Vec::is_empty));

    // The same rollout in f64 straight on the Sim, with the clipped actions as controls.
    let mut sim: Sim<f64> = task.sim().unwrap();
    sim.state.copy_from(&start);
    sim.record();
    for a in &actions {
        let c: Vec<f64> = a.iter().map(|&x| f64::from(x.clamp(-1.0, 1.0))).collect();
        sim.set_control("act", &c).unwrap();
        sim.step().unwrap();
    }
    let g64 = sim
        .backward(|t, adj| {
            adj.get_mut("obs").unwrap().iter_mut().zip(adj_obs[t].iter()).for_each(|(d, &s)| *d += f64::from(s));
            adj.get_mut("reward").unwrap().iter_mut().zip(&adj_reward[t]).for_each(|(d, &s)| *d += f64::from(s));
        })
        .unwrap();

    let scale = g64.controls.iter().flat_map(|c| c.get("act").unwrap().iter()).fold(0.0f64, |m, x| m.max(x.abs()));
    assert!(scale > 1e-3, "{scale}");
    for t in 0..h {
        let want = g64.controls[t].get("act").unwrap();
        for ((e, k), &got) in grads[t].indexed_iter() {
            let w = if actions[t][[e, k]].abs() <= 1.0 { want[3 * e + k] } else { 0.0 };
            if actions[t][[e, k]].abs() > 1.0 {
                assert_eq!(got, 0.0, "clipped action t={t} env={e} k={k}");
            }
            let err = (f64::from(got) - w).abs() / w.abs().max(1e-2 * scale);
            assert!(err < 1e-3, "t={t} env={e} k={k}: f32 {got} vs f64 {w} (rel {err:.2e})");
        }
    }
}

/// Env 0 starts the recorded horizon at progress 3 of 5, so it is truncated and autoreset after
/// step t = 1; env 1 starts a fresh episode at the same time and does not end within H = 4.
fn mid_horizon_setup(episode_length: usize) -> (VecEnv<ChainReach>, Vec<Array2<f32>>) {
    let n = 2;
    let mut venv = env(n, episode_length);
    venv.reset(21).unwrap();
    let mut rng = TaskRng::new(8);
    for _ in 0..3 {
        venv.step(random(&mut rng, (n, 3), 1.0).view()).unwrap();
    }
    venv.reset_envs(&[1]).unwrap();
    assert_eq!(venv.progress(), &[3, 0]);
    let actions = (0..4).map(|_| random(&mut rng, (n, 3), 1.0)).collect();
    (venv, actions)
}

#[test]
fn a_reset_inside_the_horizon_cuts_only_that_env() {
    let (h, n) = (4, 2);
    let mut rng = TaskRng::new(13);
    let adj_obs: Vec<Array2<f32>> = (0..h).map(|_| random(&mut rng, (n, 24), 1.0)).collect();
    let adj_reward: Vec<Array1<f32>> = (0..h).map(|_| random1(&mut rng, n, 1.0)).collect();
    let zero_obs: Vec<Array2<f32>> = (0..h).map(|_| Array2::zeros((n, 24))).collect();
    let zero_reward: Vec<Array1<f32>> = (0..h).map(|_| Array1::zeros(n)).collect();

    let (mut with_reset, actions) = mid_horizon_setup(5);
    let (mut without, same_actions) = mid_horizon_setup(100);
    assert_eq!(actions, same_actions);
    let (g_reset, resets) = recorded_grads(&mut with_reset, &actions, &adj_obs, &adj_reward);
    let (g_plain, no_resets) = recorded_grads(&mut without, &actions, &adj_obs, &adj_reward);
    assert_eq!(resets, vec![vec![], vec![0], vec![], vec![]]);
    assert!(no_resets.iter().all(Vec::is_empty));

    // Env 1 never resets: its gradients are exactly those of the run without env 0's reset.
    for t in 0..h {
        assert_eq!(g_reset[t].row(1), g_plain[t].row(1), "t={t}");
        assert!(g_reset[t].row(1).iter().any(|&g| g != 0.0));
    }
    // Env 0 after its reset: a different trajectory, still differentiable.
    for g in &g_reset[2..] {
        assert!(g.row(0).iter().any(|&g| g != 0.0));
    }

    // Seeds on the obs returned at and after the reset (t ≥ 1: episode 1 of env 0) give env 0's
    // pre-reset actions no gradient; env 1's get some.
    let late_obs: Vec<Array2<f32>> =
        (0..h).map(|t| if t >= 1 { adj_obs[t].clone() } else { Array2::zeros((n, 24)) }).collect();
    let g = with_reset.backward(&late_obs, &zero_reward).unwrap();
    for (t, g) in g[..2].iter().enumerate() {
        assert!(g.row(0).iter().all(|&x| x == 0.0), "t={t}: {:?}", g.row(0));
        assert!(g.row(1).iter().any(|&x| x != 0.0));
    }

    // Rewards up to the reset step (computed before the reset) flow as without the reset.
    let early_reward: Vec<Array1<f32>> =
        (0..h).map(|t| if t <= 1 { adj_reward[t].clone() } else { Array1::zeros(n) }).collect();
    let a = with_reset.backward(&zero_obs, &early_reward).unwrap();
    let b = without.backward(&zero_obs, &early_reward).unwrap();
    for t in 0..2 {
        assert_eq!(a[t], b[t], "t={t}");
        assert!(a[t].row(0).iter().any(|&x| x != 0.0));
    }

    // The terminal obs (final_obs of step 1) is differentiable through `backward_with_final_obs`:
    // it is the obs the run without reset returned at step 1.
    let v = adj_obs[1].row(0).to_owned();
    let final_adj: Vec<Vec<Option<Array1<f32>>>> =
        (0..h).map(|t| if t == 1 { vec![Some(v.clone()), None] } else { vec![None, None] }).collect();
    let a = with_reset.backward_with_final_obs(&zero_obs, &zero_reward, &final_adj).unwrap();
    let mut only_v = zero_obs.clone();
    only_v[1].row_mut(0).assign(&v);
    let b = without.backward(&only_v, &zero_reward).unwrap();
    for t in 0..h {
        assert_eq!(a[t], b[t], "t={t}");
    }
    // A final-obs adjoint where no episode ended is rejected.
    let bad: Vec<Vec<Option<Array1<f32>>>> = (0..h).map(|_| vec![None, Some(v.clone())]).collect();
    assert!(matches!(with_reset.backward_with_final_obs(&zero_obs, &zero_reward, &bad), Err(EngineError::Tape(_))));
}

#[test]
fn backward_checks_its_inputs() {
    let mut e = env(2, 60);
    e.reset(0).unwrap();
    assert!(matches!(e.backward(&[], &[]), Err(EngineError::Tape(_))), "no record()");
    e.record();
    e.step(Array2::zeros((2, 3)).view()).unwrap();
    let err = e.backward(&[], &[]).unwrap_err();
    assert!(matches!(err, EngineError::Tape(_)), "{err}");
    let err = e.backward(&[Array2::zeros((2, 23))], &[Array1::zeros(2)]).unwrap_err();
    assert!(matches!(&err, EngineError::ShapeMismatch { column, .. } if column == "obs"), "{err}");
    let err = e.backward(&[Array2::zeros((2, 24))], &[Array1::zeros(3)]).unwrap_err();
    assert!(matches!(&err, EngineError::ShapeMismatch { column, .. } if column == "reward"), "{err}");
    let g = e.backward(&[Array2::zeros((2, 24))], &[Array1::ones(2)]).unwrap();
    assert_eq!(g.len(), 1);
    assert_eq!(g[0].dim(), (2, 3));
}

/// The closed-loop sweep is exact: with a linear feedback policy a_t = clip(K o_t + u_t), the
/// sweep's ∂L/∂u_t (seeds add Kᵀ ∂L/∂a_{t+1} to ∂L/∂o_{t+1}) matches dual numbers propagated
/// through the same closed loop in f64.
#[test]
fn backward_sweep_through_a_feedback_policy_matches_dual_numbers() {
    use diffsim_engine::{Dual, Real};
    let (n, h) = (2usize, 6usize);
    let task = ChainReach::new(ChainReachConfig { num_envs: n, episode_length: 100, ..Default::default() });
    let (od, ad) = (task.obs_dim(), task.act_dim());
    let mut rng = TaskRng::new(11);
    let k = random(&mut rng, (ad, od), 0.3);
    let u: Vec<Array2<f32>> = (0..h).map(|_| random(&mut rng, (n, ad), 0.5)).collect();
    let w: Vec<Array1<f32>> = (0..h).map(|_| random1(&mut rng, n, 1.0)).collect();

    let mut env = VecEnv::new(task.clone()).unwrap();
    let mut obs = env.obs().unwrap();
    env.record();
    for ut in &u {
        let a = obs.dot(&k.t()) + ut;
        obs = env.step(a.view()).unwrap().obs;
    }
    let grads = env
        .backward_sweep(|t, next| {
            let obs_adj = match next {
                Some(g) => g.dot(&k),
                None => Array2::zeros((n, od)),
            };
            Ok(diffsim_tasks::StepSeeds { obs: obs_adj, reward: w[t].clone(), final_obs: vec![None; n] })
        })
        .unwrap();

    // Dual numbers through the same closed loop, tangent on u_t[e][c] one at a time.
    let clip = |x: Dual| {
        if x.v > 1.0 {
            Dual::from_f64(1.0)
        } else if x.v < -1.0 {
            Dual::from_f64(-1.0)
        } else {
            x
        }
    };
    let directional = |t0: usize, e0: usize, c0: usize| -> f64 {
        let mut sim: Sim<Dual> = task.sim().unwrap();
        // Observations of the initial state, as `VecEnv::new` computes them.
        let (model, control) = (sim.model.view_all(), sim.control.view_all());
        sim.schedule
            .forward_stage(diffsim_engine::Stage::Post, 0, &model, &control, &mut sim.state.view_all_mut())
            .unwrap();
        let mut total = 0.0;
        for t in 0..h {
            let obs = sim.state.get("obs").unwrap().to_vec();
            let mut act = vec![Dual::default(); n * ad];
            for e in 0..n {
                for c in 0..ad {
                    let mut x = Dual::from_f64(u[t][[e, c]] as f64);
                    if (t, e, c) == (t0, e0, c0) {
                        x.t = 1.0;
                    }
                    for j in 0..od {
                        x += Dual::from_f64(k[[c, j]] as f64) * obs[e * od + j];
                    }
                    act[e * ad + c] = clip(x);
                }
            }
            sim.set_control("act", &act).unwrap();
            sim.step().unwrap();
            let r = sim.state.get("reward").unwrap();
            total += (0..n).map(|e| w[t][e] as f64 * r[e].t).sum::<f64>();
        }
        total
    };
    let mut worst = 0.0f64;
    for t in [0, 2, h - 1] {
        for e in 0..n {
            for c in 0..ad {
                let exact = directional(t, e, c);
                let got = grads[t][[e, c]] as f64;
                worst = worst.max((got - exact).abs() / exact.abs().max(1e-3));
            }
        }
    }
    assert!(worst < 1e-3, "closed-loop action gradients off by {worst}");
}

/// A NaN injected into one env's state mid-rollout: the step names the system and env, resets
/// that env, the others carry on bit-identically, and backward gives finite gradients with none
/// through the diverged step.
#[test]
fn a_nan_in_one_env_is_isolated_named_and_reset() {
    let n = 3;
    let mut clean = env(n, 100);
    let mut env = env(n, 100);
    env.reset(5).unwrap();
    clean.reset(5).unwrap();
    env.record();
    let mut rng = TaskRng::new(3);
    let actions: Vec<Array2<f32>> = (0..6).map(|_| random(&mut rng, (n, 3), 0.5)).collect();
    for (t, a) in actions.iter().enumerate() {
        if t == 3 {
            env.sim_mut().state.env_mut("particle_qd", 1).unwrap()[4] = f32::NAN;
        }
        let out = env.step(a.view()).unwrap();
        let reference = clean.step(a.view()).unwrap();
        if t == 3 {
            assert_eq!(out.diverged.len(), 1, "{:?}", out.diverged);
            let d = &out.diverged[0];
            assert_eq!((d.env, d.step), (1, 3));
            assert!(d.system.starts_with("particles."), "{d:?}");
            assert!(out.truncated[1] && out.reward[1] == 0.0 && out.final_obs[1].is_none());
            assert!(out.obs.iter().all(|x| x.is_finite()));
        } else {
            assert!(out.diverged.is_empty());
        }
        for e in [0, 2] {
            assert_eq!(out.obs.row(e), reference.obs.row(e));
        }
    }
    assert_eq!(env.nan_events(), 1);
    let h = actions.len();
    // Loss terms only from step 3 on: for env 1 they all lie past its diverged step 3.
    let w = |t: usize| if t >= 3 { 1.0 } else { 0.0 };
    let adj_obs: Vec<Array2<f32>> = (0..h).map(|t| Array2::from_elem((n, 24), w(t))).collect();
    let adj_reward: Vec<Array1<f32>> = (0..h).map(|t| Array1::from_elem(n, w(t))).collect();
    let grads = env.backward(&adj_obs, &adj_reward).unwrap();
    assert!(grads.iter().all(|g| g.iter().all(|x| x.is_finite())));
    // Nothing flows through the diverged step into env 1's earlier actions.
    for g in &grads[..=3] {
        assert!(g.row(1).iter().all(|&x| x == 0.0), "{g:?}");
    }
    assert!(grads[2].row(0).iter().any(|&x| x != 0.0));
}
