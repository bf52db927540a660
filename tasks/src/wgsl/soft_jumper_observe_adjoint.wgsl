// soft_jumper.observe adjoint (soft_jumper.rs `Observe`), three passes: observe_adjoint_head,
// one invocation per env: t̄ += Σ_k 5 cos(5t + offset_k) ō_k, and the per-env weights
// w_q = 0.1/P ō_com_q, w_q̇ = 0.1/P (ō_com_qd + (−1, sign v̄_y, sign v̄_z) ō_loss) into
// scratch[6e ..]; observe_adjoint_body, one per (env, j < max(3P, A)): q̄_j += 0.1 ō_q,j + w_q,
// q̇̄_j += 0.1 ō_q̇,j + w_q̇, āct_j += ō_act,j; observe_adjoint_clear, one per (env, obs entry):
// ō ← 0 (obs is overwritten).
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> qd: array<f32>;
@group(0) @binding(2) var<storage, read> time: array<f32>;
@group(0) @binding(3) var<storage, read_write> aq: array<f32>;
@group(0) @binding(4) var<storage, read_write> aqd: array<f32>;
@group(0) @binding(5) var<storage, read_write> atime: array<f32>;
@group(0) @binding(6) var<storage, read_write> aobs: array<f32>;
@group(0) @binding(7) var<storage, read_write> aact: array<f32>;
@group(0) @binding(8) var<storage, read_write> scratch: array<f32>;
@group(0) @binding(9) var<uniform> p: Params;

@compute @workgroup_size(64)
fn observe_adjoint_head(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.n) {
        return;
    }
    let o = e * p.no;
    var offs = PHASE_OFFSET;
    var at = atime[e];
    for (var k = 0u; k < 8u; k++) {
        at = at + 5.0 * cos(5.0 * time[e] + offs[k]) * aobs[o + k];
    }
    atime[e] = at;
    let cqd = mean3_qd(e);
    let l = aobs[o + LOSS];
    scratch[6u * e] = aobs[o + COM_Q] * p.per;
    scratch[6u * e + 1u] = aobs[o + COM_Q + 1u] * p.per;
    scratch[6u * e + 2u] = aobs[o + COM_Q + 2u] * p.per;
    scratch[6u * e + 3u] = (aobs[o + COM_QD] - l) * p.per;
    scratch[6u * e + 4u] = (aobs[o + COM_QD + 1u] + sign(cqd.y) * l) * p.per;
    scratch[6u * e + 5u] = (aobs[o + COM_QD + 2u] + sign(cqd.z) * l) * p.per;
}

@compute @workgroup_size(64)
fn observe_adjoint_body(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if (i >= p.n) {
        return;
    }
    let e = i / p.m;
    let j = i % p.m;
    let o = e * p.no + PARTICLES;
    if (j < 3u * p.np) {
        let g = 3u * p.np * e + j;
        aq[g] = aq[g] + (0.1 * aobs[o + j] + scratch[6u * e + j % 3u]);
        aqd[g] = aqd[g] + (0.1 * aobs[o + 3u * p.np + j] + scratch[6u * e + 3u + j % 3u]);
    }
    if (j < p.na) {
        aact[p.na * e + j] = aact[p.na * e + j] + aobs[o + 6u * p.np + j];
    }
}

@compute @workgroup_size(64)
fn observe_adjoint_clear(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if (i >= p.n) {
        return;
    }
    aobs[i] = 0.0;
}
