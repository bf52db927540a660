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
use diffsim_engine::{Dual, ModelView, Real};

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

/// Adjoints of the outputs of [`kinematics`] (same indexing), the input of
/// [`kinematics_adjoint`], which also uses them as scratch (parents receive their children's
/// contributions).
#[derive(Clone, Debug, Default)]
pub struct KinematicsBar {
    pub rot: Vec<M3<f64>>,
    pub pos: Vec<V3<f64>>,
    pub twist: Vec<V6<f64>>,
    pub bias: Vec<V6<f64>>,
    pub s: Vec<V6<f64>>,
}

impl KinematicsBar {
    /// All zero, for `nb` bodies and `nd` dofs (buffers reused).
    pub fn reset(&mut self, nb: usize, nd: usize) {
        fn fill<T: Copy>(v: &mut Vec<T>, n: usize, z: T) {
            v.clear();
            v.resize(n, z);
        }
        fill(&mut self.rot, nb, [[0.0; 3]; 3]);
        fill(&mut self.pos, nb, [0.0; 3]);
        fill(&mut self.twist, nb, [0.0; 6]);
        fill(&mut self.bias, nb, [0.0; 6]);
        fill(&mut self.s, nd, [0.0; 6]);
    }
}

/// m += s a bᵀ.
fn add_outer(m: &mut M3<f64>, a: V3<f64>, b: V3<f64>, s: f64) {
    for i in 0..3 {
        for j in 0..3 {
            m[i][j] += s * a[i] * b[j];
        }
    }
}

fn add_m3(a: &mut M3<f64>, b: &M3<f64>) {
    for i in 0..3 {
        for j in 0..3 {
            a[i][j] += b[i][j];
        }
    }
}

/// c = a × b: ā += b × c̄, b̄ += c̄ × a.
fn cross_adjoint(a: V3<f64>, b: V3<f64>, c_bar: V3<f64>, a_bar: &mut V3<f64>, b_bar: &mut V3<f64>) {
    *a_bar = add(*a_bar, cross(b, c_bar));
    *b_bar = add(*b_bar, cross(c_bar, a));
}

fn split6(v: V6<f64>) -> (V3<f64>, V3<f64>) {
    ([v[0], v[1], v[2]], [v[3], v[4], v[5]])
}

/// Adjoint of the spatial motion cross product g = m ×ₘ u (`cross_motion`): adds m̄, ū.
pub fn cross_motion_adjoint(m: V6<f64>, u: V6<f64>, g_bar: V6<f64>, m_bar: &mut V6<f64>, u_bar: &mut V6<f64>) {
    let ((w, v), (uw, uv)) = (split6(m), split6(u));
    let (ga, gb) = split6(g_bar);
    let (mut w_b, mut v_b, mut uw_b, mut uv_b) = ([0.0; 3], [0.0; 3], [0.0; 3], [0.0; 3]);
    cross_adjoint(w, uw, ga, &mut w_b, &mut uw_b);
    cross_adjoint(w, uv, gb, &mut w_b, &mut uv_b);
    cross_adjoint(v, uw, gb, &mut v_b, &mut uw_b);
    *m_bar = add6(*m_bar, [w_b[0], w_b[1], w_b[2], v_b[0], v_b[1], v_b[2]]);
    *u_bar = add6(*u_bar, [uw_b[0], uw_b[1], uw_b[2], uv_b[0], uv_b[1], uv_b[2]]);
}

/// Adjoint of the spatial force cross product g = m ×* f (`cross_force`): adds m̄, f̄.
pub fn cross_force_adjoint(m: V6<f64>, f: V6<f64>, g_bar: V6<f64>, m_bar: &mut V6<f64>, f_bar: &mut V6<f64>) {
    let ((w, v), (n, fl)) = (split6(m), split6(f));
    let (ga, gb) = split6(g_bar);
    let (mut w_b, mut v_b, mut n_b, mut fl_b) = ([0.0; 3], [0.0; 3], [0.0; 3], [0.0; 3]);
    cross_adjoint(w, n, ga, &mut w_b, &mut n_b);
    cross_adjoint(v, fl, ga, &mut v_b, &mut fl_b);
    cross_adjoint(w, fl, gb, &mut w_b, &mut fl_b);
    *m_bar = add6(*m_bar, [w_b[0], w_b[1], w_b[2], v_b[0], v_b[1], v_b[2]]);
    *f_bar = add6(*f_bar, [n_b[0], n_b[1], n_b[2], fl_b[0], fl_b[1], fl_b[2]]);
}

