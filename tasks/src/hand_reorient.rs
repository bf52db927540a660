//! `hand_reorient`: an Allegro-like hand (16 hinges, fixed base) reorients a free cube to a goal
//! orientation (rewarped.md §6.1–6.2 "HandReorient", IsaacGymEnvs AllegroHand: 64 substeps ×
//! 0.130 ms = 1/120 s per env step, episodes of 600 steps, 72 observations, 16 torques × 2.0,
//! termination when the cube is 0.24 or more from the goal position).
//!
//! The hand and cube come from `assets/allegro_hand.xml` through the MJCF loader (z-up converted
//! to y-up: the goal offset "−0.04 z" of the reference is −0.04 ŷ here, and its random rotations
//! about the z-up x and y axes are rotations about x and −z). Contact: only the pairs of a hand
//! shape and the cube (`ShapePairContact`), ke 5e2, kd 1e2, kf 1e2, μ 0.5. Per env step: the
//! substeps (clear, FK, hand–cube contact, ground contact, joint forces, integrate), then (Post)
//! `articulation.fk`, `hand_reorient.observe`, `hand_reorient.reward`,
//! `hand_reorient.terminate`, `hand_reorient.resample_goal`.
//!
//! - obs (72): [0:16] hand angles unscaled to [−1, 1] by the joint limits, (2q − (hi + lo)) /
//!   (hi − lo); [16:32] 0.2 × hand rates; [32:35] cube position; [35:39] cube quaternion (x, y, z,
//!   w); [39:42] linear velocity of the cube centre v = v_O + ω × p; [42:45] 0.2 × ω; [45:48] goal
//!   position; [48:52] goal quaternion; [52:56] q_cube ⊗ q_goal⁻¹; [56:72] the actions.
//! - reward (`compute_hand_reward_smooth`): d = |p − p_goal|, rot = 2 asin(min(|q_diff.xyz|,
//!   1 − 1e-3)); r = −10 d + 1/(|rot| + 0.1) − 0.0002 Σ a²; success bonus 250 σ(−|s − 1|/ε) with
//!   s = σ((0.1 − |rot|)/ε), ε = 1e-3 (s blends 1 with the goal-reset flag, which is always 0
//!   here because a reached goal is resampled in the same Post stage; fall penalty 0, so its
//!   smooth blend is the identity and is left out).
//! - resample: when |rot| ≤ 0.1 (the hard test), the goal gets a new random rotation (same
//!   position), drawn from the env's goal key and success count (`goal_rng` = [key, successes]):
//!   deterministic, independent of threads and other envs.
//! - init noise: cube position ±0.01 per axis, a random rotation R_x(πu₀) R_{−z}(πu₁), u ∈ U(−1, 1),
//!   zero velocity; hand angles 0.2 (lo + (hi − lo) U(0, 1)); goal rotation drawn the same way,
//!   goal position = nominal cube start − 0.04 ŷ.
//!
//! A ground plane y = 0 (not in the reference) catches a dropped cube: only terminated states
//! reach it (the cube resting there is ≥ 0.5 from the goal), so episodes are unchanged, but a
//! plain `Sim` stepped past termination without resets (benchmarks) no longer lets the cube fall
//! for ever, where f32 Featherstone in world coordinates loses its precision (NaN after ~400
//! steps of free fall, 50 m below).
//!
//! Not modelled: Warp's `angular_damping` 0.01 of the Featherstone integrator (a numerical
//! damping of body rates, not part of the task).

use std::path::PathBuf;
use std::sync::OnceLock;

use diffsim_engine::articulation::{KIND_FREE, KIND_REVOLUTE, LimitGains};
use diffsim_engine::mjcf::{ContactParams, MjcfOptions, load_mjcf_with};
use diffsim_engine::{
    ColumnAccess, ColumnSpec, Columns, Cpu, EngineError, Model, ModelView, Real, Scene, Schedule, Sim, SimFactory,
    Stage, StepCx, System, View, ViewMut,
};
use diffsim_systems::articulation::shape_contact::ShapePairContact;
use diffsim_systems::articulation::spatial::{V3, cross, quat_mul};
use diffsim_systems::articulation::{ClearForces, ForwardKinematics, GroundContact, Integrate, JointForces};
use glam::{Quat, Vec3};

