//! Kinematic hinge trees that pose the bodies of a [`Bodies`](super::Bodies) collider (the links
//! of HandFlip's hand), and the three systems that move them:
//!
//! - `mpm.joint_drive` (Step stage): Δ_k = clamp(q_k + s_k a_k, lo_k, hi_k) − q_k (kinematic joint
//!   deltas clipped to the limits, rewarped.md §4 "joint_q += action/substeps"), q̇ = Δ / (K Δt);
//! - `mpm.kinematic_fk` (Substep stage, before `mpm.transfer`): `body_pose` = FK(q) and
//!   `body_pose_next` = FK(q + Δt q̇), the poses at the substep's start and end from which the
//!   transfer takes the body velocity at a node (rewarped.md §4);
//! - `mpm.joint_integrate` (Substep stage, after the transfer): q ← q + Δt q̇.
//!
//! State: `kin_q`, `kin_qd` [1, n] (joint angles and their rate over the env step),
//! `body_pose`, `body_pose_next` [n, 7] (x, quaternion xyzw; one body per joint).
//!
//! FK composes quaternions along the tree (no matrix → quaternion conversion, so no branch):
//! for joint k with parent frame (p_π, q_π), joint frame offset (o_k, r_k) and unit axis a_k,
//!   p_k = p_π + R(q_π) o_k,   q_k = q_π ⊗ r_k ⊗ (sin(θ_k/2) a_k, cos(θ_k/2)).
//! Its adjoint is a replay on the `Rev` tape with the env's joint coordinates as the only
//! leaves: a few thousand tape nodes per env-substep for 24 joints, small next to the transfer;
//! the drive and integrate adjoints are written by hand. GPU mirrors (forward and adjoint, the FK
//! adjoint hand-written): `kinematic_gpu.rs`.

use diffsim_engine::reverse::{clear_tape, gradients};
use diffsim_engine::{ColumnAccess, ModelView, Real, Rev, StepCx, System, View, ViewMut};

use crate::articulation::spatial::{Quat, mat_vec, quat_mul, quat_to_mat};

/// One hinge joint; the body it moves is the joint's child link (same index).
#[derive(Clone, Debug, PartialEq)]
pub struct Hinge {
    /// Parent joint's body, or `None` for the tree's base.
    pub parent: Option<usize>,
    /// Joint frame in the parent body's frame: position and rotation (quaternion xyzw).
    pub offset: [f64; 3],
    pub rotation: [f64; 4],
    /// Unit rotation axis in the joint frame.
    pub axis: [f64; 3],
    /// Joint limits, rad.
    pub lo: f64,
    pub hi: f64,
}

/// A fixed-base tree of hinges, ordered so that every parent precedes its children.
#[derive(Clone, Debug, PartialEq)]
pub struct KinematicTree {
    pub base_pos: [f64; 3],
    /// Base orientation (quaternion xyzw).
    pub base_rot: [f64; 4],
    pub joints: Vec<Hinge>,
}

impl KinematicTree {
    pub fn dof(&self) -> usize {
        self.joints.len()
    }

    /// Checks the ordering and the unit axes and quaternions.
    pub fn validate(&self) -> Result<(), String> {
        let unit = |v: &[f64]| (v.iter().map(|x| x * x).sum::<f64>().sqrt() - 1.0).abs() < 1e-9;
        if !unit(&self.base_rot) {
            return Err("base_rot: expected a unit quaternion".into());
        }
        for (k, j) in self.joints.iter().enumerate() {
            if j.parent.is_some_and(|p| p >= k) {
                return Err(format!("joints[{k}].parent: expected an index < {k}"));
            }
            if !unit(&j.axis) || !unit(&j.rotation) {
                return Err(format!("joints[{k}]: expected a unit axis and a unit rotation"));
            }
            if j.lo > j.hi {
                return Err(format!("joints[{k}]: expected lo ≤ hi, got {} > {}", j.lo, j.hi));
            }
        }
        Ok(())
    }

    /// Body poses (x, quaternion xyzw) for joint angles `q` into `out` [7 n] (module docs).
    pub fn poses<R: Real>(&self, q: &[R], out: &mut [R]) {
        let c = |v: [f64; 4]| v.map(R::from_f64);
        let base = (self.base_pos.map(R::from_f64), c(self.base_rot));
        for (k, j) in self.joints.iter().enumerate() {
            let (pp, qp): ([R; 3], Quat<R>) = match j.parent {
                None => base,
                Some(p) => ([out[7 * p], out[7 * p + 1], out[7 * p + 2]], [0, 1, 2, 3].map(|i| out[7 * p + 3 + i])),
            };
            let o = mat_vec(&quat_to_mat(qp), j.offset.map(R::from_f64));
            let (s, cth) = (q[k] * R::from_f64(0.5)).sin_cos();
            let hinge = [R::from_f64(j.axis[0]) * s, R::from_f64(j.axis[1]) * s, R::from_f64(j.axis[2]) * s, cth];
            let qk = quat_mul(quat_mul(qp, c(j.rotation)), hinge);
            for d in 0..3 {
                out[7 * k + d] = pp[d] + o[d];
            }
            out[7 * k + 3..7 * k + 7].copy_from_slice(&qk);
        }
    }
}

