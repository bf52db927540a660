//! GPU mirrors of the articulation dynamics systems (`articulation.clear`, `articulation.fk`,
//! `articulation.joint_forces`, `articulation.integrate`): the uniform block [`ArtParams`] (WGSL
//! `struct Params` in `wgsl/params.wgsl`), the packed model the kernels read, the WGSL sources
//! assembled from `wgsl/`, and the `GpuSystem` impls. The CPU systems only hand out these mirrors
//! (`System::gpu`); the kernels follow their forward and adjoint line by line, in f32.
//!
//! **Mapping.** fk and integrate run one invocation per env, walking the env's bodies in
//! topological order as the CPU does (several roots in one env are fine: H is then block
//! diagonal). Everything per env lives in private arrays sized by constants prepended to the
//! source (bodies NB, coordinates NQ, velocities ND; the mass matrix is ND² floats: 196 for the
//! ant, 784 for the 28-dof hand with its free object), so the kernels own no scratch buffers:
//! the adjoint recomputes kinematics, H and its Cholesky factor from the pre-state it is given
//! (the stepper recomputes pre-states from its checkpoints). joint_forces runs one invocation
//! per (env, body); clear one per scalar.
//!
//! **Adjoints.** fk: `mat_to_quat`'s adjoint on the forward's branch, then the kinematics
//! adjoint. integrate: the implicit-function-theorem adjoint of integrate.rs; where the CPU
//! replays the Euler update on its reverse-mode tape, the kernel has the update's adjoint by
//! hand (`euler_adjoint` in `wgsl/dynamics.wgsl`). The CPU computes its adjoints in f64 from the
//! f32 state; the kernels in f32 (tolerances in tests/tests/gpu_articulation.rs).
//!
//! **Model.** The topology columns are packed per body as (parent, kind, q_start, qd_start) and
//! the body parameters as `BM` = 24 floats (axis, parent anchor, child anchor, mass, inertia,
//! COM, armature), each rounded from the f64 model once, as the CPU's `R::from_f64`. The model
//! is uploaded when the `GpuSim` is built, like every model column.

use diffsim_engine::EngineError;
use diffsim_engine::gpu_sim::{
    Bind, GpuBuildCx, GpuKernels, GpuSystem, Pass, Src, adj_control, adj_state, control, model, state,
};

use super::{ClearForces, ForwardKinematics, Integrate, JointForces};
use crate::particles::gpu::{assemble, to_u32};

/// The uniform block of every articulation kernel, laid out by encase (field order = WGSL order).
#[derive(Clone, Copy, Debug, Default, PartialEq, encase::ShaderType)]
pub struct ArtParams {
    /// Invocations that do work in this dispatch, over all envs.
    pub n: u32,
    /// Bodies per env.
    pub nb: u32,
    /// Joint coordinates per env.
    pub nq: u32,
    /// Joint velocities per env.
    pub nd: u32,
    /// Substep length, seconds.
    pub dt: f32,
    /// Actions per env (`articulation.joint_forces`).
    pub na: u32,
    /// Generalized force per unit action (`articulation.joint_forces`).
    pub scale: f32,
}

/// Floats per body of the packed body model (WGSL `BM` in `wgsl/model.wgsl`).
pub const BM: usize = 24;

const PARAMS: &str = include_str!("wgsl/params.wgsl");
pub const SPATIAL: &str = include_str!("wgsl/spatial.wgsl");
pub const MODEL: &str = include_str!("wgsl/model.wgsl");
pub const KINEMATICS: &str = include_str!("wgsl/kinematics.wgsl");
pub const DYNAMICS: &str = include_str!("wgsl/dynamics.wgsl");
const CLEAR: &str = include_str!("wgsl/clear.wgsl");
const FK: &str = include_str!("wgsl/fk.wgsl");
const FK_ADJOINT: &str = include_str!("wgsl/fk_adjoint.wgsl");
const JOINT_FORCES: &str = include_str!("wgsl/joint_forces.wgsl");
const JOINT_FORCES_ADJOINT: &str = include_str!("wgsl/joint_forces_adjoint.wgsl");
const INTEGRATE: &str = include_str!("wgsl/integrate.wgsl");
const INTEGRATE_ADJOINT: &str = include_str!("wgsl/integrate_adjoint.wgsl");

