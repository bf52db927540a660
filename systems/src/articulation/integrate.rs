//! `articulation.integrate`: forward dynamics of the articulations (Featherstone, world
//! coordinates) and a semi-implicit Euler step of the joint coordinates.
//!
//! Per env and substep:
//! 1. kinematics (poses, twists v_k, motion subspaces S, velocity products c_k);
//! 2. bias forces by RNEA with q̈ = 0 (Featherstone §5.3): a_k = a_parent + c_k with the base
//!    accelerating at −g; f_k = I_k a_k + v_k ×* I_k v_k − f_ext,k; τ_bias = Sᵀ f, children's f
//!    added to their parent's;
//! 3. mass matrix by CRBA (§6.2): composite inertias I^c, H_ij = S_iᵀ I^c_k S_j for dof j of body
//!    k or of one of its ancestors, plus the joint armature on the diagonal;
//! 4. q̈ = H⁻¹ (τ − τ_bias) by Cholesky; q̇' = q̇ + dt q̈;
//! 5. q' = q + dt q̇' for revolute/prismatic; a free root steps its centre-of-mass velocity
//!    (v_c' = v_c + dt a_c, exact momentum for a force-free body), its COM with v_c' and its
//!    quaternion with q̇ = ½ (ω', 0) ⊗ q, then rebuilds v_O' = v_c' − ω' × c'; a ball joint's
//!    quaternion follows q̇ = ½ (ω_parent, 0) ⊗ q; quaternions are renormalized.
//!
//! Adjoint, by the implicit function theorem on inverse dynamics ID(q, q̇, q̈, f) = H(q) q̈ +
//! τ_bias(q, q̇, f) = τ (exact for the step, like a replay of all of it, at the cost of a replay
//! of the O(n) RNEA instead of RNEA + CRBA + Cholesky):
//! (a) the Euler update (q, q̇, q̈) → (q', q̇') is replayed in reverse mode: q̄, q̇̄ through it and
//!     ā = ∂L/∂q̈;
//! (b) λ = H⁻¹ ā, with the forward's Cholesky factor; ∂L/∂τ += λ;
//! (c) dq̈ = H⁻¹ (dτ − ∂ID/∂(q, q̇, f) d(q, q̇, f)) at fixed q̈, so (q, q̇, f)‾ += −(∂ID/∂·)ᵀ λ: the
//!     hand-written adjoint of ID (`Dynamics::inverse_dynamics_adjoint`: RNEA, body inertias and
//!     kinematics in reverse) seeded with −λ. (A reverse-mode replay of ID was ~10× the forward.)

use diffsim_engine::articulation::{KIND_BALL, KIND_FREE, KIND_PRISMATIC, KIND_REVOLUTE, WORLD};
use diffsim_engine::reverse::{clear_tape, gradients};
use diffsim_engine::{ANY_WIDTH, ColumnAccess, ModelView, Real, Rev, StepCx, System, View, ViewMut};

use super::fk::width;
use super::kinematics::{
    ArticulationModel, Kinematics, KinematicsBar, body_inertia, body_inertia_adjoint, cross_force_adjoint,
    kinematics_adjoint, kinematics_into,
};
use super::spatial::*;

#[derive(Clone, Copy, Debug, Default)]
pub struct Integrate;

/// Solves H x = b in place for symmetric positive definite H (n×n, row-major) by Cholesky; H's
/// lower triangle is left holding the factor L (see [`cholesky_solve_factored`]).
pub fn cholesky_solve<R: Real>(h: &mut [R], b: &mut [R], n: usize) {
    for j in 0..n {
        let mut d = h[j * n + j];
        for k in 0..j {
            d -= h[j * n + k] * h[j * n + k];
        }
        let l = d.max(R::from_f64(1e-12)).sqrt();
        h[j * n + j] = l;
        for i in j + 1..n {
            let mut s = h[i * n + j];
            for k in 0..j {
                s -= h[i * n + k] * h[j * n + k];
            }
            h[i * n + j] = s / l;
        }
    }
    cholesky_solve_factored(h, b, n);
}

