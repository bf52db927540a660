// chain_reach kernels: the uniform block (`ChainReachParams` in chain_reach.rs) and the index.
struct Params {
    // Invocations that do work: particles (observe) or envs (reward), over all envs.
    n: u32,
    // Particles per env (= links).
    np: u32,
    // Index of the tail particle.
    tail: u32,
    // c_a of the reward.
    action_cost: f32,
}

fn linear_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 64u;
}
