// fem.fiber_muscles forward, two passes (fem/gpu.rs): fiber_forces, one invocation per
// tetrahedron, writes its corner forces into scratch[12 k + 3 c ..] (fiber.rs, same order of
// operations); fiber_gather, one invocation per particle, adds its corners' forces into f in
// increasing k. fw[4 k ..] = (w = B d̂, V k), derived on the host in f64.
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read_write> f: array<f32>;
@group(0) @binding(2) var<storage, read> ti: array<u32>;
@group(0) @binding(3) var<storage, read> fw: array<f32>;
@group(0) @binding(4) var<storage, read> act: array<f32>;
@group(0) @binding(5) var<storage, read> adj_off: array<u32>;
@group(0) @binding(6) var<storage, read> adj: array<u32>;
@group(0) @binding(7) var<storage, read_write> scratch: array<f32>;
@group(0) @binding(8) var<uniform> p: Params;

@compute @workgroup_size(64)
fn fiber_forces(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = linear_index(gid, nwg);
    if (k >= p.n) {
        return;
    }
    let v = fiber_verts(k);
    let w = vec3<f32>(fw[4u * k], fw[4u * k + 1u], fw[4u * k + 2u]);
    let u = fiber_stretch(v, w);
    let c = -fw[4u * k + 3u] * act[k];
    for (var c3 = 0u; c3 < 3u; c3++) {
        var f0 = 0.0;
        for (var j = 0u; j < 3u; j++) {
            let fj = c * w[j] * u[c3];
            scratch[12u * k + 3u * (j + 1u) + c3] = fj;
            f0 = f0 - fj;
        }
        scratch[12u * k + c3] = f0;
    }
}

@compute @workgroup_size(64)
fn fiber_gather(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = linear_index(gid, nwg);
    if (g >= p.n) {
        return;
    }
    var acc = vec3<f32>(f[3u * g], f[3u * g + 1u], f[3u * g + 2u]);
    for (var a = adj_off[g]; a < adj_off[g + 1u]; a++) {
        let o = 3u * adj[a];
        acc = acc + vec3<f32>(scratch[o], scratch[o + 1u], scratch[o + 2u]);
    }
    f[3u * g] = acc.x;
    f[3u * g + 1u] = acc.y;
    f[3u * g + 2u] = acc.z;
}
