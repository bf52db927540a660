// Uniform block of the rolling_flat kernels (`RollingFlatParams` in rolling_flat.rs).
struct Params {
    // Envs.
    n: u32,
    // Particles per env.
    np: u32,
    // Observed particles per env (every `stride`-th).
    k: u32,
    stride: u32,
    // Height that normalizes the mean particle height.
    height_scale: f32,
}

fn linear_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 64u;
}
