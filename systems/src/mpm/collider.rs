//! Kinematic rigid colliders for MPM: analytic SDFs (capsule, cylinder, box) on kinematic bodies,
//! the grid-velocity projection against them, and the two systems that move the one-body
//! collider. Two couplings share the projection rule ([`Coupling`], the only thing
//! `mpm.transfer` sees):
//! - [`Collider`]: one body posed by (x, y, z, θ_y) with a constant velocity over the env step
//!   (RollingFlat, FluidMove), below;
//! - [`Bodies`]: many bodies with full poses (x, quaternion) at the substep's start and end
//!   (HandFlip's hand links, posed by `kinematic.rs`); body velocity at a node
//!   (X_next X⁻¹ x_g − x_g)/Δt as in Rewarped, shapes culled per node by bounding spheres.
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
//! Per env-substep (`Coupling::pose`) the one-body collider's sin θ, cos θ and, per shape, an
//! enclosing capsule inflated by the influence reach are computed once; a node outside every
//! inflated capsule skips the SDF (it would be left alone anyway, `Reach`), so the per-node
//! cost away from the body is a few f64 multiply-adds and the results are bit for bit those of
//! the unculled rule.

use diffsim_engine::scalar::vec3;
use diffsim_engine::{ColumnAccess, ModelView, Real, Rev, StepCx, System, View, ViewMut, vjp};

use crate::articulation::spatial::{M3, quat_to_mat};

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
pub(crate) const MIN_INFLUENCE: f64 = 0.1;

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
    pub fn project<R: Real>(&self, x: [f64; 3], v: [R; 3], q: &[R; 4], qd: &[R; 4]) -> [R; 3] {
        self.project_rotated(x, v, q, qd, q[3].sin_cos(), u64::MAX)
    }

    /// `project` with (sin θ, cos θ) of the pose given (`PosedRigid` computes them once per
    /// env-substep, not per node) and only the shapes whose bit is set in `near` (shape i ≥ 64
    /// always counts as near). Leaving out a shape that is farther than the influence reach
    /// changes nothing: either another shape is nearer, or the nearest one is also beyond the
    /// reach and the node is left alone (`PosedRigid::near`).
    fn project_rotated<R: Real>(
        &self,
        x: [f64; 3],
        mut v: [R; 3],
        q: &[R; 4],
        qd: &[R; 4],
        (s, c): (R, R),
        near: u64,
    ) -> [R; 3] {
        let r = [R::from_f64(x[0]) - q[0], R::from_f64(x[1]) - q[1], R::from_f64(x[2]) - q[2]];
        // Rᵧ(θ)ᵀ r; Rᵧ = [[c, 0, s], [0, 1, 0], [−s, 0, c]].
        let l = [c * r[0] - s * r[2], r[1], s * r[0] + c * r[2]];
        // The body's SDF is the union of its shapes: the nearest (most negative) one decides.
        let mut nearest: Option<(R, [R; 3])> = None;
        for (i, shape) in self.shapes.iter().enumerate() {
            if i < 64 && near & (1 << i) == 0 {
                continue;
            }
            let (d, nl) = shape.sdf(l);
            if nearest.as_ref().is_none_or(|(dn, _)| d.to_f64() < dn.to_f64()) {
                nearest = Some((d, nl));
            }
        }
        let Some((d, nl)) = nearest else { return v };
        let Some(infl) = influence(d, self.softness) else { return v };
        // ẋ + ω × r with ω = (0, θ̇, 0).
        let vb = [qd[0] + qd[3] * r[2], qd[1], qd[2] - qd[3] * r[0]];
        let n = [c * nl[0] + s * nl[2], nl[1], -s * nl[0] + c * nl[2]];
        v = coulomb(v, vb, n, infl, self.friction);
        v
    }
}

/// Absolute slack (world units) added to the culling reach. It covers the rounding of the SDF
/// evaluated in f32 (~1e-6 on the unit domain) against the f64 culling test, and the rounding
/// of exp at the influence threshold: a culled node has d > reach + 1e-3, i.e. ι < 0.1 · e^{−1e-3·softness}.
const CULL_MARGIN: f64 = 1e-3;

