// hand_reorient.reward (hand_reorient.rs, `compute_hand_reward_smooth`), forward and adjoint, one
// invocation per env; the adjoint clears r̄ (reward is overwritten).
@group(0) @binding(2) var<storage, read> act: array<f32>;
@group(0) @binding(3) var<storage, read_write> reward: array<f32>;
@group(0) @binding(4) var<storage, read_write> ajq: array<f32>;
@group(0) @binding(5) var<storage, read_write> agoal: array<f32>;
@group(0) @binding(6) var<storage, read_write> aact: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;

const EPS: f32 = 1e-3;
const ASIN_CAP: f32 = 0.999;

// tanh for the steep sigmoids (their argument reaches ~1e3): the clamp is exact in f32, where
// tanh(±15) already rounds to ±1, and keeps exp-based implementations finite.
fn sigmoid(z: f32) -> f32 {
    return 0.5 * (1.0 + tanh(clamp(z * 0.5, -15.0, 15.0)));
}

// σ'(z) = ¼ (1 − tanh²(z/2)).
fn sigmoid_slope(z: f32) -> f32 {
    let t = tanh(clamp(z * 0.5, -15.0, 15.0));
    return 0.25 * (1.0 - t * t);
}

fn sign_of(x: f32) -> f32 {
    return select(1.0, -1.0, x < 0.0);
}

struct Terms {
    qd: vec4<f32>,
    n: f32,
    m: f32,
    rotd: f32,
    rot: f32,
    dist: f32,
    z1: f32,
    s: f32,
    z2: f32,
    r: f32,
}

fn terms(e: u32) -> Terms {
    var t: Terms;
    t.qd = quat_mul(cube_quat(e), conj(goal_quat(e)));
    let n2 = t.qd.x * t.qd.x + t.qd.y * t.qd.y + t.qd.z * t.qd.z;
    t.n = select(0.0, sqrt(n2), n2 > 1e-30);
    t.m = min(t.n, ASIN_CAP);
    t.rotd = 2.0 * asin_precise(t.m);
    t.rot = abs(t.rotd);
    var a2 = 0.0;
    for (var k = 0u; k < 16u; k++) {
        a2 = a2 + act[16u * e + k] * act[16u * e + k];
    }
    t.dist = goal_dist(e);
    let base = -10.0 * t.dist + 1.0 / (t.rot + 0.1) + -0.0002 * a2;
    t.z1 = (0.1 - t.rot) / EPS;
    t.s = sigmoid(t.z1);
    t.z2 = -abs(t.s - 1.0) / EPS;
    t.r = base + 250.0 * sigmoid(t.z2);
    return t;
}

@compute @workgroup_size(64)
fn reward_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.n) {
        return;
    }
    reward[e] = terms(e).r;
}

@compute @workgroup_size(64)
fn reward_adjoint(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.n) {
        return;
    }
    let t = terms(e);
    let rb = reward[e];
    // r = base + 250 σ(z2), z2 = −|s − 1|/ε, s = σ(z1), z1 = (0.1 − rot)/ε
    let z2b = 250.0 * rb * sigmoid_slope(t.z2);
    let sb = -z2b / EPS * sign_of(t.s - 1.0);
    let z1b = sb * sigmoid_slope(t.z1);
    // base = −10 dist + 1/(rot + 0.1) − 0.0002 Σ a²
    let inv = 1.0 / (t.rot + 0.1);
    let rotb = -z1b / EPS - rb * inv * inv;
    for (var k = 0u; k < 16u; k++) {
        aact[16u * e + k] += -0.0002 * rb * 2.0 * act[16u * e + k];
    }
    // dist = |p − p_goal|
    let d = cube_p(e) - goal_p(e);
    let db = d * (-10.0 * rb / t.dist);
    // rot = |rotd|, rotd = 2 asin(m), m = min(n, cap), n = |qd.xyz|
    let mb = 2.0 * rotb * sign_of(t.rotd) / sqrt(1.0 - t.m * t.m);
    var nb = select(0.0, mb, t.n < ASIN_CAP);
    var qdb = vec4<f32>(0.0);
    if (t.n > 0.0) {
        qdb = vec4<f32>(t.qd.xyz * (nb / t.n), 0.0);
    }
    let g = goal_quat(e);
    let qb = quat_mul_adjoint(cube_quat(e), conj(g), qdb);
    let cq = e * p.nq + p.cube_q;
    for (var i = 0u; i < 3u; i++) {
        ajq[cq + i] += db[i];
        agoal[7u * e + i] -= db[i];
        agoal[7u * e + 3u + i] -= qb.b[i];
    }
    agoal[7u * e + 6u] += qb.b.w;
    for (var i = 0u; i < 4u; i++) {
        ajq[cq + 3u + i] += qb.a[i];
    }
    reward[e] = 0.0;
}
