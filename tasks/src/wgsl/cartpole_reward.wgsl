// cartpole.reward forward: r = −(2 (1 − cos θ) + 0.1 θ̇² + 0.05 x² + 0.1 ẋ²).
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> qd: array<f32>;
@group(0) @binding(2) var<storage, read_write> reward: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(64)
fn reward_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.n) {
        return;
    }
    let x = q[2u * e];
    let th = q[2u * e + 1u];
    let xd = qd[2u * e];
    let thd = qd[2u * e + 1u];
    reward[e] = -(2.0 * (1.0 - cos(th)) + 0.1 * thd * thd + 0.05 * x * x + 0.1 * xd * xd);
}
