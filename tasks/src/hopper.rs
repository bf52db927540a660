//! `hopper`: the DFlex Hopper hopping along +x in the x–y plane (rewarped.md §6.1: planar root
//! with 3 dof, 4 bodies, 6 dof, 16 substeps × 1.042 ms, episodes of 1000 steps, 12 observations,
//! 3 actions × 200, termination when the torso has dropped 0.45 below its start).
//!
//! The robot comes from `assets/hopper.xml` through the MJCF loader (z-up converted to y-up). The
//! root is a chain slide x → slide y (up) → hinge z, so `joint_q` = [x, h, θ, thigh, leg, foot],
//! where h is the torso's height *relative to its start* (1.25 m) and θ its pitch. Per env step:
//! the articulation substeps with ground contact (no self-collision, as Rewarped's
//! `enable_self_collisions=False`), then (Post) `articulation.fk`, `hopper.observe`,
//! `hopper.reward`, `hopper.terminate`.
//!
//! Where each piece comes from (formulas read in the public sources, code written here):
//! - obs (12) = [joint_q (6), joint_qd (6)], unscaled: Rewarped `envs/dflex/hopper.py`
//!   `compute_observations` (DiffRL `envs/hopper.py` drops x and has 11).
//! - reward: DiffRL `envs/hopper.py` `calculateReward`, on the quantities it names:
//!   r = ẋ + H(h) + (1 − θ² / (π/6)²) − 0.1 Σ a², with H(h) = c if c ≥ 0 else −200 c²,
//!   c = clip(h − (−0.45 + 0.15), −1, 0.3). DiffRL's obs starts at joint_q[1], so its obs[0], [1],
//!   [5] are h, θ and ẋ; Rewarped kept the same indices on its 12-vector, which there read x, h
//!   and the foot angle. We follow the formula's meaning (height, pitch, forward speed), not that
//!   index shift.
//! - termination: h < −0.45 (both sources; `early_termination=True`).
//! - init noise (Rewarped `randomize_init`): x, h ± 0.05; θ = U(−0.05, 0.05); hinge angles ± 0.05;
//!   all velocities U(−0.05, 0.05).
//! - model: density 1000, armature 1 on the hinges (0 on the root), limits kₑ 1e3, k_d 10, contact
//!   kₑ 2e4, k_d 1e3, k_f 1e3, μ 0.9 (Rewarped `create_articulation`). MJCF damping is not
//!   applied (Rewarped drives joints in force mode, rewarped.md §6.2).

use std::f64::consts::PI;
use std::path::PathBuf;

use diffsim_engine::articulation::LimitGains;
use diffsim_engine::mjcf::{ContactParams, MjcfOptions, load_mjcf_with};
use diffsim_engine::{
    ColumnAccess, Columns, Cpu, EngineError, ModelView, Real, Scene, Sim, SimFactory, Stage, StepCx, System, View,
    ViewMut,
};
use diffsim_systems::articulation::{self, Contacts, JointForces};
use glam::{Quat, Vec3};

use crate::vec_env::{Task, TaskRng, TaskSpec};

/// Episodes end when the torso has dropped this far below its start height (m).
pub const TERMINATION_HEIGHT: f64 = -0.45;
/// The height reward is positive above TERMINATION_HEIGHT + this tolerance.
pub(crate) const HEIGHT_TOLERANCE: f64 = 0.15;
/// The pitch at which the angle reward reaches 0.
pub(crate) const TERMINATION_ANGLE: f64 = PI / 6.0;
pub(crate) const ACTION_PENALTY: f64 = 0.1;
/// Generalized coordinates (and velocities) per env.
pub(crate) const DOF: usize = 6;
const OBS: usize = 2 * DOF;
const ACT: usize = 3;
/// Indices into joint_q / joint_qd.
const X: usize = 0;
const HEIGHT: usize = 1;
const PITCH: usize = 2;

#[derive(Clone, Debug)]
pub struct HopperConfig {
    pub num_envs: usize,
    pub dt: f64,
    pub substeps: usize,
    pub episode_length: usize,
    /// Generalized force per unit action on the three hinges (Rewarped: 200).
    pub action_scale: f64,
    pub threads: usize,
    /// Penalty contact of every shape with the ground (Rewarped: kₑ 2e4, k_d 1e3, k_f 1e3, μ 0.9).
    pub contact: ContactParams,
    /// Half-widths of the uniform init noise on (x, h), θ, hinge angles, velocities.
    pub init_noise: [f64; 4],
    /// The MJCF file; defaults to `assets/hopper.xml` at the repository root, or under
    /// `$DIFFSIM_ASSETS` ([`crate::asset`]).
    pub asset: PathBuf,
}

