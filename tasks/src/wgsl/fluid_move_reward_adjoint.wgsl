// fluid_move.reward adjoint, one invocation per env: q_bar += r_bar dd2 (q - t) = -t_bar's share;
// per particle, with s = sigmoid(z_p) on its axis k, x_bar_pk -= g and q_bar_k += g for
// g = r_bar s (1 - s) sign / (w N); r_bar <- 0.
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> target_q: array<f32>;
@group(0) @binding(3) var<storage, read_write> ax: array<f32>;
@group(0) @binding(4) var<storage, read_write> aq: array<f32>;
@group(0) @binding(5) var<storage, read_write> at: array<f32>;
@group(0) @binding(6) var<storage, read_write> ar: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;

@compute @workgroup_size(64)
fn reward_adjoint(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.n) {
        return;
    }
    let rbar = ar[e];
    ar[e] = 0.0;
    let qe = vec3<f32>(q[4u * e], q[4u * e + 1u], q[4u * e + 2u]);
    let te = vec3<f32>(target_q[3u * e], target_q[3u * e + 1u], target_q[3u * e + 2u]);
    let dd2 = dist_term(qe, te).y;
    for (var k = 0u; k < 3u; k++) {
        let g = rbar * dd2 * (qe[k] - te[k]);
        aq[4u * e + k] += g;
        at[3u * e + k] -= g;
    }
    let scale = p.spill_scale;
    for (var i = 0u; i < p.np; i++) {
        let o = 3u * (p.np * e + i);
        let sp = spill_arg(vec3<f32>(x[o], x[o + 1u], x[o + 2u]), qe);
        let s = sigmoid(sp.z);
        let g = rbar * s * (1.0 - s) * scale * sp.sign;
        ax[o + sp.k] -= g;
        aq[4u * e + sp.k] += g;
    }
}