/// Solves L Lᵀ x = b in place, L the lower triangle of `l` (as left by [`cholesky_solve`]).
pub fn cholesky_solve_factored<R: Real>(l: &[R], b: &mut [R], n: usize) {
    for i in 0..n {
        let mut s = b[i];
        for k in 0..i {
            s -= l[i * n + k] * b[k];
        }
        b[i] = s / l[i * n + i];
    }
    for i in (0..n).rev() {
        let mut s = b[i];
        for k in i + 1..n {
            s -= l[k * n + i] * b[k];
        }
        b[i] = s / l[i * n + i];
    }
}

/// Buffers of [`Dynamics::joint_accelerations`], reused across the envs of a chunk.
#[derive(Clone, Debug, Default)]
pub struct Dynamics<R> {
    pub kin: Kinematics<R>,
    inertia: Vec<M6<R>>,
    acc: Vec<V6<R>>,
    force: Vec<V6<R>>,
    h: Vec<R>,
    qdd: Vec<R>,
    tau_rnea: Vec<R>,
}

impl<R: Real> Dynamics<R> {
    /// Joint accelerations q̈ of one env (steps 1–4 of the module docs).
    #[allow(clippy::too_many_arguments)]
    pub fn joint_accelerations(
        &mut self,
        m: &ArticulationModel,
        q: &[R],
        qd: &[R],
        tau: &[R],
        f_ext: &[R],
        gravity: V3<R>,
        armature: &[f64],
    ) -> &[R] {
        let nd = qd.len();
        self.rnea(m, q, qd, None, f_ext, gravity);
        let rhs = &mut self.qdd;
        rhs.clear();
        rhs.extend(tau.iter().zip(&self.tau_rnea).map(|(&t, &b)| t - b));
        let (nb, kin) = (m.len(), &self.kin);
        // CRBA: the body inertias become composite inertias in place.
        let composite = &mut self.inertia;
        for k in (0..nb).rev() {
            if m.parent[k] != WORLD {
                let (p, c) = (m.parent[k] as usize, composite[k]);
                mat6_add(&mut composite[p], &c);
            }
        }
        let h = &mut self.h;
        h.clear();
        h.resize(nd * nd, R::zero());
        for k in 0..nb {
            let ds = m.qd_start[k] as usize;
            for i in ds..ds + m.dofs(k) {
                let f = mat6_vec(&composite[k], kin.s[i]);
                let mut j_body = k;
                loop {
                    let js = m.qd_start[j_body] as usize;
                    for j in js..js + m.dofs(j_body) {
                        let hij = dot6(kin.s[j], f);
                        h[i * nd + j] = hij;
                        h[j * nd + i] = hij;
                    }
                    if m.parent[j_body] == WORLD {
                        break;
                    }
                    j_body = m.parent[j_body] as usize;
                }
                h[i * nd + i] += R::from_f64(armature[k]);
            }
        }
        cholesky_solve(h, rhs, nd);
        rhs
    }

    /// The lower triangle of the Cholesky factor of H from the last `joint_accelerations`.
    pub fn mass_matrix_factor(&self) -> &[R] {
        &self.h
    }

    /// Kinematics, body inertias and RNEA (Featherstone §5.3) into `tau_rnea`: τ = Sᵀ f with
    /// a_k = a_parent + c_k (+ S q̈ when `qdd` is given), the base accelerating at −g,
    /// f_k = I_k a_k + v_k ×* I_k v_k − f_ext,k, children's f added to their parent's. With
    /// `qdd` = None it is the bias τ_bias; with q̈ it is H q̈ + τ_bias less the armature term.
    fn rnea(&mut self, m: &ArticulationModel, q: &[R], qd: &[R], qdd: Option<&[R]>, f_ext: &[R], gravity: V3<R>) {
        let nb = m.len();
        kinematics_into(m, q, qd, &mut self.kin);
        let kin = &self.kin;
        self.inertia.clear();
        self.inertia.extend((0..nb).map(|k| body_inertia(m, kin, k)));
        let base = [R::zero(), R::zero(), R::zero(), -gravity[0], -gravity[1], -gravity[2]];
        let (acc, force) = (&mut self.acc, &mut self.force);
        acc.clear();
        force.clear();
        for k in 0..nb {
            let ap = if m.parent[k] == WORLD { base } else { acc[m.parent[k] as usize] };
            let mut a = add6(ap, kin.bias[k]);
            if let Some(qdd) = qdd {
                let dofs = m.qd_start[k] as usize..m.qd_start[k] as usize + m.dofs(k);
                for (s, &qdd_i) in kin.s[dofs.clone()].iter().zip(&qdd[dofs]) {
                    a = add6(a, scale6(*s, qdd_i));
                }
            }
            let v = kin.twist[k];
            let iv = mat6_vec(&self.inertia[k], v);
            let fe: V6<R> = std::array::from_fn(|i| f_ext[6 * k + i]);
            force.push(sub6(add6(mat6_vec(&self.inertia[k], a), cross_force(v, iv)), fe));
            acc.push(a);
        }
        let tau = &mut self.tau_rnea;
        tau.clear();
        tau.resize(qd.len(), R::zero());
        for k in (0..nb).rev() {
            let ds = m.qd_start[k] as usize;
            for i in 0..m.dofs(k) {
                tau[ds + i] = dot6(kin.s[ds + i], force[k]);
            }
            if m.parent[k] != WORLD {
                let p = m.parent[k] as usize;
                force[p] = add6(force[p], force[k]);
            }
        }
    }

