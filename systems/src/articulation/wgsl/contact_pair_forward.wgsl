// articulation.shape_contact forward in two passes (deterministic in every scatter mode): one
// invocation per pair writes the wrench B exerts on A (zero without contact; a pair with a box
// sums its contacts' in the CPU's point order, `box_pair_wrench`) into the scratch,
// then one invocation per body adds its pairs' wrenches (+ as A, − as B) in pair order.
@group(0) @binding(12) var<storage, read_write> bf: array<f32>;
@group(0) @binding(13) var<uniform> p: Params;

@compute @workgroup_size(64)
fn pair_forces(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = linear_index(gid, nwg);
    if (k >= p.n) {
        return;
    }
    var torque = vec3<f32>(0.0);
    var force = vec3<f32>(0.0);
    if (pair_has_box(k)) {
        let w = box_pair_wrench(k);
        torque = w.torque;
        force = w.force;
    } else {
        let o = pair_contact(k);
        if (o.on) {
            torque = cross3(o.x, o.f);
            force = o.f;
        }
    }
    for (var i = 0u; i < 3u; i++) {
        scratch[6u * k + i] = torque[i];
        scratch[6u * k + 3u + i] = force[i];
    }
}

@compute @workgroup_size(64)
fn pair_gather(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let b = linear_index(gid, nwg);
    if (b >= p.n) {
        return;
    }
    for (var j = offsets[b]; j < offsets[b + 1u]; j++) {
        let k = entries[j] >> 1u;
        let side = entries[j] & 1u;
        for (var i = 0u; i < 6u; i++) {
            if (side == 0u) {
                bf[6u * b + i] = bf[6u * b + i] + scratch[6u * k + i];
            } else {
                bf[6u * b + i] = bf[6u * b + i] - scratch[6u * k + i];
            }
        }
    }
}
