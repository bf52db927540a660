// hand_reorient.resample_goal forward, one invocation per env: where the goal is reached, a new
// goal rotation from the env's stream, and the success count goes up by one. `goal` (binding 1)
// is bound read-write here (the kernel source is patched so), the only binding of that column.
@group(0) @binding(2) var<storage, read_write> goal_rng: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(64)
fn resample_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.n || !reached(e)) {
        return;
    }
    let g = new_goal(u32(goal_rng[2u * e]), u32(goal_rng[2u * e + 1u]));
    for (var i = 0u; i < 4u; i++) {
        goal[7u * e + 3u + i] = g[i];
    }
    goal_rng[2u * e + 1u] = goal_rng[2u * e + 1u] + 1.0;
}
