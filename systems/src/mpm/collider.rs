//! Kinematic rigid colliders for MPM: analytic SDFs (capsule, cylinder, box) on one body whose pose is
//! driven by actions, the grid-velocity projection against them, and the two systems that move
//! the body.
//!
//! Pose `collider_q` [1, 4] = (x, y, z, θ) — a translation and a rotation θ about +y (the D6 joint
//! of RollingFlat / FluidMove restricted to what those tasks use) — and its velocity
//! `collider_qd` [1, 4], constant over the substeps of one env step:
//! - `mpm.collider_drive` (Step stage): Δ = clamp(q + scale ⊙ a, lo, hi) − q (kinematic deltas
//!   clipped so the joint limits hold, rewarped.md §6.2), qd = Δ / (K · dt);
//! - `mpm.collider_integrate` (Substep stage, after the transfer): q ← q + dt · qd.
//!
//! Grid coupling (`Collider::project`, DexDeform / PlasticineLab's `grid_op` as in rewarped.md
//! §4), at a grid node x_g with velocity v:
//!   d, n = SDF(x_g) (world normal), influence ι = min(exp(−d · softness), 1);
//!   if ι > 0.1 or d ≤ 0: v_b = ẋ + ω × (x_g − x) (body velocity at the node),
//!   r = v − v_b, r_n = r · n, t = r − min(r_n, 0) n,
//!   if r_n < 0: t ← t · max(0, |t| + μ r_n) / |t|  (Coulomb),
//!   v ← v_b + (1 − ι) r + ι t.
//! The body's SDF is the union of its shapes (the shape of least d gives d and n). Rewarped
//! instead applies the rule once per shape in sequence; for nested or touching shapes (the
//! roller's handle runs inside the roller) the second pass then sees a normal velocity the
//! first one has just zeroed, r_n ≈ 0 up to rounding, i.e. it sits exactly on the friction kink
//! and its gradient depends on rounding. The union has no such structural kink.
//! It is written once, generic over `Real`; the transfer's adjoint replays it per affected node on
//! the reverse tape (a handful of nodes near the body, not the grid).

use diffsim_engine::scalar::vec3;
use diffsim_engine::{ColumnAccess, ModelView, Real, StepCx, System, View, ViewMut};

/// A collision primitive in the body frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Shape {
    /// Capsule whose axis is the body's local z, centred at `center`.
    Capsule { center: [f64; 3], radius: f64, half_height: f64 },
    /// Cylinder whose axis is the body's local z (flat caps), centred at `center`.
    Cylinder { center: [f64; 3], radius: f64, half_height: f64 },
    /// Axis-aligned (in the body frame) box.
    Box { center: [f64; 3], half_extents: [f64; 3] },
}

/// One kinematic body made of shapes, with the coupling constants of rewarped.md §4.
#[derive(Clone, Debug, PartialEq)]
pub struct Collider {
    pub shapes: Vec<Shape>,
    /// Coulomb coefficient μ (`body_friction`).
    pub friction: f64,
    /// `body_softness` (666 in the DexDeform configs).
    pub softness: f64,
}

/// Influence threshold below which a node outside the body is left alone.
const MIN_INFLUENCE: f64 = 0.1;

#[inline]
fn norm<R: Real>(a: [R; 3]) -> R {
    vec3::dot(a, a).sqrt()
}

