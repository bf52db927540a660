// soft_jumper.clock forward, one invocation per env: time ← time + dt (its adjoint is the
// identity: no pass).
@group(0) @binding(0) var<storage, read_write> time: array<f32>;
@group(0) @binding(1) var<uniform> p: Params;

@compute @workgroup_size(64)
fn clock_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.n) {
        return;
    }
    time[e] = time[e] + p.dt;
}
