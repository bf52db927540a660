// hopper.reward adjoint: ẋ̄ += r̄; h̄ += H'(h) r̄; θ̄ −= 2θ/(π/6)² r̄; ā −= 0.2 a r̄; r̄ <- 0
// (reward is overwritten).
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> act: array<f32>;
@group(0) @binding(2) var<storage, read_write> aq: array<f32>;
@group(0) @binding(3) var<storage, read_write> aqd: array<f32>;
@group(0) @binding(4) var<storage, read_write> areward: array<f32>;
@group(0) @binding(5) var<storage, read_write> aact: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

@compute @workgroup_size(64)
fn reward_adjoint(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.n) {
        return;
    }
    let g = areward[e];
    areward[e] = 0.0;
    let h = q[6u * e + 1u];
    let th = q[6u * e + 2u];
    aqd[6u * e] = aqd[6u * e] + g;
    aq[6u * e + 1u] = aq[6u * e + 1u] + height_reward(h).y * g;
    aq[6u * e + 2u] = aq[6u * e + 2u] - p.angle_slope * th * g;
    for (var i = 0u; i < 3u; i++) {
        aact[3u * e + i] = aact[3u * e + i] - p.action_slope * act[3u * e + i] * g;
    }
}
