//! `articulation.shape_contact`: penalty contact between the shapes (spheres, capsules, boxes) of
//! different bodies: all pairs of non-adjacent bodies (`ShapeContact`, e.g. Ant self-collision;
//! a body never collides with its parent or children, which share a joint, looking through the
//! zero-mass links the MJCF loader puts between the joints of a multi-joint body), or an explicit pair
//! list (`ShapePairContact`, e.g. only the pairs that involve a manipulated cube).
//!
//! Every pair yields contact points x with a penetration p > 0 and a unit normal n pointing out
//! of shape B towards shape A; the relative velocity is u = (v_O,A + ω_A × x) − (v_O,B + ω_B × x);
//! the force F is the penalty law of `contact::penalty_force` (normal N = kₑ p − k_d (u · n) if
//! positive, viscous friction on u_t capped at μ N); F acts on A at x and −F on B, as spatial
//! forces (x × F, F) into `body_f`. Contact parameters are the means of the two shapes'.
//!
//! Geometry. A sphere is a segment of zero length, a capsule the segment ±h along its local y;
//! both have a radius r ("core segment" + radius).
//! - segment–segment: the closest points P (on A), Q (on B) of the two cores by clamped
//!   minimisation of |P(s) − Q(t)|², s, t ∈ [0, 1]; d = |P − Q|, p = r_A + r_B − d,
//!   n = (P − Q)/d, x = ½ (P + Q).
//! - segment–box: in the box frame, f(s) = Σᵢ max(|aᵢ + s eᵢ| − hᵢ, 0)², the squared
//!   distance of the core point P(s) to the box, is convex and piecewise quadratic in s; its
//!   minimum is found exactly on the intervals between the breakpoints aᵢ + s eᵢ = ±hᵢ. If the
//!   core stays outside (f > 0): Q = clamp(P, −h, h), d = |P − Q|, p = r − d, n = (P − Q)/d.
//!   If the core enters the box (f = 0 somewhere): the sphere law below at the core's two ends
//!   and its midpoint (a sphere: at its centre).
//!   Sphere law (centre P, radius r): outside the box, Q = clamp(P, −h, h), d = |P − Q|,
//!   p = r − d, n = (P − Q)/d; inside, n is the outward normal of the nearest face (the axis of
//!   least depth g = minᵢ (hᵢ − |Pᵢ|)), Q the projection of P on it, p = r + g. Both give
//!   x = ½ (P + Q) and agree where P is on a face (g = 0 = d).
//! - box–box: sample points of each box (8 vertices and 12 edge midpoints) inside the other box,
//!   each with depth g (as above, radius 0) along the normal of the other box's nearest face,
//!   x halfway between the point and that face.
//!
//! Limitations (documented, accepted): the segment–box force jumps where the core enters the
//! box (one closest-point contact becomes three sample contacts; a deepest-point contact would
//! avoid that but its nearest face is always a tie between two faces, so its normal would flip
//! under any perturbation); box–box misses edge–edge crossings between sample points
//! (an edge of one box lying across the middle of a long edge of the other, both outside each
//! other's samples); a deep penetration switches faces where two face depths are equal; the
//! contact count of box–box changes as samples enter.
//!
//! Adjoint: pair by pair, reverse mode over one pair's wrench as a function of its two bodies'
//! poses and twists (`engine::vjp`), skipping pairs without contact; exact within a contact regime
//! (the clamping of s, t, the choice of the minimising interval, the nearest face and the on/off switch are kinks, as for every penalty contact).

use diffsim_engine::articulation::{SHAPE_BOX, SHAPE_CAPSULE, SHAPE_SPHERE, WORLD};
use diffsim_engine::{ColumnAccess, Model, ModelView, Real, Rev, StepCx, System, View, ViewMut, vjp};

use super::contact::{self, penalty_force};
use super::spatial::*;

/// Contact between every pair of shapes on different, non-adjacent bodies.
#[derive(Clone, Copy, Debug, Default)]
pub struct ShapeContact;