/// Kernel source: the articulation params block followed by `parts`.
pub fn source(parts: &[&str]) -> String {
    assemble(PARAMS, parts)
}

/// Sizes of one env's articulation, from the layouts of a build context.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    pub nb: usize,
    pub nq: usize,
    pub nd: usize,
}

impl Sizes {
    pub fn of(cx: &GpuBuildCx) -> Self {
        let width = |name: &str| cx.state.spec(name).map_or(0, |s| s.width);
        Self { nb: cx.count("joint_kind"), nq: width("joint_q"), nd: width("joint_qd") }
    }
    /// The WGSL constants sizing the private arrays (at least 1: WGSL has no empty arrays).
    pub fn constants(&self) -> String {
        let (nb, nq, nd) = (self.nb.max(1), self.nq.max(1), self.nd.max(1));
        format!(
            "const NB: u32 = {nb}u;\nconst NQ: u32 = {nq}u;\nconst ND: u32 = {nd}u;\nconst NDD: u32 = {}u;",
            nd * nd
        )
    }
    /// The params of a dispatch of `n` invocations (none when there are no bodies).
    pub fn params(&self, cx: &GpuBuildCx, n: usize) -> Result<ArtParams, EngineError> {
        Ok(ArtParams {
            n: if self.nb == 0 { 0 } else { to_u32(n, "articulation dispatch size")? },
            nb: to_u32(self.nb, "bodies per env")?,
            nq: to_u32(self.nq, "joint coordinates per env")?,
            nd: to_u32(self.nd, "joint velocities per env")?,
            dt: cx.dt,
            na: 0,
            scale: 0.0,
        })
    }
}

/// The topology packed per body (all envs) as (parent, kind, q_start, qd_start).
pub fn packed_topology(cx: &GpuBuildCx) -> Result<Vec<u32>, EngineError> {
    let t = &cx.model.topology;
    let cols = [t.get("joint_parent")?, t.get("joint_kind")?, t.get("joint_q_start")?, t.get("joint_qd_start")?];
    Ok((0..cols[0].len()).flat_map(|b| cols.map(|c| c[b])).collect())
}

/// The body model packed per body (all envs) as `BM` floats: axis, parent anchor, child anchor,
/// mass, inertia (row-major), COM, armature, one pad.
pub fn packed_bodies(cx: &GpuBuildCx) -> Result<Vec<f32>, EngineError> {
    let p = &cx.model.params;
    let cols: [(&[f64], usize); 7] = [
        (p.get("joint_axis")?, 3),
        (p.get("joint_parent_anchor")?, 3),
        (p.get("joint_child_anchor")?, 3),
        (p.get("body_mass")?, 1),
        (p.get("body_inertia")?, 9),
        (p.get("body_com")?, 3),
        (p.get("joint_armature")?, 1),
    ];
    let nb = cols[3].0.len();
    let mut out = Vec::with_capacity(nb * BM);
    for b in 0..nb {
        for (c, w) in cols {
            out.extend(c[w * b..w * (b + 1)].iter().map(|&x| x as f32));
        }
        out.push(0.0);
    }
    debug_assert_eq!(out.len(), nb * BM);
    Ok(out)
}

/// The first bindings of every fk / integrate pass (`wgsl/model.wgsl`): params (own 0), packed
/// topology (own 1), packed bodies (own 2).
fn model_binds() -> Vec<Bind> {
    vec![Bind::uniform(0), Bind::read(Src::Own(1)), Bind::read(Src::Own(2))]
}

/// Own buffers 0..3 of fk / integrate: the params of an env-parallel dispatch and the model.
fn model_buffers(cx: &GpuBuildCx, label: &str, sizes: &Sizes) -> Result<Vec<wgpu::Buffer>, EngineError> {
    Ok(vec![
        cx.uniform(label, &sizes.params(cx, cx.num_envs)?)?,
        cx.gpu.storage_u32(&format!("{label} topology"), &packed_topology(cx)?)?,
        cx.gpu.storage_f32(&format!("{label} bodies"), &packed_bodies(cx)?)?,
    ])
}

