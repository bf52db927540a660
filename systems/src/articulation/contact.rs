//! `articulation.ground_contact`: penalty contact between body shapes and the ground y = 0.
//!
//! Contact points: a sphere's centre (radius r), a capsule's two end-sphere centres (radius r),
//! a box's 8 corners (radius 0). For a point with centre c and penetration p = r − c_y > 0, the
//! contact point x = c − r ŷ moves with the body twist (ω, v_O): u = v_O + ω × x. The force is the
//! particles' ground law (normal N = kₑ p − k_d u_y if positive; viscous friction −k_f u_t
//! capped at μ N), per shape (`shape_contact`), applied at x as the spatial force (x × F, F)
//! accumulated into `body_f`.
//!
//! Adjoint: shape by shape and by hand (`Shapes::wrench_adjoint`, `penalty_force_adjoint`),
//! skipping shapes that are off the ground; exact within a contact regime. (A replay of the whole
//! system spent ~30× its forward time, mostly recording shapes that were culled; reverse mode
//! over one shape's wrench still ~12×.)

use diffsim_engine::articulation::{SHAPE_BOX, SHAPE_CAPSULE, SHAPE_SPHERE};
use diffsim_engine::{ColumnAccess, ModelView, Real, StepCx, System, View, ViewMut};

use super::spatial::*;

#[derive(Clone, Copy, Debug, Default)]
pub struct GroundContact;

/// Penalty force on a contact point with penetration `pen` along the unit normal `n` (pointing
/// out of the other surface), moving at `u` relative to it, or None if apart or separating:
/// N = kₑ p − k_d (u · n) if positive; u_t = u − (u · n) n; friction −k_f u_t capped at μ N.
/// `c` = (kₑ, k_d, k_f, μ). Shared by the ground (n = ŷ) and the shape–shape contacts.
pub fn penalty_force<R: Real>(pen: R, u: V3<R>, n: V3<R>, c: &[f64]) -> Option<V3<R>> {
    let (ke, kd, kf, mu) = (R::from_f64(c[0]), R::from_f64(c[1]), R::from_f64(c[2]), R::from_f64(c[3]));
    if pen.to_f64() <= 0.0 {
        return None;
    }
    let un = dot(u, n);
    let normal = ke * pen - kd * un;
    if normal.to_f64() <= 0.0 {
        return None;
    }
    let ut = sub(u, scale(n, un));
    let s2 = dot(ut, ut);
    let cap = mu * normal;
    let ft = if (kf * kf * s2).to_f64() <= (cap * cap).to_f64() { scale(ut, -kf) } else { scale(ut, -cap / s2.sqrt()) };
    Some(add(scale(n, normal), ft))
}

/// Adjoint of [`penalty_force`] in (pen, u) at a fixed normal n: given f̄, returns (p̄en, ū), or
/// None where the force is zero (apart or separating). With f = N n + f_t:
/// N̄ = f̄ · n (plus −μ (u_t · f̄)/|u_t| when the friction is capped); f_t = −k_f u_t gives
/// ū_t = −k_f f̄, the capped f_t = −μ N u_t/|u_t| gives ū_t = −μ N (f̄/|u_t| − (u_t · f̄) u_t/|u_t|³);
/// then p̄en = kₑ N̄ and ū = (ū_t − (ū_t · n) n) − k_d N̄ n. Branches as in the forward.
pub fn penalty_force_adjoint(pen: f64, u: V3<f64>, n: V3<f64>, c: &[f64], f_bar: V3<f64>) -> Option<(f64, V3<f64>)> {
    let (ke, kd, kf, mu) = (c[0], c[1], c[2], c[3]);
    if pen <= 0.0 {
        return None;
    }
    let un = dot(u, n);
    let normal = ke * pen - kd * un;
    if normal <= 0.0 {
        return None;
    }
    let ut = sub(u, scale(n, un));
    let s2 = dot(ut, ut);
    let cap = mu * normal;
    let mut normal_bar = dot(f_bar, n);
    let ut_bar = if kf * kf * s2 <= cap * cap {
        scale(f_bar, -kf)
    } else {
        let norm = s2.sqrt();
        let along = dot(ut, f_bar);
        normal_bar -= mu * along / norm;
        scale(sub(scale(f_bar, 1.0 / norm), scale(ut, along / (norm * norm * norm))), -cap)
    };
    let u_bar = add(sub(ut_bar, scale(n, dot(ut_bar, n))), scale(n, -kd * normal_bar));
    Some((ke * normal_bar, u_bar))
}