/// A capsule enclosing one shape (segment from `a` along `ab`, world space, f64) inflated by
/// the influence reach ln(1/0.1)/softness + `CULL_MARGIN`: for a node outside it the shape's
/// SDF, which is the exact Euclidean distance outside every shape, exceeds the reach, so the
/// shape cannot touch the node.
#[derive(Clone, Copy, Debug)]
struct Reach {
    a: [f64; 3],
    ab: [f64; 3],
    /// 1/|ab|², 0 for a point.
    inv_len2: f64,
    /// Squared inflated radius (∞ when softness ≤ 0: then every node is touched).
    r2: f64,
}

impl Reach {
    fn new(shape: &Shape, softness: f64, pos: [f64; 3], (s, c): (f64, f64)) -> Self {
        let (a, b, r) = shape.bounding_capsule();
        // World point of body point l: Rᵧ(θ) l + x.
        let world = |l: [f64; 3]| [c * l[0] + s * l[2] + pos[0], l[1] + pos[1], -s * l[0] + c * l[2] + pos[2]];
        let (a, b) = (world(a), world(b));
        let ab = vec3::sub(b, a);
        let len2 = vec3::dot(ab, ab);
        let reach = r + (1.0 / MIN_INFLUENCE).ln() / softness + CULL_MARGIN;
        let r2 = if softness > 0.0 { reach * reach } else { f64::INFINITY };
        Self { a, ab, inv_len2: if len2 > 0.0 { 1.0 / len2 } else { 0.0 }, r2 }
    }

    /// Whether `x` is outside the inflated capsule (squared distance to the segment, no root).
    #[inline]
    fn far(&self, x: [f64; 3]) -> bool {
        let p = vec3::sub(x, self.a);
        let t = (vec3::dot(p, self.ab) * self.inv_len2).clamp(0.0, 1.0);
        let d = vec3::sub(p, vec3::scale(self.ab, t));
        vec3::dot(d, d) > self.r2
    }
}

/// The one-body collider at the pose of one env-substep: the pose, its velocity, (sin θ, cos θ)
/// and each shape's [`Reach`].
pub struct PosedRigid<'a, R> {
    collider: &'a Collider,
    q: [R; 4],
    qd: [R; 4],
    sin_cos: (R, R),
    reach: Vec<Reach>,
}

impl<'a, R: Real> PosedRigid<'a, R> {
    fn new(collider: &'a Collider, q: [R; 4], qd: [R; 4]) -> Self {
        let sin_cos = q[3].sin_cos();
        let (pos, sc) = ([q[0], q[1], q[2]].map(|x| x.to_f64()), (sin_cos.0.to_f64(), sin_cos.1.to_f64()));
        let reach = collider.shapes.iter().map(|s| Reach::new(s, collider.softness, pos, sc)).collect();
        Self { collider, q, qd, sin_cos, reach }
    }

    /// Bit i set: shape i may touch `x` (not culled by its `Reach`); shapes from the 64th on
    /// are never culled.
    #[inline]
    fn near(&self, x: [f64; 3]) -> u64 {
        let mut bits = if self.reach.len() > 64 { u64::MAX } else { 0 };
        for (i, r) in self.reach.iter().take(64).enumerate() {
            if !r.far(x) {
                bits |= 1 << i;
            }
        }
        bits
    }

    fn project(&self, x: [f64; 3], v: [R; 3]) -> [R; 3] {
        let near = self.near(x);
        if near == 0 {
            return v;
        }
        self.collider.project_rotated(x, v, &self.q, &self.qd, self.sin_cos, near)
    }
}

impl PosedRigid<'_, f64> {
    /// `Collider::touches` at this pose, skipping the culled shapes (same answer).
    fn touches(&self, x: [f64; 3]) -> bool {
        let near = self.near(x);
        if near == 0 {
            return false;
        }
        let (s, c) = self.sin_cos;
        let r = [x[0] - self.q[0], x[1] - self.q[1], x[2] - self.q[2]];
        let l = [c * r[0] - s * r[2], r[1], s * r[0] + c * r[2]];
        let shapes = self.collider.shapes.iter().enumerate();
        let d = shapes.filter(|(i, _)| *i >= 64 || near & (1 << i) != 0).map(|(_, s)| s.sdf(l).0);
        let d = d.fold(f64::INFINITY, f64::min);
        d <= 0.0 || (-d * self.collider.softness).exp() > MIN_INFLUENCE
    }
}

/// ι = min(exp(−d · softness), 1), or `None` where the node is outside and ι ≤ 0.1 (untouched).
#[inline]
fn influence<R: Real>(d: R, softness: f64) -> Option<R> {
    let inside = d.to_f64() <= 0.0;
    let infl = if inside { R::one() } else { (-d * R::from_f64(softness)).exp().min(R::one()) };
    (inside || infl.to_f64() > MIN_INFLUENCE).then_some(infl)
}

