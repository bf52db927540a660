// articulation.shape_contact / shape_pair_contact narrow phases involving a box (shape_contact.rs
// `segment_box`, `sphere_box`, `point_inside_box`, `face_contact`, `box_samples`): the same
// formulas, branches and order of f32 operations as the CPU, one contact point at a time by index
// so the forward can add each point's force into its pair's wrench in the CPU's point order and
// the adjoint can pull each point back as soon as it has it; then the reverse of each step, by
// hand, into the box's centre and rotation (`BoxBar`) and the core's (p̄0, d̄).

// A box in world coordinates: centre, rotation (box frame → world), half extents (`WorldShape::Box`).
struct Box {
    c: vec3<f32>,
    rot: M3,
    h: vec3<f32>,
}

// centre = x_b + R_b p_local, rot = R_b R_pose.
fn world_box(s: u32, b: u32) -> Box {
    let rot = quat_to_mat(body_quat(b));
    return Box(body_x(b) + mat_vec(rot, pose_position(s)), mat_mul(rot, pose_rotation(s)), size_of(s));
}

// Adjoints of a box's centre and rotation.
struct BoxBar {
    c: vec3<f32>,
    r: M3,
}

// Reverse of `world_box`: x̄_b = c̄; R̄_b = c̄ p_localᵀ + R̄ R_poseᵀ.
fn box_adjoint(s: u32, b: u32, g: BoxBar) -> PoseBar {
    let rot_bar = m3_add(outer(g.c, pose_position(s)), mat_mul(g.r, transpose3(pose_rotation(s))));
    return PoseBar(g.c, quat_to_mat_adjoint(body_quat(b), rot_bar));
}

fn unit(axis: u32) -> vec3<f32> {
    var u = vec3<f32>(0.0);
    u[axis] = 1.0;
    return u;
}

// A contact of a box-frame point p with a box (`sphere_box` / `point_inside_box`): on = false
// for none. `inside`: the nearest-face law (axis, sign); otherwise the closest-point law
// (q = clamp(p, −h, h), local normal nl, distance dist). xl: x in the box frame.
struct BoxPoint {
    on: bool,
    x: vec3<f32>,
    n: vec3<f32>,
    pen: f32,
    inside: bool,
    p: vec3<f32>,
    axis: u32,
    sign: f32,
    xl: vec3<f32>,
    nl: vec3<f32>,
    dist: f32,
}

// `depth`: g = minᵢ (hᵢ − |pᵢ|) and its axis (the first of equal ones).
struct Depth {
    g: f32,
    axis: u32,
}

fn depth(p: vec3<f32>, h: vec3<f32>) -> Depth {
    var best = Depth(h[0] - abs(p[0]), 0u);
    for (var i = 1u; i < 3u; i++) {
        let g = h[i] - abs(p[i]);
        if (g < best.g) {
            best = Depth(g, i);
        }
    }
    return best;
}

// `face_contact`: the face `axis` of the box under p at depth g ≥ 0, for a shape of radius r.
fn face_contact(p: vec3<f32>, d: Depth, radius: f32, bx: Box) -> BoxPoint {
    var o: BoxPoint;
    o.on = true;
    o.inside = true;
    o.p = p;
    o.axis = d.axis;
    o.sign = select(1.0, -1.0, p[d.axis] < 0.0);
    var q = p;
    q[d.axis] = o.sign * bx.h[d.axis];
    o.n = column(bx.rot, d.axis) * o.sign;
    o.xl = (p + q) * 0.5;
    o.x = bx.c + mat_vec(bx.rot, o.xl);
    o.pen = radius + d.g;
    return o;
}