/// Contact between an explicit list of shape pairs (shape indices within an env, the same in
/// every env); no adjacency filter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShapePairContact {
    pub pairs: Vec<(u32, u32)>,
}

impl ShapePairContact {
    /// Every pair of one shape on `body` and one shape on another body (the bodies of env 0,
    /// which every env shares): e.g. a manipulated object against a hand, without the
    /// hand's link–link pairs.
    pub fn involving_body(model: &Model, body: u32) -> Self {
        let view = model.view_all();
        let ns = view.count("shape_kind");
        let shape_body = &view.topo("shape_body")[..ns];
        let mut pairs = Vec::new();
        for i in 0..ns {
            for j in i + 1..ns {
                if (shape_body[i] == body) != (shape_body[j] == body) {
                    pairs.push((i as u32, j as u32));
                }
            }
        }
        Self { pairs }
    }
}

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

/// A shape in world coordinates.
#[derive(Clone, Copy, Debug)]
pub enum WorldShape<R> {
    /// Sphere (`d` = 0) or capsule: core segment p0 + s d, s ∈ [0, 1], and radius.
    Segment { p0: V3<R>, d: V3<R>, radius: f64 },
    /// Box: centre, rotation (box frame → world) and half extents.
    Box { centre: V3<R>, rot: M3<R>, half: [f64; 3] },
}

impl<R: Real> WorldShape<R> {
    /// Shape `kind` with `size` and `pose` (in the body frame) on the body whose pose is row `b`
    /// of `body_q`; None for unknown kinds.
    pub fn new(bq: &[R], b: usize, kind: u32, size: &[f64], pose: &[f64]) -> Option<Self> {
        let rot = quat_to_mat([bq[7 * b + 3], bq[7 * b + 4], bq[7 * b + 5], bq[7 * b + 6]]);
        let x_b = [bq[7 * b], bq[7 * b + 1], bq[7 * b + 2]];
        let centre = add(x_b, mat_vec(&rot, v3(pose[0], pose[1], pose[2])));
        let shape_rot = || {
            let q = [R::from_f64(pose[3]), R::from_f64(pose[4]), R::from_f64(pose[5]), R::from_f64(pose[6])];
            mat_mul(&rot, &quat_to_mat(q))
        };
        match kind {
            SHAPE_SPHERE => Some(Self::Segment { p0: centre, d: [R::zero(); 3], radius: size[0] }),
            SHAPE_CAPSULE => {
                let srot = shape_rot();
                let axis = scale([srot[0][1], srot[1][1], srot[2][1]], R::from_f64(size[1]));
                Some(Self::Segment { p0: sub(centre, axis), d: scale(axis, R::from_f64(2.0)), radius: size[0] })
            }
            SHAPE_BOX => Some(Self::Box { centre, rot: shape_rot(), half: [size[0], size[1], size[2]] }),
            _ => None,
        }
    }

    /// Centre and radius of a bounding sphere (for culling).
    fn bound(&self) -> (V3<R>, f64) {
        match *self {
            Self::Segment { p0, d, radius } => {
                (add(p0, scale(d, R::from_f64(0.5))), radius + 0.5 * dot(d, d).to_f64().sqrt())
            }
            Self::Box { centre, half, .. } => {
                (centre, (half[0] * half[0] + half[1] * half[1] + half[2] * half[2]).sqrt())
            }
        }
    }
}

/// A contact point x with penetration `pen` > 0 and unit normal `n` out of shape B towards A.
#[derive(Clone, Copy, Debug)]
pub struct ContactPoint<R> {
    pub x: V3<R>,
    pub n: V3<R>,
    pub pen: R,
}

