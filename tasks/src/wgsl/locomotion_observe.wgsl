// The observe forward of AntRun and Humanoid, one invocation per env (ant_run.rs and humanoid.rs
// for the layout of the 13 + 3 NA observations; NA, the actuated hinges, is a constant prepended
// by the Rust side: joint_q has 7 + NA entries per env, joint_qd 6 + NA, act NA).
const NOBS: u32 = 13u + 3u * NA;

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
    let o = NOBS * e;
    obs[o] = t.p.y;
    for (var i = 0u; i < 4u; i++) {
        obs[o + 1u + i] = t.quat[i];
    }
    for (var i = 0u; i < 3u; i++) {
        obs[o + 5u + i] = t.v[i];
        obs[o + 8u + i] = t.w[i];
    }
    for (var i = 0u; i < NA; i++) {
        obs[o + 11u + i] = jq[(7u + NA) * e + 7u + i];
        obs[o + 11u + NA + i] = 0.1 * jqd[(6u + NA) * e + 6u + i];
        obs[o + 13u + 2u * NA + i] = act[NA * e + i];
    }
    obs[o + 11u + 2u * NA] = t.rot.r1.y;
    obs[o + 12u + 2u * NA] = heading(t, p.target_x);
}

