//! `ant_run`: the DFlex Ant running along +x (rewarped.md §6.1–6.2: 9 bodies, 14 dof, 16 substeps
//! × 1.042 ms, episodes of 1000 steps, 37 observations, 8 actions × 200 with the sign flipped,
//! termination when the torso is below 0.27).
//!
//! The robot comes from `assets/ant.xml` through the MJCF loader (z-up converted to y-up, so the
//! torso frame has y up and x forward). Per env step: the articulation substeps with ground
//! contact, then (Post) `articulation.fk`, `ant_run.observe`, `ant_run.reward`,
//! `ant_run.terminate`.
//! - obs (37): [0] torso height; [1:5] torso quaternion (x, y, z, w); [5:8] linear velocity of the
//!   torso origin v = v_O + ω × p; [8:11] ω; [11:19] hinge angles; [19:27] 0.1 × hinge rates;
//!   [27] up_y (torso y axis, world y component); [28] heading · direction to the target
//!   (x = 10000); [29:37] the actions.
//! - reward: r = v_x + 0.1 up_y + heading + (height − 0.27); no action penalty.
//! - init noise: torso position ±0.1, a rotation of up to π/24 about a random axis, hinge angles
//!   ±0.2, all velocities U(−0.25, 0.25).
//!
//! Self-collision between legs is on (spheres and capsules of non-adjacent bodies), as in
//! Rewarped.

use std::path::PathBuf;

use diffsim_engine::mjcf::{ContactParams, MjcfOptions, load_mjcf_with};
use diffsim_engine::{
    ColumnAccess, Columns, Cpu, EngineError, ModelView, Real, Scene, Sim, SimFactory, Stage, StepCx, System, View,
    ViewMut,
};
use diffsim_systems::articulation::{self, Contacts, JointForces};
use glam::{Quat, Vec3};

use crate::torso::{Torso, TorsoBelow, heading_to_target, torso};
use crate::vec_env::{Task, TaskRng, TaskSpec};

pub const TERMINATION_HEIGHT: f64 = 0.27;
pub(crate) const TARGET_X: f64 = 10000.0;
/// Actuated hinges (= actions).
pub(crate) const HINGES: usize = 8;

#[derive(Clone, Debug)]
pub struct AntRunConfig {
    pub num_envs: usize,
    pub dt: f64,
    pub substeps: usize,
    pub episode_length: usize,
    /// Generalized force per unit action (Rewarped: 200 with the sign flipped).
    pub action_scale: f64,
    pub threads: usize,
    /// Penalty contact of every shape with the ground (Rewarped: ke 4e3, kd 1e3, kf 3e2, μ 0.75).
    pub contact: ContactParams,
    /// The MJCF file; defaults to `assets/ant.xml` at the repository root, or under
    /// `$DIFFSIM_ASSETS` ([`crate::asset`]).
    pub asset: PathBuf,
}

