// fem.fiber_muscles: what the forward and adjoint kernels share. Each declares q and ti first.

// Global particle indices of tetrahedron k's corners.
fn fiber_verts(k: u32) -> vec4<u32> {
    let base = (k / p.nt) * p.np;
    return vec4<u32>(base + ti[4u * k], base + ti[4u * k + 1u], base + ti[4u * k + 2u], base + ti[4u * k + 3u]);
}

// u = Σ_j w_j (x_j − x_0), summed in j order per component as the CPU.
fn fiber_stretch(v: vec4<u32>, w: vec3<f32>) -> vec3<f32> {
    var u = vec3<f32>(0.0);
    for (var c = 0u; c < 3u; c++) {
        let x0 = q[3u * v.x + c];
        var acc = 0.0;
        acc = acc + w.x * (q[3u * v.y + c] - x0);
        acc = acc + w.y * (q[3u * v.z + c] - x0);
        acc = acc + w.z * (q[3u * v.w + c] - x0);
        u[c] = acc;
    }
    return u;
}