/// The velocity rule of the module docs at a touched node: v ← v_b + (1 − ι) r + ι t with the
/// Coulomb-scaled tangential part t of r = v − v_b against the world normal `n`.
#[inline]
fn coulomb<R: Real>(v: [R; 3], vb: [R; 3], n: [R; 3], infl: R, friction: f64) -> [R; 3] {
    let mu = R::from_f64(friction);
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
    vec3::add(vb, vec3::add(vec3::scale(rel, R::one() - infl), vec3::scale(t, infl)))
}

fn to_local<R: Real>(x: [R; 3], q: [R; 4]) -> [R; 3] {
    let (s, c) = q[3].sin_cos();
    let r = [x[0] - q[0], x[1] - q[1], x[2] - q[2]];
    [c * r[0] - s * r[2], r[1], s * r[0] + c * r[2]]
}

/// A shape on body `body` of a [`Bodies`] collider, in that body's frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BodyShape {
    pub body: usize,
    pub shape: Shape,
}

/// Many kinematic bodies with full 3D poses (e.g. the links of a hand), coupled to the grid with
/// the rule of the module docs. State, per env: `body_pose` [B, 7] = (x, quaternion xyzw) of each
/// body at the start of the substep and `body_pose_next` [B, 7] at its end (written by the
/// kinematics, `kinematic.rs`). The body velocity at a node x_g is Rewarped's
/// v_b = (X_next X⁻¹ x_g − x_g) / Δt (rewarped.md §4), not a twist.
#[derive(Clone, Debug, PartialEq)]
pub struct Bodies {
    /// Number of bodies B (rows of `body_pose`).
    pub bodies: usize,
    pub shapes: Vec<BodyShape>,
    /// Coulomb coefficient μ (`body_friction`).
    pub friction: f64,
    /// `body_softness`.
    pub softness: f64,
}

impl Shape {
    /// A capsule enclosing the shape (body frame): segment ends and radius, for culling. A
    /// flat-capped cylinder lies inside the capsule on its own axis segment with its radius; a
    /// box inside its bounding sphere (a capsule of zero length).
    pub fn bounding_capsule(&self) -> ([f64; 3], [f64; 3], f64) {
        match *self {
            Shape::Capsule { center: c, radius, half_height: h }
            | Shape::Cylinder { center: c, radius, half_height: h } => {
                ([c[0], c[1], c[2] - h], [c[0], c[1], c[2] + h], radius)
            }
            Shape::Box { center, .. } => (center, center, self.bounding_sphere().1),
        }
    }

    /// Centre and radius of a sphere enclosing the shape (body frame), for culling.
    pub fn bounding_sphere(&self) -> ([f64; 3], f64) {
        match *self {
            Shape::Capsule { center, radius, half_height } => (center, radius + half_height),
            Shape::Cylinder { center, radius, half_height } => (center, radius.hypot(half_height)),
            Shape::Box { center, half_extents: h } => (center, (h[0] * h[0] + h[1] * h[1] + h[2] * h[2]).sqrt()),
        }
    }
}

/// What the grid update couples to: one body posed by (x, y, z, θ_y) with a constant velocity
/// (`Collider`, RollingFlat / FluidMove) or many bodies with full poses (`Bodies`, HandFlip).
/// `mpm.transfer` sees only this narrow interface: the state columns it reads, a per-env
/// [`Posed`] view built once per env-substep, its projection, and the projection's adjoint.
#[derive(Clone, Debug, PartialEq)]
pub enum Coupling {
    Rigid(Collider),
    Bodies(Bodies),
}

impl From<Collider> for Coupling {
    fn from(c: Collider) -> Self {
        Coupling::Rigid(c)
    }
}

impl From<Bodies> for Coupling {
    fn from(b: Bodies) -> Self {
        Coupling::Bodies(b)
    }
}

/// x ↦ R x + p with R from the unit quaternion (x, y, z, w) of a pose row.
#[derive(Clone, Copy, Debug)]
struct Frame<R> {
    rot: M3<R>,
    pos: [R; 3],
}

