// articulation.shape_contact adjoint in two passes: one invocation per pair pulls
// ȳ = ∂L/∂f_A − ∂L/∂f_B (B receives −wrench; body_f's adjoint passes through unchanged) back to
// both bodies' poses and twists, by hand in reverse through the penalty law, the contact frame
// (x = ½ (P + Q), n = (P − Q)/d, pen = reach − d), the closest points and the shapes' world
// geometry (a pair with a box: `box_pair_adjoint`, point by point), into the scratch (zeros
// without contact); then one invocation per body adds its
// entries in pair order.
@group(0) @binding(12) var<storage, read> abf: array<f32>;
@group(0) @binding(13) var<storage, read_write> abq: array<f32>;
@group(0) @binding(14) var<storage, read_write> abqd: array<f32>;
@group(0) @binding(15) var<uniform> p: Params;

const ADJ: u32 = 26u;

@compute @workgroup_size(64)
fn pair_adjoint(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = linear_index(gid, nwg);
    if (k >= p.n) {
        return;
    }
    for (var i = 0u; i < ADJ; i++) {
        scratch[ADJ * k + i] = 0.0;
    }
    let ba = pairs[4u * k + 2u];
    let bb = pairs[4u * k + 3u];
    var yb: array<f32, 6>;
    var seeded = false;
    for (var i = 0u; i < 6u; i++) {
        yb[i] = abf[6u * ba + i] - abf[6u * bb + i];
        seeded = seeded || yb[i] != 0.0;
    }
    if (!seeded) {
        return;
    }
    if (pair_has_box(k)) {
        let g = box_pair_adjoint(k, vec3<f32>(yb[0], yb[1], yb[2]), vec3<f32>(yb[3], yb[4], yb[5]));
        for (var i = 0u; i < 3u; i++) {
            scratch[ADJ * k + i] = g.a.x[i];
            scratch[ADJ * k + 7u + i] = g.wa[i];
            scratch[ADJ * k + 10u + i] = g.va[i];
            scratch[ADJ * k + 13u + i] = g.b.x[i];
            scratch[ADJ * k + 20u + i] = g.wb[i];
            scratch[ADJ * k + 23u + i] = g.vb[i];
        }
        for (var i = 0u; i < 4u; i++) {
            scratch[ADJ * k + 3u + i] = g.a.q[i];
            scratch[ADJ * k + 16u + i] = g.b.q[i];
        }
        return;
    }
    let o = pair_contact(k);
    if (!o.on) {
        return;
    }
    let n_bar = vec3<f32>(yb[0], yb[1], yb[2]);
    let f_bar = vec3<f32>(yb[3], yb[4], yb[5]);
    let wa = body_w(ba);
    let wb = body_w(bb);
    // torque = x × f, force = f
    let pb = penalty_adjoint(o.pen, o.u, o.n, o.c, f_bar + cross3(n_bar, o.x));
    // u = (v_A + ω_A × x) − (v_B + ω_B × x)
    let x_bar = cross3(o.f, n_bar) + cross3(pb.u, wa) - cross3(pb.u, wb);
    let wa_bar = cross3(o.x, pb.u);
    // pen = reach − d, n = δ/d, d = |δ|: δ̄ = (n̄ − n (n·n̄))/d − p̄en n (the tangential part of
    // n̄ turns the normal; written with the unit n, which rounds less than δ/d³).
    let delta_bar = (pb.n - o.n * dot3(o.n, pb.n)) * (1.0 / o.d) - o.n * pb.pen;
    // x = ½ (P + Q), δ = P − Q
    let p_bar = x_bar * 0.5 + delta_bar;
    let q_bar = x_bar * 0.5 - delta_bar;
    // P = p0 + s d1, Q = q0 + t d2
    let cb = closest_adjoint(o.sa.p0, o.sa.d, o.sb.p0, o.sb.d, o.cl, dot3(p_bar, o.sa.d), dot3(q_bar, o.sb.d));
    let ga = segment_adjoint(pairs[4u * k], ba, p_bar + cb.p0, p_bar * o.cl.s + cb.d1);
    let gb = segment_adjoint(pairs[4u * k + 1u], bb, q_bar + cb.q0, q_bar * o.cl.t + cb.d2);
    for (var i = 0u; i < 3u; i++) {
        scratch[ADJ * k + i] = ga.x[i];
        scratch[ADJ * k + 7u + i] = wa_bar[i];
        scratch[ADJ * k + 10u + i] = pb.u[i];
        scratch[ADJ * k + 13u + i] = gb.x[i];
        scratch[ADJ * k + 20u + i] = -wa_bar[i];
        scratch[ADJ * k + 23u + i] = -pb.u[i];
    }
    for (var i = 0u; i < 4u; i++) {
        scratch[ADJ * k + 3u + i] = ga.q[i];
        scratch[ADJ * k + 16u + i] = gb.q[i];
    }
}

@compute @workgroup_size(64)
fn pair_adjoint_gather(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let b = linear_index(gid, nwg);
    if (b >= p.n) {
        return;
    }
    for (var j = offsets[b]; j < offsets[b + 1u]; j++) {
        let base = ADJ * (entries[j] >> 1u) + 13u * (entries[j] & 1u);
        for (var i = 0u; i < 7u; i++) {
            abq[7u * b + i] = abq[7u * b + i] + scratch[base + i];
        }
        for (var i = 0u; i < 6u; i++) {
            abqd[6u * b + i] = abqd[6u * b + i] + scratch[base + 7u + i];
        }
    }
}