// `sphere_box`: a sphere of box-frame centre p and radius r (r2 = r², rounded from f64 on the
// host as the CPU compares in f64).
fn sphere_box(p: vec3<f32>, radius: f32, r2: f32, bx: Box) -> BoxPoint {
    let d = depth(p, bx.h);
    if (d.g >= 0.0) {
        return face_contact(p, d, radius, bx);
    }
    var o: BoxPoint;
    o.on = false;
    o.p = p;
    let q = min(max(p, -bx.h), bx.h);
    let delta = p - q;
    let d2 = dot3(delta, delta);
    if (d2 >= r2 || d2 < 1e-24) {
        return o;
    }
    o.on = true;
    o.dist = sqrt(d2);
    o.nl = delta * (1.0 / o.dist);
    o.n = mat_vec(bx.rot, o.nl);
    o.xl = (p + q) * 0.5;
    o.x = bx.c + mat_vec(bx.rot, o.xl);
    o.pen = radius - o.dist;
    return o;
}

// Reverse of `sphere_box` / `face_contact` given (x̄, n̄, p̄en): adds the box's (c̄, R̄) into
// `acc` and returns p̄ (box frame).
fn box_point_adjoint(o: BoxPoint, bx: Box, x_bar: vec3<f32>, n_bar: vec3<f32>, pen_bar: f32, acc: ptr<function, BoxBar>) -> vec3<f32> {
    let rt = transpose3(bx.rot);
    // x = c + R xl
    (*acc).c = (*acc).c + x_bar;
    (*acc).r = m3_add((*acc).r, outer(x_bar, o.xl));
    let xl_bar = mat_vec(rt, x_bar);
    if (o.inside) {
        // xl = ½ (p + q), q = p but q[axis] = ±h: x̄l passes to p̄ except half of it on the axis;
        // n = sign R[:, axis]; pen = r + h[axis] − |p[axis]|.
        (*acc).r = m3_add((*acc).r, outer(n_bar * o.sign, unit(o.axis)));
        var p_bar = xl_bar;
        p_bar[o.axis] = 0.5 * xl_bar[o.axis] - o.sign * pen_bar;
        return p_bar;
    }
    // n = R nl, nl = δ/dist, pen = r − dist: δ̄ = (n̄l − nl (nl·n̄l))/dist − p̄en nl.
    (*acc).r = m3_add((*acc).r, outer(n_bar, o.nl));
    let nl_bar = mat_vec(rt, n_bar);
    let delta_bar = (nl_bar - o.nl * dot3(o.nl, nl_bar)) * (1.0 / o.dist) - o.nl * pen_bar;
    // xl = ½ (p + q), δ = p − q, q = clamp(p, −h, h) (q̄ passes to p̄ strictly inside the slab).
    var p_bar = xl_bar * 0.5 + delta_bar;
    let q_bar = xl_bar * 0.5 - delta_bar;
    for (var i = 0u; i < 3u; i++) {
        if (o.p[i] > -bx.h[i] && o.p[i] < bx.h[i]) {
            p_bar[i] = p_bar[i] + q_bar[i];
        }
    }
    return p_bar;
}

// `point_inside_box`: a world point strictly inside the box (radius 0); on = false otherwise.
fn point_inside_box(pw: vec3<f32>, bx: Box) -> BoxPoint {
    let p = mat_vec(transpose3(bx.rot), pw - bx.c);
    let d = depth(p, bx.h);
    if (d.g <= 0.0) {
        var o: BoxPoint;
        o.on = false;
        return o;
    }
    return face_contact(p, d, 0.0, bx);
}

// Reverse of `point_inside_box` into the box (acc) and the point: returns p̄w.
fn point_inside_box_adjoint(o: BoxPoint, pw: vec3<f32>, bx: Box, x_bar: vec3<f32>, n_bar: vec3<f32>, pen_bar: f32, acc: ptr<function, BoxBar>) -> vec3<f32> {
    let p_bar = box_point_adjoint(o, bx, x_bar, n_bar, pen_bar, acc);
    // p = Rᵀ (pw − c)
    let pw_bar = mat_vec(bx.rot, p_bar);
    (*acc).c = (*acc).c - pw_bar;
    (*acc).r = m3_add((*acc).r, outer(pw - bx.c, p_bar));
    return pw_bar;
}