use crate::vec_env::{Task, TaskRng, TaskSpec};

pub const OBS_DIM: usize = 72;
pub const ACT_DIM: usize = 16;
/// The episode ends when the cube is this far from the goal position (m).
pub const FALL_DISTANCE: f64 = 0.24;
/// A goal is reached when |rot_dist| is at most this (rad).
pub const SUCCESS_TOLERANCE: f64 = 0.1;
const DIST_REWARD_SCALE: f64 = -10.0;
const ROT_EPS: f64 = 0.1;
const ACTION_PENALTY_SCALE: f64 = -0.0002;
const REACH_GOAL_BONUS: f64 = 250.0;
/// Width of the smoothing sigmoids of the success bonus.
const SMOOTH_EPS: f64 = 1e-3;
const VEL_OBS_SCALE: f64 = 0.2;
/// Goal keys are integers below 2²⁴, exact in f32.
const KEY_RANGE: f64 = 16_777_216.0;

#[derive(Clone, Debug)]
pub struct HandReorientConfig {
    pub num_envs: usize,
    pub dt: f64,
    pub substeps: usize,
    pub episode_length: usize,
    /// Generalized force per unit action (Rewarped: torque × 2.0).
    pub action_scale: f64,
    pub threads: usize,
    /// Penalty contact of the hand–cube pairs (Rewarped: ke 5e2, kd 1e2, kf 1e2, μ 0.5).
    pub contact: ContactParams,
    /// Joint-limit penalty gains (Warp's URDF defaults: ke 100, kd 10).
    pub limits: LimitGains,
    /// Cube position noise per axis (m) and hand-angle noise (fraction of the limit range).
    pub position_noise: f64,
    pub dof_noise: f64,
    /// The MJCF file; defaults to `assets/allegro_hand.xml` at the repository root, or under
    /// `$DIFFSIM_ASSETS` ([`crate::asset`]).
    pub asset: PathBuf,
}

impl Default for HandReorientConfig {
    fn default() -> Self {
        Self {
            num_envs: 8,
            dt: 1.0 / 120.0,
            substeps: 64,
            episode_length: 600,
            action_scale: 2.0,
            threads: 2,
            contact: ContactParams { ke: 5.0e2, kd: 1.0e2, kf: 1.0e2, mu: 0.5 },
            limits: LimitGains { ke: 100.0, kd: 10.0 },
            position_noise: 0.01,
            dof_noise: 0.2,
            asset: crate::asset("allegro_hand.xml"),
        }
    }
}

/// Where the hand and cube coordinates sit in one env's rows (the same in every env).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HandLayout {
    /// Per hand hinge, in dof order: (index in `joint_q`, index in `joint_qd`, lower, upper).
    pub hinges: Vec<(usize, usize, f64, f64)>,
    /// The cube's body and its free joint's first coordinate and velocity.
    pub cube_body: usize,
    pub cube_q: usize,
    pub cube_qd: usize,
    /// Widths of `joint_q` and `joint_qd` per env.
    pub nq: usize,
    pub nd: usize,
}

