// Shared by the articulation kernels: the uniform block (`ArtParams` in articulation/gpu.rs, laid
// out by encase), the invocation index and the joint kind codes of `engine::articulation`.
// Dispatches above 65535 workgroups of 64 are split into an [x, y] grid (Gpu::grid), so the index
// is linearized and bounds-checked by each kernel.
struct Params {
    // Invocations that do work in this dispatch, over all envs (envs, or env × body).
    n: u32,
    // Bodies per env.
    nb: u32,
    // Joint coordinates per env (width of joint_q).
    nq: u32,
    // Joint velocities per env (width of joint_qd).
    nd: u32,
    // Substep length, seconds.
    dt: f32,
    // Actions per env (articulation.joint_forces).
    na: u32,
    // Generalized force per unit action (articulation.joint_forces).
    scale: f32,
}

fn linear_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 64u;
}

const WORLD: u32 = 0xffffffffu;
const KIND_FREE: u32 = 0u;
const KIND_FIXED: u32 = 1u;
const KIND_REVOLUTE: u32 = 2u;
const KIND_PRISMATIC: u32 = 3u;
const KIND_BALL: u32 = 4u;

// Velocity dofs of a joint kind (`engine::articulation::joint_dims`).
fn kind_dofs(kind: u32) -> u32 {
    switch kind {
        case 0u: { return 6u; }
        case 2u, 3u: { return 1u; }
        case 4u: { return 3u; }
        default: { return 0u; }
    }
}
