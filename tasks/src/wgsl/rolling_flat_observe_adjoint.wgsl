// rolling_flat.observe adjoint, one invocation per env: x_bar_{stride i} += o_bar_i + o_bar_com / k,
// q_bar += o_bar_q, o_bar <- 0.
@group(0) @binding(0) var<storage, read_write> ax: array<f32>;
@group(0) @binding(1) var<storage, read_write> aq: array<f32>;
@group(0) @binding(2) var<storage, read_write> aobs: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(64)
fn observe_adjoint(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.n) {
        return;
    }
    let dim = 3u * p.k + 6u;
    let o = dim * e;
    let inv = 1.0 / f32(p.k);
    for (var i = 0u; i < p.k; i++) {
        let pi = e * p.np + p.stride * i;
        for (var d = 0u; d < 3u; d++) {
            ax[3u * pi + d] += aobs[o + 3u * i + d] + aobs[o + 3u * p.k + d] * inv;
        }
    }
    aq[4u * e] += aobs[o + 3u * p.k + 3u];
    aq[4u * e + 1u] += aobs[o + 3u * p.k + 4u];
    aq[4u * e + 3u] += aobs[o + 3u * p.k + 5u];
    for (var j = 0u; j < dim; j++) {
        aobs[o + j] = 0.0;
    }
}
