// hand_flip.observe adjoint, one invocation per env: x_bar_i += o_bar_i + o_bar_com / 2K,
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
    let k2 = 2u * p.pairs;
    let dim = 3u * k2 + 3u + p.dof;
    let o = dim * e;
    for (var i = 0u; i < k2; i++) {
        let pi = observed(e, i);
        for (var d = 0u; d < 3u; d++) {
            ax[3u * pi + d] += aobs[o + 3u * i + d] + aobs[o + 3u * k2 + d] * p.inv_k2;
        }
    }
    for (var k = 0u; k < p.dof; k++) {
        aq[p.dof * e + k] += aobs[o + 3u * k2 + 3u + k];
    }
    for (var j = 0u; j < dim; j++) {
        aobs[o + j] = 0.0;
    }
}
