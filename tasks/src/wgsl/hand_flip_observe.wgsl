// hand_flip.observe, one invocation per env: obs = [x of the 2K observed particles, their mean,
// kin_q], summed in the CPU's order.
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
    let k2 = 2u * p.pairs;
    let o = (3u * k2 + 3u + p.dof) * e;
    var com = vec3<f32>(0.0);
    for (var i = 0u; i < k2; i++) {
        let pi = observed(e, i);
        for (var d = 0u; d < 3u; d++) {
            obs[o + 3u * i + d] = x[3u * pi + d];
            com[d] += x[3u * pi + d] * p.inv_k2;
        }
    }
    for (var d = 0u; d < 3u; d++) {
        obs[o + 3u * k2 + d] = com[d];
    }
    for (var k = 0u; k < p.dof; k++) {
        obs[o + 3u * k2 + 3u + k] = q[p.dof * e + k];
    }
}
