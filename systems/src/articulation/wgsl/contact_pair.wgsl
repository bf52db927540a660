// articulation.shape_contact / shape_pair_contact (shape_contact.rs) between spheres and
// capsules: the bindings after the shape columns and one pair's geometry, shared by the forward
// and the adjoint. A pair row is (shape A, shape B, body of A, body of B), global indices; its
// parameters (kₑ, k_d, k_f, μ) are the means of the two shapes' and `reach` = r_A + r_B, all
// computed in f64 on the host and rounded once, as the CPU's `from_f64`.
@group(0) @binding(5) var<storage, read> pairs: array<u32>;
@group(0) @binding(6) var<storage, read> pair_c: array<f32>;
@group(0) @binding(7) var<storage, read> bq: array<f32>;
@group(0) @binding(8) var<storage, read> bqd: array<f32>;
// Per pair: the wrench on A (6), or the adjoints of both bodies' pose and twist (2 × 13).
@group(0) @binding(9) var<storage, read_write> scratch: array<f32>;
// CSR body → (pair, side) entries 2 k + side, in increasing pair k (the CPU's order).
@group(0) @binding(10) var<storage, read> offsets: array<u32>;
@group(0) @binding(11) var<storage, read> entries: array<u32>;

const PAIR_C: u32 = 6u;
const EPS: f32 = 1e-12;

fn pair_has_box(k: u32) -> bool {
    return shape_kind[pairs[4u * k]] == SHAPE_BOX || shape_kind[pairs[4u * k + 1u]] == SHAPE_BOX;
}

fn body_x(b: u32) -> vec3<f32> {
    return vec3<f32>(bq[7u * b], bq[7u * b + 1u], bq[7u * b + 2u]);
}
fn body_quat(b: u32) -> vec4<f32> {
    return vec4<f32>(bq[7u * b + 3u], bq[7u * b + 4u], bq[7u * b + 5u], bq[7u * b + 6u]);
}
fn body_w(b: u32) -> vec3<f32> {
    return vec3<f32>(bqd[6u * b], bqd[6u * b + 1u], bqd[6u * b + 2u]);
}
fn body_vo(b: u32) -> vec3<f32> {
    return vec3<f32>(bqd[6u * b + 3u], bqd[6u * b + 4u], bqd[6u * b + 5u]);
}

// A sphere (d = 0) or capsule in world coordinates: core p0 + s d, s ∈ [0, 1] (`WorldShape`).
struct Segment {
    p0: vec3<f32>,
    d: vec3<f32>,
    radius: f32,
}

fn segment(s: u32, b: u32) -> Segment {
    let rot = quat_to_mat(body_quat(b));
    let centre = body_x(b) + mat_vec(rot, pose_position(s));
    let sz = size_of(s);
    if (shape_kind[s] == SHAPE_CAPSULE) {
        let axis = column(mat_mul(rot, pose_rotation(s)), 1u) * sz.y;
        return Segment(centre - axis, axis * 2.0, sz.x);
    }
    return Segment(centre, vec3<f32>(0.0), sz.x);
}

// Adjoint of `segment` given (p̄0, d̄): centre̅ = p̄0 and, for a capsule, axis̄ = 2 d̄ − p̄0,
// R̄_s[:, 1] = h axis̄; R̄ = R̄_s R_pᵀ + centre̅ p_localᵀ. Returns x̄_b (xyz of the first) and q̄.
struct PoseBar {
    x: vec3<f32>,
    q: vec4<f32>,
}

fn segment_adjoint(s: u32, b: u32, p0_bar: vec3<f32>, d_bar: vec3<f32>) -> PoseBar {
    let q = body_quat(b);
    var rot_bar = outer(p0_bar, pose_position(s));
    if (shape_kind[s] == SHAPE_CAPSULE) {
        let axis_bar = d_bar * 2.0 - p0_bar;
        rot_bar = m3_add(rot_bar, outer(axis_bar * size_of(s).y, column(pose_rotation(s), 1u)));
    }
    return PoseBar(p0_bar, quat_to_mat_adjoint(q, rot_bar));
}

