// bin.wgsl's passes other than bin_count (COUNT_T = u32), with gather_common.wgsl's
// segment_start and segment_end.

var<workgroup> wscan: array<u32, 64>;

// Exclusive prefix sum of v over the workgroup's 64 invocations (t: local index), Hillis–Steele
// in workgroup memory; wscan[63] holds the total afterwards. Integer sums: exact in any order.
// Every invocation of the workgroup must call it (barriers).
fn workgroup_scan(t: u32, v: u32) -> u32 {
    wscan[t] = v;
    workgroupBarrier();
    for (var d = 1u; d < 64u; d <<= 1u) {
        var add = 0u;
        if (t >= d) {
            add = wscan[t - d];
        }
        workgroupBarrier();
        wscan[t] += add;
        workgroupBarrier();
    }
    return wscan[t] - v;
}

@compute @workgroup_size(64)
fn scan_local(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    // No early return: every invocation reaches the barriers; out-of-range cells count 0.
    let b = linear_index(gid, nwg) / 64u;
    let k0 = b * SCAN_BLOCK + t * SCAN_PER;
    var s = 0u;
    for (var j = 0u; j < SCAN_PER; j++) {
        if (k0 + j < p.nodes) {
            s += count[k0 + j];
        }
    }
    var o = workgroup_scan(t, s);
    for (var j = 0u; j < SCAN_PER; j++) {
        let k = k0 + j;
        if (k < p.nodes) {
            let c = count[k];
            start[k] = o;
            o += c;
            count[k] = 0u;
        }
    }
    if (t == 63u && b * SCAN_BLOCK < p.nodes) {
        blocksum[b] = o;
    }
}

@compute @workgroup_size(64)
fn scan_blocks(@builtin(local_invocation_index) t: u32) {
    let blocks = (p.nodes + SCAN_BLOCK - 1u) / SCAN_BLOCK;
    let per = (blocks + 63u) / 64u;
    let b0 = min(t * per, blocks);
    let b1 = min(b0 + per, blocks);
    var s = 0u;
    for (var b = b0; b < b1; b++) {
        s += blocksum[b];
    }
    var o = workgroup_scan(t, s);
    for (var b = b0; b < b1; b++) {
        let c = blocksum[b];
        blocksum[b] = o;
        o += c;
    }
    if (t == 63u) {
        blocksum[blocks] = o;
    }
}

@compute @workgroup_size(64)
fn fill(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let li = linear_index(gid, nwg);
    if (li >= p.n) {
        return;
    }
    arrival[segment_start(cellof[li]) + slot[li]] = li;
}

@compute @workgroup_size(64)
fn rank(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let li = linear_index(gid, nwg);
    if (li >= p.n) {
        return;
    }
    let c = cellof[li];
    let s0 = segment_start(c);
    let s1 = segment_end(c);
    var r = 0u;
    for (var j = s0; j < s1; j++) {
        r += u32(arrival[j] < li);
    }
    sorted[s0 + r] = li;
}
