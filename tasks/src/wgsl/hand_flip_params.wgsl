// Uniform block of the hand_flip kernels (`HandFlipParams` in hand_flip.rs).
struct Params {
    // Envs.
    n: u32,
    // Particles per env, in one half of the disc, and the observed pairs (every `stride`-th).
    np: u32,
    half: u32,
    pairs: u32,
    stride: u32,
    // Joints per env.
    dof: u32,
    // 1 / (2 pairs) and 1 / pairs (rounded from f64, as on the CPU).
    inv_k2: f32,
    inv_pairs: f32,
    // |flip_d0| below `d0_unset` is "not recorded yet"; `d0_armed` (-1) marks the first step.
    d0_unset: f32,
    d0_armed: f32,
}

fn linear_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 64u;
}

// Row of the i-th observed particle of env e (i < pairs: first half; else the mirror of
// i - pairs).
fn observed(e: u32, i: u32) -> u32 {
    if (i < p.pairs) {
        return e * p.np + p.stride * i;
    }
    return e * p.np + p.half + p.stride * (i - p.pairs);
}