/// Contacts of shape A with shape B (see the module docs), appended to `out`.
pub fn pair_contacts<R: Real>(a: &WorldShape<R>, b: &WorldShape<R>, out: &mut Vec<ContactPoint<R>>) {
    // Bounding-sphere cull before any narrow phase.
    let ((ca, ra), (cb, rb)) = (a.bound(), b.bound());
    let gap = sub(ca, cb);
    if dot(gap, gap).to_f64() >= (ra + rb) * (ra + rb) {
        return;
    }
    let flipped = |c: ContactPoint<R>| ContactPoint { n: scale(c.n, -R::one()), ..c };
    match (*a, *b) {
        (WorldShape::Segment { p0: pa, d: da, radius: ra }, WorldShape::Segment { p0: pb, d: db, radius: rb }) => {
            let (p, q) = closest_points(pa, da, pb, db);
            let delta = sub(p, q);
            let d2 = dot(delta, delta);
            let reach = ra + rb;
            if d2.to_f64() >= reach * reach || d2.to_f64() < 1e-18 {
                return;
            }
            let d = d2.sqrt();
            out.push(ContactPoint {
                x: scale(add(p, q), R::from_f64(0.5)),
                n: scale(delta, R::one() / d),
                pen: R::from_f64(reach) - d,
            });
        }
        (WorldShape::Segment { p0, d, radius }, WorldShape::Box { centre, rot, half }) => {
            segment_box(p0, d, radius, centre, &rot, half, out);
        }
        (WorldShape::Box { centre, rot, half }, WorldShape::Segment { p0, d, radius }) => {
            let first = out.len();
            segment_box(p0, d, radius, centre, &rot, half, out);
            for c in &mut out[first..] {
                *c = flipped(*c);
            }
        }
        (WorldShape::Box { centre: c1, rot: r1, half: h1 }, WorldShape::Box { centre: c2, rot: r2, half: h2 }) => {
            // Samples of A inside B push A out of B (n already out of B); samples of B inside A
            // push B out of A, i.e. n out of A, flipped for the A-on-B convention.
            for p in box_samples(c1, &r1, h1) {
                out.extend(point_inside_box(p, c2, &r2, h2));
            }
            for p in box_samples(c2, &r2, h2) {
                out.extend(point_inside_box(p, c1, &r1, h1).map(flipped));
            }
        }
    }
}

/// The 8 vertices and 12 edge midpoints of a box, in world coordinates.
fn box_samples<R: Real>(centre: V3<R>, rot: &M3<R>, half: [f64; 3]) -> impl Iterator<Item = V3<R>> + '_ {
    // Local coordinates in {−1, 0, 1}³ with at most one zero: 8 vertices + 12 edge midpoints.
    (0..27i32).filter_map(move |k| {
        let c = [k % 3 - 1, k / 3 % 3 - 1, k / 9 - 1];
        if c.iter().filter(|&&x| x == 0).count() > 1 {
            return None;
        }
        let local = v3(c[0] as f64 * half[0], c[1] as f64 * half[1], c[2] as f64 * half[2]);
        Some(add(centre, mat_vec(rot, local)))
    })
}

/// Depth g = minᵢ (hᵢ − |pᵢ|) of a box-frame point and the axis attaining it.
fn depth<R: Real>(p: V3<R>, half: [f64; 3]) -> (R, usize) {
    let mut best = (R::from_f64(half[0]) - abs(p[0]), 0);
    for i in 1..3 {
        let g = R::from_f64(half[i]) - abs(p[i]);
        if g.to_f64() < best.0.to_f64() {
            best = (g, i);
        }
    }
    best
}

fn abs<R: Real>(x: R) -> R {
    if x.to_f64() < 0.0 { -x } else { x }
}

/// A world point strictly inside a box: contact with the box's nearest face (radius 0).
fn point_inside_box<R: Real>(p: V3<R>, centre: V3<R>, rot: &M3<R>, half: [f64; 3]) -> Option<ContactPoint<R>> {
    let local = mat_vec(&transpose(rot), sub(p, centre));
    let (g, axis) = depth(local, half);
    if g.to_f64() <= 0.0 {
        return None;
    }
    Some(face_contact(local, axis, g, 0.0, centre, rot, half))
}

