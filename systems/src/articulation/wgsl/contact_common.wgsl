// Shared by the articulation contact kernels (contact_gpu.rs): the uniform block
// (`ContactParams`, laid out by encase), the invocation index, the 3x3 helpers of spatial.rs on
// top of rotation.wgsl (same formulas and order of f32 operations) and the penalty law of contact.rs
// with its adjoint. Dispatches above 65535 workgroups of 64 are split into an [x, y] grid
// (Gpu::grid), so the index is linearized and bounds-checked by each kernel.
struct Params {
    // Invocations that do work in this dispatch, over all envs (bodies or shape pairs).
    n: u32,
    // Shapes per env.
    ns: u32,
    // Bodies per env.
    nb: u32,
}

fn linear_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 64u;
}

fn mat_vec(m: M3, v: vec3<f32>) -> vec3<f32> {
    return vec3<f32>(dot3(m.r0, v), dot3(m.r1, v), dot3(m.r2, v));
}

// o[i][j] = a[i][0] b[0][j] + a[i][1] b[1][j] + a[i][2] b[2][j]
fn mat_mul(a: M3, b: M3) -> M3 {
    return M3(
        a.r0.x * b.r0 + a.r0.y * b.r1 + a.r0.z * b.r2,
        a.r1.x * b.r0 + a.r1.y * b.r1 + a.r1.z * b.r2,
        a.r2.x * b.r0 + a.r2.y * b.r1 + a.r2.z * b.r2,
    );
}

fn transpose3(m: M3) -> M3 {
    return M3(vec3<f32>(m.r0.x, m.r1.x, m.r2.x), vec3<f32>(m.r0.y, m.r1.y, m.r2.y), vec3<f32>(m.r0.z, m.r1.z, m.r2.z));
}

// a bᵀ
fn outer(a: vec3<f32>, b: vec3<f32>) -> M3 {
    return M3(a.x * b, a.y * b, a.z * b);
}

fn m3_add(a: M3, b: M3) -> M3 {
    return M3(a.r0 + b.r0, a.r1 + b.r1, a.r2 + b.r2);
}

// Column j.
fn column(m: M3, j: u32) -> vec3<f32> {
    return vec3<f32>(m.r0[j], m.r1[j], m.r2[j]);
}

// contact.rs `penalty_force`: on = false where apart or separating.
struct Penalty {
    on: bool,
    f: vec3<f32>,
}

// c = (ke, kd, kf, mu). N = ke pen - kd (u·n) if positive; u_t = u - (u·n) n; friction -kf u_t
// capped at mu N; f = N n + f_t.
fn penalty_force(pen: f32, u: vec3<f32>, n: vec3<f32>, c: vec4<f32>) -> Penalty {
    if (pen <= 0.0) {
        return Penalty(false, vec3<f32>(0.0));
    }
    let un = dot3(u, n);
    let normal = c.x * pen - c.y * un;
    if (normal <= 0.0) {
        return Penalty(false, vec3<f32>(0.0));
    }
    let ut = u - n * un;
    let s2 = dot3(ut, ut);
    let cap = c.w * normal;
    var ft: vec3<f32>;
    if (c.z * c.z * s2 <= cap * cap) {
        ft = ut * (-c.z);
    } else {
        ft = ut * (-cap / sqrt(s2));
    }
    return Penalty(true, n * normal + ft);
}

struct PenaltyBar {
    pen: f32,
    u: vec3<f32>,
    n: vec3<f32>,
}

// Adjoint of `penalty_force` where it is on, in (pen, u, n) (contact.rs
// `penalty_force_adjoint` plus n̄ for the shape pairs, whose normal moves): with f = N n + f_t,
// N̄ = f̄·n, n̄ = N f̄; f_t = -kf u_t: ū_t = -kf f̄; capped f_t = -mu N u_t/|u_t|:
// N̄ -= mu (u_t·f̄)/|u_t|, ū_t = -mu N (f̄/|u_t| - (u_t·f̄) u_t/|u_t|³); then through
// u_t = u - (u·n) n, N = ke pen - kd (u·n) and u·n.
fn penalty_adjoint(pen: f32, u: vec3<f32>, n: vec3<f32>, c: vec4<f32>, fb: vec3<f32>) -> PenaltyBar {
    let un = dot3(u, n);
    let normal = c.x * pen - c.y * un;
    let ut = u - n * un;
    let s2 = dot3(ut, ut);
    let cap = c.w * normal;
    var normal_bar = dot3(fb, n);
    var n_bar = fb * normal;
    var ut_bar: vec3<f32>;
    if (c.z * c.z * s2 <= cap * cap) {
        ut_bar = fb * (-c.z);
    } else {
        let norm = sqrt(s2);
        let along = dot3(ut, fb);
        normal_bar = normal_bar - c.w * along / norm;
        ut_bar = (fb / norm - ut * (along / (norm * norm * norm))) * (-cap);
    }
    var un_bar = -dot3(ut_bar, n) - c.y * normal_bar;
    n_bar = n_bar - ut_bar * un + u * un_bar;
    let u_bar = ut_bar + n * un_bar;
    return PenaltyBar(c.x * normal_bar, u_bar, n_bar);
}
