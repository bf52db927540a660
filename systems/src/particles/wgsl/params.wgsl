// Shared by the particle kernels: the uniform block (`ParticleParams` in particles/gpu.rs, laid
// out by encase) and the invocation index. Dispatches above 65535 workgroups of 64 are split
// into an [x, y] grid (Gpu::grid), so the index is linearized and bounds-checked by each kernel.
struct Params {
    // Entities this dispatch covers over all envs (particles, springs, envs or actions).
    n: u32,
    // Particles per env.
    np: u32,
    // Springs per env.
    ns: u32,
    // Actuated particles per env.
    na: u32,
    // Substep length, seconds.
    dt: f32,
    // Newtons per unit action.
    scale: f32,
}

fn linear_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 64u;
}
