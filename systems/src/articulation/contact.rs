//! `articulation.ground_contact`: penalty contact between body shapes and the ground y = 0.
//!
//! Contact points: a sphere's centre (radius r), a capsule's two end-sphere centres (radius r),
//! a box's 8 corners (radius 0). For a point with centre c and penetration p = r − c_y > 0, the
//! contact point x = c − r ŷ moves with the body twist (ω, v_O): u = v_O + ω × x. The force is the
//! particles' ground law (normal N = kₑ p − k_d u_y if positive; viscous friction −k_f u_t
//! capped at μ N), per shape (`shape_contact`), applied at x as the spatial force (x × F, F)
//! accumulated into `body_f`.
//!
//! Adjoint: shape by shape, reverse mode over that shape's wrench as a function of its body's
//! pose and twist (`engine::vjp`), skipping shapes that are off the ground; exact within a
//! contact regime. (A replay of the whole system spent ~30× its forward time, mostly recording
//! shapes that were culled.)

use diffsim_engine::articulation::{SHAPE_BOX, SHAPE_CAPSULE, SHAPE_SPHERE};
use diffsim_engine::{ColumnAccess, ModelView, Real, Rev, StepCx, System, View, ViewMut, vjp};

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
                if ybar.iter().all(|&y| y == 0.0) || shapes.wrench(s, &x[..7], &x[7..]).is_none() {
                    continue;
                }
                let g = vjp(x, ybar, |x| shapes.wrench(s, &x[..7], &x[7..]).unwrap_or([Rev::zero(); 6]));
                abq[7 * b..7 * b + 7].iter_mut().zip(&g[..7]).for_each(|(a, &g)| *a += R::from_f64(g));
                abqd[6 * b..6 * b + 6].iter_mut().zip(&g[7..]).for_each(|(a, &g)| *a += R::from_f64(g));
            }
        }
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

    /// The ground's spatial force (torque, force) on shape `s` of the body with pose `bq`
    /// (x, quaternion) and twist `bqd` (ω, v_O), or None if no contact point touches the ground.
    fn wrench<R: Real>(&self, s: usize, bq: &[R], bqd: &[R]) -> Option<[R; 6]> {
        let rot = quat_to_mat([bq[3], bq[4], bq[5], bq[6]]);
        let x_b = [bq[0], bq[1], bq[2]];
        let p = &self.pose[7 * s..7 * s + 7];
        let centre = add(x_b, mat_vec(&rot, v3(p[0], p[1], p[2])));
        let sz = &self.size[3 * s..3 * s + 3];
        // Cull by the bounding sphere: most shapes are off the ground most of the time.
        let reach = match self.kind[s] {
            SHAPE_SPHERE => sz[0],
            SHAPE_CAPSULE => sz[0] + sz[1],
            _ => (sz[0] * sz[0] + sz[1] * sz[1] + sz[2] * sz[2]).sqrt(),
        };
        if centre[1].to_f64() > reach {
            return None;
        }
        let srot = mat_mul(&rot, &quat_to_mat(v4(&p[3..7])));
        let mut points = [([R::zero(); 3], 0.0); 8];
        let n_points = match self.kind[s] {
            SHAPE_SPHERE => {
                points[0] = (centre, sz[0]);
                1
            }
            SHAPE_CAPSULE => {
                let axis = [srot[0][1], srot[1][1], srot[2][1]];
                let h = R::from_f64(sz[1]);
                points[0] = (add(centre, scale(axis, h)), sz[0]);
                points[1] = (sub(centre, scale(axis, h)), sz[0]);
                2
            }
            SHAPE_BOX => {
                for (corner, point) in points.iter_mut().enumerate() {
                    let sgn = |bit: usize| if corner >> bit & 1 == 1 { 1.0 } else { -1.0 };
                    let local = v3(sgn(0) * sz[0], sgn(1) * sz[1], sgn(2) * sz[2]);
                    *point = (add(centre, mat_vec(&srot, local)), 0.0);
                }
                8
            }
            _ => 0,
        };
        let w = [bqd[0], bqd[1], bqd[2]];
        let v_o = [bqd[3], bqd[4], bqd[5]];
        let mut total: Option<[R; 6]> = None;
        for &(c, r) in &points[..n_points] {
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
}

fn v4<R: Real>(p: &[f64]) -> Quat<R> {
    [R::from_f64(p[0]), R::from_f64(p[1]), R::from_f64(p[2]), R::from_f64(p[3])]
}
