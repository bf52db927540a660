// rolling_flat.reward adjoint, one invocation per env:
// h_bar_p += r_bar (-2 c (1 + d)^-3 / (height_scale N) - 2 (h_p - m) / N), r_bar <- 0.
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> ax: array<f32>;
@group(0) @binding(2) var<storage, read_write> ar: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(64)
fn reward_adjoint(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.n) {
        return;
    }
    let rbar = ar[e];
    ar[e] = 0.0;
    let inv = 1.0 / f32(p.np);
    var m = 0.0;
    for (var i = 0u; i < p.np; i++) {
        m += x[3u * (e * p.np + i) + 1u] * inv;
    }
    let d = m / p.height_scale;
    let c = select(1.0, 2.0, d <= 0.33);
    let s = 1.0 / (1.0 + d);
    let dmean = -2.0 * c * s * s * s / p.height_scale * inv;
    for (var i = 0u; i < p.np; i++) {
        let k = 3u * (e * p.np + i) + 1u;
        ax[k] += rbar * (dmean - 2.0 * (x[k] - m) * inv);
    }
}