    /// Inverse dynamics τ = H(q) q̈ + τ_bias(q, q̇, f_ext) (armature on H's diagonal included).
    #[allow(clippy::too_many_arguments)]
    pub fn inverse_dynamics(
        &mut self,
        m: &ArticulationModel,
        q: &[R],
        qd: &[R],
        qdd: &[R],
        f_ext: &[R],
        gravity: V3<R>,
        armature: &[f64],
    ) -> &[R] {
        self.rnea(m, q, qd, Some(qdd), f_ext, gravity);
        for (k, &arm) in armature.iter().enumerate().take(m.len()) {
            let dofs = m.qd_start[k] as usize..m.qd_start[k] as usize + m.dofs(k);
            for (t, &qdd_i) in self.tau_rnea[dofs.clone()].iter_mut().zip(&qdd[dofs]) {
                *t += R::from_f64(arm) * qdd_i;
            }
        }
        &self.tau_rnea
    }
}

impl Dynamics<f64> {
    /// Adjoint of [`Dynamics::inverse_dynamics`] at fixed q̈: adds (∂τ/∂(q, q̇, f_ext))ᵀ τ̄ to
    /// `q_bar`, `qd_bar`, `f_bar` (`bar` is scratch). By hand, reversing the RNEA of `rnea`:
    /// - τ_i = S_i · F_k (F_k the force of body k's subtree, F_parent += F_k): parents first,
    ///   F̄_k = F̄_parent + Σ τ̄_i S_i and S̄_i += τ̄_i F_k;
    /// - f_k = I_k a_k + v_k ×* (I_k v_k) − f_ext,k: ā_k = I_k F̄_k, Ī_k = F̄_k a_kᵀ + (I v)‾ v_kᵀ,
    ///   v̄_k from the cross product plus I_k (I v)‾ (I_k is symmetric), f̄_ext,k = −F̄_k;
    /// - a_k = a_parent + c_k + S q̈: children first, c̄_k = ā_k, S̄_i += ā_k q̈_i,
    ///   ā_parent += ā_k (the base acceleration −g is a constant);
    /// - then [`body_inertia_adjoint`] and [`kinematics_adjoint`] take Ī, v̄, c̄, S̄ to (q, q̇).
    ///
    /// The armature term arm · q̈ does not depend on (q, q̇, f_ext).
    #[allow(clippy::too_many_arguments)]
    pub fn inverse_dynamics_adjoint(
        &mut self,
        m: &ArticulationModel,
        q: &[f64],
        qd: &[f64],
        qdd: &[f64],
        f_ext: &[f64],
        gravity: V3<f64>,
        tau_bar: &[f64],
        bar: &mut KinematicsBar,
        q_bar: &mut [f64],
        qd_bar: &mut [f64],
        f_bar: &mut [f64],
    ) {
        let (nb, nd) = (m.len(), qd.len());
        self.rnea(m, q, qd, Some(qdd), f_ext, gravity);
        bar.reset(nb, nd);
        let kin = &self.kin;
        let dofs = |k: usize| m.qd_start[k] as usize..m.qd_start[k] as usize + m.dofs(k);
        let mut force_bar = vec![[0.0; 6]; nb];
        for k in 0..nb {
            let mut fb = if m.parent[k] == WORLD { [0.0; 6] } else { force_bar[m.parent[k] as usize] };
            for i in dofs(k) {
                fb = add6(fb, scale6(kin.s[i], tau_bar[i]));
                bar.s[i] = add6(bar.s[i], scale6(self.force[k], tau_bar[i]));
            }
            force_bar[k] = fb;
        }
        let mut acc_bar = vec![[0.0; 6]; nb];
        for k in 0..nb {
            let (inertia, v, fb) = (&self.inertia[k], kin.twist[k], force_bar[k]);
            let iv = mat6_vec(inertia, v);
            let (mut v_bar, mut iv_bar) = ([0.0; 6], [0.0; 6]);
            cross_force_adjoint(v, iv, fb, &mut v_bar, &mut iv_bar);
            bar.twist[k] = add6(bar.twist[k], add6(v_bar, mat6_vec(inertia, iv_bar)));
            acc_bar[k] = mat6_vec(inertia, fb);
            let a = self.acc[k];
            let i_bar: M6<f64> = std::array::from_fn(|r| std::array::from_fn(|c| fb[r] * a[c] + iv_bar[r] * v[c]));
            body_inertia_adjoint(m, kin, k, &i_bar, bar);
            for (j, f) in f_bar[6 * k..6 * k + 6].iter_mut().enumerate() {
                *f -= fb[j];
            }
        }
        for k in (0..nb).rev() {
            let ab = acc_bar[k];
            bar.bias[k] = add6(bar.bias[k], ab);
            for i in dofs(k) {
                bar.s[i] = add6(bar.s[i], scale6(ab, qdd[i]));
            }
            if m.parent[k] != WORLD {
                let p = m.parent[k] as usize;
                acc_bar[p] = add6(acc_bar[p], ab);
            }
        }
        kinematics_adjoint(m, q, qd, kin, bar, q_bar, qd_bar);
    }
}