/// `mpm.kinematic_fk`: `body_pose` = FK(`kin_q`), `body_pose_next` = FK(`kin_q` + Δt `kin_qd`).
#[derive(Clone, Debug)]
pub struct KinematicFk {
    pub tree: KinematicTree,
}

impl<R: Real> System<R> for KinematicFk {
    fn name(&self) -> &str {
        "mpm.kinematic_fk"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        let n = self.tree.dof();
        vec![
            ColumnAccess::state("kin_q", n),
            ColumnAccess::state("kin_qd", n),
            ColumnAccess::write("body_pose", 7),
            ColumnAccess::write("body_pose_next", 7),
        ]
    }
    fn forward(&self, cx: &StepCx, model: &ModelView, _: &View<R>, state: &mut ViewMut<R>) {
        let n = self.tree.dof();
        let dt = R::from_f64(cx.dt);
        let [q, qd, p0, p1] = state.cols_mut(["kin_q", "kin_qd", "body_pose", "body_pose_next"]);
        let mut qn = vec![R::zero(); n];
        for e in 0..model.num_envs() {
            let (qe, qde) = (&q[n * e..n * (e + 1)], &qd[n * e..n * (e + 1)]);
            self.tree.poses(qe, &mut p0[7 * n * e..7 * n * (e + 1)]);
            for ((qn, &q), &qd) in qn.iter_mut().zip(qe).zip(qde) {
                *qn = q + dt * qd;
            }
            self.tree.poses(&qn, &mut p1[7 * n * e..7 * n * (e + 1)]);
        }
    }
    /// The FK replayed on the reverse tape per env with only that env's `kin_q`, `kin_qd` as
    /// leaves (2n; the generic `replay_adjoint` would make every state scalar, particles
    /// included, a leaf), seeded with the pose adjoints, which are consumed (overwritten).
    fn adjoint(
        &self,
        cx: &StepCx,
        model: &ModelView,
        _: &View<R>,
        pre: &View<R>,
        adj: &mut ViewMut<R>,
        _: &mut ViewMut<R>,
    ) {
        let n = self.tree.dof();
        let dt = Rev::from_f64(cx.dt);
        let (q, qd) = (pre.col("kin_q"), pre.col("kin_qd"));
        let [aq, aqd, a0, a1] = adj.cols_mut(["kin_q", "kin_qd", "body_pose", "body_pose_next"]);
        let (mut p0, mut p1) = (vec![Rev::zero(); 7 * n], vec![Rev::zero(); 7 * n]);
        for e in 0..model.num_envs() {
            let env = n * e..n * (e + 1);
            let poses = 7 * n * e..7 * n * (e + 1);
            clear_tape();
            // The 2n leaves are the tape's first nodes, in creation order.
            let ql: Vec<Rev> = q[env.clone()].iter().map(|x| Rev::leaf(x.to_f64())).collect();
            let qdl: Vec<Rev> = qd[env.clone()].iter().map(|x| Rev::leaf(x.to_f64())).collect();
            self.tree.poses(&ql, &mut p0);
            let qn: Vec<Rev> = ql.iter().zip(&qdl).map(|(&q, &qd)| q + dt * qd).collect();
            self.tree.poses(&qn, &mut p1);
            let seeds = p0.iter().zip(&a0[poses.clone()]).chain(p1.iter().zip(&a1[poses.clone()]));
            let g = gradients(seeds.map(|(&o, a)| (o, a.to_f64())));
            for k in 0..n {
                aq[n * e + k] += R::from_f64(g[k]);
                aqd[n * e + k] += R::from_f64(g[n + k]);
            }
            a0[poses.clone()].fill(R::zero());
            a1[poses].fill(R::zero());
        }
        clear_tape();
    }
    fn gpu(&self) -> Option<Box<dyn diffsim_engine::gpu_sim::GpuSystem>> {
        Some(Box::new(self.clone()))
    }
}

/// `mpm.joint_drive`: `kin_qd` for this env step from the action `act` [1, n] (module docs).
#[derive(Clone, Debug)]
pub struct JointDrive {
    pub act: String,
    /// Joint change per unit action, rad.
    pub scale: Vec<f64>,
    pub lo: Vec<f64>,
    pub hi: Vec<f64>,
    pub substeps: usize,
}