impl<R: Real> Frame<R> {
    fn from_pose(p: &[R]) -> Self {
        Self { rot: quat_to_mat([p[3], p[4], p[5], p[6]]), pos: [p[0], p[1], p[2]] }
    }
    /// Rᵀ (x − p).
    fn inverse_apply(&self, x: [R; 3]) -> [R; 3] {
        let r = vec3::sub(x, self.pos);
        [0, 1, 2].map(|k| self.rot[0][k] * r[0] + self.rot[1][k] * r[1] + self.rot[2][k] * r[2])
    }
    fn rotate(&self, l: [R; 3]) -> [R; 3] {
        [0, 1, 2].map(|k| vec3::dot(self.rot[k], l))
    }
    fn apply(&self, l: [R; 3]) -> [R; 3] {
        vec3::add(self.rotate(l), self.pos)
    }
}

/// A coupling at the poses of one env-substep (built once per env, used at every node).
pub enum Posed<'a, R> {
    Rigid(PosedRigid<'a, R>),
    Bodies(PosedBodies<'a, R>),
}

/// The bodies' frames at the substep's start and end, and each shape's bounding sphere in
/// world space (f64) inflated by the influence range ln(1/0.1)/softness: a node outside it has
/// d > that range for this shape, so skipping the SDF changes nothing (the union's nearest
/// shape either is another one or leaves the node untouched).
pub struct PosedBodies<'a, R> {
    bodies: &'a Bodies,
    start: Vec<Frame<R>>,
    end: Vec<Frame<R>>,
    /// Per shape: world centre and squared culling radius.
    cull: Vec<([f64; 3], f64)>,
    inv_dt: f64,
}

impl Coupling {
    /// The two state columns the coupling reads, with their widths: the pose and its velocity
    /// (`Rigid`, [1, 4] each) or the poses at the substep's start and end (`Bodies`, [B, 7]).
    pub fn columns(&self) -> [(&'static str, usize); 2] {
        match self {
            Coupling::Rigid(_) => [("collider_q", 4), ("collider_qd", 4)],
            Coupling::Bodies(_) => [("body_pose", 7), ("body_pose_next", 7)],
        }
    }

    /// The per-env view at `s`, one env's two columns concatenated (`columns` order); `dt` is
    /// the substep.
    pub fn pose<R: Real>(&self, s: &[R], dt: f64) -> Posed<'_, R> {
        match self {
            Coupling::Rigid(c) => Posed::Rigid(PosedRigid::new(c, [s[0], s[1], s[2], s[3]], [s[4], s[5], s[6], s[7]])),
            Coupling::Bodies(b) => {
                let nb = b.bodies;
                let start: Vec<Frame<R>> = (0..nb).map(|k| Frame::from_pose(&s[7 * k..7 * k + 7])).collect();
                let end = (0..nb).map(|k| Frame::from_pose(&s[7 * (nb + k)..7 * (nb + k) + 7])).collect();
                let range = (1.0 / MIN_INFLUENCE).ln() / b.softness;
                let cull = b
                    .shapes
                    .iter()
                    .map(|bs| {
                        let (c, r) = bs.shape.bounding_sphere();
                        let f = &start[bs.body];
                        let rot: M3<f64> = f.rot.map(|row| row.map(|x| x.to_f64()));
                        let pos = f.pos.map(|x| x.to_f64());
                        let cw = vec3::add([0, 1, 2].map(|k| vec3::dot(rot[k], c)), pos);
                        (cw, (r + range) * (r + range))
                    })
                    .collect();
                Posed::Bodies(PosedBodies { bodies: b, start, end, cull, inv_dt: 1.0 / dt })
            }
        }
    }
}

impl<R: Real> PosedBodies<'_, R> {
    /// The nearest shape at `x` among those not culled: (shape index, local point, d, local n).
    fn nearest(&self, x: [f64; 3]) -> Option<(usize, [R; 3], R, [R; 3])> {
        let xr = x.map(R::from_f64);
        let mut best: Option<(usize, [R; 3], R, [R; 3])> = None;
        for (i, (bs, (c, r2))) in self.bodies.shapes.iter().zip(&self.cull).enumerate() {
            let dc = [x[0] - c[0], x[1] - c[1], x[2] - c[2]];
            if dc[0] * dc[0] + dc[1] * dc[1] + dc[2] * dc[2] > *r2 {
                continue;
            }
            let l = self.start[bs.body].inverse_apply(xr);
            let (d, nl) = bs.shape.sdf(l);
            if best.as_ref().is_none_or(|b| d.to_f64() < b.2.to_f64()) {
                best = Some((i, l, d, nl));
            }
        }
        best
    }
}

