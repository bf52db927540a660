// Means over an env's particles; the kernel declares q and qd before this file.
// 0.1 × the mean of env e's particles (q or q̇), summed in particle order as the CPU.
fn mean3_q(e: u32) -> vec3<f32> {
    var m = vec3<f32>(0.0);
    for (var i = 0u; i < p.np; i++) {
        let o = 3u * (e * p.np + i);
        m = m + vec3<f32>(q[o], q[o + 1u], q[o + 2u]);
    }
    return m * p.per;
}
fn mean3_qd(e: u32) -> vec3<f32> {
    var m = vec3<f32>(0.0);
    for (var i = 0u; i < p.np; i++) {
        let o = 3u * (e * p.np + i);
        m = m + vec3<f32>(qd[o], qd[o + 1u], qd[o + 2u]);
    }
    return m * p.per;
}
