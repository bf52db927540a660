//! `humanoid`: the DFlex Humanoid running along +x (rewarped.md §6.1: 13 bodies, 27 dof, 48
//! substeps × 0.347 ms, episodes of 1000 steps, 76 observations, 21 actions × 0.35 · motor
//! strength, termination when the torso is below 0.74).
//!
//! The robot comes from `assets/humanoid.xml` through the MJCF loader (z-up converted to y-up, so
//! the torso frame has y up and x forward; the MJCF motor gears are the motor strengths 100–600).
//! Per env step: the articulation substeps with ground contact, then (Post) `articulation.fk`,
//! `humanoid.observe`, `humanoid.reward`, `humanoid.terminate`.
//!
//! Where each piece comes from (formulas read in Rewarped `envs/dflex/humanoid.py`, which ports
//! DiffRL `envs/humanoid.py`; code written here):
//! - obs (76), `compute_observations`: [0] torso height; [1:5] torso quaternion (x, y, z, w);
//!   [5:8] linear velocity of the torso origin v = v_O + ω × p (Rewarped: `v − p × ω`); [8:11] ω;
//!   [11:32] hinge angles; [32:53] 0.1 × hinge rates; [53] up_y (torso y axis, world y
//!   component); [54] heading · direction to the target (x = 200 ahead of the start, in the
//!   ground plane); [55:76] the actions. The quaternion is that of our y-up torso frame, which is
//!   Rewarped's `torso_rot · inv_start_rot` (its raw `torso_rot` includes the −90° about x that
//!   turns the z-up asset upright); as in `ant_run`.
//! - reward, `compute_reward`: r = v_x + 0.1 up_y + heading + H(height) − 0.002 Σ a², with
//!   H = 10 c if c > 0 else −200 c², c = clip(height − (0.74 + 0.1), −1, 0.1).
//! - termination: height < 0.74.
//! - init (`create_articulation`, `randomize_init`): torso at 1.35 m, upright; torso position
//!   ± 0.1, a rotation of up to π/24 about a random axis, hinge angles ± 0.2, all velocities
//!   U(−0.25, 0.25).
//! - model: density 1000, the asset's armatures, limits kₑ 1e3, k_d 10, contact kₑ 2e4, k_d 5e3,
//!   k_f 1e3, μ 0.75. MJCF stiffness and damping are not applied (force mode, rewarped.md §6.2).
//!
//! Self-collision is on, as in Rewarped's loader: shapes of bodies that are not jointed to each
//! other collide (`articulation.shape_contact`, which looks through the zero-mass links this
//! loader puts between the hinges of a hip, abdomen, shoulder or ankle).

use std::path::PathBuf;

use diffsim_engine::articulation::LimitGains;
use diffsim_engine::mjcf::{ContactParams, MjcfOptions, load_mjcf_with};
use diffsim_engine::{
    ColumnAccess, Columns, Cpu, EngineError, ModelView, Real, Scene, Sim, SimFactory, Stage, StepCx, System, View,
    ViewMut,
};
use diffsim_systems::articulation::{self, Contacts, JointForces};
use glam::{Quat, Vec3};

use crate::torso::{Torso, TorsoBelow, heading_to_target, torso};
use crate::vec_env::{Task, TaskRng, TaskSpec};

pub const TERMINATION_HEIGHT: f64 = 0.74;
/// The height reward is positive above TERMINATION_HEIGHT + this tolerance, and capped at it.
pub(crate) const HEIGHT_TOLERANCE: f64 = 0.1;
pub(crate) const HEIGHT_REWARD_SCALE: f64 = 10.0;
pub(crate) const ACTION_PENALTY: f64 = 0.002;
const JOINT_VEL_OBS_SCALE: f64 = 0.1;
/// Target x relative to the start (Rewarped: 200).
pub(crate) const TARGET_X: f64 = 200.0;
/// Hinges (= actions), coordinates and velocities per env: free root (7 / 6) + 21 hinges.
pub(crate) const HINGES: usize = 21;
const NQ: usize = 7 + HINGES;
const NQD: usize = 6 + HINGES;
const OBS: usize = 76;