/// Contact of a box-frame core point P at depth g (≥ 0) under face `axis`, for a shape of
/// radius r: n is that face's outward normal, Q the projection of P on the face.
fn face_contact<R: Real>(
    p: V3<R>,
    axis: usize,
    g: R,
    radius: f64,
    centre: V3<R>,
    rot: &M3<R>,
    half: [f64; 3],
) -> ContactPoint<R> {
    let sign = if p[axis].to_f64() < 0.0 { -1.0 } else { 1.0 };
    let mut q = p;
    q[axis] = R::from_f64(sign * half[axis]);
    let n_world = scale([rot[0][axis], rot[1][axis], rot[2][axis]], R::from_f64(sign));
    let x_local = scale(add(p, q), R::from_f64(0.5));
    ContactPoint { x: add(centre, mat_vec(rot, x_local)), n: n_world, pen: R::from_f64(radius) + g }
}

/// Contacts of a sphere or capsule (core p0 + s d, radius r) with a box (see the module docs),
/// appended to `out`; normals point out of the box.
pub fn segment_box<R: Real>(
    p0: V3<R>,
    d: V3<R>,
    radius: f64,
    centre: V3<R>,
    rot: &M3<R>,
    half: [f64; 3],
    out: &mut Vec<ContactPoint<R>>,
) {
    let rt = transpose(rot);
    let a = mat_vec(&rt, sub(p0, centre));
    let e = mat_vec(&rt, d);
    let at = |s: R| add(a, scale(e, s));
    let outside2 = |s: R| {
        let p = at(s);
        (0..3).fold(R::zero(), |acc, i| {
            let o = abs(p[i]) - R::from_f64(half[i]);
            if o.to_f64() > 0.0 { acc + o * o } else { acc }
        })
    };
    let moving = |i: usize| e[i].to_f64().abs() > 1e-12;
    // Breakpoints of f: where a coordinate crosses a face plane.
    let mut cuts: Vec<R> = vec![R::zero(), R::one()];
    for i in (0..3).filter(|&i| moving(i)) {
        for sign in [-1.0, 1.0] {
            let s = (R::from_f64(sign * half[i]) - a[i]) / e[i];
            if s.to_f64() > 0.0 && s.to_f64() < 1.0 {
                cuts.push(s);
            }
        }
    }
    cuts.sort_by(|x, y| x.to_f64().total_cmp(&y.to_f64()));
    // On each interval f is a quadratic over the coordinates outside their slab; minimise it.
    let mut best = (R::zero(), outside2(R::zero()));
    for w in cuts.windows(2) {
        let (lo, hi) = (w[0], w[1]);
        let mid = (lo.to_f64() + hi.to_f64()) * 0.5;
        let (mut num, mut den) = (R::zero(), R::zero());
        for i in 0..3 {
            let x = a[i].to_f64() + mid * e[i].to_f64();
            if x.abs() > half[i] {
                let side = R::from_f64(half[i].copysign(x));
                num += e[i] * (a[i] - side);
                den += e[i] * e[i];
            }
        }
        // With no coordinate outside its slab at the midpoint (den = 0), f is constant on the
        // interval (0 if the core is inside there): take the midpoint, where that constant has no
        // rounding from a face crossing (at a breakpoint |x| − h is ±1 ulp, which squared is
        // ~1e-16 in f32, ≫ the 1e-18 below: a core through the box would count as outside).
        let s = if den.to_f64() > 1e-18 { (-num / den).max(lo).min(hi) } else { (lo + hi) * R::from_f64(0.5) };
        let f = outside2(s);
        if f.to_f64() < best.1.to_f64() {
            best = (s, f);
        }
    }
    let (s, f2) = best;
    if f2.to_f64() > 1e-18 {
        // The core stays outside: one contact at its closest point.
        if f2.to_f64() < radius * radius {
            out.extend(sphere_box(at(s), radius, centre, rot, half));
        }
        return;
    }
    // The core enters the box: the sphere law at its ends and midpoint (at a sphere, its centre).
    let samples: &[f64] = if (0..3).any(moving) { &[0.0, 0.5, 1.0] } else { &[0.0] };
    for &s in samples {
        out.extend(sphere_box(at(R::from_f64(s)), radius, centre, rot, half));
    }
}