// `box_samples`: the local coefficients in {−1, 0, 1}³ of sample k < 27, or none (more than one
// zero); the 20 that exist are the 8 vertices and 12 edge midpoints, in the CPU's order.
struct Sample {
    on: bool,
    l: vec3<f32>,
}

fn box_sample(k: u32, h: vec3<f32>) -> Sample {
    let c = vec3<i32>(i32(k % 3u) - 1, i32(k / 3u % 3u) - 1, i32(k / 9u) - 1);
    let zeros = u32(c.x == 0) + u32(c.y == 0) + u32(c.z == 0);
    return Sample(zeros <= 1u, vec3<f32>(c) * h);
}

// The box–box contact of sample k (< 54): samples 0..26 of A inside B (n out of B), then samples
// of B inside A (n out of A, `flip`ped by the caller).
struct BoxBoxPoint {
    pt: BoxPoint,
    pw: vec3<f32>,
    l: vec3<f32>,
    flip: bool,
}

fn box_box_point(k: u32, ba: Box, bb: Box) -> BoxBoxPoint {
    var o: BoxBoxPoint;
    o.flip = k >= 27u;
    var src = ba;
    var dst = bb;
    if (o.flip) {
        src = bb;
        dst = ba;
    }
    let smp = box_sample(k % 27u, src.h);
    o.pt.on = false;
    if (!smp.on) {
        return o;
    }
    o.l = smp.l;
    o.pw = src.c + mat_vec(src.rot, smp.l);
    o.pt = point_inside_box(o.pw, dst);
    return o;
}

// `segment_box`'s minimisation of f(s) = Σᵢ max(|aᵢ + s eᵢ| − hᵢ, 0)² (a = Rᵀ (p0 − c),
// e = Rᵀ d) over the breakpoints, with what its adjoint needs: how s was chosen (0: a constant
// 0 or 1; 1: free, −num/den inside its interval; 2: the sum of `w` × the interval's ends `lo`,
// `hi` (one of them with w = 1 where −num/den was clamped to it, both with w = ½ where f is
// constant on the interval), each a constant or a breakpoint (σ hᵢ − aᵢ)/eᵢ: id 0 or 1 + i),
// num/den's sides and which coordinates were outside.
struct SegBox {
    a: vec3<f32>,
    e: vec3<f32>,
    s: f32,
    f2: f32,
    how: u32,
    lo: f32,
    hi: f32,
    lo_id: u32,
    hi_id: u32,
    w: vec2<f32>,
    raw: f32,
    den: f32,
    side: vec3<f32>,
    outm: vec3<bool>,
    // Contacts: 1 at s (the core stays outside), 3 at s = 0, ½, 1 or 1 at s = 0 (it enters).
    count: u32,
    enters: bool,
}

fn outside2(a: vec3<f32>, e: vec3<f32>, h: vec3<f32>, s: f32) -> f32 {
    let p = a + e * s;
    var acc = 0.0;
    for (var i = 0u; i < 3u; i++) {
        let o = abs(p[i]) - h[i];
        if (o > 0.0) {
            acc = acc + o * o;
        }
    }
    return acc;
}

