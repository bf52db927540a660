// cartpole.observe forward: obs = [x, sin θ, cos θ, ẋ, θ̇].
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> qd: array<f32>;
@group(0) @binding(2) var<storage, read_write> obs: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(64)
fn observe_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.n) {
        return;
    }
    let th = q[2u * e + 1u];
    obs[5u * e] = q[2u * e];
    obs[5u * e + 1u] = sin(th);
    obs[5u * e + 2u] = cos(th);
    obs[5u * e + 3u] = qd[2u * e];
    obs[5u * e + 4u] = qd[2u * e + 1u];
}