impl<R: Real> System<R> for Integrate {
    fn name(&self) -> &str {
        "articulation.integrate"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        vec![
            ColumnAccess::state("joint_q", ANY_WIDTH),
            ColumnAccess::state("joint_qd", ANY_WIDTH),
            ColumnAccess::state("joint_tau", ANY_WIDTH),
            ColumnAccess::state("body_f", 6),
            ColumnAccess::write("joint_q", ANY_WIDTH),
            ColumnAccess::write("joint_qd", ANY_WIDTH),
            ColumnAccess::model("gravity", 3),
            ColumnAccess::model("joint_armature", 1),
        ]
    }
    fn forward(&self, cx: &StepCx, model: &ModelView, _: &View<R>, state: &mut ViewMut<R>) {
        let nb = ArticulationModel::bodies(model);
        let models = ArticulationModel::all(model);
        let (nq, nd) = (width(state, "joint_q"), width(state, "joint_qd"));
        let gravity = model.param("gravity");
        let armature = model.param("joint_armature");
        let [q, qd, tau, f] = state.cols_mut(["joint_q", "joint_qd", "joint_tau", "body_f"]);
        let mut dynamics = Dynamics::default();
        let mut qdd = Vec::new();
        for e in 0..model.num_envs() {
            let m = models.env_of(e, nb);
            let (q, qd) = (&mut q[e * nq..(e + 1) * nq], &mut qd[e * nd..(e + 1) * nd]);
            let g = [0, 1, 2].map(|c| R::from_f64(gravity[3 * e + c]));
            qdd.clear();
            qdd.extend_from_slice(dynamics.joint_accelerations(
                &m,
                q,
                qd,
                &tau[e * nd..(e + 1) * nd],
                &f[e * nb * 6..(e + 1) * nb * 6],
                g,
                &armature[e * nb..(e + 1) * nb],
            ));
            euler_update(&m, q, qd, &qdd, cx.dt);
        }
    }
    fn adjoint(
        &self,
        cx: &StepCx,
        model: &ModelView,
        _: &View<R>,
        pre: &View<R>,
        adj_state: &mut ViewMut<R>,
        _: &mut ViewMut<R>,
    ) {
        let nb = ArticulationModel::bodies(model);
        let models = ArticulationModel::all(model);
        let envs = pre.num_envs();
        let (nq, nd) = (pre.col("joint_q").len() / envs, pre.col("joint_qd").len() / envs);
        let gravity = model.param("gravity");
        let armature = model.param("joint_armature");
        let f64s = |name: &str, e: usize, w: usize| -> Vec<f64> {
            pre.col(name)[e * w..(e + 1) * w].iter().map(|x| x.to_f64()).collect()
        };
        let mut dynamics = Dynamics::<f64>::default();
        let mut bar = KinematicsBar::default();
        for e in 0..envs {
            let m = models.env_of(e, nb);
            let arm = &armature[e * nb..(e + 1) * nb];
            let (q, qd, tau, f) =
                (f64s("joint_q", e, nq), f64s("joint_qd", e, nd), f64s("joint_tau", e, nd), f64s("body_f", e, 6 * nb));
            let g = [0, 1, 2].map(|c| gravity[3 * e + c]);
            let qdd = dynamics.joint_accelerations(&m, &q, &qd, &tau, &f, g, arm).to_vec();

            // (a) The Euler update (q, q̇, q̈) → (q', q̇'), replayed: q̄, q̇̄ through it and ā = ∂L/∂q̈.
            clear_tape();
            let leaves = |v: &[f64]| v.iter().map(|&x| Rev::leaf(x)).collect::<Vec<_>>();
            let (mut q_r, mut qd_r, qdd_r) = (leaves(&q), leaves(&qd), leaves(&qdd));
            euler_update(&m, &mut q_r, &mut qd_r, &qdd_r, cx.dt);
            let seeds_q = adj_state.col("joint_q")[e * nq..(e + 1) * nq].iter().map(|a| a.to_f64()).collect::<Vec<_>>();
            let seeds_qd =
                adj_state.col("joint_qd")[e * nd..(e + 1) * nd].iter().map(|a| a.to_f64()).collect::<Vec<_>>();
            let g_update = gradients(q_r.iter().copied().zip(seeds_q).chain(qd_r.iter().copied().zip(seeds_qd)));

            // (b) λ = H⁻¹ ā with the forward's Cholesky factor; ∂L/∂τ = λ.
            let mut lambda = g_update[nq + nd..nq + 2 * nd].to_vec();
            cholesky_solve_factored(dynamics.mass_matrix_factor(), &mut lambda, nd);

            // (c) −λᵀ ID(q, q̇, q̈ fixed, f_ext), by hand: the paths through H(q) and τ_bias.
            let tau_bar: Vec<f64> = lambda.iter().map(|l| -l).collect();
            let (mut q_bar, mut qd_bar, mut f_bar) = (vec![0.0; nq], vec![0.0; nd], vec![0.0; 6 * nb]);
            dynamics.inverse_dynamics_adjoint(
                &m,
                &q,
                &qd,
                &qdd,
                &f,
                g,
                &tau_bar,
                &mut bar,
                &mut q_bar,
                &mut qd_bar,
                &mut f_bar,
            );

            for (i, a) in adj_state.col_mut("joint_q")[e * nq..(e + 1) * nq].iter_mut().enumerate() {
                *a = R::from_f64(g_update[i] + q_bar[i]);
            }
            for (i, a) in adj_state.col_mut("joint_qd")[e * nd..(e + 1) * nd].iter_mut().enumerate() {
                *a = R::from_f64(g_update[nq + i] + qd_bar[i]);
            }
            for (a, l) in adj_state.col_mut("joint_tau")[e * nd..(e + 1) * nd].iter_mut().zip(&lambda) {
                *a += R::from_f64(*l);
            }
            for (a, fb) in adj_state.col_mut("body_f")[e * 6 * nb..(e + 1) * 6 * nb].iter_mut().zip(&f_bar) {
                *a += R::from_f64(*fb);
            }
        }
    }
    /// The GPU mirror: `articulation::gpu`.
    fn gpu(&self) -> Option<Box<dyn diffsim_engine::gpu_sim::GpuSystem>> {
        Some(Box::new(*self))
    }
}