// Breakpoint ids: 0 the constants 0 and 1, otherwise 1 + axis.
fn segment_box_setup(sg: Segment, bx: Box, r2: f32) -> SegBox {
    let rt = transpose3(bx.rot);
    var o: SegBox;
    o.a = mat_vec(rt, sg.p0 - bx.c);
    o.e = mat_vec(rt, sg.d);
    let h = bx.h;
    var cuts: array<f32, 8>;
    var ids: array<u32, 8>;
    cuts[0] = 0.0;
    cuts[1] = 1.0;
    ids[0] = 0u;
    ids[1] = 0u;
    var n = 2u;
    var moving = false;
    for (var i = 0u; i < 3u; i++) {
        if (abs(o.e[i]) > 1e-12) {
            moving = true;
            for (var k = 0u; k < 2u; k++) {
                let sign = select(-1.0, 1.0, k == 1u);
                let s = (sign * h[i] - o.a[i]) / o.e[i];
                if (s > 0.0 && s < 1.0) {
                    cuts[n] = s;
                    ids[n] = 1u + i;
                    n++;
                }
            }
        }
    }
    // Stable insertion sort (the CPU's stable sort_by).
    for (var i = 1u; i < n; i++) {
        var j = i;
        while (j > 0u && cuts[j - 1u] > cuts[j]) {
            let c = cuts[j];
            cuts[j] = cuts[j - 1u];
            cuts[j - 1u] = c;
            let d = ids[j];
            ids[j] = ids[j - 1u];
            ids[j - 1u] = d;
            j--;
        }
    }
    o.s = 0.0;
    o.f2 = outside2(o.a, o.e, h, 0.0);
    o.how = 0u;
    for (var w = 0u; w + 1u < n; w++) {
        let lo = cuts[w];
        let hi = cuts[w + 1u];
        let mid = (lo + hi) * 0.5;
        var num = 0.0;
        var den = 0.0;
        var side = vec3<f32>(0.0);
        var outm = vec3<bool>(false);
        for (var i = 0u; i < 3u; i++) {
            let x = o.a[i] + mid * o.e[i];
            if (abs(x) > h[i]) {
                side[i] = select(h[i], -h[i], x < 0.0);
                outm[i] = true;
                num = num + o.e[i] * (o.a[i] - side[i]);
                den = den + o.e[i] * o.e[i];
            }
        }
        // Weights of (lo, hi) in s, or free.
        var wt = vec2<f32>(0.5, 0.5);
        var free = false;
        var s = (lo + hi) * 0.5;
        var raw = 0.0;
        if (den > 1e-18) {
            raw = -num / den;
            s = min(max(raw, lo), hi);
            if (raw < lo) {
                wt = vec2<f32>(1.0, 0.0);
            } else if (raw <= hi) {
                free = true;
            } else {
                wt = vec2<f32>(0.0, 1.0);
            }
        }
        let f = outside2(o.a, o.e, h, s);
        if (f < o.f2) {
            o.s = s;
            o.f2 = f;
            o.raw = raw;
            o.den = den;
            o.side = side;
            o.outm = outm;
            o.how = select(2u, 1u, free);
            o.lo = lo;
            o.hi = hi;
            o.lo_id = ids[w];
            o.hi_id = ids[w + 1u];
            o.w = wt;
        }
    }
    o.enters = o.f2 <= 1e-18;
    if (!o.enters) {
        o.count = select(0u, 1u, o.f2 < r2);
    } else {
        o.count = select(1u, 3u, moving);
    }
    return o;
}

// The core parameter of contact j.
fn segment_box_s(o: SegBox, j: u32) -> f32 {
    if (!o.enters) {
        return o.s;
    }
    return f32(j) * 0.5;
}

// Reverse of the core point P = a + s e (box frame) of contact j given p̄, accumulated into
// (ā, ē): through s too where the core stays outside and s moves with (a, e).
fn segment_box_point_adjoint(o: SegBox, j: u32, p_bar: vec3<f32>, a_bar: ptr<function, vec3<f32>>, e_bar: ptr<function, vec3<f32>>) {
    let s = segment_box_s(o, j);
    *a_bar = *a_bar + p_bar;
    *e_bar = *e_bar + p_bar * s;
    if (o.enters) {
        return;
    }
    let s_bar = dot3(o.e, p_bar);
    if (o.how == 1u) {
        // s = −num/den, num = Σ_out eᵢ (aᵢ − sideᵢ), den = Σ_out eᵢ²
        let num_bar = -s_bar / o.den;
        let den_bar = -s_bar * o.raw / o.den;
        for (var i = 0u; i < 3u; i++) {
            if (o.outm[i]) {
                (*a_bar)[i] = (*a_bar)[i] + num_bar * o.e[i];
                (*e_bar)[i] = (*e_bar)[i] + num_bar * (o.a[i] - o.side[i]) + 2.0 * o.e[i] * den_bar;
            }
        }
    } else if (o.how == 2u) {
        // s = w_lo lo + w_hi hi, a breakpoint (σ hᵢ − aᵢ)/eᵢ moving with (aᵢ, eᵢ)
        cut_adjoint(o, o.lo_id, o.lo, o.w.x * s_bar, a_bar, e_bar);
        cut_adjoint(o, o.hi_id, o.hi, o.w.y * s_bar, a_bar, e_bar);
    }
}

