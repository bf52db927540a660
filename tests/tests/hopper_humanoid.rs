//! Hopper and Humanoid: 32-step rollouts pass the dual-number dot-product test in f64; the
//! observation and reward systems pass the dot-product and finite-difference tests; both run in
//! the `VecEnv` with the right sizes and a termination flag that follows the height criterion;
//! dropped on the ground they stay finite and do not sink by more than a few centimetres.

mod common;

use diffsim_engine::{Columns, Sim, SimFactory, StepCx};
use diffsim_tasks::hopper::{self, Hopper, HopperConfig};
use diffsim_tasks::humanoid::{self, Humanoid, HumanoidConfig};
use diffsim_tasks::{Task, VecEnv};
use diffsim_tests::{Rng, RolloutCheck, SystemCheck, cases};
use ndarray::Array2;
use proptest::prelude::*;

fn hopper_task(num_envs: usize) -> Hopper {
    Hopper::new(HopperConfig { num_envs, threads: 1, ..Default::default() })
}

fn humanoid_task(num_envs: usize) -> Humanoid {
    Humanoid::new(HumanoidConfig { num_envs, threads: 1, ..Default::default() })
}

#[test]
fn hopper_rollout_of_32_steps_passes_the_dot_product_test() {
    let r = RolloutCheck { horizon: 32, h: 1e-6, state_dir_scale: 0.0 }.run(&hopper_task(1), &mut Rng::new(3)).unwrap();
    assert!(r.dual_err() < 1e-10, "{r:?}");
    assert!(r.adjoint.abs() > 0.0);
}

#[test]
fn humanoid_rollout_of_32_steps_passes_the_dot_product_test() {
    let r =
        RolloutCheck { horizon: 32, h: 1e-6, state_dir_scale: 0.0 }.run(&humanoid_task(1), &mut Rng::new(4)).unwrap();
    assert!(r.dual_err() < 1e-10, "{r:?}");
    assert!(r.adjoint.abs() > 0.0);
}

/// A random point for the Post systems: the task's initial state (FK done by the `Sim`), with
/// every state scalar perturbed, the height coordinate spread over `heights` so the piecewise
/// height rewards are tested on each branch, and random actions.
fn random_point<F: SimFactory>(
    task: &F,
    rng: &mut Rng,
    height: (&str, usize),
    heights: (f64, f64),
) -> (Sim<f64>, Columns<f64>, Columns<f64>) {
    let sim: Sim<f64> = task.sim().unwrap();
    let mut s = sim.state.clone();
    for (_, col) in s.columns_mut() {
        col.iter_mut().for_each(|x| *x += rng.uniform(-0.2, 0.2));
    }
    let (name, offset) = height;
    for e in 0..s.num_envs() {
        s.env_mut(name, e).unwrap()[offset] = rng.uniform(heights.0, heights.1);
    }
    let c = rng.like(&sim.control);
    (sim, s, c)
}

proptest! {
    #![proptest_config(cases(8))]

    #[test]
    fn hopper_observe_and_reward_pass_dot_product_and_fd(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        // h over both sides of the reward's −0.3 switch and the −1.3 / 0 clip ends.
        let (sim, s, c) = random_point(&hopper_task(2), &mut rng, ("joint_q", 1), (-1.5, 0.2));
        let check = SystemCheck { model: &sim.model, state: &s, control: &c, cx: StepCx { dt: 1.0 / 60.0, step: 0, substep: 0 }, h: 1e-6 };
        for (name, r) in [("observe", check.run(&hopper::Observe, &mut rng)), ("reward", check.run(&hopper::Reward, &mut rng))] {
            let r = r.map_err(TestCaseError::fail)?;
            prop_assert!(r.dual_err() < 1e-10, "{name}: dual {r:?}");
            prop_assert!(r.fd_err() < 1e-4, "{name}: fd {r:?}");
        }
    }

    #[test]
    fn humanoid_observe_and_reward_pass_dot_product_and_fd(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        // Torso height over both sides of the reward's 0.84 switch and its clip ends.
        let (sim, s, c) = random_point(&humanoid_task(2), &mut rng, ("body_q", 1), (-0.3, 1.1));
        let check = SystemCheck { model: &sim.model, state: &s, control: &c, cx: StepCx { dt: 1.0 / 60.0, step: 0, substep: 0 }, h: 1e-6 };
        for (name, r) in [("observe", check.run(&humanoid::Observe, &mut rng)), ("reward", check.run(&humanoid::Reward, &mut rng))] {
            let r = r.map_err(TestCaseError::fail)?;
            prop_assert!(r.dual_err() < 1e-10, "{name}: dual {r:?}");
            prop_assert!(r.fd_err() < 1e-4, "{name}: fd {r:?}");
        }
    }
}

