//! `articulation.shape_contact`: penalty contact between the sphere and capsule shapes of
//! different bodies (Ant self-collision; a body never collides with its parent or children,
//! which share a joint). Boxes are skipped here (ground contact handles them).
//!
//! A sphere is a segment of zero length, a capsule the segment ±h along its local y; both have a
//! radius. For a pair, the closest points P (on shape A) and Q (on B) of the two segments are
//! found by clamped minimisation of |P(s) − Q(t)|², s, t ∈ [0, 1]. With d = |P − Q|,
//! penetration p = r_A + r_B − d > 0, normal n = (P − Q)/d and contact point x = ½ (P + Q):
//! the relative velocity is u = (v_O,A + ω_A × x) − (v_O,B + ω_B × x); the force F is the
//! penalty law of `contact::penalty_force` (normal N = kₑ p − k_d (u · n) if positive, viscous
//! friction on u_t capped at μ N); F acts on A at x and −F on B, as spatial forces
//! (x × F, F) into `body_f`. Contact parameters are the means of the two shapes'.
//!
//! Adjoint: recorded replay of this forward (`replay_adjoint`); exact within a contact regime
//! (the clamping of s, t and the on/off switch are kinks, as for every penalty contact).

use diffsim_engine::articulation::{SHAPE_CAPSULE, SHAPE_SPHERE};
use diffsim_engine::{ColumnAccess, ModelView, Real, StepCx, System, View, ViewMut, replay_adjoint};

use super::contact::penalty_force;
use super::spatial::*;

#[derive(Clone, Copy, Debug, Default)]
pub struct ShapeContact;

/// Closest points of segments p0 + s·d1 and q0 + t·d2, s, t ∈ [0, 1] (returns P, Q).
pub fn closest_points<R: Real>(p0: V3<R>, d1: V3<R>, q0: V3<R>, d2: V3<R>) -> (V3<R>, V3<R>) {
    let r = sub(p0, q0);
    let (a, e, f) = (dot(d1, d1), dot(d2, d2), dot(d2, r));
    let eps = 1e-12;
    let clamp01 = |x: R| x.max(R::zero()).min(R::one());
    let (s, t) = if a.to_f64() <= eps && e.to_f64() <= eps {
        (R::zero(), R::zero())
    } else if a.to_f64() <= eps {
        (R::zero(), clamp01(f / e))
    } else {
        let c = dot(d1, r);
        if e.to_f64() <= eps {
            (clamp01(-c / a), R::zero())
        } else {
            let b = dot(d1, d2);
            let denom = a * e - b * b;
            let s = if denom.to_f64() > eps { clamp01((b * f - c * e) / denom) } else { R::zero() };
            let t = (b * s + f) / e;
            if t.to_f64() < 0.0 {
                (clamp01(-c / a), R::zero())
            } else if t.to_f64() > 1.0 {
                (clamp01((b - c) / a), R::one())
            } else {
                (s, t)
            }
        }
    };
    (add(p0, scale(d1, s)), add(q0, scale(d2, t)))
}

/// World segment (start, direction) and radius of shape `s` on its body, or None for boxes.
fn segment<R: Real>(bq: &[R], b: usize, kind: u32, size: &[f64], pose: &[f64]) -> Option<(V3<R>, V3<R>, f64)> {
    let rot = quat_to_mat([bq[7 * b + 3], bq[7 * b + 4], bq[7 * b + 5], bq[7 * b + 6]]);
    let x_b = [bq[7 * b], bq[7 * b + 1], bq[7 * b + 2]];
    let centre = add(x_b, mat_vec(&rot, v3(pose[0], pose[1], pose[2])));
    match kind {
        SHAPE_SPHERE => Some((centre, [R::zero(); 3], size[0])),
        SHAPE_CAPSULE => {
            let q = [R::from_f64(pose[3]), R::from_f64(pose[4]), R::from_f64(pose[5]), R::from_f64(pose[6])];
            let srot = mat_mul(&rot, &quat_to_mat(q));
            let axis = scale([srot[0][1], srot[1][1], srot[2][1]], R::from_f64(size[1]));
            Some((sub(centre, axis), scale(axis, R::from_f64(2.0)), size[0]))
        }
        _ => None,
    }
}

fn point_velocity<R: Real>(bqd: &[R], b: usize, x: V3<R>) -> V3<R> {
    let w = [bqd[6 * b], bqd[6 * b + 1], bqd[6 * b + 2]];
    add([bqd[6 * b + 3], bqd[6 * b + 4], bqd[6 * b + 5]], cross(w, x))
}

