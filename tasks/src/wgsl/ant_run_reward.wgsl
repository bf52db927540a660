// ant_run.reward r = v_x + 0.1 up_y + heading + (height − 0.27), one invocation per env.
@group(0) @binding(2) var<storage, read_write> reward: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(64)
fn reward_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.n) {
        return;
    }
    let t = torso_of_env(e);
    reward[e] = t.v.x + 0.1 * t.rot.r1.y + heading(t, p.target_x) + t.p.y - p.height;
}

