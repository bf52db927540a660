// hopper kernels (hopper_gpu.rs): the uniform block (`HopperParams`, laid out by encase), the
// index, and the height reward H(h) with its derivative. One invocation per env; joint_q and
// joint_qd are [x, h, θ, thigh, leg, foot] and their rates (6 per env), act 3 per env.
struct Params {
    // Envs.
    n: u32,
    // f32(TERMINATION_HEIGHT + HEIGHT_TOLERANCE): c = clip(h − this, −1, 0.3).
    height_offset: f32,
    // f32(0.3), the value of the clipped c.
    clip_hi: f32,
    // The largest f32 <= 0.3: d > this exactly when the CPU's f64 comparison d > 0.3 holds.
    clip_hi_cut: f32,
    // f32((π/6)²), the divisor of θ² in the angle reward.
    angle2: f32,
    // f32(2 / (π/6)²), the angle reward's slope factor in the adjoint.
    angle_slope: f32,
    // f32(0.1), the action penalty.
    action_penalty: f32,
    // f32(0.2), its slope factor in the adjoint.
    action_slope: f32,
    // The smallest f32 >= TERMINATION_HEIGHT: h < this exactly when the CPU's f64 h < −0.45.
    terminate_below: f32,
}

fn linear_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 64u;
}

// (H, dH/dh) of hopper.rs `height_reward`: d = h − offset, c = clip(d, −1, 0.3) (dc/dd = 0 where
// clipped), H = c if c >= 0 else −200 c², in the CPU's order of f32 operations.
fn height_reward(h: f32) -> vec2<f32> {
    let d = h - p.height_offset;
    var c = d;
    var dc = 1.0;
    if (d < -1.0) {
        c = -1.0;
        dc = 0.0;
    } else if (d > p.clip_hi_cut) {
        c = p.clip_hi;
        dc = 0.0;
    }
    if (c < 0.0) {
        return vec2<f32>(-200.0 * c * c, -400.0 * c * dc);
    }
    return vec2<f32>(c, dc);
}
