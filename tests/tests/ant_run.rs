//! AntRun: a dropped Ant comes to rest on the ground without sinking into it, and the gradient of
//! a 32-step rollout (contacts, limits, Featherstone, observations, rewards) passes the
//! dual-number dot-product test in f64.

mod common;

use diffsim_engine::mjcf::ContactParams;
use diffsim_engine::{Sim, SimFactory};
use diffsim_tasks::{AntRun, AntRunConfig, Task, VecEnv};
use diffsim_tests::{Rng, RolloutCheck};
use ndarray::Array2;

/// Drops the Ant (zero actions) for 6 s; returns the final state and the largest torso speed
/// over the last 0.5 s. (Friction is viscous below the Coulomb cap, so legs pushed sideways by
/// the weight creep at F_t / k_f instead of sticking; the Ant still settles as the hips reach
/// equilibrium.)
fn drop_ant(contact: ContactParams) -> (Sim<f32>, f32) {
    let task = AntRun::new(AntRunConfig { num_envs: 1, threads: 1, contact, ..Default::default() });
    let mut sim: Sim<f32> = task.sim().unwrap();
    let mut speed = 0.0f32;
    for step in 0..360 {
        sim.step().unwrap();
        let bq = sim.state.get("body_q").unwrap();
        assert!(bq[1] > 0.0, "torso origin below the ground at step {step}: {}", bq[1]);
        if step >= 330 {
            let qd = sim.state.get("joint_qd").unwrap();
            let bqd = sim.state.get("body_qd").unwrap();
            let p = glam::Vec3::new(bq[0], bq[1], bq[2]);
            let w = glam::Vec3::new(qd[0], qd[1], qd[2]);
            let v = glam::Vec3::new(bqd[3], bqd[4], bqd[5]) + w.cross(p);
            speed = speed.max(v.length());
        }
    }
    (sim, speed)
}

#[test]
fn dropped_ant_comes_to_rest_and_stiff_contact_keeps_it_within_a_centimetre() {
    // Rewarped's contact (ke 4e3 per point) under Rewarped's ~130 kg Ant (density 1000): it comes
    // to rest, sunk by the static deflection m g / (n ke) of the touching points.
    let (sim, speed) = drop_ant(ContactParams::default());
    assert!(speed < 0.05, "still moving at {speed} m/s");
    let mass: f64 = sim.model.params.get("body_mass").unwrap().iter().sum();
    let sink = common::deepest_penetration(&sim).max(0.0);
    let per_point = mass * 9.81 / 4.0e3;
    assert!(sink > 0.0 && (sink as f64) < per_point, "sink {sink} vs one-point deflection {per_point}");
    // With a stiffer contact the same Ant rests with less than 1 cm of penetration.
    let stiff = ContactParams { ke: 1.0e5, ..ContactParams::default() };
    let (sim, speed) = drop_ant(stiff);
    assert!(speed < 0.05, "stiff: still moving at {speed} m/s");
    let sink = common::deepest_penetration(&sim).max(0.0);
    assert!(sink < 0.01, "stiff contact: penetration {sink} m");
}

#[test]
fn ant_run_rollout_of_32_steps_passes_the_dot_product_test() {
    let task = AntRun::new(AntRunConfig { num_envs: 1, threads: 1, ..Default::default() });
    let r = RolloutCheck { horizon: 32, h: 1e-6, state_dir_scale: 0.0 }.run(&task, &mut Rng::new(5)).unwrap();
    assert!(r.dual_err() < 1e-10, "{r:?}");
    assert!(r.adjoint.abs() > 0.0);
}

#[test]
fn ant_run_runs_in_the_vec_env_and_flags_termination_by_torso_height() {
    let task = AntRun::new(AntRunConfig { num_envs: 2, threads: 1, ..Default::default() });
    let spec = task.spec();
    let mut env = VecEnv::new(task).unwrap();
    let obs = env.reset(1).unwrap();
    assert_eq!(obs.dim(), (2, 37));
    assert!((obs[[0, 0]] - 0.75).abs() < 0.11, "start height {}", obs[[0, 0]]);
    for _ in 0..60 {
        let out = env.step(Array2::<f32>::ones((2, spec.act_dim)).view()).unwrap();
        assert!(out.reward.iter().all(|r| r.is_finite()));
        // Full torque on every hinge throws the Ant around; whether or not it falls, the flag
        // must agree with the torso height (obs[0]) of the step that produced it.
        for e in 0..2 {
            let height = match (&out.final_obs[e], out.terminated[e]) {
                (Some(f), _) => f[0],
                (None, false) => out.obs[[e, 0]],
                (None, true) => panic!("env {e} terminated without a final observation"),
            };
            let low = f64::from(height) < diffsim_tasks::ant_run::TERMINATION_HEIGHT;
            assert_eq!(out.terminated[e], low, "env {e}: terminated {} at height {height}", out.terminated[e]);
        }
    }
}
