//! GPU mirrors (`gpu_sim::GpuSystem`) of HandReorient's Post-stage task systems
//! `hand_reorient.observe`, `hand_reorient.reward` (forward and adjoint) and
//! `hand_reorient.terminate`, one invocation per env, in `wgsl/hand_reorient_*.wgsl`, with the
//! CPU's formulas and order of f32 operations; the CPU adjoints are recorded replays, the GPU's
//! written out by hand. The constants of `hand_reorient.rs` appear in the WGSL as f32 literals
//! (the same roundings as the CPU's `from_f64`).
//!
//! `hand_reorient.resample_goal` draws the new goal from the env's SplitMix64 stream, emulated in
//! u32 pairs (WGSL has no u64); the uniform's f64 scaling by π/2 is done in f32, within an ulp
//! or two of the CPU's angle, and the success test is exact.

use diffsim_engine::EngineError;
use diffsim_engine::gpu_sim::{Bind, GpuBuildCx, GpuKernels, GpuSystem, Src, adj_control, adj_state, control, state};

use crate::ant_run_gpu::below_threshold;
use crate::hand_reorient::{
    ACT_DIM, FALL_DISTANCE, HandLayout, Observe, ResampleGoal, Reward, SUCCESS_TOLERANCE, Terminate,
};

/// The uniform block of the hand_reorient kernels (WGSL `struct Params` in
/// `wgsl/hand_reorient_common.wgsl`), laid out by encase.
#[derive(Clone, Copy, Debug, Default, PartialEq, encase::ShaderType)]
pub struct HandParams {
    pub n: u32,
    pub nq: u32,
    pub nd: u32,
    pub cube_q: u32,
    pub cube_qd: u32,
    /// The smallest f32 ≥ `FALL_DISTANCE` (terminate).
    pub fall: f32,
    /// The largest f32 ≤ `SUCCESS_TOLERANCE` (resample_goal).
    pub success: f32,
}

fn u32_of(n: usize, what: &str) -> Result<u32, EngineError> {
    u32::try_from(n).map_err(|_| EngineError::Gpu(format!("hand_reorient kernels: {what} = {n} does not fit u32")))
}

impl HandParams {
    fn of(cx: &GpuBuildCx, l: &HandLayout) -> Result<Self, EngineError> {
        if l.hinges.len() != ACT_DIM {
            return Err(EngineError::Gpu(format!(
                "hand_reorient kernels: expected {ACT_DIM} hinges, the layout has {}",
                l.hinges.len()
            )));
        }
        Ok(Self {
            n: u32_of(cx.num_envs, "envs")?,
            nq: u32_of(l.nq, "joint_q per env")?,
            nd: u32_of(l.nd, "joint_qd per env")?,
            cube_q: u32_of(l.cube_q, "cube joint_q offset")?,
            cube_qd: u32_of(l.cube_qd, "cube joint_qd offset")?,
            fall: below_threshold(FALL_DISTANCE),
            success: at_most(SUCCESS_TOLERANCE),
        })
    }
}

/// The largest f32 ≤ `h`: for every f32 y, y ≤ it exactly when y ≤ `h` in f64.
pub fn at_most(h: f64) -> f32 {
    let t = h as f32;
    if f64::from(t) > h { t.next_down() } else { t }
}

const COMMON: &str = include_str!("wgsl/hand_reorient_common.wgsl");

fn source(part: &str) -> String {
    format!("{COMMON}\n{part}")
}

fn cube_goal() -> [Bind; 2] {
    [Bind::read(state("joint_q")), Bind::read(state("goal"))]
}

