// Shared by the FEM kernels: the uniform block (`FemParams` in fem/gpu.rs, laid out by encase)
// and the invocation index. Dispatches above 65535 workgroups of 64 are split into an [x, y]
// grid (Gpu::grid), so the index is linearized and bounds-checked by each kernel.
struct Params {
    // Invocations that do work in this dispatch, over all envs.
    n: u32,
    // Particles per env.
    np: u32,
    // Tetrahedra per env.
    nt: u32,
    // 1 when the tetrahedra read tet_activation.
    activated: u32,
    // Actions per env (fem.activation).
    na: u32,
    // Tetrahedra per action (fem.activation).
    group: u32,
    // Activation per unit action (fem.activation).
    scale: f32,
}

fn linear_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 64u;
}
