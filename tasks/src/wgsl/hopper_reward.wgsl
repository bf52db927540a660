// hopper.reward forward: r = ẋ + H(h) + (1 − θ²/(π/6)²) − 0.1 Σ a², summed in the CPU's order.
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> qd: array<f32>;
@group(0) @binding(2) var<storage, read> act: array<f32>;
@group(0) @binding(3) var<storage, read_write> reward: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(64)
fn reward_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.n) {
        return;
    }
    let h = q[6u * e + 1u];
    let th = q[6u * e + 2u];
    let xd = qd[6u * e];
    var a2 = 0.0;
    for (var i = 0u; i < 3u; i++) {
        let a = act[3u * e + i];
        a2 = a2 + a * a;
    }
    let angle = 1.0 - th * th / p.angle2;
    reward[e] = xd + height_reward(h).x + angle - p.action_penalty * a2;
}
