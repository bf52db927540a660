// fem.tetrahedra forward, two passes (fem/gpu.rs): tet_forces, one invocation per tetrahedron,
// writes its corner forces into scratch[12 k + 3 c ..]; tet_gather, one invocation per
// particle, adds its corners' forces into f in increasing k (adj_off/adj: CSR of entries
// 4 k + c), the CPU loop's order of additions.
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> qd: array<f32>;
@group(0) @binding(2) var<storage, read_write> f: array<f32>;
@group(0) @binding(3) var<storage, read> tp: array<f32>;
@group(0) @binding(4) var<storage, read> ti: array<u32>;
@group(0) @binding(5) var<storage, read> der: array<f32>;
@group(0) @binding(6) var<storage, read> act: array<f32>;
@group(0) @binding(7) var<storage, read> adj_off: array<u32>;
@group(0) @binding(8) var<storage, read> adj: array<u32>;
@group(0) @binding(9) var<storage, read_write> scratch: array<f32>;
@group(0) @binding(10) var<uniform> p: Params;

fn put(k: u32, c: u32, v: vec3<f32>) {
    let o = 12u * k + 3u * c;
    scratch[o] = v.x;
    scratch[o + 1u] = v.y;
    scratch[o + 2u] = v.z;
}

@compute @workgroup_size(64)
fn tet_forces(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = linear_index(gid, nwg);
    if (k >= p.n) {
        return;
    }
    let ev = tet_eval(k, tet_verts(k), tet_params(k));
    put(k, 0u, -ev.force[0] - ev.force[1] - ev.force[2]);
    put(k, 1u, ev.force[0]);
    put(k, 2u, ev.force[1]);
    put(k, 3u, ev.force[2]);
}

@compute @workgroup_size(64)
fn tet_gather(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
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