impl Shape {
    /// Signed distance and outward unit normal at local point `l` (body frame).
    pub fn sdf<R: Real>(&self, l: [R; 3]) -> (R, [R; 3]) {
        match *self {
            Shape::Capsule { center, radius, half_height } => {
                let p = [0, 1, 2].map(|k| l[k] - R::from_f64(center[k]));
                let h = R::from_f64(half_height);
                let t = p[2].max(-h).min(h);
                let d = [p[0], p[1], p[2] - t];
                let len = norm(d);
                if len.to_f64() < 1e-12 {
                    return (-R::from_f64(radius), [R::zero(), R::one(), R::zero()]);
                }
                (len - R::from_f64(radius), vec3::scale(d, R::one() / len))
            }
            Shape::Cylinder { center, radius, half_height } => {
                let p = [0, 1, 2].map(|k| l[k] - R::from_f64(center[k]));
                let rho = (p[0] * p[0] + p[1] * p[1]).sqrt();
                let radial = if rho.to_f64() > 1e-12 {
                    [p[0] / rho, p[1] / rho, R::zero()]
                } else {
                    [R::one(), R::zero(), R::zero()]
                };
                let sz = if p[2].to_f64() < 0.0 { -R::one() } else { R::one() };
                let a = rho - R::from_f64(radius);
                let b = p[2] * sz - R::from_f64(half_height);
                let axial = [R::zero(), R::zero(), sz];
                if a.to_f64() > 0.0 && b.to_f64() > 0.0 {
                    // Outside, nearest the rim.
                    let len = (a * a + b * b).sqrt();
                    let n = vec3::scale(vec3::add(vec3::scale(radial, a), vec3::scale(axial, b)), R::one() / len);
                    (len, n)
                } else if a.to_f64() > b.to_f64() {
                    (a, radial)
                } else {
                    (b, axial)
                }
            }
            Shape::Box { center, half_extents } => {
                let p = [0, 1, 2].map(|k| l[k] - R::from_f64(center[k]));
                let q = [0, 1, 2].map(|k| p[k].max(-p[k]) - R::from_f64(half_extents[k]));
                let outside = q.map(|x| x.max(R::zero()));
                let lo = norm(outside);
                if lo.to_f64() > 1e-12 {
                    let n = [0, 1, 2].map(|k| if p[k].to_f64() < 0.0 { -outside[k] } else { outside[k] } / lo);
                    return (lo, n);
                }
                // Inside: the nearest face.
                let k = (0..3).max_by(|&a, &b| q[a].to_f64().total_cmp(&q[b].to_f64())).unwrap_or(0);
                let mut n = [R::zero(); 3];
                n[k] = if p[k].to_f64() < 0.0 { -R::one() } else { R::one() };
                (q[k], n)
            }
        }
    }
}

impl Collider {
    /// Signed distance of the nearest shape at world point `x` for pose `q` (f64, for tests and
    /// for deciding which nodes the adjoint must replay).
    pub fn distance(&self, x: [f64; 3], q: [f64; 4]) -> f64 {
        let l = to_local(x, q);
        self.shapes.iter().map(|s| s.sdf(l).0).fold(f64::INFINITY, f64::min)
    }

    /// Whether the body touches the node (the projection is not the identity there).
    pub fn touches(&self, x: [f64; 3], q: [f64; 4]) -> bool {
        let d = self.distance(x, q);
        d <= 0.0 || (-d * self.softness).exp() > MIN_INFLUENCE
    }

    /// Grid-node velocity after the body's boundary condition (module docs).
    pub fn project<R: Real>(&self, x: [f64; 3], mut v: [R; 3], q: &[R; 4], qd: &[R; 4]) -> [R; 3] {
        let (s, c) = q[3].sin_cos();
        let r = [R::from_f64(x[0]) - q[0], R::from_f64(x[1]) - q[1], R::from_f64(x[2]) - q[2]];
        // Rᵧ(θ)ᵀ r; Rᵧ = [[c, 0, s], [0, 1, 0], [−s, 0, c]].
        let l = [c * r[0] - s * r[2], r[1], s * r[0] + c * r[2]];
        // ẋ + ω × r with ω = (0, θ̇, 0).
        let vb = [qd[0] + qd[3] * r[2], qd[1], qd[2] - qd[3] * r[0]];
        let mu = R::from_f64(self.friction);
        // The body's SDF is the union of its shapes: the nearest (most negative) one decides.
        let mut nearest: Option<(R, [R; 3])> = None;
        for shape in &self.shapes {
            let (d, nl) = shape.sdf(l);
            if nearest.as_ref().is_none_or(|(dn, _)| d.to_f64() < dn.to_f64()) {
                nearest = Some((d, nl));
            }
        }
        let Some((d, nl)) = nearest else { return v };
        let inside = d.to_f64() <= 0.0;
        let infl = if inside { R::one() } else { (-d * R::from_f64(self.softness)).exp().min(R::one()) };
        if !inside && infl.to_f64() <= MIN_INFLUENCE {
            return v;
        }
        let n = [c * nl[0] + s * nl[2], nl[1], -s * nl[0] + c * nl[2]];
        let rel = vec3::sub(v, vb);
        let rn = vec3::dot(rel, n);
        let mut t = vec3::sub(rel, vec3::scale(n, rn.min(R::zero())));
        if rn.to_f64() < 0.0 {
            let tn = norm(t);
            if tn.to_f64() > 1e-20 {
                t = vec3::scale(t, (tn + mu * rn).max(R::zero()) / tn);
            } else {
                t = [R::zero(); 3];
            }
        }
        v = vec3::add(vb, vec3::add(vec3::scale(rel, R::one() - infl), vec3::scale(t, infl)));
        v
    }
}

fn to_local<R: Real>(x: [R; 3], q: [R; 4]) -> [R; 3] {
    let (s, c) = q[3].sin_cos();
    let r = [x[0] - q[0], x[1] - q[1], x[2] - q[2]];
    [c * r[0] - s * r[2], r[1], s * r[0] + c * r[2]]
}