/// A sphere (box-frame centre p, radius r) against a box: the closest point of the box when p
/// is outside, the nearest face when p is inside.
fn sphere_box<R: Real>(p: V3<R>, radius: f64, centre: V3<R>, rot: &M3<R>, half: [f64; 3]) -> Option<ContactPoint<R>> {
    let (g, axis) = depth(p, half);
    if g.to_f64() >= 0.0 {
        return Some(face_contact(p, axis, g, radius, centre, rot, half));
    }
    let q = [0, 1, 2].map(|i| p[i].max(R::from_f64(-half[i])).min(R::from_f64(half[i])));
    let delta = sub(p, q);
    let d2 = dot(delta, delta);
    if d2.to_f64() >= radius * radius || d2.to_f64() < 1e-24 {
        return None;
    }
    let dist = d2.sqrt();
    let n = mat_vec(rot, scale(delta, R::one() / dist));
    let x = add(centre, mat_vec(rot, scale(add(p, q), R::from_f64(0.5))));
    Some(ContactPoint { x, n, pen: R::from_f64(radius) - dist })
}

fn point_velocity<R: Real>(bqd: &[R], x: V3<R>) -> V3<R> {
    let w = [bqd[0], bqd[1], bqd[2]];
    add([bqd[3], bqd[4], bqd[5]], cross(w, x))
}

/// Columns both contact systems read and write.
fn contact_access() -> Vec<ColumnAccess> {
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
        ColumnAccess::model("body_mass", 1),
    ]
}

/// The shape columns of a chunk and the joint tree, looked up once, and the pairs to test.
pub(super) struct Shapes<'a> {
    cols: contact::Shapes<'a>,
    parent: &'a [u32],
    mass: &'a [f64],
}

impl<'a> std::ops::Deref for Shapes<'a> {
    type Target = contact::Shapes<'a>;
    fn deref(&self) -> &Self::Target {
        &self.cols
    }
}

impl<'a> Shapes<'a> {
    pub(super) fn of(model: &'a ModelView) -> Self {
        Self { cols: contact::Shapes::of(model), parent: model.topo("joint_parent"), mass: model.param("body_mass") }
    }

    /// Env `e`'s pairs (shape indices within the env) into `out`: `pairs`, or if None every pair
    /// of shapes on unrelated bodies.
    pub(super) fn pairs(&self, e: usize, pairs: Option<&[(u32, u32)]>, out: &mut Vec<(u32, u32)>) {
        out.clear();
        if let Some(p) = pairs {
            out.extend_from_slice(p);
            return;
        }
        let (s0, b0) = (e * self.ns, e * self.nb);
        // The body a joint chain really hangs from: a hip of three hinges is pelvis → two zero-mass
        // links → thigh, and the thigh must not collide with the pelvis it is jointed to.
        let jointed_to = |b: usize| {
            let mut p = self.parent[b0 + b];
            while p != WORLD && self.mass[b0 + p as usize] == 0.0 {
                p = self.parent[b0 + p as usize];
            }
            p
        };
        // Same body, or joined by a joint (WORLD never equals a body index).
        let related = |a: usize, b: usize| a == b || jointed_to(a) as usize == b || jointed_to(b) as usize == a;
        let body = |i: u32| self.body[s0 + i as usize] as usize;
        let ns = self.ns as u32;
        out.extend((0..ns).flat_map(|i| (i + 1..ns).map(move |j| (i, j))).filter(|&(i, j)| !related(body(i), body(j))));
    }

    /// Shape `s` (index over the chunk) on the body whose pose (x, quaternion) is `bq`.
    fn world<R: Real>(&self, s: usize, bq: &[R]) -> Option<WorldShape<R>> {
        WorldShape::new(bq, 0, self.kind[s], &self.size[3 * s..3 * s + 3], &self.pose[7 * s..7 * s + 7])
    }

    /// Mean contact parameters of shapes `si` and `sj`.
    pub(super) fn params(&self, si: usize, sj: usize) -> [f64; 4] {
        std::array::from_fn(|k| 0.5 * (self.contact[4 * si + k] + self.contact[4 * sj + k]))
    }
}

