// hand_reorient.observe adjoint, one invocation per env: ō pulled back to joint_q, joint_qd, the
// goal and the actions, then ō <- 0 (obs is overwritten).
@group(0) @binding(2) var<storage, read> jqd: array<f32>;
@group(0) @binding(3) var<storage, read_write> obs: array<f32>;
@group(0) @binding(4) var<storage, read_write> ajq: array<f32>;
@group(0) @binding(5) var<storage, read_write> ajqd: array<f32>;
@group(0) @binding(6) var<storage, read_write> agoal: array<f32>;
@group(0) @binding(7) var<storage, read_write> aact: array<f32>;
@group(0) @binding(8) var<storage, read> hinge_idx: array<u32>;
@group(0) @binding(9) var<storage, read> hinge_c: array<f32>;
@group(0) @binding(10) var<uniform> p: Params;

@compute @workgroup_size(64)
fn observe_adjoint(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.n) {
        return;
    }
    let o = 72u * e;
    for (var k = 0u; k < 16u; k++) {
        let qi = e * p.nq + hinge_idx[2u * k];
        let di = e * p.nd + hinge_idx[2u * k + 1u];
        ajq[qi] += 2.0 * (obs[o + k] / hinge_c[2u * k + 1u]);
        ajqd[di] += 0.2 * obs[o + 16u + k];
        aact[16u * e + k] += obs[o + 56u + k];
    }
    let c = e * p.nd + p.cube_qd;
    let w = vec3<f32>(jqd[c], jqd[c + 1u], jqd[c + 2u]);
    let x = cube_p(e);
    let q = cube_quat(e);
    let gq = goal_quat(e);
    // v = v_O + ω × p: v̄_O = v̄, ω̄ += p × v̄, p̄ += v̄ × ω.
    let vb = vec3<f32>(obs[o + 39u], obs[o + 40u], obs[o + 41u]);
    let wb = vec3<f32>(vb.y * w.z - vb.z * w.y, vb.z * w.x - vb.x * w.z, vb.x * w.y - vb.y * w.x);
    let pw = vec3<f32>(x.y * vb.z - x.z * vb.y, x.z * vb.x - x.x * vb.z, x.x * vb.y - x.y * vb.x);
    let qdb = quat_mul_adjoint(q, conj(gq), vec4<f32>(obs[o + 52u], obs[o + 53u], obs[o + 54u], obs[o + 55u]));
    let cq = e * p.nq + p.cube_q;
    for (var i = 0u; i < 3u; i++) {
        ajq[cq + i] += obs[o + 32u + i] + wb[i];
        ajqd[c + i] += pw[i] + 0.2 * obs[o + 42u + i];
        ajqd[c + 3u + i] += vb[i];
        agoal[7u * e + i] += obs[o + 45u + i];
        agoal[7u * e + 3u + i] += obs[o + 48u + i] - qdb.b[i];
    }
    agoal[7u * e + 6u] += obs[o + 51u] + qdb.b.w;
    for (var i = 0u; i < 4u; i++) {
        ajq[cq + 3u + i] += obs[o + 35u + i] + qdb.a[i];
    }
    for (var i = 0u; i < 72u; i++) {
        obs[o + i] = 0.0;
    }
}