impl HandLayout {
    /// Reads the layout from env 0 of a packed scene: revolute joints are the hand, the single
    /// free joint is the cube.
    pub fn of(model: &Model, state: &Columns<f32>) -> Result<Self, EngineError> {
        let view = model.view_all();
        let nb = view.count("joint_kind");
        let (kind, q0, qd0) = (view.topo("joint_kind"), view.topo("joint_q_start"), view.topo("joint_qd_start"));
        let limit = view.param("joint_limit");
        let mut layout = HandLayout::default();
        let mut cube = None;
        for b in 0..nb {
            let (q, qd) = (q0[b] as usize, qd0[b] as usize);
            match kind[b] {
                KIND_REVOLUTE => layout.hinges.push((q, qd, limit[3 * b + 1], limit[3 * b + 2])),
                KIND_FREE => cube = Some((b, q, qd)),
                _ => {}
            }
        }
        let bad = |why: &str| EngineError::Asset(format!("hand_reorient: {why}"));
        let (cube_body, cube_q, cube_qd) = cube.ok_or_else(|| bad("the model has no free (cube) body"))?;
        if layout.hinges.len() != ACT_DIM {
            return Err(bad(&format!("expected {ACT_DIM} hinges, found {}", layout.hinges.len())));
        }
        if layout.hinges.iter().any(|h| h.3 <= h.2) {
            return Err(bad("every hand hinge needs a limit range (the observation unscales by it)"));
        }
        layout.cube_body = cube_body;
        layout.cube_q = cube_q;
        layout.cube_qd = cube_qd;
        let width = |name: &str| state.layout().spec(name).map(|s| s.per_env()).unwrap_or(0);
        (layout.nq, layout.nd) = (width("joint_q"), width("joint_qd"));
        Ok(layout)
    }
}

#[derive(Clone, Debug, Default)]
pub struct HandReorient {
    pub cfg: HandReorientConfig,
    /// Filled on first use (`HandReorient::layout`).
    layout: OnceLock<HandLayout>,
}

impl HandReorient {
    pub fn new(cfg: HandReorientConfig) -> Self {
        Self { cfg, layout: OnceLock::new() }
    }

    pub fn scene(&self) -> Result<Scene, EngineError> {
        let options = MjcfOptions { contact: self.cfg.contact, ..MjcfOptions::default() };
        let model = load_mjcf_with(&self.cfg.asset, &options).map_err(|e| EngineError::Asset(e.to_string()))?;
        let mut scene = Scene::new();
        let limits = self.cfg.limits;
        scene.spawn_envs(self.cfg.num_envs, |env| {
            model.spawn(env, (Vec3::ZERO, Quat::IDENTITY));
            env.spawn((limits,));
        });
        Ok(scene)
    }

    /// The packed scene with the task's columns, the layout and the nominal cube start.
    fn packed(&self) -> Result<(diffsim_engine::Packed, HandLayout), EngineError> {
        let mut packed = self.scene()?.pack()?;
        let layout = HandLayout::of(&packed.model, &packed.state)?;
        self.spec().add_columns(&mut packed)?;
        packed.add_state(ColumnSpec::new("goal", 1, 7))?;
        packed.add_state(ColumnSpec::new("goal_rng", 1, 2))?;
        // Nominal goal (resets draw a random rotation): the cube's start position − 0.04 ŷ and a
        // quarter turn about x, not the cube's own start rotation, where rot_dist = 0 would sit
        // on the kink of |q_diff.xyz|.
        let quarter = Quat::from_rotation_x(std::f32::consts::FRAC_PI_2).to_array();
        for e in 0..packed.state.num_envs() {
            let start: Vec<f32> = packed.state.env("joint_q", e)?[layout.cube_q..layout.cube_q + 3].to_vec();
            let goal = packed.state.env_mut("goal", e)?;
            goal[..3].copy_from_slice(&[start[0], start[1] - 0.04, start[2]]);
            goal[3..].copy_from_slice(&quarter);
        }
        Ok((packed, layout))
    }
}

impl SimFactory for HandReorient {
    fn sim<R: Real>(&self) -> Result<Sim<R>, EngineError> {
        let c = &self.cfg;
        let (packed, layout) = self.packed()?;
        let contact = ShapePairContact::involving_body(&packed.model, layout.cube_body as u32);
        let forces = JointForces { num_actions: ACT_DIM, scale: c.action_scale };
        let schedule = Schedule::<R>::new(c.dt, c.substeps)
            .with(Stage::Substep, ClearForces)
            .with(Stage::Substep, ForwardKinematics)
            .with(Stage::Substep, contact)
            .with(Stage::Substep, GroundContact)
            .with(Stage::Substep, forces)
            .with(Stage::Substep, Integrate)
            .with(Stage::Post, ForwardKinematics)
            .with(Stage::Post, Observe { layout: layout.clone() })
            .with(Stage::Post, Reward { layout: layout.clone() })
            .with(Stage::Post, Terminate { layout: layout.clone() })
            .with(Stage::Post, ResampleGoal { layout });
        let state = packed.state.map(|x| R::from_f64(x as f64));
        Sim::new(packed.model, state, packed.control, schedule, Cpu::new(c.threads))
    }
}

