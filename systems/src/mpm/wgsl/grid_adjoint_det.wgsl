// mpm.transfer adjoint, reverse grid update in a fixed order (Scatter::Deterministic): one
// invocation per grid row (env, gx, gy) reverses its G nodes in gz order and writes the row's
// pose adjoint sum to rowpose (8 floats: q_bar, qd_bar); then pose_reduce, one invocation per
// (env, pose scalar), adds the rows' sums in row order into q_bar, qd_bar. Every sum has a
// fixed order, so the result does not depend on scheduling.
@group(0) @binding(10) var<storage, read_write> rowpose: array<f32>;

@compute @workgroup_size(64)
fn grid_adjoint_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = linear_index(gid, nwg);
    if (row * p.res >= p.nodes) {
        return;
    }
    var q = vec4<f32>(0.0);
    var qd = vec4<f32>(0.0);
    for (var z = 0u; z < p.res; z++) {
        let pb = node_adjoint(row * p.res + z);
        q += pb.q;
        qd += pb.qd;
    }
    for (var c = 0u; c < 4u; c++) {
        rowpose[8u * row + c] = q[c];
        rowpose[8u * row + 4u + c] = qd[c];
    }
}

@compute @workgroup_size(64)
fn pose_reduce(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_index(gid, nwg);
    let rows = p.res * p.res;
    if (t >= 8u * (p.nodes / (rows * p.res))) {
        return;
    }
    let e = t / 8u;
    let c = t % 8u;
    var s = 0.0;
    for (var r = 0u; r < rows; r++) {
        s += rowpose[8u * (e * rows + r) + c];
    }
    let ge = p.e0 + e;
    if (c < 4u) {
        aq[4u * ge + c] += s;
    } else {
        aqd[4u * ge + c - 4u] += s;
    }
}