/// A node's nearest shape: its local point, signed distance and local normal.
struct Hit<R> {
    l: [R; 3],
    d: R,
    nl: [R; 3],
}

/// The rule at a node whose nearest shape `hit` is on the body with frames `start`/`end` (one
/// body's part of [`Posed::project`], also the function its adjoint replays).
fn project_on_body<R: Real>(
    x: [f64; 3],
    v: [R; 3],
    (start, end): (&Frame<R>, &Frame<R>),
    hit: Hit<R>,
    b: &Bodies,
    inv_dt: f64,
) -> [R; 3] {
    let Hit { l, d, nl } = hit;
    let Some(infl) = influence(d, b.softness) else { return v };
    let n = start.rotate(nl);
    let vb = vec3::scale(vec3::sub(end.apply(l), x.map(R::from_f64)), R::from_f64(inv_dt));
    coulomb(v, vb, n, infl, b.friction)
}

impl<R: Real> Posed<'_, R> {
    /// Grid-node velocity at world point `x` after the bodies' boundary condition.
    pub fn project(&self, x: [f64; 3], v: [R; 3]) -> [R; 3] {
        match self {
            Posed::Rigid(pr) => pr.project(x, v),
            Posed::Bodies(pb) => match pb.nearest(x) {
                None => v,
                Some((i, l, d, nl)) => {
                    let body = pb.bodies.shapes[i].body;
                    let frames = (&pb.start[body], &pb.end[body]);
                    project_on_body(x, v, frames, Hit { l, d, nl }, pb.bodies, pb.inv_dt)
                }
            },
        }
    }
}

