//! Forward kinematics of the articulations of one environment: body poses, spatial twists, the
//! motion subspace S of every dof and the velocity-product terms, all in world coordinates at
//! the world origin. Shared by `articulation.fk`, `articulation.integrate` and the contacts.
//!
//! For body k with parent p (pose R_p, x_p, twist v_p) and pivot r = x_p + R_p a_parent:
//! - revolute about axis u (parent frame): R = R_p R(u, q), x = r − R a_child, S = (R_p u, r × R_p u);
//! - prismatic along u: R = R_p, x = r + q R_p u − R a_child, S = (0, R_p u);
//! - ball (quaternion q, ω in the parent frame): R = R_p R(q), S_i = (R_p e_i, r × R_p e_i);
//! - free (root only): x, R from q; S = I₆ (qd is the twist itself);
//! - fixed: R = R_p, x = r − R a_child.
//!
//! Then v = v_p + S qd, and since S is fixed in the parent frame, Ṡ qd = v_p ×ₘ (S qd)
//! (Featherstone §3, eq. 3.4 in world coordinates), the velocity-product term c.

use diffsim_engine::articulation::{KIND_BALL, KIND_FIXED, KIND_FREE, KIND_PRISMATIC, KIND_REVOLUTE, WORLD};
use diffsim_engine::{ModelView, Real};

use super::spatial::*;

/// One environment's articulation model, as slices of the packed model columns.
pub struct ArticulationModel<'a> {
    pub parent: &'a [u32],
    pub kind: &'a [u32],
    pub q_start: &'a [u32],
    pub qd_start: &'a [u32],
    pub axis: &'a [f64],
    pub parent_anchor: &'a [f64],
    pub child_anchor: &'a [f64],
    pub mass: &'a [f64],
    /// Rotational inertia about the COM in the body frame, `[B, 9]` row-major.
    pub inertia: &'a [f64],
    pub com: &'a [f64],
}

impl<'a> ArticulationModel<'a> {
    /// Bodies per env.
    pub fn bodies(model: &ModelView) -> usize {
        model.count("joint_kind")
    }
    /// Every environment of a model view, looked up by column name once; slice it per env with
    /// [`ArticulationModel::env_of`] (name lookups per env and substep cost ~3% of a step).
    pub fn all(model: &ModelView<'a>) -> Self {
        let t = |name: &str| model.topo(name);
        let p = |name: &str| model.param(name);
        Self {
            parent: t("joint_parent"),
            kind: t("joint_kind"),
            q_start: t("joint_q_start"),
            qd_start: t("joint_qd_start"),
            axis: p("joint_axis"),
            parent_anchor: p("joint_parent_anchor"),
            child_anchor: p("joint_child_anchor"),
            mass: p("body_mass"),
            inertia: p("body_inertia"),
            com: p("body_com"),
        }
    }
    /// Environment `e` of a model returned by [`ArticulationModel::all`] with `nb` bodies per env.
    pub fn env_of(&self, e: usize, nb: usize) -> Self {
        let t = |s: &'a [u32]| &s[e * nb..(e + 1) * nb];
        let p = |s: &'a [f64], w: usize| &s[e * nb * w..(e + 1) * nb * w];
        Self {
            parent: t(self.parent),
            kind: t(self.kind),
            q_start: t(self.q_start),
            qd_start: t(self.qd_start),
            axis: p(self.axis, 3),
            parent_anchor: p(self.parent_anchor, 3),
            child_anchor: p(self.child_anchor, 3),
            mass: p(self.mass, 1),
            inertia: p(self.inertia, 9),
            com: p(self.com, 3),
        }
    }
    /// Environment `e` (chunk-local) of a model view.
    pub fn env(model: &ModelView<'a>, e: usize) -> Self {
        Self::all(model).env_of(e, Self::bodies(model))
    }
    pub fn len(&self) -> usize {
        self.kind.len()
    }
    pub fn is_empty(&self) -> bool {
        self.kind.is_empty()
    }
    fn f3<R: Real>(s: &[f64], k: usize) -> V3<R> {
        [R::from_f64(s[3 * k]), R::from_f64(s[3 * k + 1]), R::from_f64(s[3 * k + 2])]
    }
    /// Number of velocity dofs of body k's joint.
    pub fn dofs(&self, k: usize) -> usize {
        diffsim_engine::articulation::joint_dims(self.kind[k]).1
    }
}

/// Kinematic quantities of every body (index = body) and every dof (index = dof).
#[derive(Clone, Debug, Default)]
pub struct Kinematics<R> {
    pub rot: Vec<M3<R>>,
    pub pos: Vec<V3<R>>,
    pub twist: Vec<V6<R>>,
    /// Velocity-product acceleration Ṡ qd of each body's joint.
    pub bias: Vec<V6<R>>,
    /// Motion subspace column of each dof.
    pub s: Vec<V6<R>>,
}

