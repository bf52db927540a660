// mpm.transfer reverse G2P in a fixed order (Scatter::Deterministic), node pass, after the
// particle pass (g2p_adjoint_body.wgsl with g2p_adjoint_det.wgsl) kept each particle's v_bar_p
// and C_bar_p in pscr: one invocation per grid row sums v_bar_i = sum w (v_bar_p + k C_bar_p
// (x_i - x_p)) for its nodes over the particles of their 27 cells in gather_common.wgsl's order
// (the bins of the recomputed P2G, on the same pre-state positions) and writes every node of
// the row.
@group(0) @binding(0) var<storage, read> xcol: array<f32>;
@group(0) @binding(1) var<storage, read> pscr: array<f32>;
@group(0) @binding(2) var<storage, read> start: array<u32>;
@group(0) @binding(3) var<storage, read> blocksum: array<u32>;
@group(0) @binding(4) var<storage, read> sorted: array<u32>;
@group(0) @binding(5) var<storage, read_write> gvbar: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

@compute @workgroup_size(64)
fn vbar_gather(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = linear_index(gid, nwg);
    if (row * p.res >= p.nodes) {
        return;
    }
    let rc = row_coords(row);
    let cr = cell_rows(rc.y, rc.z);
    var acc: array<vec3<f32>, ROW_NODES>;
    for (var bx = cr.x; bx <= cr.z; bx++) {
        for (var by = cr.y; by <= cr.w; by++) {
            let r = row_range(rc.x, bx, by, 0u, p.res - 3u);
            for (var j = r.x; j < r.y; j++) {
                let li = sorted[j];
                let i = particle_index(li);
                let wx = axis_weight(xcol[3u * i], rc.y);
                let wy = axis_weight(xcol[3u * i + 1u], rc.z);
                let xz = xcol[3u * i + 2u];
                // pscr: v_bar_p, then C_bar_p by rows; C_bar_p dpos by columns (each component
                // is g2p_adjoint_body.wgsl's expression).
                let c = 12u * li;
                let vp = vec3<f32>(pscr[c], pscr[c + 1u], pscr[c + 2u]);
                let c0 = vec3<f32>(pscr[c + 3u], pscr[c + 6u], pscr[c + 9u]);
                let c1 = vec3<f32>(pscr[c + 4u], pscr[c + 7u], pscr[c + 10u]);
                let c2 = vec3<f32>(pscr[c + 5u], pscr[c + 8u], pscr[c + 11u]);
                let cxy = c0 * wx.y + c1 * wy.y;
                let bz = base_of(xz);
                for (var o = 0u; o < 3u; o++) {
                    let wz = axis_weight(xz, bz + o);
                    let w = wx.x * wy.x * wz.x;
                    acc[bz + o] += w * (vp + p.kc * (cxy + c2 * wz.y));
                }
            }
        }
    }
    for (var z = 0u; z < p.res; z++) {
        let k = row * p.res + z;
        gvbar[3u * k] = acc[z].x;
        gvbar[3u * k + 1u] = acc[z].y;
        gvbar[3u * k + 2u] = acc[z].z;
    }
}
