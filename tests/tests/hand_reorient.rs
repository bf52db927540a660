//! HandReorient: the gradient of a rollout with hand–cube contact passes the dual-number
//! dot-product test; the observation, reward, termination and goal-resampling systems pass the
//! dot-product and finite-difference tests; the task runs in the `VecEnv` (72 obs, 16 actions)
//! with its termination flag equal to "cube 0.24 or more from the goal"; with zero action the
//! hand catches the falling cube instead of letting it through.

use diffsim_engine::{Columns, EngineError, Real, Sim, SimFactory, StepCx, System};
use diffsim_tasks::hand_reorient::{FALL_DISTANCE, HandLayout, Observe, ResampleGoal, Reward, Terminate};
use diffsim_tasks::{HandReorient, HandReorientConfig, Task, VecEnv};
use diffsim_tests::{GradReport, Rng, RolloutCheck, SystemCheck, cases};
use glam::{Quat, Vec3};
use ndarray::Array2;
use proptest::prelude::*;

fn task(num_envs: usize) -> HandReorient {
    HandReorient::new(HandReorientConfig { num_envs, threads: 1, ..Default::default() })
}

/// The task with the cube lowered onto the fingers and tilted, so contact starts at once.
struct CubeOnFingers(HandReorient);

impl SimFactory for CubeOnFingers {
    fn sim<R: Real>(&self) -> Result<Sim<R>, EngineError> {
        let mut sim: Sim<R> = self.0.sim()?;
        let cq = self.0.layout()?.cube_q;
        let q = sim.state.get_mut("joint_q")?;
        q[cq + 1] = R::from_f64(0.535);
        let tilt = Quat::from_axis_angle(Vec3::new(0.3, 1.0, 0.2).normalize(), 0.5);
        for (k, x) in tilt.to_array().into_iter().enumerate() {
            q[cq + 3 + k] = R::from_f64(f64::from(x));
        }
        Ok(sim)
    }
}

#[test]
fn rollout_with_hand_cube_contact_passes_the_dot_product_test() {
    // Contact is on during the rollout: the cube's fall is slowed below free fall.
    let factory = CubeOnFingers(task(1));
    let mut sim: Sim<f64> = factory.sim().unwrap();
    let cq = factory.0.layout().unwrap().cube_q;
    let y0 = sim.state.get("joint_q").unwrap()[cq + 1];
    for _ in 0..8 {
        sim.step().unwrap();
    }
    let fall = y0 - sim.state.get("joint_q").unwrap()[cq + 1];
    let free_fall = 0.5 * 9.81 * (8.0f64 / 120.0).powi(2);
    assert!(fall < 0.8 * free_fall, "the cube fell {fall} m in 8 steps (free fall {free_fall} m)");

    let r = RolloutCheck { horizon: 8, h: 1e-6, state_dir_scale: 0.0 }.run(&factory, &mut Rng::new(11)).unwrap();
    assert!(r.dual_err() < 1e-10, "{r:?}");
    assert!(r.adjoint.abs() > 0.0);
}

/// A random state of one env: hand angles inside the limits, the cube near the goal with a random
/// rotation, random rates, a goal rotated from the cube's by an angle in [0.05, 0.3] (the success
/// sigmoid's steep region included), random actions.
fn random_state(layout: &HandLayout, sim: &Sim<f64>, rng: &mut Rng) -> (Columns<f64>, Columns<f64>) {
    let mut s = sim.state.clone();
    let mut c = sim.control.clone();
    rng.fill(&mut c);
    let unit = |rng: &mut Rng| {
        Vec3::new(rng.uniform(-1.0, 1.0) as f32, rng.uniform(-1.0, 1.0) as f32, rng.uniform(-1.0, 1.0) as f32)
            .normalize_or(Vec3::X)
    };
    let cube_rot = Quat::from_axis_angle(unit(rng), rng.uniform(-3.0, 3.0) as f32);
    let goal_rot = cube_rot * Quat::from_axis_angle(unit(rng), rng.uniform(0.05, 0.3) as f32);
    let goal = s.get("goal").unwrap()[..3].to_vec();
    let q = s.get_mut("joint_q").unwrap();
    for &(qi, _, lo, hi) in &layout.hinges {
        q[qi] = rng.uniform(lo, hi);
    }
    for k in 0..3 {
        q[layout.cube_q + k] = goal[k] + rng.uniform(-0.1, 0.1);
    }
    for (k, x) in cube_rot.to_array().into_iter().enumerate() {
        q[layout.cube_q + 3 + k] = f64::from(x);
    }
    for x in s.get_mut("joint_qd").unwrap() {
        *x = rng.uniform(-2.0, 2.0);
    }
    let g = s.get_mut("goal").unwrap();
    for (k, x) in goal_rot.to_array().into_iter().enumerate() {
        g[3 + k] = f64::from(x);
    }
    (s, c)
}

/// One system's gradient check at a point.
type Check<'a> = dyn Fn(&SystemCheck, &mut Rng) -> Result<GradReport, String> + 'a;

