// fluid_move.observe adjoint, one invocation per env: x_bar_p += o_bar_com / N for every p,
// x_bar_{stride i} += o_bar_i, q_bar += o_bar_q, target_bar += o_bar_t, o_bar <- 0.
@group(0) @binding(0) var<storage, read_write> ax: array<f32>;
@group(0) @binding(1) var<storage, read_write> aq: array<f32>;
@group(0) @binding(2) var<storage, read_write> at: array<f32>;
@group(0) @binding(3) var<storage, read_write> aobs: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(64)
fn observe_adjoint(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.n) {
        return;
    }
    let dim = 3u * p.k + 9u;
    let o = dim * e;
    let xe = 3u * p.np * e;
    let inv = 1.0 / f32(p.np);
    let com = vec3<f32>(aobs[o + 3u * p.k] * inv, aobs[o + 3u * p.k + 1u] * inv, aobs[o + 3u * p.k + 2u] * inv);
    for (var i = 0u; i < p.np; i++) {
        for (var d = 0u; d < 3u; d++) {
            ax[xe + 3u * i + d] += com[d];
        }
    }
    for (var i = 0u; i < p.k; i++) {
        for (var d = 0u; d < 3u; d++) {
            ax[xe + 3u * p.stride * i + d] += aobs[o + 3u * i + d];
        }
    }
    for (var d = 0u; d < 3u; d++) {
        aq[4u * e + d] += aobs[o + 3u * p.k + 3u + d];
        at[3u * e + d] += aobs[o + 3u * p.k + 6u + d];
    }
    for (var j = 0u; j < dim; j++) {
        aobs[o + j] = 0.0;
    }
}
