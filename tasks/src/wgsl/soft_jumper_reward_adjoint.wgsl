// soft_jumper.reward adjoint, one invocation per env (soft_jumper.rs `Reward`):
// q̇̄_{i,x} += 10 (0.1/P) r̄, q̄_{i,y} += 30 (0.1/P) r̄, ā −= 2 c_a a r̄, r̄ ← 0 (reward is
// overwritten).
@group(0) @binding(0) var<storage, read> act: array<f32>;
@group(0) @binding(1) var<storage, read_write> aq: array<f32>;
@group(0) @binding(2) var<storage, read_write> aqd: array<f32>;
@group(0) @binding(3) var<storage, read_write> aact: array<f32>;
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
    let wx = 10.0 * p.per * g;
    let wy = 30.0 * p.per * g;
    for (var i = 0u; i < p.np; i++) {
        let o = 3u * (p.np * e + i);
        aqd[o] = aqd[o] + wx;
        aq[o + 1u] = aq[o + 1u] + wy;
    }
    for (var i = 0u; i < p.na; i++) {
        let k = p.na * e + i;
        aact[k] = aact[k] - p.cost2 * act[k] * g;
    }
}
