//! GPU mirrors of the articulation dynamics systems (`articulation.clear`, `articulation.fk`,
//! `articulation.joint_forces`, `articulation.integrate`): the uniform block [`ArtParams`] (WGSL
//! `struct Params` in `wgsl/params.wgsl`), the packed model the kernels read, the WGSL sources
//! assembled from `wgsl/`, and the `GpuSystem` impls. The CPU systems only hand out these mirrors
//! (`System::gpu`); the kernels follow their forward and adjoint line by line, in f32.
//!
//! **Mapping.** fk and integrate run one invocation per env, walking the env's bodies in
//! topological order as the CPU does (several roots in one env are fine: H is then block
//! diagonal). Everything per env lives in a scratch row the system owns (`struct Work`,
//! generated here with fixed-size arrays sized by constants prepended to the source: bodies NB,
//! coordinates NQ, velocities ND; the mass matrix is ND² floats, 196 for the ant's 14 dofs, 729
//! for the humanoid's 27): the adjoint recomputes kinematics, H and its Cholesky factor from the
//! pre-state it is given (the stepper recomputes pre-states from its checkpoints), so nothing
//! in the scratch outlives a dispatch. The arrays are in a storage buffer rather than in private
//! memory because lavapipe's compiler lowers dynamically indexed private arrays to
//! compare-and-select ladders: with the humanoid's, the integrate adjoint had not finished
//! compiling after minutes. joint_forces runs one invocation per (env, body); clear one per
//! scalar.
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

/// A count of the per-env scratch arrays: bodies, coordinates, velocities or velocities².
#[derive(Clone, Copy, Debug)]
enum Count {
    Nb,
    Nq,
    Nd,
    Ndd,
}

/// The per-env scratch arrays of `wgsl/kinematics.wgsl`, then those `wgsl/dynamics.wgsl` adds
/// (name, WGSL type, bytes per element in a storage buffer, count), in `struct Work` order.
const WORK: [(&str, &str, usize, Count); 28] = [
    ("qv", "f32", 4, Count::Nq),
    ("qdv", "f32", 4, Count::Nd),
    ("k_rot", "mat3x3<f32>", 48, Count::Nb),
    ("k_pos", "vec3<f32>", 16, Count::Nb),
    ("k_twist", "V6", 32, Count::Nb),
    ("k_bias", "V6", 32, Count::Nb),
    ("k_s", "V6", 32, Count::Nd),
    ("b_rot", "mat3x3<f32>", 48, Count::Nb),
    ("b_pos", "vec3<f32>", 16, Count::Nb),
    ("b_twist", "V6", 32, Count::Nb),
    ("b_bias", "V6", 32, Count::Nb),
    ("b_s", "V6", 32, Count::Nd),
    ("q_bar", "f32", 4, Count::Nq),
    ("qd_bar", "f32", 4, Count::Nd),
    // dynamics.wgsl
    ("tau", "f32", 4, Count::Nd),
    ("fext", "V6", 32, Count::Nb),
    ("qdd", "f32", 4, Count::Nd),
    ("tau_r", "f32", 4, Count::Nd),
    ("k_inertia", "SpI", 64, Count::Nb),
    ("k_acc", "V6", 32, Count::Nb),
    ("k_force", "V6", 32, Count::Nb),
    ("hm", "f32", 4, Count::Ndd),
    ("eq_bar", "f32", 4, Count::Nq),
    ("eqd_bar", "f32", 4, Count::Nd),
    ("qdd_bar", "f32", 4, Count::Nd),
    ("tau_bar", "f32", 4, Count::Nd),
    ("fext_bar", "V6", 32, Count::Nb),
    ("k_fb", "V6", 32, Count::Nb),
];
/// How many of `WORK` kinematics.wgsl alone uses.
const KIN_WORK: usize = 14;