fn cut_adjoint(o: SegBox, id: u32, cut: f32, c_bar: f32, a_bar: ptr<function, vec3<f32>>, e_bar: ptr<function, vec3<f32>>) {
    if (id == 0u) {
        return;
    }
    let i = id - 1u;
    (*a_bar)[i] = (*a_bar)[i] - c_bar / o.e[i];
    (*e_bar)[i] = (*e_bar)[i] - c_bar * cut / o.e[i];
}

// Reverse of a = Rᵀ (p0 − c), e = Rᵀ d into the core's (p̄0, d̄) and the box's (c̄, R̄).
fn segment_box_frame_adjoint(sg: Segment, bx: Box, a_bar: vec3<f32>, e_bar: vec3<f32>, acc: ptr<function, BoxBar>, p0_bar: ptr<function, vec3<f32>>, d_bar: ptr<function, vec3<f32>>) {
    let ra = mat_vec(bx.rot, a_bar);
    *p0_bar = *p0_bar + ra;
    *d_bar = *d_bar + mat_vec(bx.rot, e_bar);
    (*acc).c = (*acc).c - ra;
    (*acc).r = m3_add((*acc).r, m3_add(outer(sg.p0 - bx.c, a_bar), outer(sg.d, e_bar)));
}

// ---- Pairs with a box (`pair_contacts` then `pair_wrench`), forward and adjoint. ----

// A box pair's shapes: the segment (if any) and the box(es), which of them is shape A, and the
// candidate contacts (`count`; those that exist are on). Box–box: candidates 0..54 of
// `box_box_point`; segment–box: 0..count of `segment_box_setup`.
struct BoxPair {
    culled: bool,
    both_boxes: bool,
    // Segment–box: the box is shape A (normals flipped to point out of B towards A).
    box_is_a: bool,
    sg: Segment,
    bx: Box,
    bx2: Box,
    sb: SegBox,
    count: u32,
    c: vec4<f32>,
    // The segment's r² (f64 on the host, rounded once).
    r2: f32,
}

fn box_pair(k: u32) -> BoxPair {
    var o: BoxPair;
    let si = pairs[4u * k];
    let sj = pairs[4u * k + 1u];
    let ba = pairs[4u * k + 2u];
    let bb = pairs[4u * k + 3u];
    o.c = vec4<f32>(pair_c[PAIR_C * k], pair_c[PAIR_C * k + 1u], pair_c[PAIR_C * k + 2u], pair_c[PAIR_C * k + 3u]);
    o.both_boxes = shape_kind[si] == SHAPE_BOX && shape_kind[sj] == SHAPE_BOX;
    o.box_is_a = shape_kind[si] == SHAPE_BOX;
    // Bounding spheres (`WorldShape::bound`): a segment's around its midpoint, a box's around its
    // centre with radius |h|.
    var ca: vec3<f32>;
    var cb: vec3<f32>;
    var ra: f32;
    var rb: f32;
    if (o.both_boxes) {
        o.bx = world_box(si, ba);
        o.bx2 = world_box(sj, bb);
        ca = o.bx.c;
        ra = sqrt(dot3(o.bx.h, o.bx.h));
        cb = o.bx2.c;
        rb = sqrt(dot3(o.bx2.h, o.bx2.h));
    } else {
        var ss = si;
        var bs = ba;
        var sx = sj;
        var bxb = bb;
        if (o.box_is_a) {
            ss = sj;
            bs = bb;
            sx = si;
            bxb = ba;
        }
        o.sg = segment(ss, bs);
        o.bx = world_box(sx, bxb);
        let cs = o.sg.p0 + o.sg.d * 0.5;
        let rs = o.sg.radius + 0.5 * sqrt(dot3(o.sg.d, o.sg.d));
        let cx = o.bx.c;
        let rx = sqrt(dot3(o.bx.h, o.bx.h));
        ca = select(cs, cx, o.box_is_a);
        ra = select(rs, rx, o.box_is_a);
        cb = select(cx, cs, o.box_is_a);
        rb = select(rx, rs, o.box_is_a);
    }
    let gap = ca - cb;
    o.culled = dot3(gap, gap) >= (ra + rb) * (ra + rb);
    if (o.culled) {
        return o;
    }
    if (o.both_boxes) {
        o.count = 54u;
    } else {
        o.r2 = pair_c[PAIR_C * k + 5u];
        o.sb = segment_box_setup(o.sg, o.bx, o.r2);
        o.count = o.sb.count;
    }
    return o;
}