/// The spatial force (torque about the origin, force) that shape B exerts on shape A, given both
/// in world coordinates and their bodies' twists; A exerts the opposite on B. None without a
/// contact that pushes.
fn pair_wrench<R: Real>(
    sa: &WorldShape<R>,
    sb: &WorldShape<R>,
    qd_a: &[R],
    qd_b: &[R],
    c: &[f64; 4],
    points: &mut Vec<ContactPoint<R>>,
) -> Option<[R; 6]> {
    points.clear();
    pair_contacts(sa, sb, points);
    let mut total: Option<[R; 6]> = None;
    for p in points.iter() {
        let u = sub(point_velocity(qd_a, p.x), point_velocity(qd_b, p.x));
        let Some(f) = penalty_force(p.pen, u, p.n, c) else { continue };
        let torque = cross(p.x, f);
        let t = total.get_or_insert([R::zero(); 6]);
        for k in 0..3 {
            t[k] += torque[k];
            t[3 + k] += f[k];
        }
    }
    total
}

/// Accumulates the contact forces of `pairs` (shape indices within an env), or of every pair of
/// shapes on unrelated bodies if None, into `body_f`, for every env of the chunk.
fn accumulate_contacts<R: Real>(model: &ModelView, state: &mut ViewMut<R>, pairs: Option<&[(u32, u32)]>) {
    let sh = Shapes::of(model);
    let [bq, bqd, bf] = state.cols_mut(["body_q", "body_qd", "body_f"]);
    let (mut points, mut env_pairs, mut shapes) = (Vec::new(), Vec::new(), Vec::new());
    for e in 0..model.num_envs() {
        let (s0, b0) = (e * sh.ns, e * sh.nb);
        shapes.clear();
        shapes.extend((s0..s0 + sh.ns).map(|s| {
            let b = b0 + sh.body[s] as usize;
            sh.world(s, &bq[7 * b..7 * b + 7])
        }));
        sh.pairs(e, pairs, &mut env_pairs);
        for &(i, j) in &env_pairs {
            let (i, j) = (i as usize, j as usize);
            let (Some(sa), Some(sb)) = (&shapes[i], &shapes[j]) else { continue };
            let (ba, bb) = (b0 + sh.body[s0 + i] as usize, b0 + sh.body[s0 + j] as usize);
            let (qd_a, qd_b) = (&bqd[6 * ba..6 * ba + 6], &bqd[6 * bb..6 * bb + 6]);
            if let Some(w) = pair_wrench(sa, sb, qd_a, qd_b, &sh.params(s0 + i, s0 + j), &mut points) {
                for k in 0..6 {
                    bf[6 * ba + k] += w[k];
                    bf[6 * bb + k] -= w[k];
                }
            }
        }
    }
}

