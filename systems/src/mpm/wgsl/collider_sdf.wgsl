// The kinematic collider's grid-velocity projection (collider.rs `Collider::project`), for
// kernels that declare `shapes`, `qcol` and `qdcol`.
// Signed distance and outward normal (body frame) of collider shape k at local point l. Shapes:
// 8 floats each, (kind, centre xyz, a, b, c, 0), kind 0 capsule / 1 cylinder (a radius, b half
// height, axis local z), 2 box (a, b, c half extents).
struct Sdf {
    d: f32,
    n: vec3<f32>,
}

// What the cylinder's distance and its adjoint share, at pp (relative to the centre) for the
// shape at row offset o: rho = |pp_xy|, the radial unit vector (x on the axis), the side of the
// nearer cap sz and its normal, and the distances a = rho - radius, b = |pp_z| - half height.
struct CylinderFrame {
    rho: f32,
    radial: vec3<f32>,
    sz: f32,
    axial: vec3<f32>,
    a: f32,
    b: f32,
}

fn cylinder_frame(o: u32, pp: vec3<f32>) -> CylinderFrame {
    let rho = sqrt(pp.x * pp.x + pp.y * pp.y);
    var radial = vec3<f32>(1.0, 0.0, 0.0);
    if (rho > 1e-12) {
        radial = vec3<f32>(pp.x / rho, pp.y / rho, 0.0);
    }
    var sz = 1.0;
    if (pp.z < 0.0) {
        sz = -1.0;
    }
    return CylinderFrame(rho, radial, sz, vec3<f32>(0.0, 0.0, sz), rho - shapes[o + 4u], pp.z * sz - shapes[o + 5u]);
}

// The box's nearest face from inside (the last of equal ones, as the CPU's `max_by`), for
// q = |pp| - half extents.
fn box_face(q: vec3<f32>) -> u32 {
    var k2 = 0u;
    for (var d = 1u; d < 3u; d++) {
        if (q[d] >= q[k2]) {
            k2 = d;
        }
    }
    return k2;
}

fn shape_sdf(k: u32, l: vec3<f32>) -> Sdf {
    let o = 8u * k;
    let kind = shapes[o];
    let pp = l - vec3<f32>(shapes[o + 1u], shapes[o + 2u], shapes[o + 3u]);
    if (kind == 0.0) {
        let h = shapes[o + 5u];
        let t = min(max(pp.z, -h), h);
        let dd = vec3<f32>(pp.x, pp.y, pp.z - t);
        let len = sqrt(dot(dd, dd));
        if (len < 1e-12) {
            return Sdf(-shapes[o + 4u], vec3<f32>(0.0, 1.0, 0.0));
        }
        return Sdf(len - shapes[o + 4u], dd * (1.0 / len));
    } else if (kind == 1.0) {
        let cy = cylinder_frame(o, pp);
        let radial = cy.radial;
        let a = cy.a;
        let b = cy.b;
        let axial = cy.axial;
        if (a > 0.0 && b > 0.0) {
            let len = sqrt(a * a + b * b);
            return Sdf(len, (radial * a + axial * b) * (1.0 / len));
        } else if (a > b) {
            return Sdf(a, radial);
        }
        return Sdf(b, axial);
    }
    let he = vec3<f32>(shapes[o + 4u], shapes[o + 5u], shapes[o + 6u]);
    let q = max(pp, -pp) - he;
    let outside = max(q, vec3<f32>(0.0));
    let lo = sqrt(dot(outside, outside));
    if (lo > 1e-12) {
        var n = outside;
        for (var d = 0u; d < 3u; d++) {
            if (pp[d] < 0.0) {
                n[d] = -outside[d];
            }
        }
        return Sdf(lo, n / lo);
    }
    // Inside: the nearest face.
    let k2 = box_face(q);
    var n = vec3<f32>(0.0);
    n[k2] = select(1.0, -1.0, pp[k2] < 0.0);
    return Sdf(q[k2], n);
}

// The body's SDF as the union of its shapes: the shape of least d (the first on ties) gives d
// and n; `k` is that shape (the adjoint pulls back through it alone).
struct Nearest {
    sdf: Sdf,
    k: u32,
}

fn nearest_shape(l: vec3<f32>) -> Nearest {
    var best = Nearest(shape_sdf(0u, l), 0u);
    for (var k = 1u; k < p.nshapes; k++) {
        let sd = shape_sdf(k, l);
        if (sd.d < best.sdf.d) {
            best = Nearest(sd, k);
        }
    }
    return best;
}

fn collider_project(x: vec3<f32>, v_in: vec3<f32>, q: vec4<f32>, qd: vec4<f32>) -> vec3<f32> {
    if (p.nshapes == 0u) {
        return v_in;
    }
    let s = sin(q.w);
    let c = cos(q.w);
    let r = x - q.xyz;
    let l = vec3<f32>(c * r.x - s * r.z, r.y, s * r.x + c * r.z);
    let vb = vec3<f32>(qd.x + qd.w * r.z, qd.y, qd.z - qd.w * r.x);
    let best = nearest_shape(l).sdf;
    let inside = best.d <= 0.0;
    var infl = 1.0;
    if (!inside) {
        infl = min(exp(-best.d * p.softness), 1.0);
        if (infl <= MIN_INFLUENCE) {
            return v_in;
        }
    }
    let nl = best.n;
    let n = vec3<f32>(c * nl.x + s * nl.z, nl.y, -s * nl.x + c * nl.z);
    return coulomb(v_in, vb, n, infl);
}