impl Default for AntRunConfig {
    fn default() -> Self {
        Self {
            num_envs: 64,
            dt: 16.0 * 1.0 / 960.0,
            substeps: 16,
            episode_length: 1000,
            action_scale: -200.0,
            threads: 2,
            contact: ContactParams::default(),
            asset: crate::asset("ant.xml"),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct AntRun {
    pub cfg: AntRunConfig,
}

impl AntRun {
    pub fn new(cfg: AntRunConfig) -> Self {
        Self { cfg }
    }

    pub fn scene(&self) -> Result<Scene, EngineError> {
        let options = MjcfOptions { armature_scale: 5.0, contact: self.cfg.contact, ..MjcfOptions::default() };
        let model = load_mjcf_with(&self.cfg.asset, &options).map_err(|e| EngineError::Asset(e.to_string()))?;
        let mut scene = Scene::new();
        // The asset places the torso at its start height (0.75).
        let root = (Vec3::ZERO, Quat::IDENTITY);
        scene.spawn_envs(self.cfg.num_envs, |env| {
            model.spawn(env, root);
            env.spawn((diffsim_engine::articulation::LimitGains { ke: 1.0e3, kd: 10.0 },));
        });
        Ok(scene)
    }
}

impl SimFactory for AntRun {
    fn sim<R: Real>(&self) -> Result<Sim<R>, EngineError> {
        let c = &self.cfg;
        let mut packed = self.scene()?.pack()?;
        self.spec().add_columns(&mut packed)?;
        let forces = JointForces { num_actions: HINGES, scale: c.action_scale };
        let schedule = articulation::schedule::<R>(c.dt, c.substeps, Contacts { ground: true, shapes: true }, forces)
            .with(Stage::Post, Observe)
            .with(Stage::Post, Reward)
            .with(Stage::Post, TorsoBelow { name: "ant_run.terminate", height: TERMINATION_HEIGHT });
        let state = packed.state.map(|x| R::from_f64(x as f64));
        Sim::new(packed.model, state, packed.control, schedule, Cpu::new(c.threads))
    }
}

impl Task for AntRun {
    fn spec(&self) -> TaskSpec {
        TaskSpec::new("ant_run", self.cfg.num_envs, 37, 8, self.cfg.episode_length).terminating()
    }
    fn reset_env(&self, env: usize, rng: &mut TaskRng, state: &mut Columns<f32>) -> Result<(), EngineError> {
        let q = state.env_mut("joint_q", env)?;
        for x in &mut q[0..3] {
            *x += rng.uniform(-0.1, 0.1) as f32;
        }
        let axis =
            Vec3::new(rng.uniform(-1.0, 1.0) as f32, rng.uniform(-1.0, 1.0) as f32, rng.uniform(-1.0, 1.0) as f32);
        let angle = rng.uniform(-1.0, 1.0) as f32 * std::f32::consts::PI / 24.0;
        let turn = Quat::from_axis_angle(axis.normalize_or(Vec3::Y), angle);
        let rot = (turn * Quat::from_xyzw(q[3], q[4], q[5], q[6])).normalize();
        q[3..7].copy_from_slice(&rot.to_array());
        for x in &mut q[7..] {
            *x += rng.uniform(-0.2, 0.2) as f32;
        }
        for x in state.env_mut("joint_qd", env)? {
            *x += rng.uniform(-0.25, 0.25) as f32;
        }
        Ok(())
    }
}

/// `ant_run.observe` (see the module docs). Adjoint: recorded replay.
#[derive(Clone, Copy, Debug)]
pub struct Observe;

impl<R: Real> System<R> for Observe {
    fn name(&self) -> &str {
        "ant_run.observe"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        vec![
            ColumnAccess::state("body_q", 7),
            ColumnAccess::state("body_qd", 6),
            ColumnAccess::state("joint_q", 15),
            ColumnAccess::state("joint_qd", 14),
            ColumnAccess::control("act", 8),
            ColumnAccess::write("obs", 37),
        ]
    }
    fn forward(&self, _: &StepCx, model: &ModelView, control: &View<R>, state: &mut ViewMut<R>) {
        let nb = model.count("joint_kind");
        let act = control.col("act");
        let [bq, bqd, q, qd, obs] = state.cols_mut(["body_q", "body_qd", "joint_q", "joint_qd", "obs"]);
        for e in 0..model.num_envs() {
            let Torso { p, quat, rot, w, v } = torso(bq, bqd, nb, e);
            let o = &mut obs[37 * e..37 * (e + 1)];
            o[0] = p[1];
            o[1..5].copy_from_slice(&quat);
            o[5..8].copy_from_slice(&v);
            o[8..11].copy_from_slice(&w);
            o[11..19].copy_from_slice(&q[15 * e + 7..15 * e + 15]);
            for i in 0..8 {
                o[19 + i] = R::from_f64(0.1) * qd[14 * e + 6 + i];
            }
            o[27] = rot[1][1];
            o[28] = heading_to_target(p, &rot, TARGET_X);
            o[29..37].copy_from_slice(&act[8 * e..8 * e + 8]);
        }
    }
    /// `ant_run_gpu`: one invocation per env, forward and adjoint.
    fn gpu(&self) -> Option<Box<dyn diffsim_engine::gpu_sim::GpuSystem>> {
        Some(Box::new(*self))
    }
    diffsim_engine::replay_adjoint_impl!();
}

/// `ant_run.reward`: r = v_x + 0.1 up_y + heading + (height − 0.27). Adjoint: recorded replay.
#[derive(Clone, Copy, Debug)]
pub struct Reward;

impl<R: Real> System<R> for Reward {
    fn name(&self) -> &str {
        "ant_run.reward"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        vec![ColumnAccess::state("body_q", 7), ColumnAccess::state("body_qd", 6), ColumnAccess::write("reward", 1)]
    }
    fn forward(&self, _: &StepCx, model: &ModelView, _: &View<R>, state: &mut ViewMut<R>) {
        let nb = model.count("joint_kind");
        let [bq, bqd, r] = state.cols_mut(["body_q", "body_qd", "reward"]);
        for (e, r) in r.iter_mut().enumerate().take(model.num_envs()) {
            let Torso { p, rot, v, .. } = torso(bq, bqd, nb, e);
            *r = v[0] + R::from_f64(0.1) * rot[1][1] + heading_to_target(p, &rot, TARGET_X) + p[1]
                - R::from_f64(TERMINATION_HEIGHT);
        }
    }
    /// `ant_run_gpu`: one invocation per env, forward and adjoint.
    fn gpu(&self) -> Option<Box<dyn diffsim_engine::gpu_sim::GpuSystem>> {
        Some(Box::new(*self))
    }
    diffsim_engine::replay_adjoint_impl!();
}
