// chain_reach.reward forward: r = -|x_tail - target|^2 - c_a |a|^2, one invocation per env.
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> target_: array<f32>;
@group(0) @binding(2) var<storage, read> act: array<f32>;
@group(0) @binding(3) var<storage, read_write> reward: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(64)
fn reward_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.n) {
        return;
    }
    let k = e * p.np + p.tail;
    let d = vec3<f32>(q[3u * k], q[3u * k + 1u], q[3u * k + 2u])
        - vec3<f32>(target_[3u * e], target_[3u * e + 1u], target_[3u * e + 2u]);
    let a = vec3<f32>(act[3u * e], act[3u * e + 1u], act[3u * e + 2u]);
    reward[e] = -(d.x * d.x + d.y * d.y + d.z * d.z) - p.action_cost * (a.x * a.x + a.y * a.y + a.z * a.z);
}