fn load_q(e: u32) -> vec4<f32> {
    if (p.nshapes == 0u) {
        return vec4<f32>(0.0);
    }
    return vec4<f32>(qcol[4u * e], qcol[4u * e + 1u], qcol[4u * e + 2u], qcol[4u * e + 3u]);
}

fn load_qd(e: u32) -> vec4<f32> {
    if (p.nshapes == 0u) {
        return vec4<f32>(0.0);
    }
    return vec4<f32>(qdcol[4u * e], qdcol[4u * e + 1u], qdcol[4u * e + 2u], qdcol[4u * e + 3u]);
}

// Adjoint of `shape_sdf`: l_bar from (d_bar, n_bar) (hand-written; the CPU replays the same
// function on its reverse tape). Branches (clamps, faces, rim) are those of the forward.
fn shape_sdf_vjp(k: u32, l: vec3<f32>, dbar: f32, nbar: vec3<f32>) -> vec3<f32> {
    let o = 8u * k;
    let kind = shapes[o];
    let pp = l - vec3<f32>(shapes[o + 1u], shapes[o + 2u], shapes[o + 3u]);
    if (kind == 0.0) {
        let h = shapes[o + 5u];
        let t = min(max(pp.z, -h), h);
        let dd = vec3<f32>(pp.x, pp.y, pp.z - t);
        let len = sqrt(dot(dd, dd));
        if (len < 1e-12) {
            return vec3<f32>(0.0);
        }
        let n = dd / len;
        var ddbar = dbar * n + (nbar - n * dot(n, nbar)) / len;
        // t follows p.z strictly inside the clamp, so d(p.z - t)/dp.z = 0 there.
        if (pp.z > -h && pp.z < h) {
            ddbar.z = 0.0;
        }
        return ddbar;
    } else if (kind == 1.0) {
        let cy = cylinder_frame(o, pp);
        let rho = cy.rho;
        let radial = cy.radial;
        let sz = cy.sz;
        let a = cy.a;
        let b = cy.b;
        let axial = cy.axial;
        var abar = 0.0;
        var bbar = 0.0;
        var rbar = vec3<f32>(0.0);
        if (a > 0.0 && b > 0.0) {
            let len = sqrt(a * a + b * b);
            let n = (radial * a + axial * b) / len;
            abar = dbar * a / len;
            bbar = dbar * b / len;
            let wbar = (nbar - n * dot(n, nbar)) / len;
            rbar = wbar * a;
            abar += dot(wbar, radial);
            bbar += dot(wbar, axial);
        } else if (a > b) {
            abar = dbar;
            rbar = nbar;
        } else {
            bbar = dbar;
        }
        var lbar = vec3<f32>(0.0, 0.0, bbar * sz);
        if (rho > 1e-12) {
            let rxy = vec2<f32>(radial.x, radial.y);
            let gxy = vec2<f32>(rbar.x, rbar.y);
            let g = (gxy - rxy * dot(rxy, gxy)) / rho + abar * rxy;
            lbar.x = g.x;
            lbar.y = g.y;
        }
        return lbar;
    }
    let he = vec3<f32>(shapes[o + 4u], shapes[o + 5u], shapes[o + 6u]);
    let q = max(pp, -pp) - he;
    let outside = max(q, vec3<f32>(0.0));
    let lo = sqrt(dot(outside, outside));
    if (lo > 1e-12) {
        var os = outside;
        for (var d = 0u; d < 3u; d++) {
            if (pp[d] < 0.0) {
                os[d] = -outside[d];
            }
        }
        let n = os / lo;
        let osbar = dbar * n + (nbar - n * dot(n, nbar)) / lo;
        return select(vec3<f32>(0.0), osbar, q > vec3<f32>(0.0));
    }
    let k2 = box_face(q);
    var lbar = vec3<f32>(0.0);
    lbar[k2] = dbar * select(1.0, -1.0, pp[k2] < 0.0);
    return lbar;
}

// Adjoint of `collider_project` at one node: returns v_bar_in from the output's adjoint ob and
// adds (q_bar, qd_bar) into qbar/qdbar. Recomputes the forward's intermediates.
struct ProjectAdjoint {
    vbar: vec3<f32>,
    qbar: vec4<f32>,
    qdbar: vec4<f32>,
}