/// Adjoint of [`body_inertia`]: given Ī (the adjoint of body k's world spatial inertia), adds
/// R̄ and x̄ of body k. With I = [[I_c − m [c]×², m [c]×], [−m [c]×, m 1]], c = x + R c_b and
/// I_c = R I_b Rᵀ: Ī_c = Ī_TL; [c]×‾ = m (Ī_TR − Ī_BL) + P̄ [c]×ᵀ + [c]×ᵀ P̄ with P̄ = −m Ī_TL
/// (P = [c]×²); c̄ from the skew entries; R̄ += (Ī_c + Ī_cᵀ) R I_b + c̄ c_bᵀ; x̄ += c̄.
pub fn body_inertia_adjoint(
    m: &ArticulationModel,
    kin: &Kinematics<f64>,
    k: usize,
    i_bar: &M6<f64>,
    bar: &mut KinematicsBar,
) {
    let rot = &kin.rot[k];
    let com: V3<f64> = ArticulationModel::f3(m.com, k);
    let c = add(kin.pos[k], mat_vec(rot, com));
    let mass = m.mass[k];
    let cx: M3<f64> = [[0.0, -c[2], c[1]], [c[2], 0.0, -c[0]], [-c[1], c[0], 0.0]];
    let block =
        |r: usize, s: usize| -> M3<f64> { std::array::from_fn(|i| std::array::from_fn(|j| i_bar[r + i][s + j])) };
    let (tl, tr, bl) = (block(0, 0), block(0, 3), block(3, 0));
    let p_bar: M3<f64> = std::array::from_fn(|i| std::array::from_fn(|j| -mass * tl[i][j]));
    let cxt = transpose(&cx);
    let (a, b) = (mat_mul(&p_bar, &cxt), mat_mul(&cxt, &p_bar));
    let cx_bar: M3<f64> =
        std::array::from_fn(|i| std::array::from_fn(|j| mass * (tr[i][j] - bl[i][j]) + a[i][j] + b[i][j]));
    let c_bar = [cx_bar[2][1] - cx_bar[1][2], cx_bar[0][2] - cx_bar[2][0], cx_bar[1][0] - cx_bar[0][1]];
    let ib: M3<f64> = std::array::from_fn(|i| std::array::from_fn(|j| m.inertia[9 * k + 3 * i + j]));
    let sym: M3<f64> = std::array::from_fn(|i| std::array::from_fn(|j| tl[i][j] + tl[j][i]));
    add_m3(&mut bar.rot[k], &mat_mul(&mat_mul(&sym, rot), &ib));
    add_outer(&mut bar.rot[k], c_bar, com, 1.0);
    bar.pos[k] = add(bar.pos[k], c_bar);
}