/// The adjoint of `accumulate_contacts`, pair by pair: pairs without a pushing contact (checked
/// in f64) contribute nothing; for the others, reverse mode over that pair's wrench alone (26
/// inputs: both bodies' poses and twists, `engine::vjp`) pulls back ∂L/∂f_A − ∂L/∂f_B (B
/// receives −wrench). body_f is accumulated, so its adjoint passes through unchanged.
fn contacts_adjoint<R: Real>(
    model: &ModelView,
    pre: &View<R>,
    adj_state: &mut ViewMut<R>,
    pairs: Option<&[(u32, u32)]>,
) {
    let sh = Shapes::of(model);
    let (bq, bqd) = (pre.col("body_q"), pre.col("body_qd"));
    let [abq, abqd, abf] = adj_state.cols_mut(["body_q", "body_qd", "body_f"]);
    let (mut points, mut env_pairs, mut shapes) = (Vec::new(), Vec::new(), Vec::new());
    let f64s = |x: &[R]| x.iter().map(|v| v.to_f64()).collect::<Vec<f64>>();
    for e in 0..model.num_envs() {
        let (s0, b0) = (e * sh.ns, e * sh.nb);
        let (q, qd) = (f64s(&bq[7 * b0..7 * (b0 + sh.nb)]), f64s(&bqd[6 * b0..6 * (b0 + sh.nb)]));
        shapes.clear();
        shapes.extend((s0..s0 + sh.ns).map(|s| {
            let b = sh.body[s] as usize;
            sh.world(s, &q[7 * b..7 * b + 7])
        }));
        sh.pairs(e, pairs, &mut env_pairs);
        for &(i, j) in &env_pairs {
            let (i, j) = (i as usize, j as usize);
            let (Some(sa), Some(sb)) = (&shapes[i], &shapes[j]) else { continue };
            let (la, lb) = (sh.body[s0 + i] as usize, sh.body[s0 + j] as usize);
            let (ba, bb) = (b0 + la, b0 + lb);
            let ybar: [f64; 6] = std::array::from_fn(|k| abf[6 * ba + k].to_f64() - abf[6 * bb + k].to_f64());
            let c = sh.params(s0 + i, s0 + j);
            if ybar.iter().all(|&y| y == 0.0)
                || pair_wrench(sa, sb, &qd[6 * la..6 * la + 6], &qd[6 * lb..6 * lb + 6], &c, &mut points).is_none()
            {
                continue;
            }
            let x: [f64; 26] = std::array::from_fn(|k| match k {
                0..7 => q[7 * la + k],
                7..13 => qd[6 * la + k - 7],
                13..20 => q[7 * lb + k - 13],
                _ => qd[6 * lb + k - 20],
            });
            let g = vjp(x, ybar, |x| {
                let (Some(sa), Some(sb)) = (sh.world(s0 + i, &x[..7]), sh.world(s0 + j, &x[13..20])) else {
                    return [Rev::zero(); 6];
                };
                pair_wrench(&sa, &sb, &x[7..13], &x[20..26], &c, &mut Vec::new()).unwrap_or([Rev::zero(); 6])
            });
            for k in 0..7 {
                abq[7 * ba + k] += R::from_f64(g[k]);
                abq[7 * bb + k] += R::from_f64(g[13 + k]);
            }
            for k in 0..6 {
                abqd[6 * ba + k] += R::from_f64(g[7 + k]);
                abqd[6 * bb + k] += R::from_f64(g[20 + k]);
            }
        }
    }
}

impl<R: Real> System<R> for ShapeContact {
    fn name(&self) -> &str {
        "articulation.shape_contact"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        contact_access()
    }
    fn forward(&self, _: &StepCx, model: &ModelView, _: &View<R>, state: &mut ViewMut<R>) {
        accumulate_contacts(model, state, None);
    }
    fn adjoint(
        &self,
        _: &StepCx,
        model: &ModelView,
        _: &View<R>,
        pre: &View<R>,
        adj: &mut ViewMut<R>,
        _: &mut ViewMut<R>,
    ) {
        contacts_adjoint(model, pre, adj, None);
    }
    /// `contact_gpu::ShapeContactGpu`.
    fn gpu(&self) -> Option<Box<dyn diffsim_engine::gpu_sim::GpuSystem>> {
        Some(Box::new(super::contact_gpu::ShapeContactGpu { name: "articulation.shape_contact", pairs: None }))
    }
}

impl<R: Real> System<R> for ShapePairContact {
    fn name(&self) -> &str {
        "articulation.shape_pair_contact"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        contact_access()
    }
    fn forward(&self, _: &StepCx, model: &ModelView, _: &View<R>, state: &mut ViewMut<R>) {
        accumulate_contacts(model, state, Some(&self.pairs));
    }
    fn adjoint(
        &self,
        _: &StepCx,
        model: &ModelView,
        _: &View<R>,
        pre: &View<R>,
        adj: &mut ViewMut<R>,
        _: &mut ViewMut<R>,
    ) {
        contacts_adjoint(model, pre, adj, Some(&self.pairs));
    }
    /// `contact_gpu::ShapeContactGpu` over `pairs`.
    fn gpu(&self) -> Option<Box<dyn diffsim_engine::gpu_sim::GpuSystem>> {
        let pairs = Some(self.pairs.clone());
        Some(Box::new(super::contact_gpu::ShapeContactGpu { name: "articulation.shape_pair_contact", pairs }))
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
