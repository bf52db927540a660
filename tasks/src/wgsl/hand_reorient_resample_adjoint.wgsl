// hand_reorient.resample_goal adjoint, one invocation per env: where the goal was replaced by a
// constant, its rotation's adjoint is cleared; everything else (the goal position, the stream,
// the count n + 1) passes through.
@group(0) @binding(2) var<storage, read_write> agoal: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(64)
fn resample_adjoint(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.n || !reached(e)) {
        return;
    }
    for (var i = 0u; i < 4u; i++) {
        agoal[7u * e + 3u + i] = 0.0;
    }
}
