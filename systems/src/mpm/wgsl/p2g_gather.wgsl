// mpm.transfer P2G in a fixed order (Scatter::Deterministic), after bin.wgsl: one invocation per
// grid row sums m_i = sum w m and (mv)_i = sum w (m v + A (x_i - x_p)) for its nodes over the
// particles of their 27 cells in gather_common.wgsl's order, with p2g.wgsl's expressions (so
// only the order of the additions differs from the CPU), and writes every node of the row (no
// clear needed) and its grid update (grid_update.wgsl's update_node on the sums just written),
// so the deterministic mode runs no per-node pass. Bindings: transfer_bind.wgsl's (GRID_T = f32),
// then bin.wgsl's start, blocksum and sorted.
@group(0) @binding(14) var<storage, read> start: array<u32>;
@group(0) @binding(15) var<storage, read> blocksum: array<u32>;
@group(0) @binding(16) var<storage, read> sorted: array<u32>;

@compute @workgroup_size(64)
fn p2g_gather(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = linear_index(gid, nwg);
    if (row * p.res >= p.nodes) {
        return;
    }
    let rc = row_coords(row);
    let cr = cell_rows(rc.y, rc.z);
    // (m, mv) of the row's nodes (zero-initialized).
    var acc: array<vec4<f32>, ROW_NODES>;
    // The row's nodes zlo .. zhi - 1 are the ones particles reach (the others stay empty).
    var zlo = p.res;
    var zhi = 0u;
    for (var bx = cr.x; bx <= cr.z; bx++) {
        for (var by = cr.y; by <= cr.w; by++) {
            let r = row_range(rc.x, bx, by, 0u, p.res - 3u);
            for (var j = r.x; j < r.y; j++) {
                let i = particle_index(sorted[j]);
                let s1 = -p.dt * mass_vol[2u * i + 1u] * p.kc;
                let s2 = mass_vol[2u * i];
                let wx = axis_weight(xcol[3u * i], rc.y);
                let wy = axis_weight(xcol[3u * i + 1u], rc.z);
                let xz = xcol[3u * i + 2u];
                // Column c of A = s1 tau + s2 C.
                let t = 9u * i;
                let a0 = s1 * vec3<f32>(taucol[t], taucol[t + 3u], taucol[t + 6u])
                    + s2 * vec3<f32>(ccol[t], ccol[t + 3u], ccol[t + 6u]);
                let a1 = s1 * vec3<f32>(taucol[t + 1u], taucol[t + 4u], taucol[t + 7u])
                    + s2 * vec3<f32>(ccol[t + 1u], ccol[t + 4u], ccol[t + 7u]);
                let a2 = s1 * vec3<f32>(taucol[t + 2u], taucol[t + 5u], taucol[t + 8u])
                    + s2 * vec3<f32>(ccol[t + 2u], ccol[t + 5u], ccol[t + 8u]);
                let mvp = vec3<f32>(vcol[3u * i], vcol[3u * i + 1u], vcol[3u * i + 2u]) * s2;
                let mij = mvp + a0 * wx.y + a1 * wy.y;
                let bz = base_of(xz);
                zlo = min(zlo, bz);
                zhi = max(zhi, bz + 3u);
                for (var o = 0u; o < 3u; o++) {
                    let wz = axis_weight(xz, bz + o);
                    let w = wx.x * wy.x * wz.x;
                    acc[bz + o] += vec4<f32>(w * s2, w * (mij + a2 * wz.y));
                }
            }
        }
    }
    for (var z = 0u; z < p.res; z++) {
        let k = row * p.res + z;
        gm[k] = acc[z].x;
        gmv[3u * k] = acc[z].y;
        gmv[3u * k + 1u] = acc[z].z;
        gmv[3u * k + 2u] = acc[z].w;
        if (z < zlo || z >= zhi) {
            gv[3u * k] = 0.0;
            gv[3u * k + 1u] = 0.0;
            gv[3u * k + 2u] = 0.0;
        }
    }
    // The grid update (the collider's projection: long code) only over the reached nodes, in a
    // loop: a CPU driver (lavapipe) runs both sides of a branch for its SIMD group under a mask,
    // but skips a loop that no lane enters, so rows without particles cost only the writes.
    for (var z = zlo; z < zhi; z++) {
        update_node(row * p.res + z, acc[z].x, acc[z].yzw);
    }
}