impl Default for HopperConfig {
    fn default() -> Self {
        Self {
            num_envs: 64,
            dt: 1.0 / 60.0,
            substeps: 16,
            episode_length: 1000,
            action_scale: 200.0,
            threads: 2,
            contact: ContactParams { ke: 2.0e4, kd: 1.0e3, kf: 1.0e3, mu: 0.9 },
            init_noise: [0.05, 0.05, 0.05, 0.05],
            asset: crate::asset("hopper.xml"),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Hopper {
    pub cfg: HopperConfig,
}

impl Hopper {
    pub fn new(cfg: HopperConfig) -> Self {
        Self { cfg }
    }

    pub fn scene(&self) -> Result<Scene, EngineError> {
        let options = MjcfOptions { contact: self.cfg.contact, ..MjcfOptions::default() };
        let model = load_mjcf_with(&self.cfg.asset, &options).map_err(|e| EngineError::Asset(e.to_string()))?;
        let mut scene = Scene::new();
        // The asset places the torso at its start height (1.25 m); the root slides start at 0.
        let root = (Vec3::ZERO, Quat::IDENTITY);
        scene.spawn_envs(self.cfg.num_envs, |env| {
            model.spawn(env, root);
            env.spawn((LimitGains { ke: 1.0e3, kd: 10.0 },));
        });
        Ok(scene)
    }
}

impl SimFactory for Hopper {
    fn sim<R: Real>(&self) -> Result<Sim<R>, EngineError> {
        let c = &self.cfg;
        let mut packed = self.scene()?.pack()?;
        self.spec().add_columns(&mut packed)?;
        let forces = JointForces { num_actions: ACT, scale: c.action_scale };
        let contacts = Contacts { ground: true, shapes: false };
        let schedule = articulation::schedule::<R>(c.dt, c.substeps, contacts, forces)
            .with(Stage::Post, Observe)
            .with(Stage::Post, Reward)
            .with(Stage::Post, Terminate);
        let state = packed.state.map(|x| R::from_f64(x as f64));
        Sim::new(packed.model, state, packed.control, schedule, Cpu::new(c.threads))
    }
}

impl Task for Hopper {
    fn spec(&self) -> TaskSpec {
        TaskSpec::new("hopper", self.cfg.num_envs, OBS, ACT, self.cfg.episode_length).terminating()
    }
    fn reset_env(&self, env: usize, rng: &mut TaskRng, state: &mut Columns<f32>) -> Result<(), EngineError> {
        let [root, pitch, hinge, vel] = self.cfg.init_noise;
        let q = state.env_mut("joint_q", env)?;
        q[X] += rng.uniform(-root, root) as f32;
        q[HEIGHT] += rng.uniform(-root, root) as f32;
        q[PITCH] = rng.uniform(-pitch, pitch) as f32;
        for x in &mut q[3..] {
            *x += rng.uniform(-hinge, hinge) as f32;
        }
        for x in state.env_mut("joint_qd", env)? {
            *x = rng.uniform(-vel, vel) as f32;
        }
        Ok(())
    }
}

/// `hopper.observe`: obs = [joint_q, joint_qd].
/// Adjoint: q̄ += ō[0..6], q̇̄ += ō[6..12]; ō ← 0 (overwritten by the forward).
#[derive(Clone, Copy, Debug)]
pub struct Observe;

impl<R: Real> System<R> for Observe {
    fn name(&self) -> &str {
        "hopper.observe"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        vec![ColumnAccess::state("joint_q", DOF), ColumnAccess::state("joint_qd", DOF), ColumnAccess::write("obs", OBS)]
    }
    fn forward(&self, _: &StepCx, model: &ModelView, _: &View<R>, state: &mut ViewMut<R>) {
        let [q, qd, obs] = state.cols_mut(["joint_q", "joint_qd", "obs"]);
        for e in 0..model.num_envs() {
            let o = &mut obs[OBS * e..OBS * (e + 1)];
            o[..DOF].copy_from_slice(&q[DOF * e..DOF * (e + 1)]);
            o[DOF..].copy_from_slice(&qd[DOF * e..DOF * (e + 1)]);
        }
    }
    fn adjoint(
        &self,
        _: &StepCx,
        model: &ModelView,
        _: &View<R>,
        _: &View<R>,
        adj: &mut ViewMut<R>,
        _: &mut ViewMut<R>,
    ) {
        let [aq, aqd, aobs] = adj.cols_mut(["joint_q", "joint_qd", "obs"]);
        for e in 0..model.num_envs() {
            let o = &mut aobs[OBS * e..OBS * (e + 1)];
            for i in 0..DOF {
                aq[DOF * e + i] += o[i];
                aqd[DOF * e + i] += o[DOF + i];
            }
            o.fill(R::zero());
        }
    }
    /// `hopper_gpu`: one invocation per env, forward and adjoint.
    fn gpu(&self) -> Option<Box<dyn diffsim_engine::gpu_sim::GpuSystem>> {
        Some(Box::new(*self))
    }
}

/// H(h) of the module docs and dH/dh: c = clip(h + 0.3, −1, 0.3); H = c if c ≥ 0 else −200 c².
fn height_reward<R: Real>(h: R) -> (R, R) {
    let d = h - R::from_f64(TERMINATION_HEIGHT + HEIGHT_TOLERANCE);
    let (c, dc) = match d.to_f64() {
        x if x < -1.0 => (R::from_f64(-1.0), R::zero()),
        x if x > 0.3 => (R::from_f64(0.3), R::zero()),
        _ => (d, R::one()),
    };
    if c.to_f64() < 0.0 { (R::from_f64(-200.0) * c * c, R::from_f64(-400.0) * c * dc) } else { (c, dc) }
}

/// `hopper.reward`: r = ẋ + H(h) + 1 − θ²/(π/6)² − 0.1 Σ a².
/// Adjoint: ẋ̄ += r̄; h̄ += H'(h) r̄; θ̄ −= 2θ/(π/6)² r̄; ā −= 0.2 a r̄; r̄ ← 0.
#[derive(Clone, Copy, Debug)]
pub struct Reward;

impl<R: Real> System<R> for Reward {
    fn name(&self) -> &str {
        "hopper.reward"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        vec![
            ColumnAccess::state("joint_q", DOF),
            ColumnAccess::state("joint_qd", DOF),
            ColumnAccess::control("act", ACT),
            ColumnAccess::write("reward", 1),
        ]
    }
    fn forward(&self, _: &StepCx, model: &ModelView, control: &View<R>, state: &mut ViewMut<R>) {
        let k = |v: f64| R::from_f64(v);
        let act = control.col("act");
        let [q, qd, r] = state.cols_mut(["joint_q", "joint_qd", "reward"]);
        for e in 0..model.num_envs() {
            let (h, th, xd) = (q[DOF * e + HEIGHT], q[DOF * e + PITCH], qd[DOF * e + X]);
            let a2 = act[ACT * e..ACT * (e + 1)].iter().fold(R::zero(), |s, &a| s + a * a);
            let angle = R::one() - th * th / k(TERMINATION_ANGLE * TERMINATION_ANGLE);
            r[e] = xd + height_reward(h).0 + angle - k(ACTION_PENALTY) * a2;
        }
    }
    fn adjoint(
        &self,
        _: &StepCx,
        model: &ModelView,
        control: &View<R>,
        pre: &View<R>,
        adj: &mut ViewMut<R>,
        adj_control: &mut ViewMut<R>,
    ) {
        let k = |v: f64| R::from_f64(v);
        let (q, act) = (pre.col("joint_q"), control.col("act"));
        let aact = adj_control.col_mut("act");
        let [aq, aqd, ar] = adj.cols_mut(["joint_q", "joint_qd", "reward"]);
        for e in 0..model.num_envs() {
            let g = ar[e];
            ar[e] = R::zero();
            let (h, th) = (q[DOF * e + HEIGHT], q[DOF * e + PITCH]);
            aqd[DOF * e + X] += g;
            aq[DOF * e + HEIGHT] += height_reward(h).1 * g;
            aq[DOF * e + PITCH] -= k(2.0 / (TERMINATION_ANGLE * TERMINATION_ANGLE)) * th * g;
            for i in 0..ACT {
                aact[ACT * e + i] -= k(2.0 * ACTION_PENALTY) * act[ACT * e + i] * g;
            }
        }
    }
    /// `hopper_gpu`: one invocation per env, forward and adjoint.
    fn gpu(&self) -> Option<Box<dyn diffsim_engine::gpu_sim::GpuSystem>> {
        Some(Box::new(*self))
    }
}

/// `hopper.terminate`: 1 when h < −0.45, else 0. A flag, not differentiated: its adjoint only
/// clears the flag's (meaningless) cotangent.
#[derive(Clone, Copy, Debug)]
pub struct Terminate;

impl<R: Real> System<R> for Terminate {
    fn name(&self) -> &str {
        "hopper.terminate"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        vec![ColumnAccess::state("joint_q", DOF), ColumnAccess::write("terminated", 1)]
    }
    fn forward(&self, _: &StepCx, model: &ModelView, _: &View<R>, state: &mut ViewMut<R>) {
        let [q, t] = state.cols_mut(["joint_q", "terminated"]);
        for e in 0..model.num_envs() {
            let low = q[DOF * e + HEIGHT].to_f64() < TERMINATION_HEIGHT;
            t[e] = R::from_f64(if low { 1.0 } else { 0.0 });
        }
    }
    fn adjoint(&self, _: &StepCx, _: &ModelView, _: &View<R>, _: &View<R>, adj: &mut ViewMut<R>, _: &mut ViewMut<R>) {
        adj.col_mut("terminated").fill(R::zero());
    }
    /// `hopper_gpu`: one invocation per env, forward and adjoint.
    fn gpu(&self) -> Option<Box<dyn diffsim_engine::gpu_sim::GpuSystem>> {
        Some(Box::new(*self))
    }
}
