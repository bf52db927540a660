// hand_flip.arm_d0, one invocation per env: flip_d0 0 -> -1. Adjoint: where it armed,
// d0_bar <- 0 (piecewise constant); elsewhere the identity. `d0` is the state in the forward
// and the pre-state in the adjoint.
@group(0) @binding(0) var<storage, read_write> d0: array<f32>;
@group(0) @binding(1) var<storage, read_write> ad0: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(64)
fn arm_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.n) {
        return;
    }
    if (abs(d0[e]) < p.d0_unset) {
        d0[e] = p.d0_armed;
    }
}

@compute @workgroup_size(64)
fn arm_adjoint(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.n) {
        return;
    }
    if (abs(d0[e]) < p.d0_unset) {
        ad0[e] = 0.0;
    }
}
