// fem.activation forward, one invocation per (env, tetrahedron): a = scale · act[t / group] for
// the tetrahedra of the first na groups, else 0.
@group(0) @binding(0) var<storage, read> act: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(64)
fn activation_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if (i >= p.n) {
        return;
    }
    let e = i / p.nt;
    let a = (i % p.nt) / p.group;
    if (a < p.na) {
        out[i] = p.scale * act[e * p.na + a];
    } else {
        out[i] = 0.0;
    }
}
