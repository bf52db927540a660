// chain_reach.observe adjoint: x̄_i += ōbs_x,i, v̄_i += ōbs_v,i, then ōbs <- 0 (obs is
// overwritten); one invocation per particle, each owning its 6 entries of ōbs.
@group(0) @binding(0) var<storage, read_write> aq: array<f32>;
@group(0) @binding(1) var<storage, read_write> aqd: array<f32>;
@group(0) @binding(2) var<storage, read_write> aobs: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(64)
fn observe_adjoint(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = linear_index(gid, nwg);
    if (g >= p.n) {
        return;
    }
    let e = g / p.np;
    let i = g % p.np;
    let row = 6u * p.np * e;
    for (var c = 0u; c < 3u; c++) {
        let ox = row + 3u * i + c;
        let ov = row + 3u * p.np + 3u * i + c;
        aq[3u * g + c] = aq[3u * g + c] + aobs[ox];
        aqd[3u * g + c] = aqd[3u * g + c] + aobs[ov];
        aobs[ox] = 0.0;
        aobs[ov] = 0.0;
    }
}
