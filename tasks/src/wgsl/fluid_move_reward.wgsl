// fluid_move.reward, one invocation per env: r = dist term - (1/N) sum_p sigmoid(z_p), in the
// CPU's order of sums.
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> target_q: array<f32>;
@group(0) @binding(3) var<storage, read_write> reward: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(64)
fn reward_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.n) {
        return;
    }
    let qe = vec3<f32>(q[4u * e], q[4u * e + 1u], q[4u * e + 2u]);
    let te = vec3<f32>(target_q[3u * e], target_q[3u * e + 1u], target_q[3u * e + 2u]);
    let dist = dist_term(qe, te).x;
    var spill = 0.0;
    for (var i = 0u; i < p.np; i++) {
        let o = 3u * (p.np * e + i);
        spill += sigmoid(spill_arg(vec3<f32>(x[o], x[o + 1u], x[o + 2u]), qe).z);
    }
    reward[e] = dist - spill * (1.0 / f32(p.np));
}
