// fem.tetrahedra: one tetrahedron evaluated at a state (tetrahedra.rs has the equations), shared
// by the forward and adjoint kernels. Each kernel declares q, qd (particle columns), tp
// (tet_params: B = D_m^-1 row-major, V, mu, lambda, k_d), ti (tet_indices, per-env particle
// indices), der (per tet [det B, alpha], derived on the host in f64) and act (tet_activation;
// a dummy when p.activated == 0) before this file. The arithmetic is written out in the CPU's
// order of operations (no dot(), cross() or matrix builtins), so lavapipe reproduces it.
// Matrices are row-major: M3 row r is m[r].

alias M3 = array<vec3<f32>, 3>;

fn dot3(a: vec3<f32>, b: vec3<f32>) -> f32 {
    return a.x * b.x + a.y * b.y + a.z * b.z;
}
fn cross3(a: vec3<f32>, b: vec3<f32>) -> vec3<f32> {
    return vec3<f32>(a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x);
}
// C = A B.
fn mul(a: M3, b: M3) -> M3 {
    var c: M3;
    for (var i = 0u; i < 3u; i++) {
        c[i] = vec3<f32>(
            a[i].x * b[0].x + a[i].y * b[1].x + a[i].z * b[2].x,
            a[i].x * b[0].y + a[i].y * b[1].y + a[i].z * b[2].y,
            a[i].x * b[0].z + a[i].y * b[1].z + a[i].z * b[2].z,
        );
    }
    return c;
}
// C = A B^T.
fn mul_bt(a: M3, b: M3) -> M3 {
    var c: M3;
    for (var i = 0u; i < 3u; i++) {
        c[i] = vec3<f32>(dot3(a[i], b[0]), dot3(a[i], b[1]), dot3(a[i], b[2]));
    }
    return c;
}
// The matrix whose columns are c0, c1, c2.
fn from_cols(c0: vec3<f32>, c1: vec3<f32>, c2: vec3<f32>) -> M3 {
    return M3(vec3<f32>(c0.x, c1.x, c2.x), vec3<f32>(c0.y, c1.y, c2.y), vec3<f32>(c0.z, c1.z, c2.z));
}
fn col(m: M3, j: u32) -> vec3<f32> {
    return vec3<f32>(m[0][j], m[1][j], m[2][j]);
}
fn det3(m: M3) -> f32 {
    return dot3(m[0], cross3(m[1], m[2]));
}

fn load_q(i: u32) -> vec3<f32> {
    return vec3<f32>(q[3u * i], q[3u * i + 1u], q[3u * i + 2u]);
}
fn load_qd(i: u32) -> vec3<f32> {
    return vec3<f32>(qd[3u * i], qd[3u * i + 1u], qd[3u * i + 2u]);
}

// Constants of tetrahedron k (global: env * nt + local).
struct TetParams {
    b: M3,
    det_b: f32,
    vol: f32,
    mu: f32,
    lambda: f32,
    damp: f32,
    alpha: f32,
}

fn tet_params(k: u32) -> TetParams {
    let o = 13u * k;
    let b = M3(
        vec3<f32>(tp[o], tp[o + 1u], tp[o + 2u]),
        vec3<f32>(tp[o + 3u], tp[o + 4u], tp[o + 5u]),
        vec3<f32>(tp[o + 6u], tp[o + 7u], tp[o + 8u]),
    );
    return TetParams(b, der[2u * k], tp[o + 9u], tp[o + 10u], tp[o + 11u], tp[o + 12u], der[2u * k + 1u]);
}

// Global particle indices of tetrahedron k's corners.
fn tet_verts(k: u32) -> vec4<u32> {
    let base = (k / p.nt) * p.np;
    return vec4<u32>(base + ti[4u * k], base + ti[4u * k + 1u], base + ti[4u * k + 2u], base + ti[4u * k + 3u]);
}

// What the forward computes for one tetrahedron (the adjoint recomputes it).
struct TetEval {
    // Edges d_i = x_i - x_0 and velocity differences u_i = v_i - v_0.
    d: M3,
    u: M3,
    f: M3,
    ic: f32,
    // g_i = dJ/dx_i (rows).
    g: M3,
    s: f32,
    c: f32,
    // Forces on corners 1..3 (rows); f_0 = -sum.
    force: M3,
}

fn tet_eval(k: u32, v: vec4<u32>, pr: TetParams) -> TetEval {
    var a = 0.0;
    if (p.activated == 1u) {
        a = act[k];
    }
    let x0 = load_q(v.x);
    let v0 = load_qd(v.x);
    let d = M3(load_q(v.y) - x0, load_q(v.z) - x0, load_q(v.w) - x0);
    let u = M3(load_qd(v.y) - v0, load_qd(v.z) - v0, load_qd(v.w) - v0);
    let f = mul(from_cols(d[0], d[1], d[2]), pr.b);
    let fdot = mul(from_cols(u[0], u[1], u[2]), pr.b);
    let ic = dot3(f[0], f[0]) + dot3(f[1], f[1]) + dot3(f[2], f[2]);
    let j = det3(f);
    let g = M3(cross3(d[1], d[2]) * pr.det_b, cross3(d[2], d[0]) * pr.det_b, cross3(d[0], d[1]) * pr.det_b);
    let jdot = dot3(g[0], u[0]) + dot3(g[1], u[1]) + dot3(g[2], u[2]);
    let c = pr.mu * (1.0 - 1.0 / (ic + 1.0));
    var pk: M3;
    for (var r = 0u; r < 3u; r++) {
        pk[r] = c * f[r] + pr.damp * fdot[r];
    }
    let h = mul_bt(pk, pr.b);
    let s = pr.vol * (pr.lambda * (j - pr.alpha + a) + pr.damp * jdot);
    var force: M3;
    for (var i = 0u; i < 3u; i++) {
        force[i] = -(pr.vol * col(h, i) + s * g[i]);
    }
    return TetEval(d, u, f, ic, g, s, c, force);
}
