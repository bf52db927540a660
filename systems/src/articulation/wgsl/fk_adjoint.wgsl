// articulation.fk adjoint, one invocation per env: x̄ and the quaternion's adjoint pulled back
// to R̄ through `mat_to_quat` become the kinematic adjoints of every body, the twist adjoint
// passes as is; `kinematics_adjoint` adds them into ∂L/∂(joint_q, joint_qd). body_q and body_qd
// are overwritten by the forward, so their adjoints are consumed (zeroed).
@group(0) @binding(3) var<storage, read> jq: array<f32>;
@group(0) @binding(4) var<storage, read> jqd: array<f32>;
@group(0) @binding(5) var<storage, read_write> a_jq: array<f32>;
@group(0) @binding(6) var<storage, read_write> a_jqd: array<f32>;
@group(0) @binding(7) var<storage, read_write> a_bq: array<f32>;
@group(0) @binding(8) var<storage, read_write> a_bqd: array<f32>;
@group(0) @binding(9) var<storage, read_write> work: array<Work>;

@compute @workgroup_size(64)
fn fk_adjoint(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.n) {
        return;
    }
    begin_env(e);
    kinematics();
    clear_bars();
    for (var k = 0u; k < p.nb; k++) {
        let b = env_body0 + k;
        work[wi].b_pos[k] = vec3<f32>(a_bq[7u * b], a_bq[7u * b + 1u], a_bq[7u * b + 2u]);
        let quat_bar = vec4<f32>(a_bq[7u * b + 3u], a_bq[7u * b + 4u], a_bq[7u * b + 5u], a_bq[7u * b + 6u]);
        work[wi].b_rot[k] = mat_to_quat_adjoint(work[wi].k_rot[k], quat_bar);
        work[wi].b_twist[k] = V6(
            vec3<f32>(a_bqd[6u * b], a_bqd[6u * b + 1u], a_bqd[6u * b + 2u]),
            vec3<f32>(a_bqd[6u * b + 3u], a_bqd[6u * b + 4u], a_bqd[6u * b + 5u]),
        );
        for (var i = 0u; i < 7u; i++) {
            a_bq[7u * b + i] = 0.0;
        }
        for (var i = 0u; i < 6u; i++) {
            a_bqd[6u * b + i] = 0.0;
        }
    }
    kinematics_adjoint();
    for (var i = 0u; i < p.nq; i++) {
        a_jq[e * p.nq + i] = a_jq[e * p.nq + i] + work[wi].q_bar[i];
    }
    for (var i = 0u; i < p.nd; i++) {
        a_jqd[e * p.nd + i] = a_jqd[e * p.nd + i] + work[wi].qd_bar[i];
    }
}
