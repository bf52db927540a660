// Shared by the MPM kernels (mpm/gpu.rs): the uniform block (`MpmParams`, laid out by encase),
// the invocation index, row-major 3x3 loads/stores and the 3x3 SVD with the CPU's conventions
// (svd.rs): Jacobi eigen-decomposition of F^T F, eigenpairs sorted by decreasing eigenvalue,
// det V = +1, U from a Gram-Schmidt QR of F V with u2 = u0 x u1, sigma_i = u_i . (F V)_i, so
// det U = +1 and sigma_2 carries the sign of det F. Matrices are arrays of rows (a[i][j] = row i,
// column j), as in the Rust code they mirror.
struct Params {
    // Particles over all envs.
    n: u32,
    // Particles per env.
    np: u32,
    // Grid nodes per axis G, and nodes over all envs (envs * G^3).
    res: u32,
    nodes: u32,
    // Boundary layer thickness in cells; floor: 1 sticky, 0 slip.
    bound: u32,
    sticky: u32,
    // Collider shapes (0: no collider).
    nshapes: u32,
    // Envs.
    envs: u32,
    // Substep length and its products used by P2G.
    dt: f32,
    inv_dx: f32,
    dx: f32,
    // 4 / dx^2.
    kc: f32,
    // Gravity times dt.
    gdt_x: f32,
    gdt_y: f32,
    gdt_z: f32,
    // Particle coordinate clamp [lo, hi] of G2P.
    lo: f32,
    hi: f32,
    friction: f32,
    softness: f32,
    // Collider drive: 1 / (substeps * dt); action columns per env.
    inv_step: f32,
    na: u32,
    // mpm.transfer: the first env of this dispatch's env chunk (mpm/gpu.rs "Env chunks"); n,
    // nodes and envs then count the chunk's particles, nodes and envs, and the grid buffers hold
    // the chunk's envs only. 0 elsewhere.
    e0: u32,
}

alias M3 = array<array<f32, 3>, 3>;

fn linear_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 64u;
}

fn m3_zero() -> M3 {
    return M3(array<f32, 3>(0.0, 0.0, 0.0), array<f32, 3>(0.0, 0.0, 0.0), array<f32, 3>(0.0, 0.0, 0.0));
}

fn m3_eye() -> M3 {
    return M3(array<f32, 3>(1.0, 0.0, 0.0), array<f32, 3>(0.0, 1.0, 0.0), array<f32, 3>(0.0, 0.0, 1.0));
}

fn m3_mul(a: M3, b: M3) -> M3 {
    var c = m3_zero();
    for (var i = 0u; i < 3u; i++) {
        for (var j = 0u; j < 3u; j++) {
            c[i][j] = a[i][0] * b[0][j] + a[i][1] * b[1][j] + a[i][2] * b[2][j];
        }
    }
    return c;
}

fn m3_t(a: M3) -> M3 {
    var c = m3_zero();
    for (var i = 0u; i < 3u; i++) {
        for (var j = 0u; j < 3u; j++) {
            c[i][j] = a[j][i];
        }
    }
    return c;
}

fn m3_det(a: M3) -> f32 {
    return a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
        + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]);
}

// U diag(d) W^T.
fn m3_compose(u: M3, d: vec3<f32>, w: M3) -> M3 {
    var inner = m3_zero();
    inner[0][0] = d.x;
    inner[1][1] = d.y;
    inner[2][2] = d.z;
    return m3_mul(m3_mul(u, inner), m3_t(w));
}

fn col(m: M3, j: u32) -> vec3<f32> {
    return vec3<f32>(m[0][j], m[1][j], m[2][j]);
}

fn normalized_or(a: vec3<f32>, fallback: vec3<f32>) -> vec3<f32> {
    let n = sqrt(dot(a, a));
    if (n > 1e-12) {
        return a / n;
    }
    return fallback;
}

fn orthogonal(a: vec3<f32>) -> vec3<f32> {
    var e = vec3<f32>(0.0, 1.0, 0.0);
    if (abs(a.x) < 0.9) {
        e = vec3<f32>(1.0, 0.0, 0.0);
    }
    return normalized_or(cross(a, e), vec3<f32>(0.0, 0.0, 1.0));
}

