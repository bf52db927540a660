// particles.springs forward, deterministic: one invocation per particle sums the forces of its
// springs from the CSR adjacency (adj_off[g]..adj_off[g+1] into adj, entry = 2 k + side, side
// 0: the particle is the spring's i, 1: its j), in increasing k: the CPU's order of additions.
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> qd: array<f32>;
@group(0) @binding(2) var<storage, read_write> f: array<f32>;
@group(0) @binding(3) var<storage, read> sp: array<f32>;
@group(0) @binding(4) var<storage, read> si: array<u32>;
@group(0) @binding(5) var<storage, read> adj_off: array<u32>;
@group(0) @binding(6) var<storage, read> adj: array<u32>;
@group(0) @binding(7) var<uniform> p: Params;

@compute @workgroup_size(64)
fn springs_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = linear_index(gid, nwg);
    if (g >= p.n) {
        return;
    }
    let e = g / p.np;
    var acc = vec3<f32>(f[3u * g], f[3u * g + 1u], f[3u * g + 2u]);
    for (var a = adj_off[g]; a < adj_off[g + 1u]; a++) {
        let ent = adj[a];
        let s = eval_spring(ent >> 1u, e);
        if (s.ok) {
            let force = s.n * s.s;
            if ((ent & 1u) == 0u) {
                acc = acc + force;
            } else {
                acc = acc + (-force);
            }
        }
    }
    f[3u * g] = acc.x;
    f[3u * g + 1u] = acc.y;
    f[3u * g + 2u] = acc.z;
}
