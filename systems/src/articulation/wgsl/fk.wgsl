// articulation.fk forward, one invocation per env: kinematics, then body_q (x, quaternion) and
// body_qd (twist) of every body.
@group(0) @binding(3) var<storage, read> jq: array<f32>;
@group(0) @binding(4) var<storage, read> jqd: array<f32>;
@group(0) @binding(5) var<storage, read_write> body_q: array<f32>;
@group(0) @binding(6) var<storage, read_write> body_qd: array<f32>;
@group(0) @binding(7) var<storage, read_write> work: array<Work>;

@compute @workgroup_size(64)
fn fk_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.n) {
        return;
    }
    begin_env(e);
    kinematics();
    for (var k = 0u; k < p.nb; k++) {
        let b = env_body0 + k;
        let quat = mat_to_quat(work[wi].k_rot[k]);
        for (var i = 0u; i < 3u; i++) {
            body_q[7u * b + i] = work[wi].k_pos[k][i];
            body_qd[6u * b + i] = work[wi].k_twist[k].w[i];
            body_qd[6u * b + 3u + i] = work[wi].k_twist[k].v[i];
        }
        for (var i = 0u; i < 4u; i++) {
            body_q[7u * b + 3u + i] = quat[i];
        }
    }
}