/// GPU: `wgsl/clear.wgsl`, one kernel zeroing joint_tau and body_f (or their adjoints).
impl GpuSystem for ClearForces {
    fn name(&self) -> &str {
        "articulation.clear"
    }
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError> {
        let tau = cx.state.spec("joint_tau").map_or(0, |s| s.per_env()) * cx.num_envs;
        let force = cx.state.spec("body_f").map_or(0, |s| s.per_env()) * cx.num_envs;
        let n = tau.max(force);
        let params = ArtParams {
            n: to_u32(n, "articulation.clear scalars")?,
            nd: to_u32(tau, "joint_tau scalars")?,
            nq: to_u32(force, "body_f scalars")?,
            ..ArtParams::default()
        };
        let src = source(&[CLEAR]);
        let pass = |label: &str, tau: Src, force: Src| {
            Pass::new(cx, label, &src, "clear", vec![Bind::uniform(0), Bind::rw(tau), Bind::rw(force)], n)
        };
        Ok(GpuKernels {
            forward: vec![pass("articulation.clear", state("joint_tau"), state("body_f"))?],
            adjoint: vec![pass("articulation.clear adjoint", adj_state("joint_tau"), adj_state("body_f"))?],
            buffers: vec![cx.uniform("articulation.clear", &params)?],
        })
    }
}

/// GPU: `wgsl/fk.wgsl` and `wgsl/fk_adjoint.wgsl`, one invocation per env.
impl GpuSystem for ForwardKinematics {
    fn name(&self) -> &str {
        "articulation.fk"
    }
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError> {
        let sizes = Sizes::of(cx);
        let consts = sizes.constants();
        let common = [consts.as_str(), MODEL, SPATIAL, KINEMATICS];
        let fsrc = source(&[&common[..], &[FK]].concat());
        let asrc = source(&[&common[..], &[FK_ADJOINT]].concat());
        let mut fwd = model_binds();
        fwd.extend([
            Bind::read(state("joint_q")),
            Bind::read(state("joint_qd")),
            Bind::rw(state("body_q")),
            Bind::rw(state("body_qd")),
        ]);
        let mut adj = model_binds();
        adj.extend([
            Bind::read(state("joint_q")),
            Bind::read(state("joint_qd")),
            Bind::rw(adj_state("joint_q")),
            Bind::rw(adj_state("joint_qd")),
            Bind::rw(adj_state("body_q")),
            Bind::rw(adj_state("body_qd")),
        ]);
        let n = cx.num_envs;
        Ok(GpuKernels {
            forward: vec![Pass::new(cx, "articulation.fk", &fsrc, "fk_forward", fwd, n)?],
            adjoint: vec![Pass::new(cx, "articulation.fk adjoint", &asrc, "fk_adjoint", adj, n)?],
            buffers: model_buffers(cx, "articulation.fk", &sizes)?,
        })
    }
}

