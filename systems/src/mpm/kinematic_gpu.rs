//! GPU mirrors of the hinge-tree systems of `kinematic.rs` (`mpm.joint_drive`,
//! `mpm.kinematic_fk`, `mpm.joint_integrate`): the uniform block [`KinParams`] (WGSL
//! `struct KinParams` in `wgsl/kinematic_common.wgsl`) and the `GpuSystem` impls. The kernels
//! follow the CPU forward and adjoint in f32; the FK adjoint, a replay on the f64 reverse tape
//! on the CPU, is written out by hand here (`wgsl/kinematic_fk.wgsl`: the chain rule through
//! the quaternion products and the parent rotation of each joint offset, from the leaves to the
//! base), so the CPU and GPU adjoints agree to f32 rounding, not bitwise.

use diffsim_engine::EngineError;
use diffsim_engine::gpu_sim::{
    Bind, GpuBuildCx, GpuKernels, GpuSystem, Pass, Src, adj_control, adj_state, control, state,
};

use super::kinematic::{JointDrive, JointIntegrate, KinematicFk};
use crate::particles::gpu::{assemble, to_u32};

/// The uniform block of the hinge-tree kernels, laid out by encase (field order = WGSL order).
#[derive(Clone, Copy, Debug, Default, PartialEq, encase::ShaderType)]
pub struct KinParams {
    pub count: u32,
    pub dof: u32,
    pub envs: u32,
    pub dt: f32,
    pub inv_step: f32,
}

impl KinParams {
    fn of(cx: &GpuBuildCx, dof: usize, substeps: usize) -> Result<Self, EngineError> {
        Ok(Self {
            count: to_u32(dof * cx.num_envs, "joint scalars over all envs")?,
            dof: to_u32(dof, "joints")?,
            envs: to_u32(cx.num_envs, "envs")?,
            dt: cx.dt,
            inv_step: (1.0 / (substeps.max(1) as f64 * f64::from(cx.dt))) as f32,
        })
    }
}

fn source(parts: &[&str]) -> String {
    assemble(include_str!("wgsl/kinematic_common.wgsl"), parts)
}

/// A small read-write buffer bound where a pass's entry point declares but does not use a
/// read-write binding (the layout is built from the pass's full binding list).
fn scratch(cx: &GpuBuildCx, label: &str) -> Result<wgpu::Buffer, EngineError> {
    cx.gpu.storage_f32_zeroed(label, 4)
}

/// GPU: `wgsl/kinematic_joint.wgsl`, one invocation per joint scalar.
impl GpuSystem for JointDrive {
    fn name(&self) -> &str {
        "mpm.joint_drive"
    }
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError> {
        let n = self.scale.len();
        if self.lo.len() != n || self.hi.len() != n {
            return Err(EngineError::Gpu(format!(
                "mpm.joint_drive: {n} scales but {} lower and {} upper limits",
                self.lo.len(),
                self.hi.len()
            )));
        }
        let params = KinParams::of(cx, n, self.substeps)?;
        let mut rows: Vec<f32> =
            (0..n).flat_map(|k| [self.scale[k], self.lo[k], self.hi[k]]).map(|x| x as f32).collect();
        rows.resize(rows.len().max(4), 0.0);
        let buffers = vec![
            cx.uniform("mpm.joint_drive", &params)?,
            cx.gpu.storage_f32("mpm.joint_drive limits", &rows)?,
            scratch(cx, "mpm.joint_drive scratch")?,
        ];
        let fwd = vec![
            Bind::read(state("kin_q")),
            Bind::rw(state("kin_qd")),
            Bind::read(control(&self.act)),
            Bind::read(Src::Own(1)),
            Bind::rw(Src::Own(2)),
            Bind::rw(Src::Own(2)),
            Bind::uniform(0),
        ];
        let adj = vec![
            Bind::read(state("kin_q")),
            Bind::rw(adj_state("kin_qd")),
            Bind::read(control(&self.act)),
            Bind::read(Src::Own(1)),
            Bind::rw(adj_state("kin_q")),
            Bind::rw(adj_control(&self.act)),
            Bind::uniform(0),
        ];
        let src = source(&[include_str!("wgsl/kinematic_joint.wgsl")]);
        let count = params.count as usize;
        Ok(GpuKernels {
            forward: vec![Pass::new(cx, "mpm.joint_drive", &src, "drive_forward", fwd, count)?],
            adjoint: vec![Pass::new(cx, "mpm.joint_drive adjoint", &src, "drive_adjoint", adj, count)?],
            buffers,
        })
    }
}