impl JointDrive {
    /// The drive of `tree`'s joints, its limits, and a common `scale`.
    pub fn of(tree: &KinematicTree, act: &str, scale: f64, substeps: usize) -> Self {
        Self {
            act: act.into(),
            scale: vec![scale; tree.dof()],
            lo: tree.joints.iter().map(|j| j.lo).collect(),
            hi: tree.joints.iter().map(|j| j.hi).collect(),
            substeps,
        }
    }
}

impl<R: Real> System<R> for JointDrive {
    fn name(&self) -> &str {
        "mpm.joint_drive"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        let n = self.scale.len();
        vec![ColumnAccess::state("kin_q", n), ColumnAccess::control(&self.act, n), ColumnAccess::write("kin_qd", n)]
    }
    fn forward(&self, cx: &StepCx, model: &ModelView, control: &View<R>, state: &mut ViewMut<R>) {
        let n = self.scale.len();
        let act = control.col(&self.act);
        let inv = R::from_f64(1.0 / (self.substeps as f64 * cx.dt));
        let [q, qd] = state.cols_mut(["kin_q", "kin_qd"]);
        for e in 0..model.num_envs() {
            for k in 0..n {
                let i = n * e + k;
                let target = (q[i] + R::from_f64(self.scale[k]) * act[i])
                    .max(R::from_f64(self.lo[k]))
                    .min(R::from_f64(self.hi[k]));
                qd[i] = (target - q[i]) * inv;
            }
        }
    }
    /// q̇ = (clamp(raw) − q)/(KΔt), raw = q + s a: inside the limits ∂q̇/∂a = s/(KΔt) and
    /// ∂q̇/∂q = 0; where clipped ∂q̇/∂a = 0 and ∂q̇/∂q = −1/(KΔt); `kin_qd` is overwritten, so its adjoint is consumed.
    fn adjoint(
        &self,
        cx: &StepCx,
        model: &ModelView,
        control: &View<R>,
        pre: &View<R>,
        adj: &mut ViewMut<R>,
        adj_control: &mut ViewMut<R>,
    ) {
        let n = self.scale.len();
        let act = control.col(&self.act);
        let q = pre.col("kin_q");
        let inv = R::from_f64(1.0 / (self.substeps as f64 * cx.dt));
        let [aq, aqd] = adj.cols_mut(["kin_q", "kin_qd"]);
        let aact = adj_control.col_mut(&self.act);
        for e in 0..model.num_envs() {
            for k in 0..n {
                let i = n * e + k;
                let g = aqd[i] * inv;
                let raw = (q[i] + R::from_f64(self.scale[k]) * act[i]).to_f64();
                // Inside the limits ∂q̇/∂q = (1 − 1)/(KΔt) = 0 exactly: adding g then −g
                // would round q̄ by an ulp of g (which is large: 1/(KΔt) ~ 50).
                if raw >= self.lo[k] && raw <= self.hi[k] {
                    aact[i] += g * R::from_f64(self.scale[k]);
                } else {
                    aq[i] -= g;
                }
                aqd[i] = R::zero();
            }
        }
    }
    fn gpu(&self) -> Option<Box<dyn diffsim_engine::gpu_sim::GpuSystem>> {
        Some(Box::new(self.clone()))
    }
}

/// `mpm.joint_integrate`: `kin_q` ← `kin_q` + Δt `kin_qd` (adjoint: q̄d += Δt q̄).
#[derive(Clone, Copy, Debug)]
pub struct JointIntegrate {
    pub dof: usize,
}

impl<R: Real> System<R> for JointIntegrate {
    fn name(&self) -> &str {
        "mpm.joint_integrate"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        vec![
            ColumnAccess::state("kin_q", self.dof),
            ColumnAccess::write("kin_q", self.dof),
            ColumnAccess::state("kin_qd", self.dof),
        ]
    }
    fn forward(&self, cx: &StepCx, _: &ModelView, _: &View<R>, state: &mut ViewMut<R>) {
        let dt = R::from_f64(cx.dt);
        let [q, qd] = state.cols_mut(["kin_q", "kin_qd"]);
        for (q, &qd) in q.iter_mut().zip(qd.iter()) {
            *q += dt * qd;
        }
    }
    fn adjoint(&self, cx: &StepCx, _: &ModelView, _: &View<R>, _: &View<R>, adj: &mut ViewMut<R>, _: &mut ViewMut<R>) {
        let dt = R::from_f64(cx.dt);
        let [aq, aqd] = adj.cols_mut(["kin_q", "kin_qd"]);
        for (aq, aqd) in aq.iter().zip(aqd.iter_mut()) {
            *aqd += dt * *aq;
        }
    }
    fn gpu(&self) -> Option<Box<dyn diffsim_engine::gpu_sim::GpuSystem>> {
        Some(Box::new(*self))
    }
}