/// One invocation per env. Own buffers: params, per hinge (q index, q̇ index), per hinge
/// (hi + lo, hi − lo) rounded from f64.
impl GpuSystem for Observe {
    fn name(&self) -> &str {
        "hand_reorient.observe"
    }
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError> {
        let l = &self.layout;
        let mut idx = Vec::with_capacity(2 * ACT_DIM);
        let mut c = Vec::with_capacity(2 * ACT_DIM);
        for &(qi, di, lo, hi) in &l.hinges {
            idx.extend([u32_of(qi, "hinge q index")?, u32_of(di, "hinge qd index")?]);
            c.extend([(hi + lo) as f32, (hi - lo) as f32]);
        }
        let buffers = vec![
            cx.uniform("hand_reorient.observe", &HandParams::of(cx, l)?)?,
            cx.gpu.storage_u32("hand_reorient.observe hinges", &idx)?,
            cx.gpu.storage_f32("hand_reorient.observe limits", &c)?,
        ];
        let mut fwd = cube_goal().to_vec();
        fwd.extend([
            Bind::read(state("joint_qd")),
            Bind::read(control("act")),
            Bind::rw(state("obs")),
            Bind::read(Src::Own(1)),
            Bind::read(Src::Own(2)),
            Bind::uniform(0),
        ]);
        let mut adj = cube_goal().to_vec();
        adj.extend([
            Bind::read(state("joint_qd")),
            Bind::rw(adj_state("obs")),
            Bind::rw(adj_state("joint_q")),
            Bind::rw(adj_state("joint_qd")),
            Bind::rw(adj_state("goal")),
            Bind::rw(adj_control("act")),
            Bind::read(Src::Own(1)),
            Bind::read(Src::Own(2)),
            Bind::uniform(0),
        ]);
        let fsrc = source(include_str!("wgsl/hand_reorient_observe.wgsl"));
        let asrc = source(include_str!("wgsl/hand_reorient_observe_adjoint.wgsl"));
        GpuKernels::per_env(cx, "hand_reorient.observe", "observe", buffers, (&fsrc, fwd), (&asrc, adj))
    }
}

/// One invocation per env, forward and adjoint (one source, the same bindings).
impl GpuSystem for Reward {
    fn name(&self) -> &str {
        "hand_reorient.reward"
    }
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError> {
        let binds = |reward: Src| {
            let mut b = cube_goal().to_vec();
            b.extend([
                Bind::read(control("act")),
                Bind::rw(reward),
                Bind::rw(adj_state("joint_q")),
                Bind::rw(adj_state("goal")),
                Bind::rw(adj_control("act")),
                Bind::uniform(0),
            ]);
            b
        };
        let src = source(include_str!("wgsl/hand_reorient_reward.wgsl"));
        let params = cx.uniform("hand_reorient.reward", &HandParams::of(cx, &self.layout)?)?;
        let (fwd, adj) = (binds(state("reward")), binds(adj_state("reward")));
        GpuKernels::per_env(cx, "hand_reorient.reward", "reward", vec![params], (&src, fwd), (&src, adj))
    }
}

/// One invocation per env; the adjoint clears the flag's cotangent, as the CPU's.
impl GpuSystem for Terminate {
    fn name(&self) -> &str {
        "hand_reorient.terminate"
    }
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError> {
        let binds = |flag: Src| {
            let mut b = cube_goal().to_vec();
            b.extend([Bind::rw(flag), Bind::uniform(0)]);
            b
        };
        let src = source(include_str!("wgsl/hand_reorient_terminate.wgsl"));
        let params = cx.uniform("hand_reorient.terminate", &HandParams::of(cx, &self.layout)?)?;
        let (fwd, adj) = (binds(state("terminated")), binds(adj_state("terminated")));
        GpuKernels::per_env(cx, "hand_reorient.terminate", "terminate", vec![params], (&src, fwd), (&src, adj))
    }
}

/// One invocation per env. The forward binds `goal` read-write as binding 1 (the shared source
/// declares it read-only for the other kernels, so it is patched here): a column may not be
/// bound twice with different access in one dispatch.
impl GpuSystem for ResampleGoal {
    fn name(&self) -> &str {
        "hand_reorient.resample_goal"
    }
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError> {
        let common = include_str!("wgsl/hand_reorient_resample_common.wgsl");
        let fsrc = source(&format!("{common}\n{}", include_str!("wgsl/hand_reorient_resample.wgsl")))
            .replace("var<storage, read> goal:", "var<storage, read_write> goal:");
        let asrc = source(&format!("{common}\n{}", include_str!("wgsl/hand_reorient_resample_adjoint.wgsl")));
        let fwd =
            vec![Bind::read(state("joint_q")), Bind::rw(state("goal")), Bind::rw(state("goal_rng")), Bind::uniform(0)];
        let mut adj = cube_goal().to_vec();
        adj.extend([Bind::rw(adj_state("goal")), Bind::uniform(0)]);
        GpuKernels::per_env(
            cx,
            "hand_reorient.resample_goal",
            "resample",
            vec![cx.uniform("hand_reorient.resample_goal", &HandParams::of(cx, &self.layout)?)?],
            (&fsrc, fwd),
            (&asrc, adj),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_reproduces_the_f64_comparison() {
        for h in [0.1, 0.24, 1.0 / 3.0, 2.0] {
            let t = at_most(h);
            assert!(f64::from(t) <= h && f64::from(t.next_up()) > h, "{h}");
        }
    }
}