/// Steps `env` with `action` for `steps` steps and checks every step's termination flag against
/// `low(obs)` of the observation it was computed from; returns how many envs terminated.
fn check_termination<T: Task>(env: &mut VecEnv<T>, action: f32, steps: usize, low: impl Fn(&[f32]) -> bool) -> usize {
    let (n, act_dim) = (env.spec().num_envs, env.spec().act_dim);
    let mut terminated = 0;
    for _ in 0..steps {
        let out = env.step(Array2::<f32>::from_elem((n, act_dim), action).view()).unwrap();
        assert!(out.reward.iter().all(|r| r.is_finite()));
        assert!(out.diverged.is_empty(), "{:?}", out.diverged);
        for e in 0..n {
            let obs: Vec<f32> = match (&out.final_obs[e], out.terminated[e]) {
                (Some(f), _) => f.to_vec(),
                (None, false) => out.obs.row(e).to_vec(),
                (None, true) => panic!("env {e} terminated without a final observation"),
            };
            assert_eq!(out.terminated[e], low(&obs), "env {e}: terminated {} with obs {obs:?}", out.terminated[e]);
            terminated += usize::from(out.terminated[e]);
        }
    }
    terminated
}

#[test]
fn hopper_runs_in_the_vec_env_and_flags_termination_by_height() {
    let task = hopper_task(2);
    let spec = task.spec();
    assert_eq!((spec.obs_dim, spec.act_dim), (12, 3));
    let mut env = VecEnv::new(task).unwrap();
    let obs = env.reset(1).unwrap();
    assert_eq!(obs.dim(), (2, 12));
    // obs[1] is the torso height relative to the start, within the init noise.
    assert!(obs.column(1).iter().all(|h| h.abs() <= 0.05), "{obs:?}");
    // Unactuated, the Hopper topples: the flag must follow obs[1] < −0.45, and it must fire.
    let low = |o: &[f32]| f64::from(o[1]) < hopper::TERMINATION_HEIGHT;
    let terminated = check_termination(&mut env, 0.0, 150, low);
    assert!(terminated > 0, "the unactuated Hopper never fell below the termination height");
}

#[test]
fn humanoid_runs_in_the_vec_env_and_flags_termination_by_height() {
    let task = humanoid_task(2);
    let spec = task.spec();
    assert_eq!((spec.obs_dim, spec.act_dim), (76, 21));
    let mut env = VecEnv::new(task).unwrap();
    let obs = env.reset(1).unwrap();
    assert_eq!(obs.dim(), (2, 76));
    assert!(obs.column(0).iter().all(|h| (h - 1.35).abs() <= 0.1 + 1e-6), "start height {obs:?}");
    // Unactuated, the Humanoid collapses: the flag must follow obs[0] < 0.74, and it must fire.
    let low = |o: &[f32]| f64::from(o[0]) < humanoid::TERMINATION_HEIGHT;
    let terminated = check_termination(&mut env, 0.0, 60, low);
    assert!(terminated > 0, "the unactuated Humanoid never fell below the termination height");
}

/// Steps `sim` with zero actions for `steps` env steps; asserts the state stays finite and
/// returns the deepest penetration seen.
fn drop_on_ground(mut sim: Sim<f32>, steps: usize) -> (Sim<f32>, f32) {
    let mut deepest = f32::NEG_INFINITY;
    for step in 0..steps {
        sim.step().unwrap();
        assert!(sim.state.get("joint_q").unwrap().iter().all(|x| x.is_finite()), "non-finite at step {step}");
        deepest = deepest.max(common::deepest_penetration(&sim));
    }
    (sim, deepest)
}

#[test]
fn dropped_hopper_and_humanoid_stay_finite_and_on_the_ground() {
    // The Hopper (≈ 16 kg on kₑ = 2e4 per contact point) topples and lies on the ground.
    let (sim, deepest) = drop_on_ground(hopper_task(1).sim().unwrap(), 120);
    assert!(deepest > 0.0, "the Hopper never touched the ground (deepest {deepest})");
    assert!(deepest < 0.03, "Hopper penetration {deepest} m");
    let q = sim.state.get("joint_q").unwrap();
    assert!(q[1] < hopper::TERMINATION_HEIGHT as f32, "the unactuated Hopper is still up: h = {}", q[1]);
    // The Humanoid collapses onto the ground and lies there.
    let (sim, deepest) = drop_on_ground(humanoid_task(1).sim().unwrap(), 90);
    assert!(deepest > 0.0, "the Humanoid never touched the ground (deepest {deepest})");
    assert!(deepest < 0.03, "Humanoid penetration {deepest} m");
    let torso = sim.state.get("body_q").unwrap()[1];
    assert!(torso > 0.0 && torso < humanoid::TERMINATION_HEIGHT as f32, "torso height {torso}");
}

/// Self-collision must skip bodies jointed to each other, also through the zero-mass links of a
/// multi-hinge joint (pelvis → two links → thigh): standing at the nominal pose, no two shapes of
/// unrelated bodies touch, so steps with and without self-collision agree exactly.
#[test]
fn humanoid_self_collision_ignores_bodies_jointed_through_massless_links() {
    let step = |self_collision: bool| {
        let task = Humanoid::new(HumanoidConfig { num_envs: 1, threads: 1, self_collision, ..Default::default() });
        let mut sim: Sim<f64> = task.sim().unwrap();
        for _ in 0..3 {
            sim.step().unwrap();
        }
        sim.state.get("joint_qd").unwrap().to_vec()
    };
    assert_eq!(step(true), step(false));
}
