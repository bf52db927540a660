// ant_run.observe forward, one invocation per env (ant_run.rs for the layout of the 37
// observations).
@group(0) @binding(2) var<storage, read> jq: array<f32>;
@group(0) @binding(3) var<storage, read> jqd: array<f32>;
@group(0) @binding(4) var<storage, read> act: array<f32>;
@group(0) @binding(5) var<storage, read_write> obs: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

@compute @workgroup_size(64)
fn observe_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.n) {
        return;
    }
    let t = torso_of_env(e);
    let o = 37u * e;
    obs[o] = t.p.y;
    for (var i = 0u; i < 4u; i++) {
        obs[o + 1u + i] = t.quat[i];
    }
    for (var i = 0u; i < 3u; i++) {
        obs[o + 5u + i] = t.v[i];
        obs[o + 8u + i] = t.w[i];
    }
    for (var i = 0u; i < 8u; i++) {
        obs[o + 11u + i] = jq[15u * e + 7u + i];
        obs[o + 19u + i] = 0.1 * jqd[14u * e + 6u + i];
        obs[o + 29u + i] = act[8u * e + i];
    }
    obs[o + 27u] = t.rot.r1.y;
    obs[o + 28u] = heading(t, p.target_x);
}

