// articulation.joint_forces adjoint, one invocation per (env, body): τ̄ passes through (τ is
// accumulated); ā_k += gain τ̄, q̇̄ −= damping τ̄, and in a violated limit q̄ −= kₑ τ̄,
// q̇̄ −= k_d τ̄.
// Bindings 0–7: joint_forces_common.wgsl.
@group(0) @binding(8) var<storage, read> a_jtau: array<f32>;
@group(0) @binding(9) var<storage, read_write> a_jq: array<f32>;
@group(0) @binding(10) var<storage, read_write> a_jqd: array<f32>;
@group(0) @binding(11) var<storage, read_write> a_act: array<f32>;

@compute @workgroup_size(64)
fn joint_forces_adjoint(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let b = linear_index(gid, nwg);
    let dof = joint_dof(b);
    if (!dof.on) {
        return;
    }
    let e = dof.e;
    let qi = dof.qi;
    let di = dof.di;
    let g = a_jtau[di];
    a_jqd[di] = a_jqd[di] - damping[b] * g;
    let a = actuator[b];
    if (a != WORLD) {
        a_act[e * p.na + a] = a_act[e * p.na + a] + gain[b] * g;
    }
    if (limit[3u * b] != 0.0) {
        let x = jq[qi];
        if (x < limit[3u * b + 1u] || x > limit[3u * b + 2u]) {
            a_jq[qi] = a_jq[qi] - gains[2u * e] * g;
            a_jqd[di] = a_jqd[di] - gains[2u * e + 1u] * g;
        }
    }
}
