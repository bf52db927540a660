// mpm.transfer adjoint, reverse grid update in a fixed order (Scatter::Deterministic): one
// invocation per grid row (env, gx, gy) reverses its G nodes in gz order and sums their pose
// adjoints per body into the row's slice of rowpose (POSE_SLOTS = POSE_BODIES x 2 POSE_W floats:
// each body's start then end pose adjoint; the rigid collider is one body of width 4); then
// pose_reduce, one invocation per (env, pose scalar), adds the rows' sums in row order into
// q_bar, qd_bar. Every sum has a fixed order, so the result does not depend on scheduling.
@group(0) @binding(10) var<storage, read_write> rowpose: array<f32>;

const POSE_SLOTS: u32 = 2u * POSE_W * POSE_BODIES;

@compute @workgroup_size(64)
fn grid_adjoint_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = linear_index(gid, nwg);
    if (row * p.res >= p.nodes) {
        return;
    }
    let base = POSE_SLOTS * row;
    for (var c = 0u; c < POSE_SLOTS; c++) {
        rowpose[base + c] = 0.0;
    }
    // Empty nodes (most of the grid) as node_adjoint treats them, and the range zlo .. zhi - 1
    // that holds the others: the long reverse projection runs in a loop over that range only
    // (a CPU driver runs both sides of a branch under a mask, but skips a loop no lane enters).
    var zlo = p.res;
    var zhi = 0u;
    for (var z = 0u; z < p.res; z++) {
        let k = row * p.res + z;
        if (gm[k] <= MASS_EPS) {
            gmbar[k] = 0.0;
        } else {
            zlo = min(zlo, z);
            zhi = z + 1u;
        }
    }
    for (var z = zlo; z < zhi; z++) {
        let k = row * p.res + z;
        if (gm[k] <= MASS_EPS) {
            continue;
        }
        let pb = node_adjoint(k);
        if (pb.body != NO_SHAPE) {
            let o = base + 2u * POSE_W * pb.body;
            for (var c = 0u; c < POSE_W; c++) {
                rowpose[o + c] += pb.start[c];
                rowpose[o + POSE_W + c] += pb.end[c];
            }
        }
    }
}

@compute @workgroup_size(64)
fn pose_reduce(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_index(gid, nwg);
    let rows = p.res * p.res;
    if (t >= POSE_SLOTS * (p.nodes / (rows * p.res))) {
        return;
    }
    let e = t / POSE_SLOTS;
    let r = t % POSE_SLOTS;
    var s = 0.0;
    for (var row = 0u; row < rows; row++) {
        s += rowpose[POSE_SLOTS * (e * rows + row) + r];
    }
    let body = r / (2u * POSE_W);
    let c = r % (2u * POSE_W);
    let o = POSE_W * (POSE_BODIES * (p.e0 + e) + body);
    if (c < POSE_W) {
        aq[o + c] += s;
    } else {
        aqd[o + c - POSE_W] += s;
    }
}
