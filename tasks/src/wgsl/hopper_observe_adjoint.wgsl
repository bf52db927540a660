// hopper.observe adjoint: q̄ += ō[0..6], q̇̄ += ō[6..12]; ō <- 0 (obs is overwritten).
@group(0) @binding(0) var<storage, read_write> aq: array<f32>;
@group(0) @binding(1) var<storage, read_write> aqd: array<f32>;
@group(0) @binding(2) var<storage, read_write> aobs: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(64)
fn observe_adjoint(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.n) {
        return;
    }
    let o = 12u * e;
    for (var i = 0u; i < 6u; i++) {
        aq[6u * e + i] = aq[6u * e + i] + aobs[o + i];
        aqd[6u * e + i] = aqd[6u * e + i] + aobs[o + 6u + i];
    }
    for (var i = 0u; i < 12u; i++) {
        aobs[o + i] = 0.0;
    }
}
