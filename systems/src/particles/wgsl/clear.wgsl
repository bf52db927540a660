// particles.clear_forces: f <- 0 over 3 * particles scalars (forward on particle_f; the adjoint
// binds the adjoint of particle_f: f is overwritten by a constant, so its adjoint is zero).
@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<uniform> p: Params;

@compute @workgroup_size(64)
fn clear(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if (i < p.n) {
        x[i] = 0.0;
    }
}
