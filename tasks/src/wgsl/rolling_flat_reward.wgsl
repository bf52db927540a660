// rolling_flat.reward, one invocation per env: with h the particle heights, m their mean and
// d = m / height_scale, r = c (1 + d)^-2 - var(h), c = 2 if d <= 0.33 else 1 (CPU order of sums).
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> reward: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(64)
fn reward_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.n) {
        return;
    }
    let inv = 1.0 / f32(p.np);
    var m = 0.0;
    for (var i = 0u; i < p.np; i++) {
        m += x[3u * (e * p.np + i) + 1u] * inv;
    }
    var v = 0.0;
    for (var i = 0u; i < p.np; i++) {
        let dh = x[3u * (e * p.np + i) + 1u] - m;
        v += dh * dh * inv;
    }
    let d = m / p.height_scale;
    let c = select(1.0, 2.0, d <= 0.33);
    let s = 1.0 / (1.0 + d);
    reward[e] = c * s * s - v;
}
