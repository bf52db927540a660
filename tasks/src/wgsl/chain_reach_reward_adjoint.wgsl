// chain_reach.reward adjoint, one invocation per env: x̄_tail += -2 (x_tail - target) r̄,
// ā += -2 c_a a r̄, r̄ <- 0 (reward is overwritten).
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> target_: array<f32>;
@group(0) @binding(2) var<storage, read> act: array<f32>;
@group(0) @binding(3) var<storage, read_write> aq: array<f32>;
@group(0) @binding(4) var<storage, read_write> aact: array<f32>;
@group(0) @binding(5) var<storage, read_write> areward: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

@compute @workgroup_size(64)
fn reward_adjoint(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.n) {
        return;
    }
    let r_bar = areward[e];
    areward[e] = 0.0;
    let k = e * p.np + p.tail;
    let d = vec3<f32>(q[3u * k], q[3u * k + 1u], q[3u * k + 2u])
        - vec3<f32>(target_[3u * e], target_[3u * e + 1u], target_[3u * e + 2u]);
    let a = vec3<f32>(act[3u * e], act[3u * e + 1u], act[3u * e + 2u]);
    let wq = -2.0 * r_bar;
    let wa = -2.0 * p.action_cost * r_bar;
    for (var c = 0u; c < 3u; c++) {
        aq[3u * k + c] = aq[3u * k + c] + d[c] * wq;
        aact[3u * e + c] = aact[3u * e + c] + a[c] * wa;
    }
}