pub fn kinematics<R: Real>(m: &ArticulationModel, q: &[R], qd: &[R]) -> Kinematics<R> {
    let mut out = Kinematics { rot: vec![], pos: vec![], twist: vec![], bias: vec![], s: vec![] };
    kinematics_into(m, q, qd, &mut out);
    out
}

/// [`kinematics`] into reused buffers (a substep of a chunk of envs then allocates nothing).
pub fn kinematics_into<R: Real>(m: &ArticulationModel, q: &[R], qd: &[R], k_out: &mut Kinematics<R>) {
    let nb = m.len();
    let zero3 = [R::zero(); 3];
    let ident: M3<R> = std::array::from_fn(|i| std::array::from_fn(|j| R::from_f64(if i == j { 1.0 } else { 0.0 })));
    for v in [&mut k_out.twist, &mut k_out.bias] {
        v.clear();
        v.reserve(nb);
    }
    k_out.rot.clear();
    k_out.pos.clear();
    k_out.s.clear();
    k_out.s.resize(qd.len(), [R::zero(); 6]);
    for k in 0..nb {
        let (rp, xp, vp) = if m.parent[k] == WORLD {
            (ident, zero3, [R::zero(); 6])
        } else {
            let p = m.parent[k] as usize;
            (k_out.rot[p], k_out.pos[p], k_out.twist[p])
        };
        let r = add(xp, mat_vec(&rp, ArticulationModel::f3(m.parent_anchor, k)));
        let ac: V3<R> = ArticulationModel::f3(m.child_anchor, k);
        let (qs, ds) = (m.q_start[k] as usize, m.qd_start[k] as usize);
        let u = [m.axis[3 * k], m.axis[3 * k + 1], m.axis[3 * k + 2]];
        let u_w = mat_vec(&rp, v3(u[0], u[1], u[2]));
        let (rot, pos) = match m.kind[k] {
            KIND_FREE => {
                let quat = [q[qs + 3], q[qs + 4], q[qs + 5], q[qs + 6]];
                for i in 0..6 {
                    k_out.s[ds + i] = std::array::from_fn(|j| R::from_f64(if i == j { 1.0 } else { 0.0 }));
                }
                (quat_to_mat(quat), [q[qs], q[qs + 1], q[qs + 2]])
            }
            KIND_REVOLUTE => {
                let rot = mat_mul(&rp, &axis_angle(u, q[qs]));
                let rxu = cross(r, u_w);
                k_out.s[ds] = [u_w[0], u_w[1], u_w[2], rxu[0], rxu[1], rxu[2]];
                (rot, sub(r, mat_vec(&rot, ac)))
            }
            KIND_PRISMATIC => {
                k_out.s[ds] = [R::zero(), R::zero(), R::zero(), u_w[0], u_w[1], u_w[2]];
                (rp, sub(add(r, scale(u_w, q[qs])), mat_vec(&rp, ac)))
            }
            KIND_BALL => {
                let rot = mat_mul(&rp, &quat_to_mat([q[qs], q[qs + 1], q[qs + 2], q[qs + 3]]));
                for (i, s) in k_out.s[ds..ds + 3].iter_mut().enumerate() {
                    let e = [rp[0][i], rp[1][i], rp[2][i]];
                    let rxe = cross(r, e);
                    *s = [e[0], e[1], e[2], rxe[0], rxe[1], rxe[2]];
                }
                (rot, sub(r, mat_vec(&rot, ac)))
            }
            _ => {
                debug_assert_eq!(m.kind[k], KIND_FIXED);
                (rp, sub(r, mat_vec(&rp, ac)))
            }
        };
        let mut sqd = [R::zero(); 6];
        for i in 0..m.dofs(k) {
            sqd = add6(sqd, scale6(k_out.s[ds + i], qd[ds + i]));
        }
        let twist = add6(vp, sqd);
        let bias = if m.kind[k] == KIND_FREE { [R::zero(); 6] } else { cross_motion(vp, sqd) };
        k_out.rot.push(rot);
        k_out.pos.push(pos);
        k_out.twist.push(twist);
        k_out.bias.push(bias);
    }
}

/// World centre of mass and rotational inertia about it of body k.
pub fn body_inertia<R: Real>(m: &ArticulationModel, kin: &Kinematics<R>, k: usize) -> M6<R> {
    let rot = &kin.rot[k];
    let c = add(kin.pos[k], mat_vec(rot, ArticulationModel::f3(m.com, k)));
    // I_c = R I_body Rᵀ.
    let ib: M3<R> = std::array::from_fn(|i| std::array::from_fn(|j| R::from_f64(m.inertia[9 * k + 3 * i + j])));
    let ic = mat_mul(&mat_mul(rot, &ib), &transpose(rot));
    spatial_inertia(R::from_f64(m.mass[k]), c, &ic)
}
