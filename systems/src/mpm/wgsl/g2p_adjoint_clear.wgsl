@compute @workgroup_size(64)
fn vbar_clear(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = linear_index(gid, nwg);
    if (k >= 3u * p.nodes) {
        return;
    }
    gvbar[k] = 0.0;
}