#[derive(Clone, Debug)]
pub struct HumanoidConfig {
    pub num_envs: usize,
    pub dt: f64,
    pub substeps: usize,
    pub episode_length: usize,
    /// Multiplies each hinge's motor gear (its strength, 100–600 in the asset). Rewarped: 0.35.
    pub action_scale: f64,
    pub threads: usize,
    /// Penalty contact of every shape with the ground (Rewarped: kₑ 2e4, k_d 5e3, k_f 1e3, μ 0.75).
    pub contact: ContactParams,
    /// Torso height at the start of an episode (m).
    pub start_height: f32,
    /// Contact between the shapes of bodies that are not jointed to each other (Rewarped: on).
    pub self_collision: bool,
    /// The MJCF file; defaults to `assets/humanoid.xml` at the repository root, or under
    /// `$DIFFSIM_ASSETS` ([`crate::asset`]).
    pub asset: PathBuf,
}

impl Default for HumanoidConfig {
    fn default() -> Self {
        Self {
            num_envs: 64,
            dt: 1.0 / 60.0,
            substeps: 48,
            episode_length: 1000,
            action_scale: 0.35,
            threads: 2,
            contact: ContactParams { ke: 2.0e4, kd: 5.0e3, kf: 1.0e3, mu: 0.75 },
            start_height: 1.35,
            self_collision: true,
            asset: crate::asset("humanoid.xml"),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Humanoid {
    pub cfg: HumanoidConfig,
}

impl Humanoid {
    pub fn new(cfg: HumanoidConfig) -> Self {
        Self { cfg }
    }

    pub fn scene(&self) -> Result<Scene, EngineError> {
        let options = MjcfOptions { contact: self.cfg.contact, ..MjcfOptions::default() };
        let model = load_mjcf_with(&self.cfg.asset, &options).map_err(|e| EngineError::Asset(e.to_string()))?;
        let torso = model.bodies.first().ok_or_else(|| EngineError::Asset("humanoid asset has no bodies".into()))?;
        // Shift the whole model so the torso starts at `start_height`.
        let root = (Vec3::new(0.0, self.cfg.start_height - torso.pos.y, 0.0), Quat::IDENTITY);
        let mut scene = Scene::new();
        scene.spawn_envs(self.cfg.num_envs, |env| {
            model.spawn(env, root);
            env.spawn((LimitGains { ke: 1.0e3, kd: 10.0 },));
        });
        Ok(scene)
    }
}

impl SimFactory for Humanoid {
    fn sim<R: Real>(&self) -> Result<Sim<R>, EngineError> {
        let c = &self.cfg;
        let mut packed = self.scene()?.pack()?;
        self.spec().add_columns(&mut packed)?;
        let forces = JointForces { num_actions: HINGES, scale: c.action_scale };
        let contacts = Contacts { ground: true, shapes: c.self_collision };
        let schedule = articulation::schedule::<R>(c.dt, c.substeps, contacts, forces)
            .with(Stage::Post, Observe)
            .with(Stage::Post, Reward)
            .with(Stage::Post, TorsoBelow { name: "humanoid.terminate", height: TERMINATION_HEIGHT });
        let state = packed.state.map(|x| R::from_f64(x as f64));
        Sim::new(packed.model, state, packed.control, schedule, Cpu::new(c.threads))
    }
}

impl Task for Humanoid {
    fn spec(&self) -> TaskSpec {
        TaskSpec::new("humanoid", self.cfg.num_envs, OBS, HINGES, self.cfg.episode_length).terminating()
    }
    fn reset_env(&self, env: usize, rng: &mut TaskRng, state: &mut Columns<f32>) -> Result<(), EngineError> {
        let q = state.env_mut("joint_q", env)?;
        for x in &mut q[0..3] {
            *x += rng.uniform(-0.1, 0.1) as f32;
        }
        // Rewarped: axis = normalize(U(−0.5, 0.5)³), angle U(−π/24, π/24), applied in the torso
        // frame (q ← q · Δ). The axis distribution is unchanged by the z-up → y-up rotation.
        let axis =
            Vec3::new(rng.uniform(-0.5, 0.5) as f32, rng.uniform(-0.5, 0.5) as f32, rng.uniform(-0.5, 0.5) as f32);
        let angle = rng.uniform(-1.0, 1.0) as f32 * std::f32::consts::PI / 24.0;
        let turn = Quat::from_axis_angle(axis.normalize_or(Vec3::Y), angle);
        let rot = (Quat::from_xyzw(q[3], q[4], q[5], q[6]) * turn).normalize();
        q[3..7].copy_from_slice(&rot.to_array());
        for x in &mut q[7..] {
            *x += rng.uniform(-0.2, 0.2) as f32;
        }
        for x in state.env_mut("joint_qd", env)? {
            *x = rng.uniform(-0.25, 0.25) as f32;
        }
        Ok(())
    }
}

/// H(height) and dH/dheight: c = clip(height − 0.84, −1, 0.1); H = 10 c if c ≥ 0 else −200 c².
/// The branch is picked from d = height − 0.84 computed in `R`, so the adjoint, which calls this
/// in the same `R` on the same pre-state, differentiates the branch the forward took (see
/// [`Reward`]).
fn height_reward<R: Real>(height: R) -> (R, R) {
    let d = height - R::from_f64(TERMINATION_HEIGHT + HEIGHT_TOLERANCE);
    let (c, dc) = match d.to_f64() {
        x if x < -1.0 => (R::from_f64(-1.0), R::zero()),
        x if x > HEIGHT_TOLERANCE => (R::from_f64(HEIGHT_TOLERANCE), R::zero()),
        _ => (d, R::one()),
    };
    if c.to_f64() < 0.0 {
        (R::from_f64(-200.0) * c * c, R::from_f64(-400.0) * c * dc)
    } else {
        (R::from_f64(HEIGHT_REWARD_SCALE) * c, R::from_f64(HEIGHT_REWARD_SCALE) * dc)
    }
}

/// `humanoid.observe` (see the module docs). Adjoint: recorded replay.
#[derive(Clone, Copy, Debug)]
pub struct Observe;

impl<R: Real> System<R> for Observe {
    fn name(&self) -> &str {
        "humanoid.observe"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        vec![
            ColumnAccess::state("body_q", 7),
            ColumnAccess::state("body_qd", 6),
            ColumnAccess::state("joint_q", NQ),
            ColumnAccess::state("joint_qd", NQD),
            ColumnAccess::control("act", HINGES),
            ColumnAccess::write("obs", OBS),
        ]
    }
    fn forward(&self, _: &StepCx, model: &ModelView, control: &View<R>, state: &mut ViewMut<R>) {
        let nb = model.count("joint_kind");
        let act = control.col("act");
        let [bq, bqd, q, qd, obs] = state.cols_mut(["body_q", "body_qd", "joint_q", "joint_qd", "obs"]);
        for e in 0..model.num_envs() {
            let Torso { p, quat, rot, w, v } = torso(bq, bqd, nb, e);
            let o = &mut obs[OBS * e..OBS * (e + 1)];
            o[0] = p[1];
            o[1..5].copy_from_slice(&quat);
            o[5..8].copy_from_slice(&v);
            o[8..11].copy_from_slice(&w);
            o[11..32].copy_from_slice(&q[NQ * e + 7..NQ * (e + 1)]);
            for i in 0..HINGES {
                o[32 + i] = R::from_f64(JOINT_VEL_OBS_SCALE) * qd[NQD * e + 6 + i];
            }
            o[53] = rot[1][1];
            o[54] = heading_to_target(p, &rot, TARGET_X);
            o[55..76].copy_from_slice(&act[HINGES * e..HINGES * (e + 1)]);
        }
    }
    /// `humanoid_gpu`: one invocation per env, forward and adjoint.
    fn gpu(&self) -> Option<Box<dyn diffsim_engine::gpu_sim::GpuSystem>> {
        Some(Box::new(*self))
    }
    diffsim_engine::replay_adjoint_impl!();
}

/// `humanoid.reward`: r = v_x + 0.1 up_y + heading + H(height) − 0.002 Σ a².
///
/// Adjoint: the smooth part ([`SmoothReward`]) by recorded replay, H by hand in `R`. A replay
/// re-runs the forward on an f64 tape, so it would pick H's branch from d recomputed in f64,
/// and at the f32 edges that is the other branch: height = 0.84 as f32 gives d = 0 in f32 (the
/// linear branch, H' = 10) but 0.84f32 − 0.84 = −2.4e-8 in f64 (the quadratic branch,
/// H' ≈ 1e-5); likewise heights whose f32 difference rounds onto −1. H' from [`height_reward`]
/// in `R` is the derivative of the branch the forward took, for every `R`.
#[derive(Clone, Copy, Debug)]
pub struct Reward;

/// Writes every env's reward with `h(height)` for H: v_x + 0.1 up_y + heading + h − 0.002 Σ a²
/// (in the order the GPU kernel sums).
fn write_rewards<R: Real>(model: &ModelView, control: &View<R>, state: &mut ViewMut<R>, h: impl Fn(R) -> R) {
    let nb = model.count("joint_kind");
    let act = control.col("act");
    let [bq, bqd, r] = state.cols_mut(["body_q", "body_qd", "reward"]);
    for (e, r) in r.iter_mut().enumerate().take(model.num_envs()) {
        let Torso { p, rot, v, .. } = torso(bq, bqd, nb, e);
        let a2 = act[HINGES * e..HINGES * (e + 1)].iter().fold(R::zero(), |s, &a| s + a * a);
        *r = v[0] + R::from_f64(0.1) * rot[1][1] + heading_to_target(p, &rot, TARGET_X) + h(p[1])
            - R::from_f64(ACTION_PENALTY) * a2;
    }
}

fn reward_access() -> Vec<ColumnAccess> {
    vec![
        ColumnAccess::state("body_q", 7),
        ColumnAccess::state("body_qd", 6),
        ColumnAccess::control("act", HINGES),
        ColumnAccess::write("reward", 1),
    ]
}

impl<R: Real> System<R> for Reward {
    fn name(&self) -> &str {
        "humanoid.reward"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        reward_access()
    }
    fn forward(&self, _: &StepCx, model: &ModelView, control: &View<R>, state: &mut ViewMut<R>) {
        write_rewards(model, control, state, |y| height_reward(y).0);
    }
    /// The replay of [`SmoothReward`] (which clears r̄), then height̄ += H'(height) r̄.
    fn adjoint(
        &self,
        cx: &StepCx,
        model: &ModelView,
        control: &View<R>,
        pre: &View<R>,
        adj: &mut ViewMut<R>,
        adj_control: &mut ViewMut<R>,
    ) {
        let nb = model.count("joint_kind");
        let r_bar = adj.col("reward").to_vec();
        diffsim_engine::replay_adjoint(&SmoothReward, cx, model, control, pre, adj, adj_control);
        let (bq, abq) = (pre.col("body_q"), adj.col_mut("body_q"));
        for (e, &g) in r_bar.iter().enumerate().take(model.num_envs()) {
            let i = 7 * e * nb + 1;
            abq[i] += height_reward(bq[i]).1 * g;
        }
    }
    /// `humanoid_gpu`: one invocation per env, forward and adjoint.
    fn gpu(&self) -> Option<Box<dyn diffsim_engine::gpu_sim::GpuSystem>> {
        Some(Box::new(*self))
    }
}

/// [`Reward`] without H: what its adjoint replays.
#[derive(Clone, Copy, Debug)]
struct SmoothReward;

impl<R: Real> System<R> for SmoothReward {
    fn name(&self) -> &str {
        "humanoid.reward.smooth"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        reward_access()
    }
    fn forward(&self, _: &StepCx, model: &ModelView, control: &View<R>, state: &mut ViewMut<R>) {
        write_rewards(model, control, state, |_| R::zero());
    }
    diffsim_engine::replay_adjoint_impl!();
}

#[cfg(test)]
mod tests {
    use diffsim_engine::{Columns, SimFactory};
    use proptest::prelude::*;

    use super::*;

    const OFFSET: f32 = (TERMINATION_HEIGHT + HEIGHT_TOLERANCE) as f32;

    /// dH/dheight of the branch an f32 forward takes at `y`, worked out here from
    /// d = y − 0.84 rounded to f32 (the CPU's f32 forward and the GPU kernel both branch on it).
    fn f32_branch_slope(y: f32) -> f64 {
        let d = y - OFFSET;
        match f64::from(d) {
            x if x < -1.0 => 0.0,
            x if x < 0.0 => -400.0 * x,
            x if x <= HEIGHT_TOLERANCE => HEIGHT_REWARD_SCALE,
            _ => 0.0,
        }
    }

    /// The f32 heights where branching on d in f32 and in f64 disagree, and their neighbours:
    /// 0.84 as f32 (d = 0 in f32, −2.4e-8 in f64), the highest height whose f32 d rounds onto −1
    /// while the exact d is below it, and the lowest height whose d exceeds 0.1.
    fn edges() -> Vec<f32> {
        let mut low = -0.16f32;
        while !(f64::from(low - OFFSET) == -1.0 && f64::from(low) - f64::from(OFFSET) < -1.0) {
            low = low.next_down();
            assert!(low > -0.2, "no f32 height rounds onto the lower clip");
        }
        let mut clip = 0.93f32;
        while f64::from(clip - OFFSET) <= HEIGHT_TOLERANCE {
            clip = clip.next_up();
        }
        vec![OFFSET, OFFSET.next_up(), OFFSET.next_down(), low, low.next_up(), low.next_down(), clip, clip.next_down()]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

        /// `humanoid.reward`'s f32 adjoint at the torso height (r̄ seeded, every other cotangent
        /// zero) is (∂v_x/∂height + H') r̄ = (−ω_z + H') r̄ with H' of the branch the f32 forward
        /// took, at heights drawn from the edges where an f64 recomputation branches otherwise
        /// (the replayed adjoint did: H' ≈ 1e-5 instead of 10 at 0.84 as f32, 0 instead of 400
        /// at the lower edge) and from the four branches.
        #[test]
        fn reward_adjoint_differentiates_the_branch_the_f32_forward_took(
            edge in 0usize..8,
            on_edge in any::<bool>(),
            inside in -0.5f32..1.5,
            twist in proptest::array::uniform6(-1.0f32..1.0),
            act in -1.0f32..1.0,
            r_bar in 0.5f32..2.0,
        ) {
            let task = Humanoid::new(HumanoidConfig { num_envs: 1, threads: 1, ..HumanoidConfig::default() });
            let sim: Sim<f32> = task.sim().unwrap();
            let y = if on_edge { edges()[edge] } else { inside };
            let mut state = sim.state.clone();
            state.get_mut("body_q").unwrap()[1] = y;
            state.get_mut("body_qd").unwrap()[..6].copy_from_slice(&twist);
            let mut control = sim.control.clone();
            control.get_mut("act").unwrap().fill(act);
            let mut adj = Columns::zeros(sim.state.layout().clone(), 1);
            adj.get_mut("reward").unwrap()[0] = r_bar;
            let mut adj_c = Columns::zeros(sim.control.layout().clone(), 1);
            let cx = StepCx { dt: sim.schedule.substep_dt(), step: 0, substep: 0 };
            let model = sim.model.view_all();
            Reward.adjoint(
                &cx,
                &model,
                &control.view_all(),
                &state.view_all(),
                &mut adj.view_all_mut(),
                &mut adj_c.view_all_mut(),
            );
            let got = f64::from(adj.get("body_q").unwrap()[1]);
            let want = (f32_branch_slope(y) - f64::from(twist[2])) * f64::from(r_bar);
            prop_assert!((got - want).abs() <= 1e-5 * (1.0 + want.abs()), "height {y:e}: adjoint {got} != {want}");
            prop_assert_eq!(adj.get("reward").unwrap()[0], 0.0);
        }
    }
}
