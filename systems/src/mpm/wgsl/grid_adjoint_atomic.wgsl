// mpm.transfer adjoint, reverse grid update with atomics (Scatter::Atomic): one invocation per
// node adds its pose adjoint into q_bar, qd_bar of its env.
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
    if (any(pb.q != vec4<f32>(0.0)) || any(pb.qd != vec4<f32>(0.0))) {
        let e = p.e0 + k / (p.res * p.res * p.res);
        for (var c = 0u; c < 4u; c++) {
            add_aq(4u * e + c, pb.q[c]);
            add_aqd(4u * e + c, pb.qd[c]);
        }
    }
}
