// hopper.terminate, one invocation per env: 1 when h = joint_q[1] is below the termination height,
// else 0 (`p.terminate_below` makes the f32 comparison the CPU's f64 one). The adjoint clears the
// flag's cotangent.
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read_write> flag: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(64)
fn terminate_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.n) {
        return;
    }
    flag[e] = select(0.0, 1.0, q[6u * e + 1u] < p.terminate_below);
}

@compute @workgroup_size(64)
fn terminate_adjoint(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.n) {
        return;
    }
    flag[e] = 0.0;
}
