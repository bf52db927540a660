// cartpole kernels: the uniform block (`CartpoleParams` in cartpole.rs) and the index. One
// invocation per env; joint_q and joint_qd are [x, θ] and [ẋ, θ̇] per env.
struct Params {
    // Envs.
    n: u32,
}

fn linear_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 64u;
}
