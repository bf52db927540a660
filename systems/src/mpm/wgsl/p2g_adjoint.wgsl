// mpm.transfer adjoint, reverse P2G: one invocation per particle gathering (mv)_bar and m_bar
// of its 27 nodes (transfer.rs "Reverse P2G"), adding into x_bar, v_bar, C_bar, tau_bar.
@group(0) @binding(0) var<storage, read> xcol: array<f32>;
@group(0) @binding(1) var<storage, read> vcol: array<f32>;
@group(0) @binding(2) var<storage, read> ccol: array<f32>;
@group(0) @binding(3) var<storage, read> taucol: array<f32>;
@group(0) @binding(4) var<storage, read> mass_vol: array<f32>;
@group(0) @binding(5) var<storage, read_write> gvbar: array<f32>;
@group(0) @binding(6) var<storage, read_write> gmbar: array<f32>;
@group(0) @binding(7) var<storage, read_write> ax: array<f32>;
@group(0) @binding(8) var<storage, read_write> av: array<f32>;
@group(0) @binding(9) var<storage, read_write> ac: array<f32>;
@group(0) @binding(10) var<storage, read_write> at: array<f32>;
@group(0) @binding(11) var<uniform> p: Params;

@compute @workgroup_size(64)
fn p2g_adjoint(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let li = linear_index(gid, nwg);
    if (li >= p.n) {
        return;
    }
    let i = particle_index(li);
    let e = li / p.np;
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
    var xbar = vec3<f32>(0.0);
    var vpbar = vec3<f32>(0.0);
    var abar = m3_zero();
    for (var j = 0u; j < 27u; j++) {
        let ia = j / 9u;
        let ib = (j / 3u) % 3u;
        let ic = j % 3u;
        let w0 = st.w[0][ia];
        let w1 = st.w[1][ib];
        let w2 = st.w[2][ic];
        let w = w0 * w1 * w2;
        let nn = node_index(e, st.base + vec3<u32>(ia, ib, ic));
        let dpos = vec3<f32>(st.dpos[0][ia], st.dpos[1][ib], st.dpos[2][ic]);
        let mvb = vec3<f32>(gvbar[3u * nn], gvbar[3u * nn + 1u], gvbar[3u * nn + 2u]);
        var ad = vec3<f32>(0.0);
        var dpb = vec3<f32>(0.0);
        for (var r = 0u; r < 3u; r++) {
            ad[r] = a[r][0] * dpos.x + a[r][1] * dpos.y + a[r][2] * dpos.z;
            dpb[r] = a[0][r] * mvb.x + a[1][r] * mvb.y + a[2][r] * mvb.z;
        }
        var wbar = gmbar[nn] * s2;
        for (var d = 0u; d < 3u; d++) {
            wbar += mvb[d] * (mvp[d] + ad[d]);
            vpbar[d] += w * s2 * mvb[d];
            for (var c = 0u; c < 3u; c++) {
                abar[d][c] += w * mvb[d] * dpos[c];
            }
        }
        let grad = vec3<f32>(st.dw[0][ia] * w1 * w2, w0 * st.dw[1][ib] * w2, w0 * w1 * st.dw[2][ic]);
        xbar += wbar * grad - w * dpb;
    }
    for (var d = 0u; d < 3u; d++) {
        ax[3u * i + d] += xbar[d];
        av[3u * i + d] += vpbar[d];
    }
    for (var r = 0u; r < 3u; r++) {
        for (var c = 0u; c < 3u; c++) {
            ac[9u * i + 3u * r + c] += s2 * abar[r][c];
            at[9u * i + 3u * r + c] += s1 * abar[r][c];
        }
    }
}
