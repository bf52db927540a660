// rolling_flat.observe, one invocation per env: obs = [x_{stride i} for i < k, their mean,
// roller (x, y, theta)], summed in the CPU's order.
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read_write> obs: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(64)
fn observe_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.n) {
        return;
    }
    let dim = 3u * p.k + 6u;
    let o = dim * e;
    let inv = 1.0 / f32(p.k);
    var com = vec3<f32>(0.0);
    for (var i = 0u; i < p.k; i++) {
        let pi = e * p.np + p.stride * i;
        for (var d = 0u; d < 3u; d++) {
            obs[o + 3u * i + d] = x[3u * pi + d];
            com[d] += x[3u * pi + d] * inv;
        }
    }
    obs[o + 3u * p.k] = com.x;
    obs[o + 3u * p.k + 1u] = com.y;
    obs[o + 3u * p.k + 2u] = com.z;
    obs[o + 3u * p.k + 3u] = q[4u * e];
    obs[o + 3u * p.k + 4u] = q[4u * e + 1u];
    obs[o + 3u * p.k + 5u] = q[4u * e + 3u];
}