fn clamp01(x: f32) -> f32 {
    return min(max(x, 0.0), 1.0);
}

// `closest_points` of p0 + s d1 and q0 + t d2, with what its adjoint needs: the branch taken
// (0: both points; 1: A a point; 2: B a point; 3: interior t; 4: t < 0, s refit; 5: t > 1, s
// refit), the unclamped s (or t in branch 1) and whether it is inside [0, 1] (a clamped or
// parallel-case s is a constant).
struct Closest {
    s: f32,
    t: f32,
    kind: u32,
    raw: f32,
    free: bool,
    a: f32,
    b: f32,
    c: f32,
    e: f32,
    f: f32,
    denom: f32,
}

fn closest(p0: vec3<f32>, d1: vec3<f32>, q0: vec3<f32>, d2: vec3<f32>) -> Closest {
    let r = p0 - q0;
    var o = Closest(0.0, 0.0, 0u, 0.0, false, dot3(d1, d1), 0.0, 0.0, dot3(d2, d2), dot3(d2, r), 0.0);
    if (o.a <= EPS && o.e <= EPS) {
        return o;
    }
    if (o.a <= EPS) {
        o.kind = 1u;
        o.raw = o.f / o.e;
        o.t = clamp01(o.raw);
        o.free = o.raw > 0.0 && o.raw < 1.0;
        return o;
    }
    o.c = dot3(d1, r);
    if (o.e <= EPS) {
        o.kind = 2u;
        o.raw = -o.c / o.a;
        o.s = clamp01(o.raw);
        o.free = o.raw > 0.0 && o.raw < 1.0;
        return o;
    }
    o.b = dot3(d1, d2);
    o.denom = o.a * o.e - o.b * o.b;
    if (o.denom > EPS) {
        o.raw = (o.b * o.f - o.c * o.e) / o.denom;
        o.s = clamp01(o.raw);
        o.free = o.raw > 0.0 && o.raw < 1.0;
    }
    o.t = (o.b * o.s + o.f) / o.e;
    o.kind = 3u;
    if (o.t < 0.0) {
        o.kind = 4u;
        o.raw = -o.c / o.a;
    } else if (o.t > 1.0) {
        o.kind = 5u;
        o.raw = (o.b - o.c) / o.a;
    }
    if (o.kind >= 4u) {
        o.s = clamp01(o.raw);
        o.free = o.raw > 0.0 && o.raw < 1.0;
        o.t = select(0.0, 1.0, o.kind == 5u);
    }
    return o;
}

// Reverse of `closest` given (s̄, t̄): the adjoints of (a, b, c, e, f) by branch, then of
// a = d1·d1, b = d1·d2, c = d1·r, e = d2·d2, f = d2·r, r = p0 − q0. Returns (p̄0, d̄1, q̄0, d̄2).
struct ClosestBar {
    p0: vec3<f32>,
    d1: vec3<f32>,
    q0: vec3<f32>,
    d2: vec3<f32>,
}