/// Step 5 of the module docs: semi-implicit Euler of one env's (q, q̇) given q̈.
fn euler_update<R: Real>(m: &ArticulationModel, q: &mut [R], qd: &mut [R], qdd: &[R], dt: f64) {
    let (half, dt) = (R::from_f64(0.5), R::from_f64(dt));
    // Body by body: each reads and writes only its own joint's slots, so stepping one body at a
    // time equals stepping all q̇ first and then all q.
    for k in 0..m.len() {
        let (qs, ds) = (m.q_start[k] as usize, m.qd_start[k] as usize);
        // A free root steps its centre-of-mass velocity instead of the twist at the origin
        // (below), so take the pre-step COM quantities first.
        let free_root = (m.kind[k] == KIND_FREE).then(|| {
            let rot = quat_to_mat([q[qs + 3], q[qs + 4], q[qs + 5], q[qs + 6]]);
            let com_local = [0, 1, 2].map(|c| R::from_f64(m.com[3 * k + c]));
            let c = add([q[qs], q[qs + 1], q[qs + 2]], mat_vec(&rot, com_local));
            let w = [qd[ds], qd[ds + 1], qd[ds + 2]];
            let v_c = add([qd[ds + 3], qd[ds + 4], qd[ds + 5]], cross(w, c));
            (c, v_c, com_local)
        });
        let dofs = ds..ds + m.dofs(k);
        for (v, a) in qd[dofs.clone()].iter_mut().zip(&qdd[dofs]) {
            *v += dt * *a;
        }
        match m.kind[k] {
            KIND_REVOLUTE | KIND_PRISMATIC => q[qs] += dt * qd[ds],
            KIND_FREE => {
                // Semi-implicit Euler on (ω, v_com): a_com = a_O + α × c + ω × v_com, so a
                // force-free body keeps its linear momentum exactly and its COM moves on
                // a line; then the twist at the origin is rebuilt from the new COM.
                let (c, v_c, com_local) = free_root.expect("taken above for every free root");
                let w_old = [qd[ds] - dt * qdd[ds], qd[ds + 1] - dt * qdd[ds + 1], qd[ds + 2] - dt * qdd[ds + 2]];
                let alpha = [qdd[ds], qdd[ds + 1], qdd[ds + 2]];
                let a_o = [qdd[ds + 3], qdd[ds + 4], qdd[ds + 5]];
                let a_c = add(add(a_o, cross(alpha, c)), cross(w_old, v_c));
                let w = [qd[ds], qd[ds + 1], qd[ds + 2]];
                let v_c = add(v_c, scale(a_c, dt));
                let c = add(c, scale(v_c, dt));
                let quat = [q[qs + 3], q[qs + 4], q[qs + 5], q[qs + 6]];
                let next = quat_step(quat, w, dt * half);
                let x = sub(c, mat_vec(&quat_to_mat(next), com_local));
                q[qs..qs + 3].copy_from_slice(&x);
                q[qs + 3..qs + 7].copy_from_slice(&next);
                let v_o = sub(v_c, cross(w, c));
                qd[ds + 3..ds + 6].copy_from_slice(&v_o);
            }
            KIND_BALL => {
                let w = [qd[ds], qd[ds + 1], qd[ds + 2]];
                let quat = [q[qs], q[qs + 1], q[qs + 2], q[qs + 3]];
                let next = quat_step(quat, w, dt * half);
                q[qs..qs + 4].copy_from_slice(&next);
            }
            _ => {}
        }
    }
}

/// q + h (ω, 0) ⊗ q, renormalized (h = dt / 2).
fn quat_step<R: Real>(quat: Quat<R>, w: V3<R>, h: R) -> Quat<R> {
    let dq = quat_mul([w[0], w[1], w[2], R::zero()], quat);
    quat_normalize(std::array::from_fn(|i| quat[i] + h * dq[i]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cholesky_solves_spd_system() {
        let mut h = vec![4.0, 2.0, 0.6, 2.0, 5.0, 1.0, 0.6, 1.0, 3.0];
        let h0 = h.clone();
        let mut b = vec![1.0, -2.0, 0.5];
        let b0 = b.clone();
        cholesky_solve(&mut h, &mut b, 3);
        for i in 0..3 {
            let r: f64 = (0..3).map(|j| h0[i * 3 + j] * b[j]).sum();
            assert!((r - b0[i]).abs() < 1e-12);
        }
    }
}
