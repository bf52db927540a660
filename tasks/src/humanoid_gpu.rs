//! GPU mirrors (`gpu_sim::GpuSystem`) of Humanoid's Post-stage task systems: `humanoid.observe`
//! and `humanoid.reward`, forward and adjoint, in `wgsl/humanoid_*.wgsl` on top of AntRun's torso
//! kinematics (`wgsl/ant_run_torso.wgsl`, `wgsl/ant_run_body.wgsl`), one invocation per env, with
//! the CPU's formulas and order of f32 operations. The CPU adjoints are recorded replays; the
//! GPU's are written out by hand: they accumulate into the adjoints of body_q, body_qd, joint_q,
//! joint_qd and act and consume those of obs and reward. `humanoid.terminate` is `TorsoBelow`,
//! mirrored in `ant_run_gpu`.
//!
//! The reward's upper clip compares an f32 against the f64 0.1; the kernel compares against
//! [`above_threshold`]`(0.1)`, which gives the same answer for every f32.

use diffsim_engine::EngineError;
use diffsim_engine::gpu_sim::{Bind, GpuBuildCx, GpuKernels, GpuSystem, Pass, adj_control, adj_state, control, state};

use crate::ant_run_gpu::TorsoParams;
use crate::hopper_gpu::above_threshold;
use crate::humanoid::{
    ACTION_PENALTY, HEIGHT_REWARD_SCALE, HEIGHT_TOLERANCE, Observe, Reward, TARGET_X, TERMINATION_HEIGHT,
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

/// The torso kernels' uniform block; `height` is the reward's height offset (f32 of
/// TERMINATION_HEIGHT + HEIGHT_TOLERANCE, as the CPU's `R::from_f64`).
fn torso_params(cx: &GpuBuildCx, label: &str) -> Result<TorsoParams, EngineError> {
    let u = |n: usize, what: &str| {
        u32::try_from(n).map_err(|_| EngineError::Gpu(format!("{label}: {what} = {n} does not fit u32")))
    };
    Ok(TorsoParams {
        n: u(cx.num_envs, "envs")?,
        nb: u(cx.count("joint_kind"), "bodies per env")?,
        target_x: TARGET_X as f32,
        height: (TERMINATION_HEIGHT + HEIGHT_TOLERANCE) as f32,
    })
}

fn source(parts: &[&str]) -> String {
    let mut s = String::from(include_str!("wgsl/ant_run_torso.wgsl"));
    for p in [include_str!("wgsl/ant_run_body.wgsl")].iter().chain(parts) {
        s.push('\n');
        s.push_str(p);
    }
    s
}

/// One invocation per env, forward and adjoint.
impl GpuSystem for Observe {
    fn name(&self) -> &str {
        "humanoid.observe"
    }
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError> {
        let n = cx.num_envs;
        let body = [Bind::read(state("body_q")), Bind::read(state("body_qd"))];
        let mut fwd = body.to_vec();
        fwd.extend([
            Bind::read(state("joint_q")),
            Bind::read(state("joint_qd")),
            Bind::read(control("act")),
            Bind::rw(state("obs")),
            Bind::uniform(0),
        ]);
        let mut adj = body.to_vec();
        adj.extend([
            Bind::rw(adj_state("obs")),
            Bind::rw(adj_state("body_q")),
            Bind::rw(adj_state("body_qd")),
            Bind::rw(adj_state("joint_q")),
            Bind::rw(adj_state("joint_qd")),
            Bind::rw(adj_control("act")),
            Bind::uniform(0),
        ]);
        let fsrc = source(&[include_str!("wgsl/humanoid_observe.wgsl")]);
        let asrc = source(&[include_str!("wgsl/humanoid_observe_adjoint.wgsl")]);
        Ok(GpuKernels {
            buffers: vec![cx.uniform("humanoid.observe", &torso_params(cx, "humanoid.observe")?)?],
            forward: vec![Pass::new(cx, "humanoid.observe", &fsrc, "observe_forward", fwd, n)?],
            adjoint: vec![Pass::new(cx, "humanoid.observe adjoint", &asrc, "observe_adjoint", adj, n)?],
        })
    }
}

/// One invocation per env, forward and adjoint.
impl GpuSystem for Reward {
    fn name(&self) -> &str {
        "humanoid.reward"
    }
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError> {
        let n = cx.num_envs;
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
        let fsrc = source(&[common, include_str!("wgsl/humanoid_reward.wgsl")]);
        let asrc = source(&[common, include_str!("wgsl/humanoid_reward_adjoint.wgsl")]);
        Ok(GpuKernels {
            buffers: vec![
                cx.uniform("humanoid.reward", &torso_params(cx, "humanoid.reward")?)?,
                cx.uniform("humanoid.reward task", &HumanoidParams::new())?,
            ],
            forward: vec![Pass::new(cx, "humanoid.reward", &fsrc, "reward_forward", fwd, n)?],
            adjoint: vec![Pass::new(cx, "humanoid.reward adjoint", &asrc, "reward_adjoint", adj, n)?],
        })
    }
}