impl Posed<'_, f64> {
    /// Adjoint of [`Posed::project`] at `x` and incoming velocity `v`: returns v̄ for the
    /// output adjoint `vbar` and adds the pose adjoints into `sbar` (laid out as the `s` this
    /// view was built from). Untouched nodes pass `vbar` through; touched ones replay the
    /// projection on the reverse tape with only the deciding body's pose as leaves (the union
    /// picks one shape, so the others do not enter), 11 or 17 leaves per node.
    pub fn project_adjoint(&self, x: [f64; 3], v: [f64; 3], s: &[f64], vbar: [f64; 3], sbar: &mut [f64]) -> [f64; 3] {
        match self {
            Posed::Rigid(pr) => {
                if !pr.touches(x) {
                    return vbar;
                }
                let collider = pr.collider;
                let leaves: [f64; 11] = std::array::from_fn(|k| if k < 3 { v[k] } else { s[k - 3] });
                let g = vjp(leaves, vbar, |a| {
                    let q = [a[3], a[4], a[5], a[6]];
                    let qd = [a[7], a[8], a[9], a[10]];
                    collider.project(x, [a[0], a[1], a[2]], &q, &qd)
                });
                for k in 0..8 {
                    sbar[k] += g[3 + k];
                }
                [g[0], g[1], g[2]]
            }
            Posed::Bodies(pb) => {
                let Some((i, _, d, _)) = pb.nearest(x) else { return vbar };
                if influence(d, pb.bodies.softness).is_none() {
                    return vbar;
                }
                let bs = pb.bodies.shapes[i];
                let nb = pb.bodies.bodies;
                let (o0, o1) = (7 * bs.body, 7 * (nb + bs.body));
                let leaves: [f64; 17] = std::array::from_fn(|k| match k {
                    0..3 => v[k],
                    3..10 => s[o0 + k - 3],
                    _ => s[o1 + k - 10],
                });
                let g = vjp(leaves, vbar, |a| {
                    let start = Frame::from_pose(&a[3..10]);
                    let end = Frame::from_pose(&a[10..17]);
                    let l = start.inverse_apply(x.map(Rev::from_f64));
                    let (d, nl) = bs.shape.sdf(l);
                    project_on_body(x, [a[0], a[1], a[2]], (&start, &end), Hit { l, d, nl }, pb.bodies, pb.inv_dt)
                });
                for k in 0..7 {
                    sbar[o0 + k] += g[3 + k];
                    sbar[o1 + k] += g[10 + k];
                }
                [g[0], g[1], g[2]]
            }
        }
    }
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
                // Inside, ∂/∂q = inv − inv = 0 exactly (summing g − g would round q̄ by an ulp of g).
                if inside {
                    aact[na * e + k] += g * R::from_f64(self.scale[k]);
                } else {
                    aq[4 * e + ax] -= g;
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn roller() -> Collider {
        Collider {
            shapes: vec![
                Shape::Capsule { center: [0.0; 3], radius: 0.03, half_height: 0.2 },
                Shape::Capsule { center: [0.0; 3], radius: 0.012, half_height: 0.3 },
                Shape::Box { center: [0.0, 0.05, 0.0], half_extents: [0.02, 0.03, 0.1] },
                Shape::Cylinder { center: [0.06, 0.0, 0.0], radius: 0.04, half_height: 0.08 },
            ],
            friction: 0.9,
            softness: 666.0,
        }
    }

    /// The per-env-substep view (sin/cos once, shapes culled by their inflated bounding
    /// capsules) returns bit for bit what `Collider::project` returns, in f64 and f32, and
    /// `touches` agrees with `Collider::touches`; nodes are drawn around the body so that both
    /// culled, touched and untouched-but-not-culled nodes occur (counted).
    #[test]
    fn posed_rigid_matches_unculled_projection() {
        let c = roller();
        let mut seed = 7u64;
        let mut u = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        let (mut culled, mut touched, mut near_untouched) = (0, 0, 0);
        let coupling = Coupling::Rigid(c.clone());
        for _ in 0..40 {
            let q = [0.5 + 0.2 * u(), 0.3 + 0.2 * u(), 0.5 + 0.2 * u(), 4.0 * u()];
            let qd = [u(), u(), u(), 3.0 * u()];
            let s: Vec<f64> = q.iter().chain(&qd).copied().collect();
            let posed = coupling.pose(&s, 1e-3);
            let s32: Vec<f32> = s.iter().map(|&x| x as f32).collect();
            let posed32 = coupling.pose(&s32, 1e-3);
            let (Posed::Rigid(pr), Posed::Rigid(pr32)) = (&posed, &posed32) else { unreachable!() };
            let (q32, qd32) = ([0, 1, 2, 3].map(|k| s32[k]), [0, 1, 2, 3].map(|k| s32[4 + k]));
            for k in 0..500 {
                // Half the nodes within ~0.1 of the roller's axis, half anywhere nearby.
                let spread = if k % 2 == 0 { 0.1 } else { 0.8 };
                let x = [q[0] + spread * u(), q[1] + spread * u(), q[2] + 0.7 * u()];
                let v = [u(), u(), u()];
                let full = c.project(x, v, &q, &qd);
                assert_eq!(posed.project(x, v).map(f64::to_bits), full.map(f64::to_bits), "x {x:?} q {q:?}");
                let v32 = v.map(|a| a as f32);
                let full32 = c.project(x, v32, &q32, &qd32);
                assert_eq!(posed32.project(x, v32).map(f32::to_bits), full32.map(f32::to_bits), "x {x:?}");
                assert_eq!(pr.touches(x), c.touches(x, q), "x {x:?} q {q:?}");
                match (pr.near(x) == 0, c.touches(x, q)) {
                    (true, _) => culled += 1,
                    (false, true) => touched += 1,
                    (false, false) => near_untouched += 1,
                }
                assert!(pr32.near(x) != 0 || !c.touches(x, q), "culled a touched node at {x:?}");
            }
        }
        assert!(culled > 1000 && touched > 500 && near_untouched > 500, "{culled} {touched} {near_untouched}");
    }

    /// A node just outside the inflated capsule is culled and untouched; one just inside the
    /// influence reach of the shape is not culled.
    #[test]
    fn reach_is_conservative_at_its_edge() {
        let c =
            Collider { shapes: vec![Shape::Capsule { center: [0.0; 3], radius: 0.03, half_height: 0.2 }], ..roller() };
        let q = [0.5, 0.3, 0.5, 0.4];
        let coupling = Coupling::Rigid(c.clone());
        let Posed::Rigid(pr) = coupling.pose(&[q[0], q[1], q[2], q[3], 0.0, 0.0, 0.0, 0.0], 1e-3) else {
            unreachable!()
        };
        let range = (1.0 / MIN_INFLUENCE).ln() / c.softness;
        // Straight up from the centre: world y is the body's y, radial to the capsule's axis.
        for (extra, culled) in [(-1e-4, false), (CULL_MARGIN + 1e-6, true)] {
            let x = [q[0], q[1] + 0.03 + range + extra, q[2]];
            assert_eq!(pr.near(x) == 0, culled, "extra {extra}");
            assert_eq!(c.touches(x, q), extra < 0.0, "extra {extra}");
        }
    }
}