fn collider_project_adjoint(x: vec3<f32>, v_in: vec3<f32>, q: vec4<f32>, qd: vec4<f32>, ob: vec3<f32>) -> ProjectAdjoint {
    var out = ProjectAdjoint(ob, vec4<f32>(0.0), vec4<f32>(0.0));
    if (p.nshapes == 0u) {
        return out;
    }
    let s = sin(q.w);
    let c = cos(q.w);
    let r = x - q.xyz;
    let l = vec3<f32>(c * r.x - s * r.z, r.y, s * r.x + c * r.z);
    let vb = vec3<f32>(qd.x + qd.w * r.z, qd.y, qd.z - qd.w * r.x);
    let nearest = nearest_shape(l);
    let best = nearest.sdf;
    let bk = nearest.k;
    let inside = best.d <= 0.0;
    var infl = 1.0;
    if (!inside) {
        infl = min(exp(-best.d * p.softness), 1.0);
        if (infl <= MIN_INFLUENCE) {
            return out;
        }
    }
    let nl = best.n;
    let n = vec3<f32>(c * nl.x + s * nl.z, nl.y, -s * nl.x + c * nl.z);
    let cb = coulomb_vjp(v_in, vb, n, infl, ob);
    out.vbar = cb.v;
    let vbbar = cb.vb;
    let nbar = cb.n;
    let inflbar = cb.infl;
    // infl = exp(-d softness) outside.
    var dbar = 0.0;
    if (!inside) {
        dbar = -p.softness * infl * inflbar;
    }
    // n = R(theta) nl.
    let nlbar = vec3<f32>(c * nbar.x - s * nbar.z, nbar.y, s * nbar.x + c * nbar.z);
    var cbar = nbar.x * nl.x + nbar.z * nl.z;
    var sbar = nbar.x * nl.z - nbar.z * nl.x;
    let lbar = shape_sdf_vjp(bk, l, dbar, nlbar);
    // l = R(theta)^T r.
    var rbar = vec3<f32>(c * lbar.x + s * lbar.z, lbar.y, -s * lbar.x + c * lbar.z);
    cbar += lbar.x * r.x + lbar.z * r.z;
    sbar += -lbar.x * r.z + lbar.z * r.x;
    // vb = (qd.x + qd.w r.z, qd.y, qd.z - qd.w r.x).
    out.qdbar = vec4<f32>(vbbar.x, vbbar.y, vbbar.z, vbbar.x * r.z - vbbar.z * r.x);
    rbar.z += vbbar.x * qd.w;
    rbar.x -= vbbar.z * qd.w;
    out.qbar = vec4<f32>(-rbar, sbar * c - cbar * s);
    return out;
}

// The velocity rule at a touched node (collider.rs `coulomb`): v <- vb + (1 - infl) r + infl t
// with the Coulomb-scaled tangential part t of r = v - vb against the world normal n.
fn coulomb(v: vec3<f32>, vb: vec3<f32>, n: vec3<f32>, infl: f32) -> vec3<f32> {
    let rel = v - vb;
    let rn = dot(rel, n);
    var t = rel - n * min(rn, 0.0);
    if (rn < 0.0) {
        let tn = sqrt(dot(t, t));
        if (tn > 1e-20) {
            t = t * (max(tn + p.friction * rn, 0.0) / tn);
        } else {
            t = vec3<f32>(0.0);
        }
    }
    return vb + (rel * (1.0 - infl) + t * infl);
}

// Adjoint of `coulomb` for the output adjoint ob: (v_bar, vb_bar, n_bar, infl_bar).
struct CoulombBar {
    v: vec3<f32>,
    vb: vec3<f32>,
    n: vec3<f32>,
    infl: f32,
}

fn coulomb_vjp(v: vec3<f32>, vb: vec3<f32>, n: vec3<f32>, infl: f32, ob: vec3<f32>) -> CoulombBar {
    let rel = v - vb;
    let rn = dot(rel, n);
    let t0 = rel - n * min(rn, 0.0);
    var t = t0;
    var kf = 1.0;
    var tn = 0.0;
    if (rn < 0.0) {
        tn = sqrt(dot(t0, t0));
        if (tn > 1e-20) {
            kf = max(tn + p.friction * rn, 0.0) / tn;
        } else {
            kf = 0.0;
        }
        t = t0 * kf;
    }
    // out = vb + rel (1 - infl) + t infl.
    var relbar = ob * (1.0 - infl);
    let tbar = ob * infl;
    let inflbar = dot(ob, t - rel);
    // t = t0 kf, kf = 1 + mu rn / tn where positive.
    var t0bar = tbar;
    var rnbar = 0.0;
    if (rn < 0.0) {
        if (tn > 1e-20 && tn + p.friction * rn > 0.0) {
            let g = dot(tbar, t0);
            t0bar = tbar * kf + t0 * (g * (-p.friction * rn / (tn * tn)) / tn);
            rnbar += g * p.friction / tn;
        } else {
            t0bar = vec3<f32>(0.0);
        }
    }
    // t0 = rel - n min(rn, 0).
    relbar += t0bar;
    var nbar = vec3<f32>(0.0);
    if (rn < 0.0) {
        nbar -= t0bar * rn;
        rnbar -= dot(t0bar, n);
    }
    // rn = rel . n; rel = v - vb.
    relbar += rnbar * n;
    nbar += rnbar * rel;
    return CoulombBar(relbar, ob - relbar, nbar, inflbar);
}
