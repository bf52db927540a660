// fem.activation adjoint, two passes: activation_adjoint, one invocation per (env, action), adds
// scale · ā_t of its group's tetrahedra in increasing t (the CPU's order); activation_clear, one
// invocation per (env, tetrahedron), zeroes ā (the forward overwrites tet_activation).
@group(0) @binding(0) var<storage, read_write> abar: array<f32>;
@group(0) @binding(1) var<storage, read_write> aact: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(64)
fn activation_adjoint(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if (i >= p.n) {
        return;
    }
    let e = i / p.na;
    let a = i % p.na;
    var acc = aact[i];
    for (var t = a * p.group; t < min((a + 1u) * p.group, p.nt); t++) {
        acc = acc + p.scale * abar[e * p.nt + t];
    }
    aact[i] = acc;
}

@compute @workgroup_size(64)
fn activation_clear(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if (i >= p.n) {
        return;
    }
    abar[i] = 0.0;
}
