// cartpole.observe adjoint: x̄ += ō₀, θ̄ += cos θ ō₁ − sin θ ō₂, ẋ̄ += ō₃, θ̇̄ += ō₄; ō <- 0
// (obs is overwritten).
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read_write> aq: array<f32>;
@group(0) @binding(2) var<storage, read_write> aqd: array<f32>;
@group(0) @binding(3) var<storage, read_write> aobs: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(64)
fn observe_adjoint(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.n) {
        return;
    }
    let th = q[2u * e + 1u];
    let s = sin(th);
    let c = cos(th);
    let o = 5u * e;
    aq[2u * e] = aq[2u * e] + aobs[o];
    aq[2u * e + 1u] = aq[2u * e + 1u] + (c * aobs[o + 1u] - s * aobs[o + 2u]);
    aqd[2u * e] = aqd[2u * e] + aobs[o + 3u];
    aqd[2u * e + 1u] = aqd[2u * e + 1u] + aobs[o + 4u];
    for (var i = 0u; i < 5u; i++) {
        aobs[o + i] = 0.0;
    }
}
