// fem.fiber_muscles adjoint, two passes (fiber.rs): fiber_adjoint, one invocation per
// tetrahedron: Y = Σ_j w_j (f̄_j − f̄_0), ā −= V k (u · Y) (one tetrahedron per entry), ū = −V k a Y;
// it writes the x̄ term w_j ū of corner j into scratch[9 k + 3 (j − 1) ..] (j = 1..3), which
// corner 0 also subtracts, term by term as the CPU loop does; fiber_adjoint_gather, one
// invocation per particle, in increasing k.
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> ti: array<u32>;
@group(0) @binding(2) var<storage, read> fw: array<f32>;
@group(0) @binding(3) var<storage, read> act: array<f32>;
@group(0) @binding(4) var<storage, read> af: array<f32>;
@group(0) @binding(5) var<storage, read_write> aq: array<f32>;
@group(0) @binding(6) var<storage, read_write> aact: array<f32>;
@group(0) @binding(7) var<storage, read> adj_off: array<u32>;
@group(0) @binding(8) var<storage, read> adj: array<u32>;
@group(0) @binding(9) var<storage, read_write> scratch: array<f32>;
@group(0) @binding(10) var<uniform> p: Params;

@compute @workgroup_size(64)
fn fiber_adjoint(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = linear_index(gid, nwg);
    if (k >= p.n) {
        return;
    }
    let v = fiber_verts(k);
    let w = vec3<f32>(fw[4u * k], fw[4u * k + 1u], fw[4u * k + 2u]);
    let vk = fw[4u * k + 3u];
    let u = fiber_stretch(v, w);
    var y = vec3<f32>(0.0);
    for (var c = 0u; c < 3u; c++) {
        let f0 = af[3u * v.x + c];
        var acc = 0.0;
        acc = acc + w.x * (af[3u * v.y + c] - f0);
        acc = acc + w.y * (af[3u * v.z + c] - f0);
        acc = acc + w.z * (af[3u * v.w + c] - f0);
        y[c] = acc;
    }
    aact[k] = aact[k] - vk * (u.x * y.x + u.y * y.y + u.z * y.z);
    for (var c = 0u; c < 3u; c++) {
        let ub = -vk * act[k] * y[c];
        for (var j = 0u; j < 3u; j++) {
            scratch[9u * k + 3u * j + c] = w[j] * ub;
        }
    }
}

@compute @workgroup_size(64)
fn fiber_adjoint_gather(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = linear_index(gid, nwg);
    if (g >= p.n) {
        return;
    }
    var acc = vec3<f32>(aq[3u * g], aq[3u * g + 1u], aq[3u * g + 2u]);
    for (var a = adj_off[g]; a < adj_off[g + 1u]; a++) {
        let k = adj[a] / 4u;
        let corner = adj[a] % 4u;
        if (corner == 0u) {
            for (var j = 0u; j < 3u; j++) {
                let o = 9u * k + 3u * j;
                acc = acc - vec3<f32>(scratch[o], scratch[o + 1u], scratch[o + 2u]);
            }
        } else {
            let o = 9u * k + 3u * (corner - 1u);
            acc = acc + vec3<f32>(scratch[o], scratch[o + 1u], scratch[o + 2u]);
        }
    }
    aq[3u * g] = acc.x;
    aq[3u * g + 1u] = acc.y;
    aq[3u * g + 2u] = acc.z;
}
