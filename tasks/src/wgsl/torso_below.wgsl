// <task>.terminate (torso.rs `TorsoBelow`), one invocation per env: 1 when the torso origin is
// below the height, else 0. `p.height` is the smallest f32 >= the f64 height, so y < p.height
// exactly when the CPU's f64 comparison y < height holds. The adjoint clears the flag's
// cotangent.
@group(0) @binding(0) var<storage, read> bq: array<f32>;
@group(0) @binding(1) var<storage, read_write> flag: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(64)
fn terminate_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.n) {
        return;
    }
    flag[e] = select(0.0, 1.0, bq[7u * e * p.nb + 1u] < p.height);
}

@compute @workgroup_size(64)
fn terminate_adjoint(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.n) {
        return;
    }
    flag[e] = 0.0;
}
