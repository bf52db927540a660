// soft_jumper kernels: the uniform block (`SoftJumperParams` in soft_jumper.rs, laid out by
// encase) and the invocation index. The Rust side prepends `const PHASE_OFFSET` (the 8 phase
// offsets k 2π/8, rounded from f64 as the CPU does).
struct Params {
    // Invocations that do work in this dispatch, over all envs.
    n: u32,
    // Particles per env.
    np: u32,
    // Actions per env.
    na: u32,
    // Observation width.
    no: u32,
    // Per-env width of the observe adjoint's body pass: max(3 np, na).
    m: u32,
    // 0.1 / np: the mean's weight (com_q, com_qd).
    per: f32,
    // 0.1 × the nominal mean height (reward).
    start: f32,
    // Env step, seconds (clock).
    dt: f32,
    // c_a and 2 c_a of the reward's action cost.
    cost: f32,
    cost2: f32,
}

// Observation layout: [phase 8, loss, com_q 3, com_qd 3, 0.1 q 3P, 0.1 q̇ 3P, act A].
const LOSS: u32 = 8u;
const COM_Q: u32 = 9u;
const COM_QD: u32 = 12u;
const PARTICLES: u32 = 15u;

fn linear_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 64u;
}