proptest! {
    #![proptest_config(cases(16))]

    #[test]
    fn observe_reward_terminate_resample_pass_dot_product_and_fd(seed in any::<u64>()) {
        let t = task(1);
        let layout = t.layout().unwrap().clone();
        let sim: Sim<f64> = t.sim().unwrap();
        let mut rng = Rng::new(seed);
        let (s, c) = random_state(&layout, &sim, &mut rng);
        let check = SystemCheck { model: &sim.model, state: &s, control: &c, cx: StepCx { dt: 1.0 / 120.0, step: 0, substep: 0 }, h: 1e-7 };
        let systems: [(&str, Box<Check<'_>>); 4] = [
            ("observe", Box::new(|ch, r| ch.run(&Observe { layout: layout.clone() }, r))),
            ("reward", Box::new(|ch, r| ch.run(&Reward { layout: layout.clone() }, r))),
            ("terminate", Box::new(|ch, r| ch.run(&Terminate { layout: layout.clone() }, r))),
            ("resample_goal", Box::new(|ch, r| ch.run(&ResampleGoal { layout: layout.clone() }, r))),
        ];
        for (name, run) in &systems {
            let r = run(&check, &mut rng).map_err(TestCaseError::fail)?;
            prop_assert!(r.dual_err() < 1e-10, "{name}: dual {r:?}");
            prop_assert!(r.fd_err() < 1e-4, "{name}: fd {r:?}");
        }
    }
}

#[test]
fn reward_pays_the_smoothed_bonus_only_near_the_goal_rotation() {
    let t = task(1);
    let layout = t.layout().unwrap().clone();
    let sim: Sim<f64> = t.sim().unwrap();
    let reward = |angle: f32| {
        let mut s = sim.state.clone();
        let goal = s.get("goal").unwrap().to_vec();
        let goal_rot = Quat::from_xyzw(goal[3] as f32, goal[4] as f32, goal[5] as f32, goal[6] as f32);
        let q = s.get_mut("joint_q").unwrap();
        q[layout.cube_q..layout.cube_q + 3].copy_from_slice(&goal[..3]);
        // The cube turned by `angle` away from the goal rotation.
        let rot = goal_rot * Quat::from_rotation_x(angle);
        for (k, x) in rot.to_array().into_iter().enumerate() {
            q[layout.cube_q + 3 + k] = f64::from(x);
        }
        let mut out = s.clone();
        let sys = Reward { layout: layout.clone() };
        System::<f64>::forward(
            &sys,
            &StepCx { dt: 0.0, step: 0, substep: 0 },
            &sim.model.view_all(),
            &sim.control.view_all(),
            &mut out.view_all_mut(),
        );
        out.get("reward").unwrap()[0]
    };
    // At the goal position, with zero actions: r = 1/(rot + 0.1) + 250 σ(−|s − 1|/ε).
    let far = reward(1.0);
    assert!((far - 1.0 / 1.1).abs() < 1e-4, "{far}");
    let close = reward(0.05);
    assert!((close - (1.0 / 0.15 + 125.0)).abs() < 1e-4, "{close}");
}

#[test]
fn hand_reorient_runs_in_the_vec_env_and_flags_termination_by_goal_distance() {
    let t = task(2);
    let spec = t.spec();
    assert_eq!((spec.obs_dim, spec.act_dim), (72, 16));
    let mut env = VecEnv::new(t).unwrap();
    let obs = env.reset(3).unwrap();
    assert_eq!(obs.dim(), (2, 72));
    // Goal position: the nominal cube start − 0.04 ŷ; the cube starts within 0.01 of its start.
    for e in 0..2 {
        let o = obs.row(e).to_vec();
        assert!((o[33] - (o[46] + 0.04)).abs() < 0.011, "env {e}: cube y {} goal y {}", o[33], o[46]);
    }
    let goal_dist = |o: &[f32]| ((0..3).map(|k| (o[32 + k] - o[45 + k]).powi(2)).sum::<f32>()).sqrt();
    let mut ended = 0;
    for _ in 0..90 {
        let out = env.step(Array2::<f32>::zeros((2, spec.act_dim)).view()).unwrap();
        assert!(out.reward.iter().all(|r| r.is_finite()));
        for e in 0..2 {
            let o: Vec<f32> = match (&out.final_obs[e], out.terminated[e]) {
                (Some(f), _) => f.to_vec(),
                (None, false) => out.obs.row(e).to_vec(),
                (None, true) => panic!("env {e} terminated without a final observation"),
            };
            let far = f64::from(goal_dist(&o)) >= FALL_DISTANCE;
            assert_eq!(
                out.terminated[e],
                far,
                "env {e}: terminated {} at goal distance {}",
                out.terminated[e],
                goal_dist(&o)
            );
            ended += usize::from(out.terminated[e]);
        }
    }
    println!("episodes ended by termination: {ended}");
}

#[test]
fn with_zero_action_the_hand_catches_the_falling_cube() {
    let t = task(1);
    let cq = t.layout().unwrap().cube_q;
    let mut sim: Sim<f32> = t.sim().unwrap();
    let y0 = f64::from(sim.state.get("joint_q").unwrap()[cq + 1]);
    let steps = 24;
    for _ in 0..steps {
        sim.step().unwrap();
    }
    let y = f64::from(sim.state.get("joint_q").unwrap()[cq + 1]);
    let free_fall = y0 - 0.5 * 9.81 * (steps as f64 / 120.0).powi(2);
    // The cube starts 0.1 above the hand base (y = 0.5); free fall would take its centre to 0.40.
    assert!(y > free_fall + 0.04, "cube centre at {y}, free fall {free_fall}");
    assert!(y > 0.45, "cube centre at {y}: it went through the fingers");
}
