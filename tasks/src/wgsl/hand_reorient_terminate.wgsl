// hand_reorient.terminate, one invocation per env: 1 when the cube is FALL_DISTANCE or more from
// the goal (p.fall is the smallest f32 >= it, so the f32 test equals the CPU's f64 one); the
// adjoint clears the flag's cotangent.
@group(0) @binding(2) var<storage, read_write> flag: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(64)
fn terminate_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.n) {
        return;
    }
    flag[e] = select(0.0, 1.0, goal_dist(e) >= p.fall);
}

@compute @workgroup_size(64)
fn terminate_adjoint(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.n) {
        return;
    }
    flag[e] = 0.0;
}
