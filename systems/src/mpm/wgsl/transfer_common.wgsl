// mpm.transfer, shared by its kernels (transfer.rs): the bindings, the quadratic B-spline
// stencil, the grid-node velocity update (gravity, the kinematic collider's projection of
// collider.rs, walls and floor). Every transfer kernel declares the same bindings (one bind
// group layout for all of them); ATOMIC_T and the bodies of the ADD(...) helpers are filled in
// by mpm/gpu.rs: native atomicAdd on atomic<f32> where the device has SHADER_FLOAT32_ATOMIC,
// else a compare-exchange loop on the u32 bits.
//
// Grid layout: node (gx, gy, gz) of env e is e * G^3 + (gx * G + gy) * G + gz; one grid per env
// over its domain [0, 1]^3 (dx = 1/G), as the CPU's sub-grid uses global node indices.
const MASS_EPS: f32 = 1e-15;
const MIN_INFLUENCE: f32 = 0.1;

struct Stencil {
    base: vec3<u32>,
    // w[d][o], dw[d][o]: weight of the node o steps above the base along axis d, its x-derivative.
    w: M3,
    dw: M3,
    // x_i - x_p along axis d for the node o steps above the base.
    dpos: M3,
}

fn stencil(x: vec3<f32>) -> Stencil {
    var st: Stencil;
    let g = f32(p.res);
    for (var d = 0u; d < 3u; d++) {
        let xs = x[d] * p.inv_dx;
        // Clamped to the grid (the CPU clamps only below; particles stay inside by G2P's clamp).
        let bi = min(u32(max(xs - 0.5, 0.0)), p.res - 3u);
        st.base[d] = bi;
        let fx = xs - f32(bi);
        let a = 1.5 - fx;
        let c = fx - 0.5;
        let m = fx - 1.0;
        st.w[d] = array<f32, 3>(0.5 * a * a, 0.75 - m * m, 0.5 * c * c);
        st.dw[d] = array<f32, 3>(-a * p.inv_dx, -2.0 * m * p.inv_dx, c * p.inv_dx);
        st.dpos[d] = array<f32, 3>(-fx * p.dx, (1.0 - fx) * p.dx, (2.0 - fx) * p.dx);
    }
    return st;
}

fn node_index(e: u32, g: vec3<u32>) -> u32 {
    return e * p.res * p.res * p.res + (g.x * p.res + g.y) * p.res + g.z;
}

// Signed distance and outward normal (body frame) of collider shape k at local point l. Shapes:
// 8 floats each, (kind, centre xyz, a, b, c, 0), kind 0 capsule / 1 cylinder (a radius, b half
// height, axis local z), 2 box (a, b, c half extents).
struct Sdf {
    d: f32,
    n: vec3<f32>,
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
        let rho = sqrt(pp.x * pp.x + pp.y * pp.y);
        var radial = vec3<f32>(1.0, 0.0, 0.0);
        if (rho > 1e-12) {
            radial = vec3<f32>(pp.x / rho, pp.y / rho, 0.0);
        }
        var sz = 1.0;
        if (pp.z < 0.0) {
            sz = -1.0;
        }
        let a = rho - shapes[o + 4u];
        let b = pp.z * sz - shapes[o + 5u];
        let axial = vec3<f32>(0.0, 0.0, sz);
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
    // Inside: the nearest face (the last of equal ones, as the CPU's `max_by`).
    var k2 = 0u;
    for (var d = 1u; d < 3u; d++) {
        if (q[d] >= q[k2]) {
            k2 = d;
        }
    }
    var n = vec3<f32>(0.0);
    n[k2] = select(1.0, -1.0, pp[k2] < 0.0);
    return Sdf(q[k2], n);
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
    var best = shape_sdf(0u, l);
    for (var k = 1u; k < p.nshapes; k++) {
        let sd = shape_sdf(k, l);
        if (sd.d < best.d) {
            best = sd;
        }
    }
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
    let rel = v_in - vb;
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

// Which velocity components the walls and the floor keep at node g (transfer.rs `wall_mask`).
fn wall_keep(g: vec3<u32>, v: vec3<f32>) -> vec3<bool> {
    let b = p.bound;
    if (p.sticky == 1u && g.y < b && v.y < 0.0) {
        return vec3<bool>(false);
    }
    var keep = vec3<bool>(true);
    for (var d = 0u; d < 3u; d++) {
        if ((g[d] < b && v[d] < 0.0) || (g[d] + b >= p.res && v[d] > 0.0)) {
            keep[d] = false;
        }
    }
    return keep;
}

fn node_coords(k: u32) -> vec3<u32> {
    let r = p.res;
    let local = k % (r * r * r);
    return vec3<u32>(local / (r * r), (local / r) % r, local % r);
}

fn node_position(g: vec3<u32>) -> vec3<f32> {
    return vec3<f32>(g) / f32(p.res);
}

fn load_x(i: u32) -> vec3<f32> {
    return vec3<f32>(xcol[3u * i], xcol[3u * i + 1u], xcol[3u * i + 2u]);
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
