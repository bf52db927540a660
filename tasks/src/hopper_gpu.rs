//! GPU mirrors (`gpu_sim::GpuSystem`) of Hopper's Post-stage task systems: `hopper.observe`,
//! `hopper.reward` and `hopper.terminate`, forward and adjoint, in `wgsl/hopper_*.wgsl`, one
//! invocation per env, with the CPU's formulas and order of f32 operations (hopper.rs). The
//! adjoints are the CPU's hand-written ones: they accumulate into the adjoints of joint_q,
//! joint_qd and act and consume those of obs, reward and terminated.
//!
//! The CPU compares f32 values against f64 constants (the reward's clip at 0.3, the termination
//! height −0.45); the kernels compare against the neighbouring f32 that gives the same answer for
//! every f32 input ([`below_threshold`], [`above_threshold`]), so branches agree bit for bit.

use diffsim_engine::EngineError;
use diffsim_engine::gpu_sim::{Bind, GpuBuildCx, GpuKernels, GpuSystem, adj_control, adj_state, control, state};

use crate::ant_run_gpu::below_threshold;
use crate::hopper::{
    ACTION_PENALTY, HEIGHT_TOLERANCE, Observe, Reward, TERMINATION_ANGLE, TERMINATION_HEIGHT, Terminate,
};

/// The reward's upper clip of c (hopper.rs `height_reward`).
const CLIP_HI: f64 = 0.3;

/// The uniform block of the hopper kernels (WGSL `struct Params` in `wgsl/hopper_params.wgsl`),
/// laid out by encase. Each constant is the f32 the CPU's `R::from_f64` gives.
#[derive(Clone, Copy, Debug, Default, PartialEq, encase::ShaderType)]
pub struct HopperParams {
    /// Envs.
    pub n: u32,
    pub height_offset: f32,
    pub clip_hi: f32,
    /// [`above_threshold`] of 0.3.
    pub clip_hi_cut: f32,
    pub angle2: f32,
    pub angle_slope: f32,
    pub action_penalty: f32,
    pub action_slope: f32,
    /// [`below_threshold`] of the termination height.
    pub terminate_below: f32,
}

impl HopperParams {
    fn of(cx: &GpuBuildCx, label: &str) -> Result<Self, EngineError> {
        let n = u32::try_from(cx.num_envs)
            .map_err(|_| EngineError::Gpu(format!("{label}: {} envs exceed u32", cx.num_envs)))?;
        let angle2 = TERMINATION_ANGLE * TERMINATION_ANGLE;
        Ok(Self {
            n,
            height_offset: (TERMINATION_HEIGHT + HEIGHT_TOLERANCE) as f32,
            clip_hi: CLIP_HI as f32,
            clip_hi_cut: above_threshold(CLIP_HI),
            angle2: angle2 as f32,
            angle_slope: (2.0 / angle2) as f32,
            action_penalty: ACTION_PENALTY as f32,
            action_slope: (2.0 * ACTION_PENALTY) as f32,
            terminate_below: below_threshold(TERMINATION_HEIGHT),
        })
    }
}

/// The largest f32 ≤ `t`: for every f32 y, y > it exactly when y > `t` in f64 (the CPU's
/// comparison), since no f32 lies between it and `t`.
pub fn above_threshold(t: f64) -> f32 {
    let a = t as f32;
    if f64::from(a) > t { a.next_down() } else { a }
}

fn source(kernel: &str) -> String {
    format!("{}\n{kernel}", include_str!("wgsl/hopper_params.wgsl"))
}

/// `wgsl/hopper_observe*.wgsl`, one invocation per env.
impl GpuSystem for Observe {
    fn name(&self) -> &str {
        "hopper.observe"
    }
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError> {
        let fwd =
            vec![Bind::read(state("joint_q")), Bind::read(state("joint_qd")), Bind::rw(state("obs")), Bind::uniform(0)];
        let adj = vec![
            Bind::rw(adj_state("joint_q")),
            Bind::rw(adj_state("joint_qd")),
            Bind::rw(adj_state("obs")),
            Bind::uniform(0),
        ];
        let fsrc = source(include_str!("wgsl/hopper_observe.wgsl"));
        let asrc = source(include_str!("wgsl/hopper_observe_adjoint.wgsl"));
        GpuKernels::per_env(
            cx,
            "hopper.observe",
            "observe",
            vec![cx.uniform("hopper.observe", &HopperParams::of(cx, "hopper.observe")?)?],
            (&fsrc, fwd),
            (&asrc, adj),
        )
    }
}

/// `wgsl/hopper_reward*.wgsl`, one invocation per env.
impl GpuSystem for Reward {
    fn name(&self) -> &str {
        "hopper.reward"
    }
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError> {
        let fwd = vec![
            Bind::read(state("joint_q")),
            Bind::read(state("joint_qd")),
            Bind::read(control("act")),
            Bind::rw(state("reward")),
            Bind::uniform(0),
        ];
        let adj = vec![
            Bind::read(state("joint_q")),
            Bind::read(control("act")),
            Bind::rw(adj_state("joint_q")),
            Bind::rw(adj_state("joint_qd")),
            Bind::rw(adj_state("reward")),
            Bind::rw(adj_control("act")),
            Bind::uniform(0),
        ];
        let fsrc = source(include_str!("wgsl/hopper_reward.wgsl"));
        let asrc = source(include_str!("wgsl/hopper_reward_adjoint.wgsl"));
        GpuKernels::per_env(
            cx,
            "hopper.reward",
            "reward",
            vec![cx.uniform("hopper.reward", &HopperParams::of(cx, "hopper.reward")?)?],
            (&fsrc, fwd),
            (&asrc, adj),
        )
    }
}

/// `wgsl/hopper_terminate.wgsl`, one invocation per env; the adjoint clears the flag's
/// cotangent, as the CPU's.
impl GpuSystem for Terminate {
    fn name(&self) -> &str {
        "hopper.terminate"
    }
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError> {
        let src = source(include_str!("wgsl/hopper_terminate.wgsl"));
        let fwd = vec![Bind::read(state("joint_q")), Bind::rw(state("terminated")), Bind::uniform(0)];
        let adj = vec![Bind::read(state("joint_q")), Bind::rw(adj_state("terminated")), Bind::uniform(0)];
        GpuKernels::per_env(
            cx,
            "hopper.terminate",
            "terminate",
            vec![cx.uniform("hopper.terminate", &HopperParams::of(cx, "hopper.terminate")?)?],
            (&src, fwd),
            (&src, adj),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_threshold_reproduces_the_f64_comparison() {
        for t in [0.3, 0.1, 1.0, -0.45, 0.1 + 0.2] {
            let a = above_threshold(t);
            assert!(f64::from(a) <= t);
            for y in [a.next_down(), a, a.next_up(), a.next_up().next_up()] {
                assert_eq!(y > a, f64::from(y) > t, "{t}: y = {y}");
            }
        }
    }
}