/// GPU: `wgsl/joint_forces.wgsl` and its adjoint, one invocation per (env, body). The actuator
/// index of every body (u32::MAX: none) and its gain scale · gear are computed on the host, as
/// the CPU's `dofs` walk and `R::from_f64(scale · gear)` do.
impl GpuSystem for JointForces {
    fn name(&self) -> &str {
        "articulation.joint_forces"
    }
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError> {
        use diffsim_engine::articulation::{KIND_PRISMATIC, KIND_REVOLUTE, WORLD};
        let sizes = Sizes::of(cx);
        let n = sizes.nb * cx.num_envs;
        let params = ArtParams {
            na: to_u32(self.num_actions, "actions per env")?,
            scale: self.scale as f32,
            ..sizes.params(cx, n)?
        };
        let kind = cx.model.topology.get("joint_kind")?;
        let gear = cx.model.params.get("joint_gear")?;
        let (mut actuator, mut gain) = (vec![WORLD; n], vec![0.0f32; n]);
        for e in 0..cx.num_envs {
            let mut a = 0u32;
            for b in e * sizes.nb..(e + 1) * sizes.nb {
                if matches!(kind[b], KIND_REVOLUTE | KIND_PRISMATIC) && gear[b] != 0.0 {
                    actuator[b] = a;
                    gain[b] = (self.scale * gear[b]) as f32;
                    a += 1;
                }
            }
            if a as usize > self.num_actions {
                return Err(EngineError::Gpu(format!(
                    "articulation.joint_forces: env {e} has {a} actuated joints but num_actions = {}",
                    self.num_actions
                )));
            }
        }
        let buffers = vec![
            cx.uniform("articulation.joint_forces", &params)?,
            cx.gpu.storage_u32("articulation.joint_forces topology", &packed_topology(cx)?)?,
            cx.gpu.storage_u32("articulation.joint_forces actuators", &actuator)?,
            cx.gpu.storage_f32("articulation.joint_forces gains", &gain)?,
            // Bound in place of `act` when there are no actions (never read then).
            cx.gpu.storage_f32_zeroed("articulation.joint_forces no actions", 1)?,
        ];
        let (act, act_bar) =
            if self.num_actions > 0 { (control("act"), adj_control("act")) } else { (Src::Own(4), Src::Own(4)) };
        let head = || {
            vec![
                Bind::uniform(0),
                Bind::read(Src::Own(1)),
                Bind::read(Src::Own(2)),
                Bind::read(Src::Own(3)),
                Bind::read(model("joint_limit")),
                Bind::read(model("joint_damping")),
                Bind::read(model("joint_limit_gains")),
                Bind::read(state("joint_q")),
            ]
        };
        let mut fwd = head();
        fwd.extend([Bind::read(state("joint_qd")), Bind::read(act), Bind::rw(state("joint_tau"))]);
        let mut adj = head();
        adj.extend([
            Bind::read(adj_state("joint_tau")),
            Bind::rw(adj_state("joint_q")),
            Bind::rw(adj_state("joint_qd")),
            Bind::rw(act_bar),
        ]);
        let fsrc = source(&[JOINT_FORCES]);
        let asrc = source(&[JOINT_FORCES_ADJOINT]);
        Ok(GpuKernels {
            forward: vec![Pass::new(cx, "articulation.joint_forces", &fsrc, "joint_forces_forward", fwd, n)?],
            adjoint: vec![Pass::new(cx, "articulation.joint_forces adjoint", &asrc, "joint_forces_adjoint", adj, n)?],
            buffers,
        })
    }
}

/// GPU: `wgsl/integrate.wgsl` and `wgsl/integrate_adjoint.wgsl` over `wgsl/dynamics.wgsl`, one
/// invocation per env.
impl GpuSystem for Integrate {
    fn name(&self) -> &str {
        "articulation.integrate"
    }
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError> {
        let sizes = Sizes::of(cx);
        let consts = sizes.constants();
        let common = [consts.as_str(), MODEL, SPATIAL, KINEMATICS, DYNAMICS];
        let fsrc = source(&[&common[..], &[INTEGRATE]].concat());
        let asrc = source(&[&common[..], &[INTEGRATE_ADJOINT]].concat());
        let mut fwd = model_binds();
        fwd.extend([
            Bind::rw(state("joint_q")),
            Bind::rw(state("joint_qd")),
            Bind::read(state("joint_tau")),
            Bind::read(state("body_f")),
            Bind::read(model("gravity")),
        ]);
        let mut adj = model_binds();
        adj.extend([
            Bind::read(state("joint_q")),
            Bind::read(state("joint_qd")),
            Bind::read(state("joint_tau")),
            Bind::read(state("body_f")),
            Bind::read(model("gravity")),
            Bind::rw(adj_state("joint_q")),
            Bind::rw(adj_state("joint_qd")),
            Bind::rw(adj_state("joint_tau")),
            Bind::rw(adj_state("body_f")),
        ]);
        let n = cx.num_envs;
        Ok(GpuKernels {
            forward: vec![Pass::new(cx, "articulation.integrate", &fsrc, "integrate_forward", fwd, n)?],
            adjoint: vec![Pass::new(cx, "articulation.integrate adjoint", &asrc, "integrate_adjoint", adj, n)?],
            buffers: model_buffers(cx, "articulation.integrate", &sizes)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_layout_is_seven_scalars() {
        use encase::ShaderType;
        assert_eq!(u64::from(ArtParams::min_size()), 28);
    }
}