const PARAMS: &str = include_str!("wgsl/params.wgsl");
pub const SPATIAL: &str = include_str!("wgsl/spatial.wgsl");
pub const MODEL: &str = include_str!("wgsl/model.wgsl");
pub const KINEMATICS: &str = include_str!("wgsl/kinematics.wgsl");
pub const DYNAMICS: &str = include_str!("wgsl/dynamics.wgsl");
const CLEAR: &str = include_str!("wgsl/clear.wgsl");
const BEGIN_ENV: &str = include_str!("wgsl/begin_env.wgsl");
const FK: &str = include_str!("wgsl/fk.wgsl");
const FK_ADJOINT: &str = include_str!("wgsl/fk_adjoint.wgsl");
const JOINT_FORCES_COMMON: &str = include_str!("wgsl/joint_forces_common.wgsl");
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
    /// Array lengths (at least 1: WGSL has no empty arrays).
    fn len(&self, c: Count) -> usize {
        let (nb, nq, nd) = (self.nb.max(1), self.nq.max(1), self.nd.max(1));
        match c {
            Count::Nb => nb,
            Count::Nq => nq,
            Count::Nd => nd,
            Count::Ndd => nd * nd,
        }
    }
    fn work(dynamics: bool) -> &'static [(&'static str, &'static str, usize, Count)] {
        if dynamics { &WORK } else { &WORK[..KIN_WORK] }
    }
    /// The WGSL constants sizing the scratch arrays and `struct Work`, one env's scratch row:
    /// the kinematic arrays, and with `dynamics` those of the dynamics too.
    pub fn header(&self, dynamics: bool) -> String {
        let mut s = format!(
            "const NB: u32 = {}u;\nconst NQ: u32 = {}u;\nconst ND: u32 = {}u;\nconst NDD: u32 = {}u;\nstruct Work {{\n",
            self.len(Count::Nb),
            self.len(Count::Nq),
            self.len(Count::Nd),
            self.len(Count::Ndd)
        );
        for (name, ty, _, c) in Self::work(dynamics) {
            s.push_str(&format!("    {name}: array<{ty}, {}>,\n", self.len(*c)));
        }
        s.push_str("}\n");
        s
    }
    /// Bytes of the scratch of `envs` envs: an upper bound of `struct Work`'s storage size per
    /// env (every member rounded up to 16 bytes, the largest alignment of its types, plus 16).
    pub fn work_bytes(&self, dynamics: bool, envs: usize) -> usize {
        let row: usize = Self::work(dynamics).iter().map(|(_, _, b, c)| (b * self.len(*c)).div_ceil(16) * 16).sum();
        (row + 16) * envs.max(1)
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

/// Own buffers 0..4 of fk / integrate: the params of an env-parallel dispatch, the model, and the
/// per-env scratch rows (`struct Work`, bound last by every pass as `Src::Own(3)`).
fn model_buffers(
    cx: &GpuBuildCx,
    label: &str,
    sizes: &Sizes,
    dynamics: bool,
) -> Result<Vec<wgpu::Buffer>, EngineError> {
    Ok(vec![
        cx.uniform(label, &sizes.params(cx, cx.num_envs)?)?,
        cx.gpu.storage_u32(&format!("{label} topology"), &packed_topology(cx)?)?,
        cx.gpu.storage_f32(&format!("{label} bodies"), &packed_bodies(cx)?)?,
        cx.gpu.storage_f32_zeroed(&format!("{label} scratch"), sizes.work_bytes(dynamics, cx.num_envs) / 4)?,
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
        let header = sizes.header(false);
        let common = [header.as_str(), MODEL, SPATIAL, KINEMATICS];
        let fsrc = source(&[&common[..], &[BEGIN_ENV, FK]].concat());
        let asrc = source(&[&common[..], &[BEGIN_ENV, FK_ADJOINT]].concat());
        let mut fwd = model_binds();
        fwd.extend([
            Bind::read(state("joint_q")),
            Bind::read(state("joint_qd")),
            Bind::rw(state("body_q")),
            Bind::rw(state("body_qd")),
            Bind::rw(Src::Own(3)),
        ]);
        let mut adj = model_binds();
        adj.extend([
            Bind::read(state("joint_q")),
            Bind::read(state("joint_qd")),
            Bind::rw(adj_state("joint_q")),
            Bind::rw(adj_state("joint_qd")),
            Bind::rw(adj_state("body_q")),
            Bind::rw(adj_state("body_qd")),
            Bind::rw(Src::Own(3)),
        ]);
        let n = cx.num_envs;
        Ok(GpuKernels {
            forward: vec![Pass::new(cx, "articulation.fk", &fsrc, "fk_forward", fwd, n)?],
            adjoint: vec![Pass::new(cx, "articulation.fk adjoint", &asrc, "fk_adjoint", adj, n)?],
            buffers: model_buffers(cx, "articulation.fk", &sizes, false)?,
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
        let fsrc = source(&[JOINT_FORCES_COMMON, JOINT_FORCES]);
        let asrc = source(&[JOINT_FORCES_COMMON, JOINT_FORCES_ADJOINT]);
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
        let header = sizes.header(true);
        let common = [header.as_str(), MODEL, SPATIAL, KINEMATICS, DYNAMICS];
        let fsrc = source(&[&common[..], &[BEGIN_ENV, INTEGRATE]].concat());
        let asrc = source(&[&common[..], &[BEGIN_ENV, INTEGRATE_ADJOINT]].concat());
        let mut fwd = model_binds();
        fwd.extend([
            Bind::rw(state("joint_q")),
            Bind::rw(state("joint_qd")),
            Bind::read(state("joint_tau")),
            Bind::read(state("body_f")),
            Bind::read(model("gravity")),
            Bind::rw(Src::Own(3)),
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
            Bind::rw(Src::Own(3)),
        ]);
        let n = cx.num_envs;
        Ok(GpuKernels {
            forward: vec![Pass::new(cx, "articulation.integrate", &fsrc, "integrate_forward", fwd, n)?],
            adjoint: vec![Pass::new(cx, "articulation.integrate adjoint", &asrc, "integrate_adjoint", adj, n)?],
            buffers: model_buffers(cx, "articulation.integrate", &sizes, true)?,
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
