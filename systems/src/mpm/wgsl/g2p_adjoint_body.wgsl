// add_vbar (the scatter into the grid adjoint) and keep_adjoint (the particle's v_bar_p and
// C_bar_p for a later gather) come from g2p_adjoint_atomic.wgsl or g2p_adjoint_det.wgsl.
@compute @workgroup_size(64)
fn g2p_adjoint(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let li = linear_index(gid, nwg);
    if (li >= p.n) {
        return;
    }
    let i = particle_index(li);
    let e = li / p.np;
    let x = vec3<f32>(xcol[3u * i], xcol[3u * i + 1u], xcol[3u * i + 2u]);
    let st = stencil(x);
    let k = p.kc;
    var vp = vec3<f32>(0.0);
    var cp = m3_zero();
    for (var j = 0u; j < 27u; j++) {
        let a = j / 9u;
        let b = (j / 3u) % 3u;
        let c = j % 3u;
        let w = st.w[0][a] * st.w[1][b] * st.w[2][c];
        let nn = node_index(e, st.base + vec3<u32>(a, b, c));
        let vi = vec3<f32>(gv[3u * nn], gv[3u * nn + 1u], gv[3u * nn + 2u]);
        let dpos = vec3<f32>(st.dpos[0][a], st.dpos[1][b], st.dpos[2][c]);
        for (var r = 0u; r < 3u; r++) {
            vp[r] += w * vi[r];
            for (var s = 0u; s < 3u; s++) {
                cp[r][s] += w * k * vi[r] * dpos[s];
            }
        }
    }
    var f = m3_zero();
    var fbar_out = m3_zero();
    var cbar = m3_zero();
    for (var r = 0u; r < 3u; r++) {
        for (var s = 0u; s < 3u; s++) {
            f[r][s] = fpcol[9u * i + 3u * r + s];
            fbar_out[r][s] = af[9u * i + 3u * r + s];
            cbar[r][s] = ac[9u * i + 3u * r + s];
        }
    }
    var xbar = vec3<f32>(0.0);
    var vpbar = vec3<f32>(0.0);
    for (var d = 0u; d < 3u; d++) {
        let nx = x[d] + p.dt * vp[d];
        var g = 0.0;
        if (nx >= p.lo && nx <= p.hi) {
            g = ax[3u * i + d];
        }
        xbar[d] = g;
        vpbar[d] = av[3u * i + d] + p.dt * g;
    }
    // F' = F + dt C' F: C_bar' += dt F_bar' F^T, F_bar = F_bar' + dt C'^T F_bar'.
    var fbar = fbar_out;
    for (var r = 0u; r < 3u; r++) {
        for (var s = 0u; s < 3u; s++) {
            var a1 = 0.0;
            var a2 = 0.0;
            for (var t = 0u; t < 3u; t++) {
                a1 += fbar_out[r][t] * f[s][t];
                a2 += cp[t][r] * fbar_out[t][s];
            }
            cbar[r][s] += p.dt * a1;
            fbar[r][s] += p.dt * a2;
        }
    }
    keep_adjoint(li, vpbar, cbar);
    for (var r = 0u; r < 3u; r++) {
        for (var s = 0u; s < 3u; s++) {
            af[9u * i + 3u * r + s] = 0.0;
            afp[9u * i + 3u * r + s] += fbar[r][s];
            ac[9u * i + 3u * r + s] = 0.0;
        }
    }
    for (var j = 0u; j < 27u; j++) {
        let a = j / 9u;
        let b = (j / 3u) % 3u;
        let c = j % 3u;
        let w0 = st.w[0][a];
        let w1 = st.w[1][b];
        let w2 = st.w[2][c];
        let w = w0 * w1 * w2;
        let nn = node_index(e, st.base + vec3<u32>(a, b, c));
        let vi = vec3<f32>(gv[3u * nn], gv[3u * nn + 1u], gv[3u * nn + 2u]);
        let dpos = vec3<f32>(st.dpos[0][a], st.dpos[1][b], st.dpos[2][c]);
        var cd = vec3<f32>(0.0);
        var dpb = vec3<f32>(0.0);
        for (var r = 0u; r < 3u; r++) {
            cd[r] = cbar[r][0] * dpos.x + cbar[r][1] * dpos.y + cbar[r][2] * dpos.z;
            dpb[r] = cbar[0][r] * vi.x + cbar[1][r] * vi.y + cbar[2][r] * vi.z;
        }
        var wbar = 0.0;
        for (var r = 0u; r < 3u; r++) {
            add_vbar(3u * nn + r, w * (vpbar[r] + k * cd[r]));
            wbar += vi[r] * (vpbar[r] + k * cd[r]);
        }
        let grad = vec3<f32>(st.dw[0][a] * w1 * w2, w0 * st.dw[1][b] * w2, w0 * w1 * st.dw[2][c]);
        xbar += wbar * grad - k * w * dpb;
    }
    for (var d = 0u; d < 3u; d++) {
        ax[3u * i + d] = xbar[d];
        av[3u * i + d] = 0.0;
    }
}
