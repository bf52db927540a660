// mpm.transfer reverse G2P in a fixed order (Scatter::Deterministic), node pass, after the
// particle pass (g2p_adjoint_body.wgsl with g2p_adjoint_det.wgsl) kept each particle's v_bar_p
// and C_bar_p in pscr: one invocation per grid node sums v_bar_i = sum w (v_bar_p + k C_bar_p
// (x_i - x_p)) over the particles of its 27 cells in gather_common.wgsl's order (the bins of
// the recomputed P2G, on the same pre-state positions) and writes the node.
@group(0) @binding(0) var<storage, read> xcol: array<f32>;
@group(0) @binding(1) var<storage, read> pscr: array<f32>;
@group(0) @binding(2) var<storage, read> count: array<u32>;
@group(0) @binding(3) var<storage, read> start: array<u32>;
@group(0) @binding(4) var<storage, read> rowoff: array<u32>;
@group(0) @binding(5) var<storage, read> sorted: array<u32>;
@group(0) @binding(6) var<storage, read_write> gvbar: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;

fn vbar_of(li: u32, g: vec3<u32>) -> vec3<f32> {
    let i = particle_index(li);
    let x = vec3<f32>(xcol[3u * i], xcol[3u * i + 1u], xcol[3u * i + 2u]);
    let st = stencil(x);
    let o = g - st.base;
    let w = st.w[0][o.x] * st.w[1][o.y] * st.w[2][o.z];
    let dpos = vec3<f32>(st.dpos[0][o.x], st.dpos[1][o.y], st.dpos[2][o.z]);
    var out: vec3<f32>;
    for (var r = 0u; r < 3u; r++) {
        let c = 12u * li + 3u + 3u * r;
        let cd = pscr[c] * dpos.x + pscr[c + 1u] * dpos.y + pscr[c + 2u] * dpos.z;
        out[r] = w * (pscr[12u * li + r] + p.kc * cd);
    }
    return out;
}

@compute @workgroup_size(64)
fn vbar_gather(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = linear_index(gid, nwg);
    if (k >= p.nodes) {
        return;
    }
    let e = k / (p.res * p.res * p.res);
    let g = node_coords(k);
    let cr = cell_range(g);
    var acc = vec3<f32>(0.0);
    for (var bx = cr.lo.x; bx <= cr.hi.x; bx++) {
        for (var by = cr.lo.y; by <= cr.hi.y; by++) {
            for (var bz = cr.lo.z; bz <= cr.hi.z; bz++) {
                let kc = node_index(e, vec3<u32>(bx, by, bz));
                let s0 = segment_start(kc);
                for (var j = 0u; j < count[kc]; j++) {
                    acc += vbar_of(sorted[s0 + j], g);
                }
            }
        }
    }
    gvbar[3u * k] = acc.x;
    gvbar[3u * k + 1u] = acc.y;
    gvbar[3u * k + 2u] = acc.z;
}
