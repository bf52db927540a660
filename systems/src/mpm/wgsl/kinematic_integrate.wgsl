// mpm.joint_integrate: forward q <- q + dt qd on the state; adjoint qd_bar += dt q_bar on the
// adjoints (the same kernel, bound to other columns). One invocation per joint scalar.
@group(0) @binding(0) var<storage, read_write> dst: array<f32>;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<uniform> p: KinParams;

@compute @workgroup_size(64)
fn integrate(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if (i >= p.count) {
        return;
    }
    dst[i] += p.dt * src[i];
}