/// Adjoint of [`kinematics`] at (q, q̇), whose outputs are `kin`: pulls `bar` (∂L/∂ of every
/// output) back into `q_bar`, `qd_bar` (added). Bodies in reverse order, each passing its
/// parent's share (R̄_p, x̄_p, v̄_p) up; per joint kind the derivatives of the module-doc
/// equations (the quaternion → matrix map by `quat_to_mat_adjoint`, the axis–angle map by a
/// dual number). `bar` is left holding partial sums.
pub fn kinematics_adjoint(
    m: &ArticulationModel,
    q: &[f64],
    qd: &[f64],
    kin: &Kinematics<f64>,
    bar: &mut KinematicsBar,
    q_bar: &mut [f64],
    qd_bar: &mut [f64],
) {
    let ident: M3<f64> = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    for k in (0..m.len()).rev() {
        let root = m.parent[k] == WORLD;
        let (rp, xp, vp) = if root {
            (ident, [0.0; 3], [0.0; 6])
        } else {
            let p = m.parent[k] as usize;
            (kin.rot[p], kin.pos[p], kin.twist[p])
        };
        let ap: V3<f64> = ArticulationModel::f3(m.parent_anchor, k);
        let ac: V3<f64> = ArticulationModel::f3(m.child_anchor, k);
        let r = add(xp, mat_vec(&rp, ap));
        let u = [m.axis[3 * k], m.axis[3 * k + 1], m.axis[3 * k + 2]];
        let u_w = mat_vec(&rp, u);
        let (qs, ds, nd) = (m.q_start[k] as usize, m.qd_start[k] as usize, m.dofs(k));
        let (rot_bar, pos_bar, twist_bar, bias_bar) = (bar.rot[k], bar.pos[k], bar.twist[k], bar.bias[k]);
        let (mut rp_bar, mut r_bar, mut uw_bar, mut vp_bar) = ([[0.0; 3]; 3], [0.0; 3], [0.0; 3], [0.0; 6]);

        // twist = v_p + S q̇, bias = v_p ×ₘ (S q̇) (not for a free root).
        let mut sqd = [0.0; 6];
        for i in 0..nd {
            sqd = add6(sqd, scale6(kin.s[ds + i], qd[ds + i]));
        }
        vp_bar = add6(vp_bar, twist_bar);
        let mut sqd_bar = twist_bar;
        if m.kind[k] != KIND_FREE {
            cross_motion_adjoint(vp, sqd, bias_bar, &mut vp_bar, &mut sqd_bar);
        }
        for i in 0..nd {
            bar.s[ds + i] = add6(bar.s[ds + i], scale6(sqd_bar, qd[ds + i]));
            qd_bar[ds + i] += dot6(kin.s[ds + i], sqd_bar);
        }

        match m.kind[k] {
            KIND_FREE => {
                // x = q[0..3], R = R(quat); S constant.
                for i in 0..3 {
                    q_bar[qs + i] += pos_bar[i];
                }
                let quat = [q[qs + 3], q[qs + 4], q[qs + 5], q[qs + 6]];
                let g = quat_to_mat_adjoint(quat, &rot_bar);
                for i in 0..4 {
                    q_bar[qs + 3 + i] += g[i];
                }
            }
            KIND_REVOLUTE => {
                // x = r − R a_c; S = (u_w, r × u_w); R = R_p A(θ).
                let mut rot_bar = rot_bar;
                r_bar = add(r_bar, pos_bar);
                add_outer(&mut rot_bar, pos_bar, ac, -1.0);
                let s_bar = bar.s[ds];
                let (sw, sv) = split6(s_bar);
                uw_bar = add(uw_bar, sw);
                cross_adjoint(r, u_w, sv, &mut r_bar, &mut uw_bar);
                let a = axis_angle(u, q[qs]);
                add_m3(&mut rp_bar, &mat_mul(&rot_bar, &transpose(&a)));
                let a_bar = mat_mul(&transpose(&rp), &rot_bar);
                // One input: a forward-mode (dual) derivative dA/dθ is cheapest.
                let da = axis_angle(u, Dual::new(q[qs], 1.0));
                q_bar[qs] += (0..9).map(|i| a_bar[i / 3][i % 3] * da[i / 3][i % 3].t).sum::<f64>();
            }
            KIND_PRISMATIC => {
                // x = r + q u_w − R_p a_c; S = (0, u_w); R = R_p.
                add_m3(&mut rp_bar, &rot_bar);
                r_bar = add(r_bar, pos_bar);
                uw_bar = add(uw_bar, scale(pos_bar, q[qs]));
                q_bar[qs] += dot(u_w, pos_bar);
                add_outer(&mut rp_bar, pos_bar, ac, -1.0);
                let (_, sv) = split6(bar.s[ds]);
                uw_bar = add(uw_bar, sv);
            }
            KIND_BALL => {
                // x = r − R a_c; S_i = (e_i, r × e_i), e_i = column i of R_p; R = R_p R(quat).
                let mut rot_bar = rot_bar;
                r_bar = add(r_bar, pos_bar);
                add_outer(&mut rot_bar, pos_bar, ac, -1.0);
                for i in 0..3 {
                    let e = [rp[0][i], rp[1][i], rp[2][i]];
                    let (sw, sv) = split6(bar.s[ds + i]);
                    let mut e_bar = sw;
                    cross_adjoint(r, e, sv, &mut r_bar, &mut e_bar);
                    for (row, eb) in e_bar.iter().enumerate() {
                        rp_bar[row][i] += eb;
                    }
                }
                let quat = [q[qs], q[qs + 1], q[qs + 2], q[qs + 3]];
                let local = quat_to_mat(quat);
                add_m3(&mut rp_bar, &mat_mul(&rot_bar, &transpose(&local)));
                let l_bar = mat_mul(&transpose(&rp), &rot_bar);
                let g = quat_to_mat_adjoint(quat, &l_bar);
                for i in 0..4 {
                    q_bar[qs + i] += g[i];
                }
            }
            _ => {
                // Fixed: R = R_p, x = r − R_p a_c.
                add_m3(&mut rp_bar, &rot_bar);
                r_bar = add(r_bar, pos_bar);
                add_outer(&mut rp_bar, pos_bar, ac, -1.0);
            }
        }
        if root {
            continue;
        }
        // u_w = R_p u, r = x_p + R_p a_p.
        add_outer(&mut rp_bar, uw_bar, u, 1.0);
        add_outer(&mut rp_bar, r_bar, ap, 1.0);
        let p = m.parent[k] as usize;
        add_m3(&mut bar.rot[p], &rp_bar);
        bar.pos[p] = add(bar.pos[p], r_bar);
        bar.twist[p] = add6(bar.twist[p], vp_bar);
    }
}