impl<R: Real> System<R> for GroundContact {
    fn name(&self) -> &str {
        "articulation.ground_contact"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        vec![
            ColumnAccess::state("body_q", 7),
            ColumnAccess::state("body_qd", 6),
            ColumnAccess::accumulate("body_f", 6),
            ColumnAccess::model("shape_size", 3),
            ColumnAccess::model("shape_pose", 7),
            ColumnAccess::model("shape_contact", 4),
            ColumnAccess::model("shape_body", 1),
            ColumnAccess::model("shape_kind", 1),
        ]
    }
    fn forward(&self, _: &StepCx, model: &ModelView, _: &View<R>, state: &mut ViewMut<R>) {
        let shapes = Shapes::of(model);
        let [bq, bqd, bf] = state.cols_mut(["body_q", "body_qd", "body_f"]);
        for e in 0..model.num_envs() {
            for s in e * shapes.ns..(e + 1) * shapes.ns {
                let b = e * shapes.nb + shapes.body[s] as usize;
                if let Some(w) = shapes.wrench(s, &bq[7 * b..7 * b + 7], &bqd[6 * b..6 * b + 6]) {
                    bf[6 * b..6 * b + 6].iter_mut().zip(w).for_each(|(f, w)| *f += w);
                }
            }
        }
    }
    /// Shape by shape: shapes off the ground (checked in f64) contribute nothing; for the others,
    /// reverse mode over that shape's wrench alone (13 inputs: its body's pose and twist) pulls
    /// the body_f adjoint back. body_f is accumulated, so its adjoint passes through unchanged.
    fn adjoint(
        &self,
        _: &StepCx,
        model: &ModelView,
        _: &View<R>,
        pre: &View<R>,
        adj_state: &mut ViewMut<R>,
        _: &mut ViewMut<R>,
    ) {
        let shapes = Shapes::of(model);
        let (bq, bqd) = (pre.col("body_q"), pre.col("body_qd"));
        let [abq, abqd, abf] = adj_state.cols_mut(["body_q", "body_qd", "body_f"]);
        for e in 0..model.num_envs() {
            for s in e * shapes.ns..(e + 1) * shapes.ns {
                let b = e * shapes.nb + shapes.body[s] as usize;
                let x: [f64; 13] =
                    std::array::from_fn(|i| if i < 7 { bq[7 * b + i].to_f64() } else { bqd[6 * b + i - 7].to_f64() });
                let ybar: [f64; 6] = std::array::from_fn(|i| abf[6 * b + i].to_f64());
                if ybar.iter().all(|&y| y == 0.0) {
                    continue;
                }
                let Some(g) = shapes.wrench_adjoint(s, &x[..7], &x[7..], ybar) else { continue };
                abq[7 * b..7 * b + 7].iter_mut().zip(&g[..7]).for_each(|(a, &g)| *a += R::from_f64(g));
                abqd[6 * b..6 * b + 6].iter_mut().zip(&g[7..]).for_each(|(a, &g)| *a += R::from_f64(g));
            }
        }
    }
    /// `contact_gpu::GroundContactGpu`: one invocation per body, forward and adjoint.
    fn gpu(&self) -> Option<Box<dyn diffsim_engine::gpu_sim::GpuSystem>> {
        Some(Box::new(super::contact_gpu::GroundContactGpu))
    }
}

/// The shape columns of a chunk, looked up once (shared with `shape_contact`).
pub(super) struct Shapes<'a> {
    pub ns: usize,
    pub nb: usize,
    pub size: &'a [f64],
    pub pose: &'a [f64],
    pub contact: &'a [f64],
    pub body: &'a [u32],
    pub kind: &'a [u32],
}

