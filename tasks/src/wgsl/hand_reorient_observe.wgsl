// hand_reorient.observe forward, one invocation per env (hand_reorient.rs for the layout of the
// 72 observations). hinge_idx: per hinge (q index, q̇ index) within an env; hinge_c: (hi + lo,
// hi − lo), rounded from f64.
@group(0) @binding(2) var<storage, read> jqd: array<f32>;
@group(0) @binding(3) var<storage, read> act: array<f32>;
@group(0) @binding(4) var<storage, read_write> obs: array<f32>;
@group(0) @binding(5) var<storage, read> hinge_idx: array<u32>;
@group(0) @binding(6) var<storage, read> hinge_c: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;

@compute @workgroup_size(64)
fn observe_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.n) {
        return;
    }
    let o = 72u * e;
    for (var k = 0u; k < 16u; k++) {
        obs[o + k] = (2.0 * jq[e * p.nq + hinge_idx[2u * k]] - hinge_c[2u * k]) / hinge_c[2u * k + 1u];
        obs[o + 16u + k] = 0.2 * jqd[e * p.nd + hinge_idx[2u * k + 1u]];
        obs[o + 56u + k] = act[16u * e + k];
    }
    let c = e * p.nd + p.cube_qd;
    let w = vec3<f32>(jqd[c], jqd[c + 1u], jqd[c + 2u]);
    let vo = vec3<f32>(jqd[c + 3u], jqd[c + 4u], jqd[c + 5u]);
    let x = cube_p(e);
    let q = cube_quat(e);
    let wxp = vec3<f32>(w.y * x.z - w.z * x.y, w.z * x.x - w.x * x.z, w.x * x.y - w.y * x.x);
    let gp = goal_p(e);
    let gq = goal_quat(e);
    let qd = quat_mul(q, conj(gq));
    for (var i = 0u; i < 3u; i++) {
        obs[o + 32u + i] = x[i];
        obs[o + 39u + i] = vo[i] + wxp[i];
        obs[o + 42u + i] = 0.2 * w[i];
        obs[o + 45u + i] = gp[i];
    }
    for (var i = 0u; i < 4u; i++) {
        obs[o + 35u + i] = q[i];
        obs[o + 48u + i] = gq[i];
        obs[o + 52u + i] = qd[i];
    }
}