// Candidate contact j of a box pair, normal out of B towards A.
struct BoxContact {
    pt: BoxPoint,
    bb: BoxBoxPoint,
}

fn box_contact(o: BoxPair, j: u32) -> BoxContact {
    var res: BoxContact;
    var flip = o.box_is_a;
    if (o.both_boxes) {
        res.bb = box_box_point(j, o.bx, o.bx2);
        res.pt = res.bb.pt;
        flip = res.bb.flip;
    } else {
        let p = o.sb.a + o.sb.e * segment_box_s(o.sb, j);
        res.pt = sphere_box(p, o.sg.radius, o.r2, o.bx);
    }
    if (flip) {
        res.pt.n = res.pt.n * -1.0;
    }
    return res;
}

// The wrench (torque about the origin, force) B exerts on A over the pair's contacts, added in
// the CPU's point order from zero.
struct Wrench {
    torque: vec3<f32>,
    force: vec3<f32>,
}

fn box_pair_wrench(k: u32) -> Wrench {
    var w = Wrench(vec3<f32>(0.0), vec3<f32>(0.0));
    let o = box_pair(k);
    if (o.culled) {
        return w;
    }
    let ba = pairs[4u * k + 2u];
    let bb = pairs[4u * k + 3u];
    for (var j = 0u; j < o.count; j++) {
        let ct = box_contact(o, j);
        if (!ct.pt.on) {
            continue;
        }
        let x = ct.pt.x;
        let u = (body_vo(ba) + cross3(body_w(ba), x)) - (body_vo(bb) + cross3(body_w(bb), x));
        let pf = penalty_force(ct.pt.pen, u, ct.pt.n, o.c);
        if (pf.on) {
            w.torque = w.torque + cross3(x, pf.f);
            w.force = w.force + pf.f;
        }
    }
    return w;
}

// Both bodies' pose (x̄, q̄) and twist (ω̄, v̄) adjoints of a box pair.
struct BoxPairBar {
    a: PoseBar,
    wa: vec3<f32>,
    va: vec3<f32>,
    b: PoseBar,
    wb: vec3<f32>,
    vb: vec3<f32>,
}

fn zero_box_bar() -> BoxBar {
    return BoxBar(vec3<f32>(0.0), M3(vec3<f32>(0.0), vec3<f32>(0.0), vec3<f32>(0.0)));
}