impl<R: Real> System<R> for ShapeContact {
    fn name(&self) -> &str {
        "articulation.shape_contact"
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
            ColumnAccess::model("joint_parent", 1),
        ]
    }
    fn forward(&self, _: &StepCx, model: &ModelView, _: &View<R>, state: &mut ViewMut<R>) {
        let ns = model.count("shape_kind");
        let nb = model.count("joint_kind");
        let (size, pose, contact) =
            (model.param("shape_size"), model.param("shape_pose"), model.param("shape_contact"));
        let (body, kind, parent) = (model.topo("shape_body"), model.topo("shape_kind"), model.topo("joint_parent"));
        let [bq, bqd, bf] = state.cols_mut(["body_q", "body_qd", "body_f"]);
        for e in 0..model.num_envs() {
            let (s0, b0) = (e * ns, e * nb);
            // Same body, or joined by a joint (WORLD never equals a body index).
            let related = |a: usize, b: usize| a == b || parent[b0 + a] as usize == b || parent[b0 + b] as usize == a;
            // Each shape's world segment once per env, then the pairs.
            let segments: Vec<_> = (0..ns)
                .map(|i| {
                    let si = s0 + i;
                    let b = b0 + body[si] as usize;
                    segment(bq, b, kind[si], &size[3 * si..3 * si + 3], &pose[7 * si..7 * si + 7])
                })
                .collect();
            for i in 0..ns {
                for j in i + 1..ns {
                    let (ba, bb) = (body[s0 + i] as usize, body[s0 + j] as usize);
                    if related(ba, bb) {
                        continue;
                    }
                    let (si, sj) = (s0 + i, s0 + j);
                    let (Some((pa, da, ra)), Some((pb, db, rb))) = (segments[i], segments[j]) else { continue };
                    // Bounding-sphere cull before the segment distance.
                    let (ca, cb) = (add(pa, scale(da, R::from_f64(0.5))), add(pb, scale(db, R::from_f64(0.5))));
                    let reach_max = ra + rb + 0.5 * (dot(da, da).sqrt() + dot(db, db).sqrt()).to_f64();
                    let gap = sub(ca, cb);
                    if dot(gap, gap).to_f64() >= reach_max * reach_max {
                        continue;
                    }
                    let (p, q) = closest_points(pa, da, pb, db);
                    let delta = sub(p, q);
                    let d2 = dot(delta, delta);
                    let reach = ra + rb;
                    if d2.to_f64() >= reach * reach || d2.to_f64() < 1e-18 {
                        continue;
                    }
                    let d = d2.sqrt();
                    let n = scale(delta, R::one() / d);
                    let pen = R::from_f64(reach) - d;
                    let x = scale(add(p, q), R::from_f64(0.5));
                    let u = sub(point_velocity(bqd, b0 + ba, x), point_velocity(bqd, b0 + bb, x));
                    let c: Vec<f64> = (0..4).map(|k| 0.5 * (contact[4 * si + k] + contact[4 * sj + k])).collect();
                    let Some(f) = penalty_force(pen, u, n, &c) else { continue };
                    let torque = cross(x, f);
                    for k in 0..3 {
                        bf[6 * (b0 + ba) + k] += torque[k];
                        bf[6 * (b0 + ba) + 3 + k] += f[k];
                        bf[6 * (b0 + bb) + k] -= torque[k];
                        bf[6 * (b0 + bb) + 3 + k] -= f[k];
                    }
                }
            }
        }
    }
    fn adjoint(
        &self,
        cx: &StepCx,
        model: &ModelView,
        control: &View<R>,
        pre: &View<R>,
        adj_state: &mut ViewMut<R>,
        adj_control: &mut ViewMut<R>,
    ) {
        replay_adjoint::<Self, R>(self, cx, model, control, pre, adj_state, adj_control);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_points_of_crossing_and_parallel_segments() {
        let (p, q) = closest_points([-1.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, -1.0, 0.5], [0.0, 2.0, 0.0]);
        assert_eq!((p, q), ([0.0, 0.0, 0.0], [0.0, 0.0, 0.5]));
        // Clamped: the second segment lies beyond the end of the first.
        let (p, q) = closest_points([0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [2.0, 1.0, 0.0], [0.0, 1.0, 0.0]);
        assert_eq!((p, q), ([1.0, 0.0, 0.0], [2.0, 1.0, 0.0]));
        // A point (sphere) against a segment.
        let (p, q) = closest_points([0.5, 1.0, 0.0], [0.0; 3], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]);
        assert_eq!((p, q), ([0.5, 1.0, 0.0], [0.5, 0.0, 0.0]));
    }
}
