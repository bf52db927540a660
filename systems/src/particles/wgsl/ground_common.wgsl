// particles.ground_contact: the contact regime of one particle, shared by the forward and the
// adjoint (see ground.rs for the equations). kind 0: free, 1: sticking, 2: sliding.
struct Regime {
    kind: u32,
    // Normal force N = ke p - kd v_y.
    n: f32,
    // Tangential speed |v_t| (sliding only).
    s: f32,
}

// g = (ke, kd, kf, mu) of the env's ground; comparisons as in the CPU `regime`.
fn regime(y: f32, r: f32, v: vec3<f32>, g: vec4<f32>) -> Regime {
    let pen = r - y;
    if (pen <= 0.0) {
        return Regime(0u, 0.0, 0.0);
    }
    let n = g.x * pen - g.y * v.y;
    if (n <= 0.0) {
        return Regime(0u, 0.0, 0.0);
    }
    let s2 = v.x * v.x + v.z * v.z;
    let cap = g.w * n;
    if (g.z * g.z * s2 <= cap * cap) {
        return Regime(1u, n, 0.0);
    }
    return Regime(2u, n, sqrt(s2));
}
