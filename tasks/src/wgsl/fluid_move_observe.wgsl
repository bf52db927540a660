// fluid_move.observe, one invocation per env: obs = [x_{stride i} for i < k, the mean of all
// particles, container (x, y, z), target], summed in the CPU's order.
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> target_q: array<f32>;
@group(0) @binding(3) var<storage, read_write> obs: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(64)
fn observe_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.n) {
        return;
    }
    let o = (3u * p.k + 9u) * e;
    let xe = 3u * p.np * e;
    for (var i = 0u; i < p.k; i++) {
        for (var d = 0u; d < 3u; d++) {
            obs[o + 3u * i + d] = x[xe + 3u * p.stride * i + d];
        }
    }
    let inv = 1.0 / f32(p.np);
    var com = vec3<f32>(0.0);
    for (var i = 0u; i < p.np; i++) {
        for (var d = 0u; d < 3u; d++) {
            com[d] += x[xe + 3u * i + d] * inv;
        }
    }
    for (var d = 0u; d < 3u; d++) {
        obs[o + 3u * p.k + d] = com[d];
        obs[o + 3u * p.k + 3u + d] = q[4u * e + d];
        obs[o + 3u * p.k + 6u + d] = target_q[3u * e + d];
    }
}