impl<'a> Shapes<'a> {
    pub fn of(model: &'a ModelView) -> Self {
        Self {
            ns: model.count("shape_kind"),
            nb: model.count("joint_kind"),
            size: model.param("shape_size"),
            pose: model.param("shape_pose"),
            contact: model.param("shape_contact"),
            body: model.topo("shape_body"),
            kind: model.topo("shape_kind"),
        }
    }

    /// Whether shape `s`, centred at height `centre_y`, is culled by its bounding sphere (most
    /// shapes are off the ground most of the time).
    fn off_ground(&self, s: usize, centre_y: f64) -> bool {
        let sz = &self.size[3 * s..3 * s + 3];
        let reach = match self.kind[s] {
            SHAPE_SPHERE => sz[0],
            SHAPE_CAPSULE => sz[0] + sz[1],
            _ => (sz[0] * sz[0] + sz[1] * sz[1] + sz[2] * sz[2]).sqrt(),
        };
        centre_y > reach
    }

    /// Shape `s`'s contact points in its own frame with their radii, (l, r): the centre of a
    /// sphere, a capsule's two end-sphere centres (0, ±h, 0), a box's 8 corners (radius 0). In
    /// world coordinates a point is c = centre + R_s l. Returns the array and how many are used.
    fn local_points(&self, s: usize) -> ([([f64; 3], f64); 8], usize) {
        let sz = &self.size[3 * s..3 * s + 3];
        let mut points = [([0.0; 3], 0.0); 8];
        let n = match self.kind[s] {
            SHAPE_SPHERE => {
                points[0] = ([0.0; 3], sz[0]);
                1
            }
            SHAPE_CAPSULE => {
                points[0] = ([0.0, sz[1], 0.0], sz[0]);
                points[1] = ([0.0, -sz[1], 0.0], sz[0]);
                2
            }
            SHAPE_BOX => {
                for (corner, point) in points.iter_mut().enumerate() {
                    let sgn = |bit: usize| if corner >> bit & 1 == 1 { 1.0 } else { -1.0 };
                    *point = ([sgn(0) * sz[0], sgn(1) * sz[1], sgn(2) * sz[2]], 0.0);
                }
                8
            }
            _ => 0,
        };
        (points, n)
    }

    /// The ground's spatial force (torque, force) on shape `s` of the body with pose `bq`
    /// (x, quaternion) and twist `bqd` (ω, v_O), or None if no contact point touches the ground.
    fn wrench<R: Real>(&self, s: usize, bq: &[R], bqd: &[R]) -> Option<[R; 6]> {
        let rot = quat_to_mat([bq[3], bq[4], bq[5], bq[6]]);
        let x_b = [bq[0], bq[1], bq[2]];
        let p = &self.pose[7 * s..7 * s + 7];
        let centre = add(x_b, mat_vec(&rot, v3(p[0], p[1], p[2])));
        if self.off_ground(s, centre[1].to_f64()) {
            return None;
        }
        let srot = mat_mul(&rot, &quat_to_mat(v4(&p[3..7])));
        let (local, n_points) = self.local_points(s);
        let w = [bqd[0], bqd[1], bqd[2]];
        let v_o = [bqd[3], bqd[4], bqd[5]];
        let mut total: Option<[R; 6]> = None;
        for &(l, r) in &local[..n_points] {
            let c = add(centre, mat_vec(&srot, l.map(R::from_f64)));
            let x = [c[0], c[1] - R::from_f64(r), c[2]];
            let u = add(v_o, cross(w, x));
            let up = [R::zero(), R::one(), R::zero()];
            if let Some(f) = penalty_force(R::from_f64(r) - c[1], u, up, &self.contact[4 * s..4 * s + 4]) {
                let n = cross(x, f);
                let t = total.get_or_insert([R::zero(); 6]);
                for i in 0..3 {
                    t[i] += n[i];
                    t[3 + i] += f[i];
                }
            }
        }
        total
    }

