// mpm.transfer P2G in a fixed order (Scatter::Deterministic), after bin.wgsl: one invocation per
// grid node sums m_i = sum w m and (mv)_i = sum w (m v + A (x_i - x_p)) over the particles of
// its 27 cells in gather_common.wgsl's order, with p2g.wgsl's expressions (so only the order of
// the additions differs from the CPU), and writes the node (every node: no clear needed).
@group(0) @binding(0) var<storage, read> xcol: array<f32>;
@group(0) @binding(1) var<storage, read> vcol: array<f32>;
@group(0) @binding(2) var<storage, read> ccol: array<f32>;
@group(0) @binding(3) var<storage, read> taucol: array<f32>;
@group(0) @binding(4) var<storage, read> mass_vol: array<f32>;
@group(0) @binding(5) var<storage, read> count: array<u32>;
@group(0) @binding(6) var<storage, read> start: array<u32>;
@group(0) @binding(7) var<storage, read> rowoff: array<u32>;
@group(0) @binding(8) var<storage, read> sorted: array<u32>;
@group(0) @binding(9) var<storage, read_write> gm: array<f32>;
@group(0) @binding(10) var<storage, read_write> gmv: array<f32>;
@group(0) @binding(11) var<uniform> p: Params;

struct NodeSum {
    m: f32,
    mv: vec3<f32>,
}

// Adds particle li's contribution to node g into acc.
fn add_particle(acc: ptr<function, NodeSum>, li: u32, g: vec3<u32>) {
    let i = particle_index(li);
    let mp = mass_vol[2u * i];
    let vol = mass_vol[2u * i + 1u];
    let x = vec3<f32>(xcol[3u * i], xcol[3u * i + 1u], xcol[3u * i + 2u]);
    let st = stencil(x);
    let s1 = -p.dt * vol * p.kc;
    let s2 = mp;
    var a = m3_zero();
    for (var r = 0u; r < 3u; r++) {
        for (var c = 0u; c < 3u; c++) {
            a[r][c] = s1 * taucol[9u * i + 3u * r + c] + s2 * ccol[9u * i + 3u * r + c];
        }
    }
    let mvp = vec3<f32>(vcol[3u * i], vcol[3u * i + 1u], vcol[3u * i + 2u]) * s2;
    let o = g - st.base;
    let w = st.w[0][o.x] * st.w[1][o.y] * st.w[2][o.z];
    (*acc).m += w * s2;
    for (var d = 0u; d < 3u; d++) {
        let mij = mvp[d] + a[d][0] * st.dpos[0][o.x] + a[d][1] * st.dpos[1][o.y];
        (*acc).mv[d] += w * (mij + a[d][2] * st.dpos[2][o.z]);
    }
}

@compute @workgroup_size(64)
fn p2g_gather(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = linear_index(gid, nwg);
    if (k >= p.nodes) {
        return;
    }
    let e = k / (p.res * p.res * p.res);
    let g = node_coords(k);
    let cr = cell_range(g);
    var acc = NodeSum(0.0, vec3<f32>(0.0));
    for (var bx = cr.lo.x; bx <= cr.hi.x; bx++) {
        for (var by = cr.lo.y; by <= cr.hi.y; by++) {
            for (var bz = cr.lo.z; bz <= cr.hi.z; bz++) {
                let kc = node_index(e, vec3<u32>(bx, by, bz));
                let s0 = segment_start(kc);
                for (var j = 0u; j < count[kc]; j++) {
                    add_particle(&acc, sorted[s0 + j], g);
                }
            }
        }
    }
    gm[k] = acc.m;
    gmv[3u * k] = acc.mv.x;
    gmv[3u * k + 1u] = acc.mv.y;
    gmv[3u * k + 2u] = acc.mv.z;
}
