// Shared by the hand_reorient kernels (hand_reorient_gpu.rs): the uniform block
// (`HandParams`, laid out by encase), the cube and goal columns (bindings 0, 1 of every kernel),
// the quaternion product and its adjoint, in the CPU's order of f32 operations.
struct Params {
    // Envs.
    n: u32,
    // joint_q and joint_qd entries per env.
    nq: u32,
    nd: u32,
    // Offsets of the cube's free joint in an env's joint_q and joint_qd.
    cube_q: u32,
    cube_qd: u32,
    // The smallest f32 >= FALL_DISTANCE (terminate).
    fall: f32,
    // The largest f32 <= SUCCESS_TOLERANCE (resample_goal).
    success: f32,
}

@group(0) @binding(0) var<storage, read> jq: array<f32>;
@group(0) @binding(1) var<storage, read> goal: array<f32>;

fn linear_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 64u;
}

fn cube_p(e: u32) -> vec3<f32> {
    let c = e * p.nq + p.cube_q;
    return vec3<f32>(jq[c], jq[c + 1u], jq[c + 2u]);
}
fn cube_quat(e: u32) -> vec4<f32> {
    let c = e * p.nq + p.cube_q + 3u;
    return vec4<f32>(jq[c], jq[c + 1u], jq[c + 2u], jq[c + 3u]);
}
fn goal_p(e: u32) -> vec3<f32> {
    return vec3<f32>(goal[7u * e], goal[7u * e + 1u], goal[7u * e + 2u]);
}
fn goal_quat(e: u32) -> vec4<f32> {
    return vec4<f32>(goal[7u * e + 3u], goal[7u * e + 4u], goal[7u * e + 5u], goal[7u * e + 6u]);
}

// spatial.rs `quat_mul` (x, y, z, w).
fn quat_mul(a: vec4<f32>, b: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(
        a.w * b.x + a.x * b.w + a.y * b.z - a.z * b.y,
        a.w * b.y - a.x * b.z + a.y * b.w + a.z * b.x,
        a.w * b.z + a.x * b.y - a.y * b.x + a.z * b.w,
        a.w * b.w - a.x * b.x - a.y * b.y - a.z * b.z,
    );
}

fn conj(q: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(-q.x, -q.y, -q.z, q.w);
}

// The product is bilinear: ā = Σ_i c̄_i ∂c_i/∂a, b̄ likewise.
struct QuatMulBar {
    a: vec4<f32>,
    b: vec4<f32>,
}

fn quat_mul_adjoint(a: vec4<f32>, b: vec4<f32>, c: vec4<f32>) -> QuatMulBar {
    return QuatMulBar(
        vec4<f32>(
            c.x * b.w - c.y * b.z + c.z * b.y - c.w * b.x,
            c.x * b.z + c.y * b.w - c.z * b.x - c.w * b.y,
            -c.x * b.y + c.y * b.x + c.z * b.w - c.w * b.z,
            c.x * b.x + c.y * b.y + c.z * b.z + c.w * b.w,
        ),
        vec4<f32>(
            c.x * a.w + c.y * a.z - c.z * a.y - c.w * a.x,
            -c.x * a.z + c.y * a.w + c.z * a.x - c.w * a.y,
            c.x * a.y - c.y * a.x + c.z * a.w - c.w * a.z,
            c.x * a.x + c.y * a.y + c.z * a.z + c.w * a.w,
        ),
    );
}

fn goal_dist(e: u32) -> f32 {
    let d = cube_p(e) - goal_p(e);
    return sqrt(d.x * d.x + d.y * d.y + d.z * d.z);
}

// asin to the CPU's precision: the WGSL builtin, then one Newton step on sin(y) = x. Vulkan lets
// asin be as coarse as atan2(x, sqrt(1 − x²)), i.e. 4096 ulp; lavapipe's is off by ~7e-5 at
// x = 0.71, which moved 1/(|rot| + 0.1) in the reward by 5e-5 at every step (the CPU's
// correctly rounded f32 asin is matched to ~1 ulp after the step). cos(y) ≥ 0.04 below the
// 0.999 cap where it is used.
fn asin_precise(x: f32) -> f32 {
    let y = asin(x);
    return y - (sin(y) - x) / cos(y);
}