    /// Adjoint of [`Shapes::wrench`] at body pose `bq` and twist `bqd` (f64): given the wrench's
    /// adjoint ȳ = (n̄, f̄), returns (∂L/∂bq, ∂L/∂bqd) as 13 scalars, or None if no contact point
    /// pushes. Every contact point is c = centre + R_s l (l = 0 for a sphere, (0, ±h, 0) for a
    /// capsule's ends, a corner for a box), so per point, reversing the forward:
    /// x̄ = f × n̄ (+ ū × ω), f̄ + n̄ × x into [`penalty_force_adjoint`], v̄_O += ū, ω̄ += x × ū,
    /// c̄ = x̄ − p̄en ŷ, centre̅ += c̄, R̄_s += c̄ lᵀ; then R̄ = R̄_s R_pᵀ + centre̅ p_localᵀ,
    /// x̄_b = centre̅ and the quaternion's adjoint by `quat_to_mat_adjoint`.
    fn wrench_adjoint(&self, s: usize, bq: &[f64], bqd: &[f64], ybar: [f64; 6]) -> Option<[f64; 13]> {
        let quat = [bq[3], bq[4], bq[5], bq[6]];
        let rot = quat_to_mat(quat);
        let p = &self.pose[7 * s..7 * s + 7];
        let p_local: V3<f64> = v3(p[0], p[1], p[2]);
        let centre = add([bq[0], bq[1], bq[2]], mat_vec(&rot, p_local));
        if self.off_ground(s, centre[1]) {
            return None;
        }
        let rp = quat_to_mat(v4::<f64>(&p[3..7]));
        let srot = mat_mul(&rot, &rp);
        let (points, n_points) = self.local_points(s);
        let (w, v_o) = ([bqd[0], bqd[1], bqd[2]], [bqd[3], bqd[4], bqd[5]]);
        let (n_bar, f_bar) = ([ybar[0], ybar[1], ybar[2]], [ybar[3], ybar[4], ybar[5]]);
        let up = [0.0, 1.0, 0.0];
        let contact = &self.contact[4 * s..4 * s + 4];
        let (mut centre_bar, mut srot_bar, mut w_bar, mut vo_bar) = ([0.0; 3], [[0.0; 3]; 3], [0.0; 3], [0.0; 3]);
        let mut any = false;
        for &(l, r) in &points[..n_points] {
            let c = add(centre, mat_vec(&srot, l));
            let x = [c[0], c[1] - r, c[2]];
            let u = add(v_o, cross(w, x));
            let Some(f) = penalty_force(r - c[1], u, up, contact) else { continue };
            any = true;
            let mut x_bar = cross(f, n_bar);
            let Some((pen_bar, u_bar)) = penalty_force_adjoint(r - c[1], u, up, contact, add(f_bar, cross(n_bar, x)))
            else {
                continue;
            };
            vo_bar = add(vo_bar, u_bar);
            w_bar = add(w_bar, cross(x, u_bar));
            x_bar = add(x_bar, cross(u_bar, w));
            let c_bar = [x_bar[0], x_bar[1] - pen_bar, x_bar[2]];
            centre_bar = add(centre_bar, c_bar);
            for i in 0..3 {
                for j in 0..3 {
                    srot_bar[i][j] += c_bar[i] * l[j];
                }
            }
        }
        if !any {
            return None;
        }
        let mut rot_bar = mat_mul(&srot_bar, &transpose(&rp));
        for i in 0..3 {
            for j in 0..3 {
                rot_bar[i][j] += centre_bar[i] * p_local[j];
            }
        }
        let q_bar = quat_to_mat_adjoint(quat, &rot_bar);
        Some(std::array::from_fn(|i| match i {
            0..3 => centre_bar[i],
            3..7 => q_bar[i - 3],
            7..10 => w_bar[i - 7],
            _ => vo_bar[i - 10],
        }))
    }
}

fn v4<R: Real>(p: &[f64]) -> Quat<R> {
    [R::from_f64(p[0]), R::from_f64(p[1]), R::from_f64(p[2]), R::from_f64(p[3])]
}
