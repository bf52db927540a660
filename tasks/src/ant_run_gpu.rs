//! GPU mirrors (`gpu_sim::GpuSystem`) of AntRun's Post-stage task systems: `ant_run.observe`,
//! `ant_run.reward` (forward and adjoint) and the `TorsoBelow` termination flag (shared with
//! Humanoid), in `wgsl/ant_run_*.wgsl`, `wgsl/locomotion_observe*.wgsl` (the observation layout
//! AntRun and Humanoid share, [`locomotion_observe`]) and `wgsl/torso_below.wgsl`, one invocation
//! per env, with
//! the CPU's formulas and order of f32 operations. The CPU adjoints of observe and reward are
//! recorded replays; the GPU's are written out by hand (`wgsl/ant_run_torso.wgsl`: the torso's
//! kinematics, heading and their adjoints).

use diffsim_engine::EngineError;
use diffsim_engine::gpu_sim::{Bind, GpuBuildCx, GpuKernels, GpuSystem, adj_control, adj_state, control, state};

use crate::ant_run::{HINGES, Observe, Reward, TARGET_X, TERMINATION_HEIGHT};
use crate::torso::TorsoBelow;
use diffsim_systems::articulation::contact_gpu::ROTATION;

/// The uniform block of the torso kernels (WGSL `struct Params` in `wgsl/ant_run_torso.wgsl`),
/// laid out by encase.
#[derive(Clone, Copy, Debug, Default, PartialEq, encase::ShaderType)]
pub struct TorsoParams {
    /// Envs.
    pub n: u32,
    /// Bodies per env.
    pub nb: u32,
    pub target_x: f32,
    /// The reward's height offset, or the termination threshold ([`below_threshold`]).
    pub height: f32,
}

impl TorsoParams {
    /// `target_x`: the task's running target; `height` as the field.
    pub(crate) fn of(cx: &GpuBuildCx, target_x: f64, height: f32) -> Result<Self, EngineError> {
        let u = |n: usize, what: &str| {
            u32::try_from(n).map_err(|_| EngineError::Gpu(format!("torso kernels: {what} = {n} does not fit u32")))
        };
        Ok(Self {
            n: u(cx.num_envs, "envs")?,
            nb: u(cx.count("joint_kind"), "bodies per env")?,
            target_x: target_x as f32,
            height,
        })
    }
}

/// The smallest f32 ≥ `height`: for every f32 y, y < it exactly when y < `height` in f64 (the
/// CPU's comparison), since no f32 lies between `height` and it.
pub fn below_threshold(height: f64) -> f32 {
    let h = height as f32;
    if f64::from(h) < height { h.next_up() } else { h }
}

const TORSO: &str = include_str!("wgsl/ant_run_torso.wgsl");
pub(crate) const BODY: &str = include_str!("wgsl/ant_run_body.wgsl");

/// The torso kernels' library followed by `parts`.
pub(crate) fn source(parts: &[&str]) -> String {
    let mut s = format!("{ROTATION}\n{TORSO}");
    for p in parts {
        s.push('\n');
        s.push_str(p);
    }
    s
}

/// The observe kernels of a locomotion task (AntRun, Humanoid: torso height, orientation and
/// twist, `na` hinge angles and rates, up and heading, the actions; `target_x` the heading's
/// target), one invocation per env, forward and adjoint.
pub(crate) fn locomotion_observe(
    cx: &GpuBuildCx,
    name: &str,
    na: usize,
    target_x: f64,
) -> Result<GpuKernels, EngineError> {
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
    let na = format!("const NA: u32 = {na}u;");
    let fsrc = source(&[BODY, &na, include_str!("wgsl/locomotion_observe.wgsl")]);
    let asrc = source(&[BODY, &na, include_str!("wgsl/locomotion_observe_adjoint.wgsl")]);
    GpuKernels::per_env(
        cx,
        name,
        "observe",
        vec![cx.uniform(name, &TorsoParams::of(cx, target_x, 0.0)?)?],
        (&fsrc, fwd),
        (&asrc, adj),
    )
}

impl GpuSystem for Observe {
    fn name(&self) -> &str {
        "ant_run.observe"
    }
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError> {
        locomotion_observe(cx, "ant_run.observe", HINGES, TARGET_X)
    }
}

/// One invocation per env, forward and adjoint.
impl GpuSystem for Reward {
    fn name(&self) -> &str {
        "ant_run.reward"
    }
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError> {
        let body = [Bind::read(state("body_q")), Bind::read(state("body_qd"))];
        let mut fwd = body.to_vec();
        fwd.extend([Bind::rw(state("reward")), Bind::uniform(0)]);
        let mut adj = body.to_vec();
        adj.extend([
            Bind::rw(adj_state("reward")),
            Bind::rw(adj_state("body_q")),
            Bind::rw(adj_state("body_qd")),
            Bind::uniform(0),
        ]);
        let fsrc = source(&[BODY, include_str!("wgsl/ant_run_reward.wgsl")]);
        let asrc = source(&[BODY, include_str!("wgsl/ant_run_reward_adjoint.wgsl")]);
        GpuKernels::per_env(
            cx,
            "ant_run.reward",
            "reward",
            vec![cx.uniform("ant_run.reward", &TorsoParams::of(cx, TARGET_X, TERMINATION_HEIGHT as f32)?)?],
            (&fsrc, fwd),
            (&asrc, adj),
        )
    }
}

/// One invocation per env; the adjoint clears the flag's cotangent, as the CPU's.
impl GpuSystem for TorsoBelow {
    fn name(&self) -> &str {
        self.name
    }
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError> {
        let src = source(&[include_str!("wgsl/torso_below.wgsl")]);
        let fwd = vec![Bind::read(state("body_q")), Bind::rw(state("terminated")), Bind::uniform(0)];
        let adj = vec![Bind::read(state("body_q")), Bind::rw(adj_state("terminated")), Bind::uniform(0)];
        GpuKernels::per_env(
            cx,
            self.name,
            "terminate",
            vec![cx.uniform(self.name, &TorsoParams::of(cx, TARGET_X, below_threshold(self.height))?)?],
            (&src, fwd),
            (&src, adj),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_reproduces_the_f64_comparison() {
        for h in [0.27, 0.8, 1.0, 0.1 + 0.2, -0.3] {
            let t = below_threshold(h);
            assert!(f64::from(t) >= h);
            let below = f32::from_bits(if t > 0.0 { t.to_bits() - 1 } else { t.to_bits() + 1 });
            assert!(f64::from(below) < h, "{h}: {below} is not below");
            for y in [below, t, t.next_up()] {
                assert_eq!(y < t, f64::from(y) < h, "{h}: y = {y}");
            }
        }
    }
}