/// GPU: `wgsl/kinematic_integrate.wgsl`, forward on (q, q̇), adjoint on (q̄̇, q̄).
impl GpuSystem for JointIntegrate {
    fn name(&self) -> &str {
        "mpm.joint_integrate"
    }
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError> {
        let params = KinParams::of(cx, self.dof, 1)?;
        let src = source(&[include_str!("wgsl/kinematic_integrate.wgsl")]);
        let n = params.count as usize;
        let pass = |label: &str, dst: Src, from: Src| {
            Pass::new(cx, label, &src, "integrate", vec![Bind::rw(dst), Bind::read(from), Bind::uniform(0)], n)
        };
        Ok(GpuKernels {
            forward: vec![pass("mpm.joint_integrate", state("kin_q"), state("kin_qd"))?],
            adjoint: vec![pass("mpm.joint_integrate adjoint", adj_state("kin_qd"), adj_state("kin_q"))?],
            buffers: vec![cx.uniform("mpm.joint_integrate", &params)?],
        })
    }
}

/// The tree as the FK kernel reads it: 12 floats per row, row 0 the base (position,
/// rotation), row 1 + k joint k (parent or −1, offset, rotation, axis, 0).
fn tree_rows(fk: &KinematicFk) -> Vec<f32> {
    let t = &fk.tree;
    let mut rows = vec![0.0f64; 12 * (1 + t.dof())];
    rows[0..3].copy_from_slice(&t.base_pos);
    rows[3..7].copy_from_slice(&t.base_rot);
    for (k, j) in t.joints.iter().enumerate() {
        let r = &mut rows[12 * (1 + k)..12 * (2 + k)];
        r[0] = j.parent.map_or(-1.0, |p| p as f64);
        r[1..4].copy_from_slice(&j.offset);
        r[4..8].copy_from_slice(&j.rotation);
        r[8..11].copy_from_slice(&j.axis);
    }
    rows.into_iter().map(|x| x as f32).collect()
}

/// GPU: `wgsl/kinematic_fk.wgsl`, one invocation per env (the tree is sequential).
impl GpuSystem for KinematicFk {
    fn name(&self) -> &str {
        "mpm.kinematic_fk"
    }
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError> {
        let n = self.tree.dof();
        if n == 0 {
            return Err(EngineError::Gpu("mpm.kinematic_fk: the tree has no joints".into()));
        }
        self.tree.validate().map_err(|e| EngineError::Gpu(format!("mpm.kinematic_fk: {e}")))?;
        let params = KinParams::of(cx, n, 1)?;
        let buffers = vec![
            cx.uniform("mpm.kinematic_fk", &params)?,
            cx.gpu.storage_f32("mpm.kinematic_fk tree", &tree_rows(self))?,
            scratch(cx, "mpm.kinematic_fk scratch")?,
        ];
        let fwd = vec![
            Bind::read(state("kin_q")),
            Bind::read(state("kin_qd")),
            Bind::rw(state("body_pose")),
            Bind::rw(state("body_pose_next")),
            Bind::read(Src::Own(1)),
            Bind::rw(Src::Own(2)),
            Bind::rw(Src::Own(2)),
            Bind::uniform(0),
        ];
        let adj = vec![
            Bind::read(state("kin_q")),
            Bind::read(state("kin_qd")),
            Bind::rw(adj_state("body_pose")),
            Bind::rw(adj_state("body_pose_next")),
            Bind::read(Src::Own(1)),
            Bind::rw(adj_state("kin_q")),
            Bind::rw(adj_state("kin_qd")),
            Bind::uniform(0),
        ];
        let src = source(&[&format!("const NJ: u32 = {n}u;"), include_str!("wgsl/kinematic_fk.wgsl")]);
        Ok(GpuKernels {
            forward: vec![Pass::new(cx, "mpm.kinematic_fk", &src, "fk_forward", fwd, cx.num_envs)?],
            adjoint: vec![Pass::new(cx, "mpm.kinematic_fk adjoint", &src, "fk_adjoint", adj, cx.num_envs)?],
            buffers,
        })
    }
}
