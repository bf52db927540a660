// articulation.clear: joint_tau <- 0 and body_f <- 0 (forward), or their adjoints <- 0 (adjoint:
// both are overwritten by constants). One invocation per scalar of the longer column; here
// p.nd counts the scalars of joint_tau and p.nq those of body_f, over all envs.
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> tau: array<f32>;
@group(0) @binding(2) var<storage, read_write> force: array<f32>;

@compute @workgroup_size(64)
fn clear(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if (i < p.nd) {
        tau[i] = 0.0;
    }
    if (i < p.nq) {
        force[i] = 0.0;
    }
}
