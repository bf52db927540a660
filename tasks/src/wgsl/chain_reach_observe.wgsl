// chain_reach.observe forward: obs = [x_i - target, v_i for every particle], one invocation per
// particle g = env * np + i writing its 6 entries of the env's obs row.
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> qd: array<f32>;
@group(0) @binding(2) var<storage, read> target_: array<f32>;
@group(0) @binding(3) var<storage, read_write> obs: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(64)
fn observe_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = linear_index(gid, nwg);
    if (g >= p.n) {
        return;
    }
    let e = g / p.np;
    let i = g % p.np;
    let row = 6u * p.np * e;
    for (var c = 0u; c < 3u; c++) {
        obs[row + 3u * i + c] = q[3u * g + c] - target_[3u * e + c];
        obs[row + 3u * p.np + 3u * i + c] = qd[3u * g + c];
    }
}
