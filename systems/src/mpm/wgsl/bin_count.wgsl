// bin.wgsl's bin_count (COUNT_T = atomic<u32>).
@compute @workgroup_size(64)
fn bin_count(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let li = linear_index(gid, nwg);
    if (li >= p.n) {
        return;
    }
    let c = cell_of(li);
    cellof[li] = c;
    slot[li] = atomicAdd(&count[c], 1u);
}
