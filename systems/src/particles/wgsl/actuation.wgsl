// particles.actuation forward: f_{p_a} += scale act_a. One invocation per env walks the env's
// actions in order, so two actions on one particle add in the CPU's order with no race.
@group(0) @binding(0) var<storage, read_write> f: array<f32>;
@group(0) @binding(1) var<storage, read> act: array<f32>;
@group(0) @binding(2) var<storage, read> particles: array<u32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(64)
fn actuation_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = linear_index(gid, nwg);
    if (e >= p.n) {
        return;
    }
    for (var a = 0u; a < p.na; a++) {
        let k = e * p.np + particles[a];
        for (var c = 0u; c < 3u; c++) {
            f[3u * k + c] = f[3u * k + c] + p.scale * act[3u * (e * p.na + a) + c];
        }
    }
}
