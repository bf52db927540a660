//! GPU mirrors (`gpu_sim::GpuSystem`) of Humanoid's Post-stage task systems: `humanoid.observe`
//! (AntRun's `locomotion_observe` with 21 hinges) and `humanoid.reward`, forward and adjoint, in
//! `wgsl/humanoid_*.wgsl` on top of AntRun's torso
//! kinematics (`wgsl/ant_run_torso.wgsl`, `wgsl/ant_run_body.wgsl`), one invocation per env, with
//! the CPU's formulas and order of f32 operations. The CPU adjoints are recorded replays; the
//! GPU's are written out by hand: they accumulate into the adjoints of body_q, body_qd, joint_q,
//! joint_qd and act and consume those of obs and reward. `humanoid.terminate` is `TorsoBelow`,
//! mirrored in `ant_run_gpu`.
//!
//! The reward's upper clip compares an f32 against the f64 0.1; the kernel compares against
//! [`above_threshold`]`(0.1)`, which gives the same answer for every f32.

use diffsim_engine::EngineError;
use diffsim_engine::gpu_sim::{Bind, GpuBuildCx, GpuKernels, GpuSystem, adj_control, adj_state, control, state};

use crate::ant_run_gpu::{BODY, TorsoParams, locomotion_observe, source};
use crate::hopper_gpu::above_threshold;
use crate::humanoid::{
    ACTION_PENALTY, HEIGHT_REWARD_SCALE, HEIGHT_TOLERANCE, HINGES, Observe, Reward, TARGET_X, TERMINATION_HEIGHT,
};

/// The second uniform block of `humanoid.reward` (WGSL `struct Task` in
/// `wgsl/humanoid_reward_common.wgsl`), laid out by encase. Each constant is the f32 the CPU's
/// `R::from_f64` gives.
#[derive(Clone, Copy, Debug, Default, PartialEq, encase::ShaderType)]
pub struct HumanoidParams {
    pub clip_hi: f32,
    /// [`above_threshold`] of the clip.
    pub clip_hi_cut: f32,
    pub height_scale: f32,
    pub action_penalty: f32,
    pub action_slope: f32,
}

impl HumanoidParams {
    fn new() -> Self {
        Self {
            clip_hi: HEIGHT_TOLERANCE as f32,
            clip_hi_cut: above_threshold(HEIGHT_TOLERANCE),
            height_scale: HEIGHT_REWARD_SCALE as f32,
            action_penalty: ACTION_PENALTY as f32,
            action_slope: (2.0 * ACTION_PENALTY) as f32,
        }
    }
}

impl GpuSystem for Observe {
    fn name(&self) -> &str {
        "humanoid.observe"
    }
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError> {
        locomotion_observe(cx, "humanoid.observe", HINGES, TARGET_X)
    }
}

/// One invocation per env, forward and adjoint.
impl GpuSystem for Reward {
    fn name(&self) -> &str {
        "humanoid.reward"
    }
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError> {
        let head = [Bind::read(state("body_q")), Bind::read(state("body_qd")), Bind::read(control("act"))];
        let mut fwd = head.to_vec();
        fwd.extend([Bind::rw(state("reward")), Bind::uniform(0), Bind::uniform(1)]);
        let mut adj = head.to_vec();
        adj.extend([
            Bind::rw(adj_state("reward")),
            Bind::rw(adj_state("body_q")),
            Bind::rw(adj_state("body_qd")),
            Bind::rw(adj_control("act")),
            Bind::uniform(0),
            Bind::uniform(1),
        ]);
        let common = include_str!("wgsl/humanoid_reward_common.wgsl");
        let fsrc = source(&[BODY, common, include_str!("wgsl/humanoid_reward.wgsl")]);
        let asrc = source(&[BODY, common, include_str!("wgsl/humanoid_reward_adjoint.wgsl")]);
        let buffers = vec![
            cx.uniform(
                "humanoid.reward",
                &TorsoParams::of(cx, TARGET_X, (TERMINATION_HEIGHT + HEIGHT_TOLERANCE) as f32)?,
            )?,
            cx.uniform("humanoid.reward task", &HumanoidParams::new())?,
        ];
        GpuKernels::per_env(cx, "humanoid.reward", "reward", buffers, (&fsrc, fwd), (&asrc, adj))
    }
}
