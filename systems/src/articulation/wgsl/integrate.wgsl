// articulation.integrate forward, one invocation per env: q̈ by RNEA + CRBA + Cholesky, then
// the semi-implicit Euler update of (joint_q, joint_qd) in place.
@group(0) @binding(3) var<storage, read_write> jq: array<f32>;
@group(0) @binding(4) var<storage, read_write> jqd: array<f32>;
@group(0) @binding(5) var<storage, read> jtau: array<f32>;
@group(0) @binding(6) var<storage, read> body_f: array<f32>;
@group(0) @binding(7) var<storage, read> gravity: array<f32>;
@group(0) @binding(8) var<storage, read_write> work: array<Work>;

@compute @workgroup_size(64)
fn integrate_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.n) {
        return;
    }
    begin_env(e);
    for (var i = 0u; i < p.nd; i++) {
        work[wi].tau[i] = jtau[e * p.nd + i];
    }
    for (var k = 0u; k < p.nb; k++) {
        let f = 6u * (env_body0 + k);
        work[wi].fext[k] = V6(vec3<f32>(body_f[f], body_f[f + 1u], body_f[f + 2u]), vec3<f32>(body_f[f + 3u], body_f[f + 4u], body_f[f + 5u]));
    }
    grav = vec3<f32>(gravity[3u * e], gravity[3u * e + 1u], gravity[3u * e + 2u]);
    joint_accelerations();
    euler_update(p.dt);
    for (var i = 0u; i < p.nq; i++) {
        jq[e * p.nq + i] = work[wi].qv[i];
    }
    for (var i = 0u; i < p.nd; i++) {
        jqd[e * p.nd + i] = work[wi].qdv[i];
    }
}
