// articulation.integrate adjoint, one invocation per env, by the implicit function theorem (see
// integrate.rs): recompute q̈ and the Cholesky factor of H from the pre-state; (a) the Euler
// update's adjoint gives q̄, q̇̄ through it and ā = ∂L/∂q̈; (b) λ = H⁻¹ ā, ∂L/∂τ += λ; (c) the
// adjoint of inverse dynamics seeded with −λ adds into q̄, q̇̄ and ∂L/∂f_ext. joint_q and
// joint_qd are overwritten by the forward, so their adjoints are replaced; τ and f_ext are only
// read, so theirs accumulate.
@group(0) @binding(3) var<storage, read> jq: array<f32>;
@group(0) @binding(4) var<storage, read> jqd: array<f32>;
@group(0) @binding(5) var<storage, read> jtau: array<f32>;
@group(0) @binding(6) var<storage, read> body_f: array<f32>;
@group(0) @binding(7) var<storage, read> gravity: array<f32>;
@group(0) @binding(8) var<storage, read_write> a_jq: array<f32>;
@group(0) @binding(9) var<storage, read_write> a_jqd: array<f32>;
@group(0) @binding(10) var<storage, read_write> a_jtau: array<f32>;
@group(0) @binding(11) var<storage, read_write> a_body_f: array<f32>;
@group(0) @binding(12) var<storage, read_write> work: array<Work>;

@compute @workgroup_size(64)
fn integrate_adjoint(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.n) {
        return;
    }
    begin_env(e);
    for (var i = 0u; i < p.nq; i++) {
        work[wi].eq_bar[i] = a_jq[e * p.nq + i];
    }
    for (var i = 0u; i < p.nd; i++) {
        work[wi].tau[i] = jtau[e * p.nd + i];
        work[wi].eqd_bar[i] = a_jqd[e * p.nd + i];
        work[wi].qdd_bar[i] = 0.0;
    }
    for (var k = 0u; k < p.nb; k++) {
        let f = 6u * (env_body0 + k);
        work[wi].fext[k] = V6(vec3<f32>(body_f[f], body_f[f + 1u], body_f[f + 2u]), vec3<f32>(body_f[f + 3u], body_f[f + 4u], body_f[f + 5u]));
        work[wi].fext_bar[k] = v6_zero();
    }
    grav = vec3<f32>(gravity[3u * e], gravity[3u * e + 1u], gravity[3u * e + 2u]);
    joint_accelerations();
    // (a) The Euler update in reverse.
    euler_adjoint(p.dt);
    // (b) λ = H⁻¹ ā with the factor left in hm (qdd is kept in tau_r meanwhile).
    for (var i = 0u; i < p.nd; i++) {
        work[wi].tau_r[i] = work[wi].qdd[i];
        work[wi].qdd[i] = work[wi].qdd_bar[i];
    }
    cholesky_solve_factored_qdd();
    for (var i = 0u; i < p.nd; i++) {
        work[wi].tau_bar[i] = -work[wi].qdd[i];
        work[wi].qdd_bar[i] = work[wi].qdd[i];
        work[wi].qdd[i] = work[wi].tau_r[i];
    }
    // (c) −λᵀ ID(q, q̇, q̈ fixed, f_ext).
    inverse_dynamics_adjoint();
    for (var i = 0u; i < p.nq; i++) {
        a_jq[e * p.nq + i] = work[wi].eq_bar[i] + work[wi].q_bar[i];
    }
    for (var i = 0u; i < p.nd; i++) {
        a_jqd[e * p.nd + i] = work[wi].eqd_bar[i] + work[wi].qd_bar[i];
        a_jtau[e * p.nd + i] = a_jtau[e * p.nd + i] + work[wi].qdd_bar[i];
    }
    for (var k = 0u; k < p.nb; k++) {
        let f = 6u * (env_body0 + k);
        let fb = work[wi].fext_bar[k];
        for (var i = 0u; i < 3u; i++) {
            a_body_f[f + i] = a_body_f[f + i] + fb.w[i];
            a_body_f[f + 3u + i] = a_body_f[f + 3u + i] + fb.v[i];
        }
    }
}
