// mpm.transfer P2G: one invocation per particle, A = -dt V (4/dx^2) tau + m C, scatter
// m_i += w m, (mv)_i += w (m v + A (x_i - x_p)) with atomic adds (transfer.rs `p2g`; the same
// expression order, so only the order of the additions into a node differs from the CPU).
// Bindings: transfer_bind.wgsl with GRID_T = atomic<ATOMIC_T>.
fn add_m(i: u32, v: f32) {
    ADD(gm)
}
fn add_mv(i: u32, v: f32) {
    ADD(gmv)
}

@compute @workgroup_size(64)
fn p2g(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let li = linear_index(gid, nwg);
    if (li >= p.n) {
        return;
    }
    let i = particle_index(li);
    let e = li / p.np;
    let mp = mass_vol[2u * i];
    let vol = mass_vol[2u * i + 1u];
    let x = load_x(i);
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
    for (var ia = 0u; ia < 3u; ia++) {
        for (var ib = 0u; ib < 3u; ib++) {
            let wab = st.w[0][ia] * st.w[1][ib];
            var mij: vec3<f32>;
            for (var r = 0u; r < 3u; r++) {
                mij[r] = mvp[r] + a[r][0] * st.dpos[0][ia] + a[r][1] * st.dpos[1][ib];
            }
            for (var ic = 0u; ic < 3u; ic++) {
                let w = wab * st.w[2][ic];
                let nn = node_index(e, st.base + vec3<u32>(ia, ib, ic));
                add_m(nn, w * s2);
                for (var d = 0u; d < 3u; d++) {
                    add_mv(3u * nn + d, w * (mij[d] + a[d][2] * st.dpos[2][ic]));
                }
            }
        }
    }
}