struct Svd {
    u: M3,
    s: vec3<f32>,
    v: M3,
}

// Symmetric eigen-decomposition by cyclic Jacobi rotations (Golub & Van Loan Alg. 8.4.1), at
// most 6 sweeps: a rotation is skipped once its off-diagonal entry is below f32 resolution of
// the diagonal, and the sweeps stop when all are.
fn jacobi_eigen(a0: M3) -> Svd {
    var a = a0;
    var v = m3_eye();
    for (var sweep = 0u; sweep < 6u; sweep++) {
        let off = a[0][1] * a[0][1] + a[0][2] * a[0][2] + a[1][2] * a[1][2];
        let diag = a[0][0] * a[0][0] + a[1][1] * a[1][1] + a[2][2] * a[2][2];
        if (off <= 1e-15 * diag || off < 1e-35) {
            break;
        }
        for (var r = 0u; r < 3u; r++) {
            var p = 0u;
            var q = 1u;
            if (r == 1u) {
                q = 2u;
            } else if (r == 2u) {
                p = 1u;
                q = 2u;
            }
            let apq = a[p][q];
            if (apq * apq <= 1e-17 * diag || abs(apq) < 1e-35) {
                continue;
            }
            let theta = (a[q][q] - a[p][p]) / (2.0 * apq);
            var t = 1.0;
            if (theta != 0.0) {
                t = sign(theta) / (abs(theta) + sqrt(theta * theta + 1.0));
            }
            let c = 1.0 / sqrt(t * t + 1.0);
            let s = t * c;
            for (var k = 0u; k < 3u; k++) {
                let akp = a[k][p];
                let akq = a[k][q];
                a[k][p] = c * akp - s * akq;
                a[k][q] = s * akp + c * akq;
            }
            for (var k = 0u; k < 3u; k++) {
                let rp = a[p][k];
                let rq = a[q][k];
                a[p][k] = c * rp - s * rq;
                a[q][k] = s * rp + c * rq;
            }
            for (var k = 0u; k < 3u; k++) {
                let vkp = v[k][p];
                let vkq = v[k][q];
                v[k][p] = c * vkp - s * vkq;
                v[k][q] = s * vkp + c * vkq;
            }
        }
    }
    return Svd(m3_zero(), vec3<f32>(a[0][0], a[1][1], a[2][2]), v);
}

fn svd3(f: M3) -> Svd {
    let e = jacobi_eigen(m3_mul(m3_t(f), f));
    // Stable sort of the eigenpairs by decreasing eigenvalue (the CPU's `sort_by`).
    var lam = array<f32, 3>(e.s.x, e.s.y, e.s.z);
    var order = array<u32, 3>(0u, 1u, 2u);
    for (var pass_ = 0u; pass_ < 3u; pass_++) {
        let i = pass_ % 2u;
        if (lam[order[i]] < lam[order[i + 1u]]) {
            let t = order[i];
            order[i] = order[i + 1u];
            order[i + 1u] = t;
        }
    }
    var v = m3_zero();
    for (var j = 0u; j < 3u; j++) {
        for (var r = 0u; r < 3u; r++) {
            v[r][j] = e.v[r][order[j]];
        }
    }
    if (m3_det(v) < 0.0) {
        for (var r = 0u; r < 3u; r++) {
            v[r][2] = -v[r][2];
        }
    }
    let b = m3_mul(f, v);
    let b0 = col(b, 0u);
    let b1 = col(b, 1u);
    let b2 = col(b, 2u);
    let u0 = normalized_or(b0, vec3<f32>(1.0, 0.0, 0.0));
    let pr = dot(u0, b1);
    let u1 = normalized_or(b1 - pr * u0, orthogonal(u0));
    let u2 = cross(u0, u1);
    let s = vec3<f32>(dot(u0, b0), dot(u1, b1), dot(u2, b2));
    let u = M3(array<f32, 3>(u0.x, u1.x, u2.x), array<f32, 3>(u0.y, u1.y, u2.y), array<f32, 3>(u0.z, u1.z, u2.z));
    return Svd(u, s, v);
}
