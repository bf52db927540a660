// humanoid.reward's second uniform block (`HumanoidParams` in humanoid_gpu.rs) and the height
// reward H(height) with its derivative, in the CPU's order of f32 operations (humanoid.rs
// `height_reward`): d = height − p.height, c = clip(d, −1, 0.1) (dc/dd = 0 where clipped),
// H = 10 c if c >= 0 else −200 c².
struct Task {
    // f32(0.1), the value of the clipped c.
    clip_hi: f32,
    // The largest f32 <= 0.1: d > this exactly when the CPU's f64 comparison d > 0.1 holds.
    clip_hi_cut: f32,
    // f32(10), H's slope above the tolerance.
    height_scale: f32,
    // f32(0.002), the action penalty.
    action_penalty: f32,
    // f32(0.004), its slope factor in the adjoint.
    action_slope: f32,
}

fn height_reward(h: f32) -> vec2<f32> {
    let d = h - p.height;
    var c = d;
    var dc = 1.0;
    if (d < -1.0) {
        c = -1.0;
        dc = 0.0;
    } else if (d > tp.clip_hi_cut) {
        c = tp.clip_hi;
        dc = 0.0;
    }
    if (c < 0.0) {
        return vec2<f32>(-200.0 * c * c, -400.0 * c * dc);
    }
    return vec2<f32>(tp.height_scale * c, tp.height_scale * dc);
}