fn closest_adjoint(p0: vec3<f32>, d1: vec3<f32>, q0: vec3<f32>, d2: vec3<f32>, o: Closest, s_bar_in: f32, t_bar: f32) -> ClosestBar {
    var s_bar = s_bar_in;
    var a_bar = 0.0;
    var b_bar = 0.0;
    var c_bar = 0.0;
    var e_bar = 0.0;
    var f_bar = 0.0;
    switch o.kind {
        case 1u: {
            if (o.free) {
                f_bar = t_bar / o.e;
                e_bar = -t_bar * o.raw / o.e;
            }
        }
        case 2u, 4u: {
            if (o.free) {
                c_bar = -s_bar / o.a;
                a_bar = -s_bar * o.raw / o.a;
            }
        }
        case 5u: {
            if (o.free) {
                b_bar = s_bar / o.a;
                c_bar = -s_bar / o.a;
                a_bar = -s_bar * o.raw / o.a;
            }
        }
        case 3u: {
            // t = (b s + f) / e
            let tn_bar = t_bar / o.e;
            e_bar = -t_bar * o.t / o.e;
            b_bar = tn_bar * o.s;
            s_bar = s_bar + tn_bar * o.b;
            f_bar = tn_bar;
            if (o.free) {
                // s = (b f − c e) / denom, denom = a e − b²
                let num_bar = s_bar / o.denom;
                let denom_bar = -s_bar * o.raw / o.denom;
                b_bar = b_bar + num_bar * o.f - 2.0 * o.b * denom_bar;
                f_bar = f_bar + num_bar * o.b;
                c_bar = -num_bar * o.e;
                e_bar = e_bar - num_bar * o.c + denom_bar * o.a;
                a_bar = denom_bar * o.e;
            }
        }
        default: {}
    }
    let r = p0 - q0;
    let r_bar = d2 * f_bar + d1 * c_bar;
    var out: ClosestBar;
    out.p0 = r_bar;
    out.q0 = -r_bar;
    out.d1 = d1 * (2.0 * a_bar) + r * c_bar + d2 * b_bar;
    out.d2 = d2 * (2.0 * e_bar) + r * f_bar + d1 * b_bar;
    return out;
}

// One pair's contact (shape_contact.rs `pair_contacts` for two segments, then `pair_wrench`):
// on = false without a pushing contact.
struct PairContact {
    on: bool,
    sa: Segment,
    sb: Segment,
    cl: Closest,
    p: vec3<f32>,
    q: vec3<f32>,
    d: f32,
    x: vec3<f32>,
    n: vec3<f32>,
    pen: f32,
    u: vec3<f32>,
    c: vec4<f32>,
    f: vec3<f32>,
}

fn pair_contact(k: u32) -> PairContact {
    var o: PairContact;
    o.on = false;
    let si = pairs[4u * k];
    let sj = pairs[4u * k + 1u];
    let ba = pairs[4u * k + 2u];
    let bb = pairs[4u * k + 3u];
    o.sa = segment(si, ba);
    o.sb = segment(sj, bb);
    // Bounding-sphere cull.
    let ca = o.sa.p0 + o.sa.d * 0.5;
    let cb = o.sb.p0 + o.sb.d * 0.5;
    let ra = o.sa.radius + 0.5 * sqrt(dot3(o.sa.d, o.sa.d));
    let rb = o.sb.radius + 0.5 * sqrt(dot3(o.sb.d, o.sb.d));
    let gap = ca - cb;
    if (dot3(gap, gap) >= (ra + rb) * (ra + rb)) {
        return o;
    }
    o.cl = closest(o.sa.p0, o.sa.d, o.sb.p0, o.sb.d);
    o.p = o.sa.p0 + o.sa.d * o.cl.s;
    o.q = o.sb.p0 + o.sb.d * o.cl.t;
    let delta = o.p - o.q;
    let d2 = dot3(delta, delta);
    let reach = pair_c[PAIR_C * k + 4u];
    if (d2 >= pair_c[PAIR_C * k + 5u] || d2 < 1e-18) {
        return o;
    }
    o.d = sqrt(d2);
    o.x = (o.p + o.q) * 0.5;
    o.n = delta * (1.0 / o.d);
    o.pen = reach - o.d;
    o.u = (body_vo(ba) + cross3(body_w(ba), o.x)) - (body_vo(bb) + cross3(body_w(bb), o.x));
    o.c = vec4<f32>(pair_c[PAIR_C * k], pair_c[PAIR_C * k + 1u], pair_c[PAIR_C * k + 2u], pair_c[PAIR_C * k + 3u]);
    let pf = penalty_force(o.pen, o.u, o.n, o.c);
    o.on = pf.on;
    o.f = pf.f;
    return o;
}
