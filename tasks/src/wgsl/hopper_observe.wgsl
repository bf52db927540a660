// hopper.observe forward: obs = [joint_q (6), joint_qd (6)].
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> qd: array<f32>;
@group(0) @binding(2) var<storage, read_write> obs: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(64)
fn observe_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.n) {
        return;
    }
    for (var i = 0u; i < 6u; i++) {
        obs[12u * e + i] = q[6u * e + i];
        obs[12u * e + 6u + i] = qd[6u * e + i];
    }
}
