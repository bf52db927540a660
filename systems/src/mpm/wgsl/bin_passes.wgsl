// bin.wgsl's passes other than bin_count (COUNT_T = u32), with gather_common.wgsl's segment_start.
@compute @workgroup_size(64)
fn count_clear(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = linear_index(gid, nwg);
    if (k >= p.nodes) {
        return;
    }
    count[k] = 0u;
}

@compute @workgroup_size(64)
fn scan_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = linear_index(gid, nwg);
    if (row * p.res >= p.nodes) {
        return;
    }
    var s = 0u;
    for (var z = 0u; z < p.res; z++) {
        let k = row * p.res + z;
        start[k] = s;
        s += count[k];
    }
    rowoff[row] = s;
}

@compute @workgroup_size(64)
fn scan_env(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    let rows = p.res * p.res;
    if (e * rows * p.res >= p.nodes) {
        return;
    }
    var s = 0u;
    for (var r = 0u; r < rows; r++) {
        let t = rowoff[e * rows + r];
        rowoff[e * rows + r] = s;
        s += t;
    }
}

@compute @workgroup_size(64)
fn fill(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let li = linear_index(gid, nwg);
    if (li >= p.n) {
        return;
    }
    sorted[segment_start(cell_of(li)) + slot[li]] = li;
}

@compute @workgroup_size(64)
fn sort_cells(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = linear_index(gid, nwg);
    if (k >= p.nodes) {
        return;
    }
    let n = count[k];
    if (n < 2u) {
        return;
    }
    let s0 = segment_start(k);
    for (var a = 1u; a < n; a++) {
        let key = sorted[s0 + a];
        var b = a;
        while (b > 0u && sorted[s0 + b - 1u] > key) {
            sorted[s0 + b] = sorted[s0 + b - 1u];
            b--;
        }
        sorted[s0 + b] = key;
    }
}
