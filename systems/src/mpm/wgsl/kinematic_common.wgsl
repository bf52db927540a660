// Shared by the hinge-tree kernels (kinematic_gpu.rs): their uniform block, the invocation
// index and the quaternion algebra of spatial.rs (xyzw, no normalization) with its adjoints.
struct KinParams {
    // Joint scalars over all envs (envs * dof).
    count: u32,
    // Joints per env.
    dof: u32,
    envs: u32,
    // Substep length, and 1 / (substeps * dt) of the drive.
    dt: f32,
    inv_step: f32,
}

fn linear_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 64u;
}

// a (x) b (spatial.rs `quat_mul`).
fn quat_mul(a: vec4<f32>, b: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(
        a.w * b.x + a.x * b.w + a.y * b.z - a.z * b.y,
        a.w * b.y - a.x * b.z + a.y * b.w + a.z * b.x,
        a.w * b.z + a.x * b.y - a.y * b.x + a.z * b.w,
        a.w * b.w - a.x * b.x - a.y * b.y - a.z * b.z,
    );
}

// Adjoints of c = a (x) b (bilinear): a_bar and b_bar for c_bar = cb.
fn quat_mul_vjp_a(b: vec4<f32>, cb: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(
        b.w * cb.x - b.z * cb.y + b.y * cb.z - b.x * cb.w,
        b.z * cb.x + b.w * cb.y - b.x * cb.z - b.y * cb.w,
        -b.y * cb.x + b.x * cb.y + b.w * cb.z - b.z * cb.w,
        b.x * cb.x + b.y * cb.y + b.z * cb.z + b.w * cb.w,
    );
}

fn quat_mul_vjp_b(a: vec4<f32>, cb: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(
        a.w * cb.x + a.z * cb.y - a.y * cb.z - a.x * cb.w,
        -a.z * cb.x + a.w * cb.y + a.x * cb.z - a.y * cb.w,
        a.y * cb.x - a.x * cb.y + a.w * cb.z - a.z * cb.w,
        a.x * cb.x + a.y * cb.y + a.z * cb.z + a.w * cb.w,
    );
}

// R(q) v with R from `quat_to_mat`, each row dotted with v in the CPU's order.
fn quat_rotate(q: vec4<f32>, v: vec3<f32>) -> vec3<f32> {
    let x = q.x;
    let y = q.y;
    let z = q.z;
    let w = q.w;
    let r0 = vec3<f32>(1.0 - 2.0 * (y * y + z * z), 2.0 * (x * y - z * w), 2.0 * (x * z + y * w));
    let r1 = vec3<f32>(2.0 * (x * y + z * w), 1.0 - 2.0 * (x * x + z * z), 2.0 * (y * z - x * w));
    let r2 = vec3<f32>(2.0 * (x * z - y * w), 2.0 * (y * z + x * w), 1.0 - 2.0 * (x * x + y * y));
    return vec3<f32>(
        r0.x * v.x + r0.y * v.y + r0.z * v.z,
        r1.x * v.x + r1.y * v.y + r1.z * v.z,
        r2.x * v.x + r2.y * v.y + r2.z * v.z,
    );
}

// q_bar of R(q) v for the output adjoint ob (v constant): sum_ij ob_i v_j dR_ij/dq
// (spatial.rs `quat_to_mat_adjoint` with R_bar = ob v^T).
fn quat_rotate_vjp(q: vec4<f32>, v: vec3<f32>, ob: vec3<f32>) -> vec4<f32> {
    var r: array<array<f32, 3>, 3>;
    for (var i = 0u; i < 3u; i++) {
        for (var j = 0u; j < 3u; j++) {
            r[i][j] = ob[i] * v[j];
        }
    }
    let x = q.x;
    let y = q.y;
    let z = q.z;
    let w = q.w;
    return vec4<f32>(
        2.0 * (y * (r[0][1] + r[1][0]) + z * (r[0][2] + r[2][0]) + w * (r[2][1] - r[1][2])) - 4.0 * x * (r[1][1] + r[2][2]),
        2.0 * (x * (r[0][1] + r[1][0]) + z * (r[1][2] + r[2][1]) + w * (r[0][2] - r[2][0])) - 4.0 * y * (r[0][0] + r[2][2]),
        2.0 * (x * (r[0][2] + r[2][0]) + y * (r[1][2] + r[2][1]) + w * (r[1][0] - r[0][1])) - 4.0 * z * (r[0][0] + r[1][1]),
        2.0 * (x * (r[2][1] - r[1][2]) + y * (r[0][2] - r[2][0]) + z * (r[1][0] - r[0][1])),
    );
}