impl Task for HandReorient {
    fn spec(&self) -> TaskSpec {
        TaskSpec::new("hand_reorient", self.cfg.num_envs, OBS_DIM, ACT_DIM, self.cfg.episode_length).terminating()
    }
    fn reset_env(&self, env: usize, rng: &mut TaskRng, state: &mut Columns<f32>) -> Result<(), EngineError> {
        let layout = self.layout()?;
        let (cq, noise, dof_noise) = (layout.cube_q, self.cfg.position_noise, self.cfg.dof_noise);
        let q = state.env_mut("joint_q", env)?;
        for x in &mut q[cq..cq + 3] {
            *x += rng.uniform(-noise, noise) as f32;
        }
        q[cq + 3..cq + 7].copy_from_slice(&random_rotation(rng).to_array());
        for &(qi, _, lo, hi) in &layout.hinges {
            q[qi] = (dof_noise * (lo + (hi - lo) * rng.uniform(0.0, 1.0))) as f32;
        }
        let goal_rot = random_rotation(rng);
        let key = (rng.uniform(0.0, 1.0) * KEY_RANGE).floor() as f32;
        state.env_mut("goal", env)?[3..7].copy_from_slice(&goal_rot.to_array());
        state.env_mut("goal_rng", env)?.copy_from_slice(&[key, 0.0]);
        Ok(())
    }
}

impl HandReorient {
    /// The coordinate layout of one env (packs a one-env scene on first use, then cached).
    pub fn layout(&self) -> Result<&HandLayout, EngineError> {
        if let Some(l) = self.layout.get() {
            return Ok(l);
        }
        let one = HandReorient::new(HandReorientConfig { num_envs: 1, ..self.cfg.clone() });
        let packed = one.scene()?.pack()?;
        let layout = HandLayout::of(&packed.model, &packed.state)?;
        Ok(self.layout.get_or_init(|| layout))
    }
}

/// R_x(π u₀) R_{−z}(π u₁), u ∈ U(−1, 1): the reference's random rotation about its z-up x and y
/// axes, expressed in the y-up world (z-up y = y-up −z).
fn random_rotation(rng: &mut TaskRng) -> Quat {
    let (u0, u1) = (rng.uniform(-1.0, 1.0) as f32, rng.uniform(-1.0, 1.0) as f32);
    (Quat::from_rotation_x(u0 * std::f32::consts::PI) * Quat::from_rotation_z(-u1 * std::f32::consts::PI)).normalize()
}

/// The same rotation in any `Real` from two numbers in [−1, 1) (goal resampling).
fn rotation_from<R: Real>(u0: f64, u1: f64) -> [R; 4] {
    let (sx, cx) = R::from_f64(0.5 * u0 * std::f64::consts::PI).sin_cos();
    let (sz, cz) = R::from_f64(-0.5 * u1 * std::f64::consts::PI).sin_cos();
    quat_mul([sx, R::zero(), R::zero(), cx], [R::zero(), R::zero(), sz, cz])
}

/// asin with the exact value and first derivative: asin(x₀) + (x − x₀)/√(1 − x₀²) at x₀ = x
/// (`Real` has no asin; |x| < 1 here).
fn asin<R: Real>(x: R) -> R {
    let x0 = x.to_f64();
    R::from_f64(x0.asin()) + (x - R::from_f64(x0)) / R::from_f64((1.0 - x0 * x0).sqrt())
}

/// Logistic σ(z) = ½ (1 + tanh(z/2)): no overflow for the steep sigmoids of the bonus.
fn sigmoid<R: Real>(z: R) -> R {
    R::from_f64(0.5) * (R::one() + (z * R::from_f64(0.5)).tanh())
}

fn abs<R: Real>(x: R) -> R {
    if x.to_f64() < 0.0 { -x } else { x }
}