/// `mpm.collider_drive`: collider velocity for this env step from the action (module docs).
/// `act` [1, A]; `axes[k]` is the pose coordinate action k moves, by `scale[k]` per unit action.
#[derive(Clone, Debug)]
pub struct ColliderDrive {
    pub act: String,
    pub axes: Vec<usize>,
    pub scale: Vec<f64>,
    /// Joint limits per pose coordinate.
    pub lo: [f64; 4],
    pub hi: [f64; 4],
    pub substeps: usize,
}

impl<R: Real> System<R> for ColliderDrive {
    fn name(&self) -> &str {
        "mpm.collider_drive"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        vec![
            ColumnAccess::state("collider_q", 4),
            ColumnAccess::control(&self.act, self.axes.len()),
            ColumnAccess::write("collider_qd", 4),
        ]
    }
    fn forward(&self, cx: &StepCx, model: &ModelView, control: &View<R>, state: &mut ViewMut<R>) {
        let act = control.col(&self.act);
        let na = self.axes.len();
        let inv = R::from_f64(1.0 / (self.substeps as f64 * cx.dt));
        let [q, qd] = state.cols_mut(["collider_q", "collider_qd"]);
        for e in 0..model.num_envs() {
            qd[4 * e..4 * e + 4].fill(R::zero());
            for (k, &ax) in self.axes.iter().enumerate() {
                let cur = q[4 * e + ax];
                let target = (cur + R::from_f64(self.scale[k]) * act[na * e + k])
                    .max(R::from_f64(self.lo[ax]))
                    .min(R::from_f64(self.hi[ax]));
                qd[4 * e + ax] = (target - cur) * inv;
            }
        }
    }
    fn adjoint(
        &self,
        cx: &StepCx,
        model: &ModelView,
        control: &View<R>,
        pre: &View<R>,
        adj: &mut ViewMut<R>,
        adj_control: &mut ViewMut<R>,
    ) {
        let act = control.col(&self.act);
        let q = pre.col("collider_q");
        let na = self.axes.len();
        let inv = R::from_f64(1.0 / (self.substeps as f64 * cx.dt));
        let [aq, aqd] = adj.cols_mut(["collider_q", "collider_qd"]);
        let aact = adj_control.col_mut(&self.act);
        for e in 0..model.num_envs() {
            for (k, &ax) in self.axes.iter().enumerate() {
                let g = aqd[4 * e + ax] * inv;
                let raw = q[4 * e + ax] + R::from_f64(self.scale[k]) * act[na * e + k];
                let inside = raw.to_f64() >= self.lo[ax] && raw.to_f64() <= self.hi[ax];
                // qd = (clamp(raw) − q)·inv: ∂/∂raw = inv inside the limits, ∂/∂q = −inv always.
                if inside {
                    aq[4 * e + ax] += g;
                    aact[na * e + k] += g * R::from_f64(self.scale[k]);
                }
                aq[4 * e + ax] -= g;
            }
            aqd[4 * e..4 * e + 4].fill(R::zero());
        }
    }
    fn gpu(&self) -> Option<Box<dyn diffsim_engine::gpu_sim::GpuSystem>> {
        Some(Box::new(self.clone()))
    }
}

/// `mpm.collider_integrate`: q ← q + dt · qd (adjoint: q̄d += dt · q̄).
#[derive(Clone, Copy, Debug, Default)]
pub struct ColliderIntegrate;

impl<R: Real> System<R> for ColliderIntegrate {
    fn name(&self) -> &str {
        "mpm.collider_integrate"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        vec![
            ColumnAccess::state("collider_q", 4),
            ColumnAccess::write("collider_q", 4),
            ColumnAccess::state("collider_qd", 4),
        ]
    }
    fn forward(&self, cx: &StepCx, _: &ModelView, _: &View<R>, state: &mut ViewMut<R>) {
        let dt = R::from_f64(cx.dt);
        let [q, qd] = state.cols_mut(["collider_q", "collider_qd"]);
        for (q, &qd) in q.iter_mut().zip(qd.iter()) {
            *q += dt * qd;
        }
    }
    fn adjoint(&self, cx: &StepCx, _: &ModelView, _: &View<R>, _: &View<R>, adj: &mut ViewMut<R>, _: &mut ViewMut<R>) {
        let dt = R::from_f64(cx.dt);
        let [aq, aqd] = adj.cols_mut(["collider_q", "collider_qd"]);
        for (aq, aqd) in aq.iter().zip(aqd.iter_mut()) {
            *aqd += dt * *aq;
        }
    }
    fn gpu(&self) -> Option<Box<dyn diffsim_engine::gpu_sim::GpuSystem>> {
        Some(Box::new(*self))
    }
}
