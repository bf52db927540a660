// articulation.ground_contact forward, one invocation per body: the wrenches of its shapes added
// into body_f in shape order, the CPU loop's order of additions (deterministic, no atomics).
@group(0) @binding(5) var<storage, read> bq: array<f32>;
@group(0) @binding(6) var<storage, read> bqd: array<f32>;
@group(0) @binding(7) var<storage, read_write> bf: array<f32>;
@group(0) @binding(8) var<uniform> p: Params;

@compute @workgroup_size(64)
fn ground_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = linear_index(gid, nwg);
    if (k >= p.n) {
        return;
    }
    let e = k / p.nb;
    let b = k % p.nb;
    let xb = vec3<f32>(bq[7u * k], bq[7u * k + 1u], bq[7u * k + 2u]);
    let rot = quat_to_mat(vec4<f32>(bq[7u * k + 3u], bq[7u * k + 4u], bq[7u * k + 5u], bq[7u * k + 6u]));
    let w = vec3<f32>(bqd[6u * k], bqd[6u * k + 1u], bqd[6u * k + 2u]);
    let vo = vec3<f32>(bqd[6u * k + 3u], bqd[6u * k + 4u], bqd[6u * k + 5u]);
    for (var s = e * p.ns; s < (e + 1u) * p.ns; s++) {
        if (shape_body[s] != b) {
            continue;
        }
        let wr = ground_wrench(s, xb, rot, w, vo);
        if (wr.on) {
            for (var i = 0u; i < 3u; i++) {
                bf[6u * k + i] = bf[6u * k + i] + wr.torque[i];
                bf[6u * k + 3u + i] = bf[6u * k + 3u + i] + wr.force[i];
            }
        }
    }
}