// Reverse of `box_pair_wrench` given ȳ = (τ̄, f̄): point by point through the penalty law and the
// point velocities, then through that point's geometry into the shapes (c̄, R̄ of each box; ā, ē
// of the core in the box frame), then into the bodies.
fn box_pair_adjoint(k: u32, tau_bar: vec3<f32>, f_bar: vec3<f32>) -> BoxPairBar {
    var g: BoxPairBar;
    g.a = PoseBar(vec3<f32>(0.0), vec4<f32>(0.0));
    g.b = g.a;
    g.wa = vec3<f32>(0.0);
    g.va = g.wa;
    g.wb = g.wa;
    g.vb = g.wa;
    let o = box_pair(k);
    if (o.culled) {
        return g;
    }
    let si = pairs[4u * k];
    let sj = pairs[4u * k + 1u];
    let ba = pairs[4u * k + 2u];
    let bb = pairs[4u * k + 3u];
    let wa = body_w(ba);
    let wb = body_w(bb);
    // Box–box: A's box and B's; segment–box: the box.
    var acc = zero_box_bar();
    var acc2 = zero_box_bar();
    var a_bar = vec3<f32>(0.0);
    var e_bar = vec3<f32>(0.0);
    for (var j = 0u; j < o.count; j++) {
        let ct = box_contact(o, j);
        if (!ct.pt.on) {
            continue;
        }
        let x = ct.pt.x;
        let u = (body_vo(ba) + cross3(wa, x)) - (body_vo(bb) + cross3(wb, x));
        let pf = penalty_force(ct.pt.pen, u, ct.pt.n, o.c);
        if (!pf.on) {
            continue;
        }
        // torque = x × f, force = f; u = (v_A + ω_A × x) − (v_B + ω_B × x)
        let pb = penalty_adjoint(ct.pt.pen, u, ct.pt.n, o.c, f_bar + cross3(tau_bar, x));
        let x_bar = cross3(pf.f, tau_bar) + cross3(pb.u, wa) - cross3(pb.u, wb);
        let w_bar = cross3(x, pb.u);
        g.wa = g.wa + w_bar;
        g.va = g.va + pb.u;
        g.wb = g.wb - w_bar;
        g.vb = g.vb - pb.u;
        if (o.both_boxes) {
            let flip = ct.bb.flip;
            let n_bar = select(pb.n, pb.n * -1.0, flip);
            var dst_bar = zero_box_bar();
            var dst = o.bx2;
            if (flip) {
                dst = o.bx;
            }
            let pw_bar = point_inside_box_adjoint(ct.pt, ct.bb.pw, dst, x_bar, n_bar, pb.pen, &dst_bar);
            // pw = c_src + R_src l
            let src = BoxBar(pw_bar, outer(pw_bar, ct.bb.l));
            if (flip) {
                acc.c = acc.c + dst_bar.c;
                acc.r = m3_add(acc.r, dst_bar.r);
                acc2.c = acc2.c + src.c;
                acc2.r = m3_add(acc2.r, src.r);
            } else {
                acc2.c = acc2.c + dst_bar.c;
                acc2.r = m3_add(acc2.r, dst_bar.r);
                acc.c = acc.c + src.c;
                acc.r = m3_add(acc.r, src.r);
            }
        } else {
            let n_bar = select(pb.n, pb.n * -1.0, o.box_is_a);
            let p_bar = box_point_adjoint(ct.pt, o.bx, x_bar, n_bar, pb.pen, &acc);
            segment_box_point_adjoint(o.sb, j, p_bar, &a_bar, &e_bar);
        }
    }
    if (o.both_boxes) {
        g.a = box_adjoint(si, ba, acc);
        g.b = box_adjoint(sj, bb, acc2);
        return g;
    }
    var p0_bar = vec3<f32>(0.0);
    var d_bar = vec3<f32>(0.0);
    segment_box_frame_adjoint(o.sg, o.bx, a_bar, e_bar, &acc, &p0_bar, &d_bar);
    if (o.box_is_a) {
        g.a = box_adjoint(si, ba, acc);
        g.b = segment_adjoint(sj, bb, p0_bar, d_bar);
    } else {
        g.a = segment_adjoint(si, ba, p0_bar, d_bar);
        g.b = box_adjoint(sj, bb, acc);
    }
    return g;
}
