// mpm.transfer adjoint, reverse grid update with atomics (Scatter::Atomic): one invocation per
// node adds its pose adjoint into q_bar, qd_bar of its env (its deciding body's rows).
fn add_aq(i: u32, v: f32) {
    ADD(aq)
}
fn add_aqd(i: u32, v: f32) {
    ADD(aqd)
}

@compute @workgroup_size(64)
fn grid_adjoint(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = linear_index(gid, nwg);
    if (k >= p.nodes) {
        return;
    }
    let pb = node_adjoint(k);
    if (pb.body != NO_SHAPE) {
        let e = p.e0 + k / (p.res * p.res * p.res);
        let o = POSE_W * (POSE_BODIES * e + pb.body);
        for (var c = 0u; c < POSE_W; c++) {
            add_aq(o + c, pb.start[c]);
            add_aqd(o + c, pb.end[c]);
        }
    }
}