/// The cube and goal of one env.
struct CubeGoal<R> {
    p: V3<R>,
    quat: [R; 4],
    goal_p: V3<R>,
    goal_quat: [R; 4],
}

impl<R: Real> CubeGoal<R> {
    fn read(layout: &HandLayout, q: &[R], goal: &[R], e: usize) -> Self {
        let c = e * layout.nq + layout.cube_q;
        let g = &goal[7 * e..7 * e + 7];
        CubeGoal {
            p: [q[c], q[c + 1], q[c + 2]],
            quat: [q[c + 3], q[c + 4], q[c + 5], q[c + 6]],
            goal_p: [g[0], g[1], g[2]],
            goal_quat: [g[3], g[4], g[5], g[6]],
        }
    }
    /// q_cube ⊗ q_goal⁻¹.
    fn quat_diff(&self) -> [R; 4] {
        let [x, y, z, w] = self.goal_quat;
        quat_mul(self.quat, [-x, -y, -z, w])
    }
    /// |p − p_goal|.
    fn goal_dist(&self) -> R {
        let d = [self.p[0] - self.goal_p[0], self.p[1] - self.goal_p[1], self.p[2] - self.goal_p[2]];
        (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt()
    }
    /// 2 asin(min(|q_diff.xyz|, 1 − 1e-3)) (≥ 0).
    fn rot_dist(&self) -> R {
        let qd = self.quat_diff();
        let n2 = qd[0] * qd[0] + qd[1] * qd[1] + qd[2] * qd[2];
        // √ has no derivative at 0; an exact match is a measure-zero event.
        let n = if n2.to_f64() > 1e-30 { n2.sqrt() } else { R::zero() };
        R::from_f64(2.0) * asin(n.min(R::from_f64(1.0 - 1e-3)))
    }
}

/// `hand_reorient.observe` (see the module docs). Adjoint: recorded replay.
#[derive(Clone, Debug)]
pub struct Observe {
    pub layout: HandLayout,
}

impl<R: Real> System<R> for Observe {
    fn name(&self) -> &str {
        "hand_reorient.observe"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        vec![
            ColumnAccess::state("joint_q", self.layout.nq),
            ColumnAccess::state("joint_qd", self.layout.nd),
            ColumnAccess::state("goal", 7),
            ColumnAccess::control("act", ACT_DIM),
            ColumnAccess::write("obs", OBS_DIM),
        ]
    }
    fn forward(&self, _: &StepCx, model: &ModelView, control: &View<R>, state: &mut ViewMut<R>) {
        let l = &self.layout;
        let act = control.col("act");
        let [q, qd, goal, obs] = state.cols_mut(["joint_q", "joint_qd", "goal", "obs"]);
        let scale = R::from_f64(VEL_OBS_SCALE);
        for e in 0..model.num_envs() {
            let cg = CubeGoal::read(l, q, goal, e);
            let o = &mut obs[OBS_DIM * e..OBS_DIM * (e + 1)];
            for (k, &(qi, di, lo, hi)) in l.hinges.iter().enumerate() {
                o[k] = (R::from_f64(2.0) * q[e * l.nq + qi] - R::from_f64(hi + lo)) / R::from_f64(hi - lo);
                o[16 + k] = scale * qd[e * l.nd + di];
            }
            let c = e * l.nd + l.cube_qd;
            let w = [qd[c], qd[c + 1], qd[c + 2]];
            let v_o = [qd[c + 3], qd[c + 4], qd[c + 5]];
            let wxp = cross(w, cg.p);
            o[32..35].copy_from_slice(&cg.p);
            o[35..39].copy_from_slice(&cg.quat);
            for i in 0..3 {
                o[39 + i] = v_o[i] + wxp[i];
                o[42 + i] = scale * w[i];
            }
            o[45..48].copy_from_slice(&cg.goal_p);
            o[48..52].copy_from_slice(&cg.goal_quat);
            o[52..56].copy_from_slice(&cg.quat_diff());
            o[56..72].copy_from_slice(&act[ACT_DIM * e..ACT_DIM * (e + 1)]);
        }
    }
    /// `hand_reorient_gpu`: one invocation per env, forward and adjoint.
    fn gpu(&self) -> Option<Box<dyn diffsim_engine::gpu_sim::GpuSystem>> {
        Some(Box::new(self.clone()))
    }
    diffsim_engine::replay_adjoint_impl!();
}

/// `hand_reorient.reward` (`compute_hand_reward_smooth`, see the module docs). Adjoint: recorded
/// replay on the f64 tape from the pre-state. Unlike `resample_goal`'s decision, its branches are
/// kinks of a continuous reward (|s − 1| at s = 1, the clamp at 1 − 1e-3), so the replay gives
/// the derivative of the exact reward at the f32 inputs, from the side f64 finds them on. Where
/// the f32 forward rounds s to exactly 1 (|rot| ≲ 0.083) that is the saturated bonus's tiny f64
/// slope, where an f32 adjoint (the GPU's) gives 0.
#[derive(Clone, Debug)]
pub struct Reward {
    pub layout: HandLayout,
}

impl<R: Real> System<R> for Reward {
    fn name(&self) -> &str {
        "hand_reorient.reward"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        vec![
            ColumnAccess::state("joint_q", self.layout.nq),
            ColumnAccess::state("goal", 7),
            ColumnAccess::control("act", ACT_DIM),
            ColumnAccess::write("reward", 1),
        ]
    }
    fn forward(&self, _: &StepCx, model: &ModelView, control: &View<R>, state: &mut ViewMut<R>) {
        let act = control.col("act");
        let [q, goal, reward] = state.cols_mut(["joint_q", "goal", "reward"]);
        let eps = R::from_f64(SMOOTH_EPS);
        for (e, r) in reward.iter_mut().enumerate().take(model.num_envs()) {
            let cg = CubeGoal::read(&self.layout, q, goal, e);
            let rot = abs(cg.rot_dist());
            let a2 = act[ACT_DIM * e..ACT_DIM * (e + 1)].iter().fold(R::zero(), |s, &a| s + a * a);
            let base = R::from_f64(DIST_REWARD_SCALE) * cg.goal_dist()
                + R::one() / (rot + R::from_f64(ROT_EPS))
                + R::from_f64(ACTION_PENALTY_SCALE) * a2;
            // smooth_compare(|rot|, "<", tol), blended with the goal-reset flag (0, see docs).
            let success = sigmoid((R::from_f64(SUCCESS_TOLERANCE) - rot) / eps);
            // smooth_compare(success, "=", 1): weight of the bonus.
            let weight = sigmoid(-abs(success - R::one()) / eps);
            *r = base + R::from_f64(REACH_GOAL_BONUS) * weight;
        }
    }
    /// `hand_reorient_gpu`: one invocation per env, forward and adjoint.
    fn gpu(&self) -> Option<Box<dyn diffsim_engine::gpu_sim::GpuSystem>> {
        Some(Box::new(self.clone()))
    }
    diffsim_engine::replay_adjoint_impl!();
}

/// `hand_reorient.terminate`: 1 when the cube is `FALL_DISTANCE` or more from the goal position,
/// else 0. A flag, not differentiated: its adjoint only clears the flag's cotangent.
#[derive(Clone, Debug)]
pub struct Terminate {
    pub layout: HandLayout,
}

impl<R: Real> System<R> for Terminate {
    fn name(&self) -> &str {
        "hand_reorient.terminate"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        vec![
            ColumnAccess::state("joint_q", self.layout.nq),
            ColumnAccess::state("goal", 7),
            ColumnAccess::write("terminated", 1),
        ]
    }
    fn forward(&self, _: &StepCx, model: &ModelView, _: &View<R>, state: &mut ViewMut<R>) {
        let [q, goal, t] = state.cols_mut(["joint_q", "goal", "terminated"]);
        for (e, t) in t.iter_mut().enumerate().take(model.num_envs()) {
            let far = CubeGoal::read(&self.layout, q, goal, e).goal_dist().to_f64() >= FALL_DISTANCE;
            *t = R::from_f64(if far { 1.0 } else { 0.0 });
        }
    }
    fn adjoint(&self, _: &StepCx, _: &ModelView, _: &View<R>, _: &View<R>, adj: &mut ViewMut<R>, _: &mut ViewMut<R>) {
        adj.col_mut("terminated").fill(R::zero());
    }
    /// `hand_reorient_gpu`: one invocation per env.
    fn gpu(&self) -> Option<Box<dyn diffsim_engine::gpu_sim::GpuSystem>> {
        Some(Box::new(self.clone()))
    }
}

/// SplitMix64 of (key, successes): the stream a resampled goal is drawn from.
fn goal_stream(key: f64, successes: f64) -> TaskRng {
    TaskRng::new(((key as u64) << 24) ^ (successes as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// `hand_reorient.resample_goal`: where |rot_dist| ≤ `SUCCESS_TOLERANCE`, a new goal rotation
/// (position kept) from `goal_rng` = [key, successes], and successes += 1.
///
/// Adjoint, by hand: a resampled goal rotation is a constant, so the old rotation's cotangent is
/// cleared; everything else passes through, and `joint_q` gets nothing (it only decides). The
/// decision is [`ResampleGoal::resamples`] in the system's own `R`, as the forward made it. A
/// replay on the f64 tape would decide from rot recomputed in f64, which at rot within an ulp of
/// the tolerance in f32 is the other branch: the old goal's cotangent cleared for a step the
/// forward did not resample, or passed through one it did.
#[derive(Clone, Debug)]
pub struct ResampleGoal {
    pub layout: HandLayout,
}

impl ResampleGoal {
    /// Whether env `e`'s goal is reached (|rot_dist| ≤ tolerance), computed in `R`.
    pub fn resamples<R: Real>(&self, q: &[R], goal: &[R], e: usize) -> bool {
        CubeGoal::read(&self.layout, q, goal, e).rot_dist().to_f64().abs() <= SUCCESS_TOLERANCE
    }
}

impl<R: Real> System<R> for ResampleGoal {
    fn name(&self) -> &str {
        "hand_reorient.resample_goal"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        vec![
            ColumnAccess::state("joint_q", self.layout.nq),
            ColumnAccess::state("goal", 7),
            ColumnAccess::state("goal_rng", 2),
            ColumnAccess::write("goal", 7),
            ColumnAccess::write("goal_rng", 2),
        ]
    }
    fn forward(&self, _: &StepCx, model: &ModelView, _: &View<R>, state: &mut ViewMut<R>) {
        let [q, goal, key] = state.cols_mut(["joint_q", "goal", "goal_rng"]);
        for e in 0..model.num_envs() {
            if !self.resamples(q, goal, e) {
                continue;
            }
            let (k, n) = (key[2 * e].to_f64(), key[2 * e + 1].to_f64());
            let mut rng = goal_stream(k, n);
            let new = rotation_from::<R>(rng.uniform(-1.0, 1.0), rng.uniform(-1.0, 1.0));
            goal[7 * e + 3..7 * e + 7].copy_from_slice(&new);
            key[2 * e + 1] += R::one();
        }
    }
    fn adjoint(
        &self,
        _: &StepCx,
        model: &ModelView,
        _: &View<R>,
        pre: &View<R>,
        adj: &mut ViewMut<R>,
        _: &mut ViewMut<R>,
    ) {
        let (q, goal) = (pre.col("joint_q"), pre.col("goal"));
        let agoal = adj.col_mut("goal");
        for e in 0..model.num_envs() {
            if self.resamples(q, goal, e) {
                agoal[7 * e + 3..7 * e + 7].fill(R::zero());
            }
        }
    }
    /// `hand_reorient_gpu`: one invocation per env, forward and adjoint.
    fn gpu(&self) -> Option<Box<dyn diffsim_engine::gpu_sim::GpuSystem>> {
        Some(Box::new(self.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// f32 states whose rot_dist lies within rounding of the tolerance, where deciding in f32 and
    /// in f64 (from the same f32 inputs) disagree: `(joint_q, goal, resampled in f32)`. Found by
    /// sweeping random axes at angles within 1e-6 of the tolerance, goal rotation random too.
    fn straddling_states(sim: &Sim<f32>, sys: &ResampleGoal) -> Vec<(Vec<f32>, Vec<f32>, bool)> {
        let mut rng = TaskRng::new(7);
        let mut found = Vec::new();
        let (mut f32_only, mut f64_only) = (0, 0);
        for _ in 0..200_000 {
            let mut axis = [0.0; 3].map(|_: f64| rng.uniform(-1.0, 1.0));
            let norm = axis.iter().map(|a| a * a).sum::<f64>().sqrt();
            axis.iter_mut().for_each(|a| *a /= norm);
            let angle = SUCCESS_TOLERANCE + rng.uniform(-1e-6, 1e-6);
            let goal_rot = Quat::from_axis_angle(Vec3::X, rng.uniform(-3.0, 3.0) as f32);
            let offset = Quat::from_axis_angle(Vec3::new(axis[0] as f32, axis[1] as f32, axis[2] as f32), angle as f32);
            let mut q = sim.state.get("joint_q").unwrap().to_vec();
            let mut goal = sim.state.get("goal").unwrap().to_vec();
            q[sys.layout.cube_q + 3..sys.layout.cube_q + 7].copy_from_slice(&(offset * goal_rot).to_array());
            goal[3..7].copy_from_slice(&goal_rot.to_array());
            let in_f32 = sys.resamples(&q, &goal, 0);
            let wide = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();
            if in_f32 != sys.resamples(&wide(&q), &wide(&goal), 0) {
                if in_f32 {
                    f32_only += 1
                } else {
                    f64_only += 1
                }
                found.push((q, goal, in_f32));
            }
        }
        assert!(f32_only > 0 && f64_only > 0, "states resampled only in f32: {f32_only}, only in f64: {f64_only}");
        found
    }

    /// At rot within rounding of the tolerance the f32 adjoint clears the old goal rotation's
    /// cotangent exactly when the f32 forward resampled (the f64 replay this replaced followed
    /// the f64 decision there), and always passes the goal position and stream through.
    #[test]
    fn resample_adjoint_follows_the_decision_the_f32_forward_made() {
        let task = HandReorient::new(HandReorientConfig { num_envs: 1, threads: 1, ..Default::default() });
        let sim: Sim<f32> = task.sim().unwrap();
        let sys = ResampleGoal { layout: task.layout().unwrap().clone() };
        let cx = StepCx { dt: sim.schedule.substep_dt(), step: 0, substep: 0 };
        let model = sim.model.view_all();
        let states = straddling_states(&sim, &sys);
        for (q, goal, resampled) in &states {
            let mut pre = sim.state.clone();
            pre.get_mut("joint_q").unwrap().copy_from_slice(q);
            pre.get_mut("goal").unwrap().copy_from_slice(goal);
            let mut post = pre.clone();
            System::<f32>::forward(&sys, &cx, &model, &sim.control.view_all(), &mut post.view_all_mut());
            assert_eq!(post.get("goal").unwrap()[3..7] != goal[3..7], *resampled, "the forward's decision");
            let mut adj = Columns::zeros(sim.state.layout().clone(), 1);
            adj.get_mut("goal").unwrap().fill(1.0);
            adj.get_mut("goal_rng").unwrap().fill(1.0);
            let mut adj_c = Columns::zeros(sim.control.layout().clone(), 1);
            sys.adjoint(
                &cx,
                &model,
                &sim.control.view_all(),
                &pre.view_all(),
                &mut adj.view_all_mut(),
                &mut adj_c.view_all_mut(),
            );
            let rotation = if *resampled { 0.0 } else { 1.0 };
            assert_eq!(adj.get("goal").unwrap(), &[1.0, 1.0, 1.0, rotation, rotation, rotation, rotation]);
            assert_eq!(adj.get("goal_rng").unwrap(), &[1.0, 1.0]);
            assert!(adj.get("joint_q").unwrap().iter().all(|&x| x == 0.0));
        }
        eprintln!("{} straddling states checked", states.len());
    }
}
