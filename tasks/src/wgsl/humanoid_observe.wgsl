// humanoid.observe forward, one invocation per env (humanoid.rs for the layout of the 76
// observations; joint_q has 28 entries per env, joint_qd 27, act 21).
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
    let o = 76u * e;
    obs[o] = t.p.y;
    for (var i = 0u; i < 4u; i++) {
        obs[o + 1u + i] = t.quat[i];
    }
    for (var i = 0u; i < 3u; i++) {
        obs[o + 5u + i] = t.v[i];
        obs[o + 8u + i] = t.w[i];
    }
    for (var i = 0u; i < 21u; i++) {
        obs[o + 11u + i] = jq[28u * e + 7u + i];
        obs[o + 32u + i] = 0.1 * jqd[27u * e + 6u + i];
        obs[o + 55u + i] = act[21u * e + i];
    }
    obs[o + 53u] = t.rot.r1.y;
    obs[o + 54u] = heading(t, p.target_x);
}
