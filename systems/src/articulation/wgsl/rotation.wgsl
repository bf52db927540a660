// Shared by the contact kernels (contact_gpu.rs) and the torso kernels of the locomotion tasks
// (tasks/src/ant_run_gpu.rs): the row-major 3x3 type, dot and cross products and the rotation of
// a unit quaternion with its adjoint, in spatial.rs's formulas and order of f32 operations.
// Row-major 3x3 (spatial.rs `M3`): r0, r1, r2 are the rows.
struct M3 {
    r0: vec3<f32>,
    r1: vec3<f32>,
    r2: vec3<f32>,
}

fn dot3(a: vec3<f32>, b: vec3<f32>) -> f32 {
    return a.x * b.x + a.y * b.y + a.z * b.z;
}

fn cross3(a: vec3<f32>, b: vec3<f32>) -> vec3<f32> {
    return vec3<f32>(a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x);
}

// Rotation matrix of a unit quaternion (x, y, z, w), spatial.rs `quat_to_mat`.
fn quat_to_mat(q: vec4<f32>) -> M3 {
    let x = q.x;
    let y = q.y;
    let z = q.z;
    let w = q.w;
    return M3(
        vec3<f32>(1.0 - 2.0 * (y * y + z * z), 2.0 * (x * y - z * w), 2.0 * (x * z + y * w)),
        vec3<f32>(2.0 * (x * y + z * w), 1.0 - 2.0 * (x * x + z * z), 2.0 * (y * z - x * w)),
        vec3<f32>(2.0 * (x * z - y * w), 2.0 * (y * z + x * w), 1.0 - 2.0 * (x * x + y * y)),
    );
}

// q̄ = Σ_ij R̄_ij ∂R_ij/∂q, spatial.rs `quat_to_mat_adjoint`.
fn quat_to_mat_adjoint(q: vec4<f32>, r: M3) -> vec4<f32> {
    let x = q.x;
    let y = q.y;
    let z = q.z;
    let w = q.w;
    return vec4<f32>(
        2.0 * (y * (r.r0.y + r.r1.x) + z * (r.r0.z + r.r2.x) + w * (r.r2.y - r.r1.z)) - 4.0 * x * (r.r1.y + r.r2.z),
        2.0 * (x * (r.r0.y + r.r1.x) + z * (r.r1.z + r.r2.y) + w * (r.r0.z - r.r2.x)) - 4.0 * y * (r.r0.x + r.r2.z),
        2.0 * (x * (r.r0.z + r.r2.x) + y * (r.r1.z + r.r2.y) + w * (r.r1.x - r.r0.y)) - 4.0 * z * (r.r0.x + r.r1.y),
        2.0 * (x * (r.r2.y - r.r1.z) + y * (r.r0.z - r.r2.x) + z * (r.r1.x - r.r0.y)),
    );
}
