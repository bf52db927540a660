// cartpole.reward adjoint: θ̄ += −2 sin θ r̄, θ̇̄ += −0.2 θ̇ r̄, x̄ += −0.1 x r̄, ẋ̄ += −0.2 ẋ r̄;
// r̄ <- 0 (reward is overwritten).
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> qd: array<f32>;
@group(0) @binding(2) var<storage, read_write> aq: array<f32>;
@group(0) @binding(3) var<storage, read_write> aqd: array<f32>;
@group(0) @binding(4) var<storage, read_write> areward: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

@compute @workgroup_size(64)
fn reward_adjoint(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.n) {
        return;
    }
    let g = areward[e];
    areward[e] = 0.0;
    let s = sin(q[2u * e + 1u]);
    aq[2u * e] = aq[2u * e] - 0.1 * q[2u * e] * g;
    aq[2u * e + 1u] = aq[2u * e + 1u] - 2.0 * s * g;
    aqd[2u * e] = aqd[2u * e] - 0.2 * qd[2u * e] * g;
    aqd[2u * e + 1u] = aqd[2u * e + 1u] - 0.2 * qd[2u * e + 1u] * g;
}
