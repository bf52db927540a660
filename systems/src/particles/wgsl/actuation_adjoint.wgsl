// particles.actuation adjoint: āct_a += scale f̄_{p_a} (f̄ passes through), one invocation per
// (env, action) row: every row is written by exactly one invocation.
@group(0) @binding(0) var<storage, read> af: array<f32>;
@group(0) @binding(1) var<storage, read_write> aact: array<f32>;
@group(0) @binding(2) var<storage, read> particles: array<u32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(64)
fn actuation_adjoint(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = linear_index(gid, nwg);
    if (r >= p.n) {
        return;
    }
    let e = r / p.na;
    let k = e * p.np + particles[r % p.na];
    for (var c = 0u; c < 3u; c++) {
        aact[3u * r + c] = aact[3u * r + c] + p.scale * af[3u * k + c];
    }
}
