// mpm.transfer forward kernels, dispatched in this order per substep (transfer.rs):
// grid_clear (per node), p2g (per particle, atomic scatter), grid_update (per node), g2p (per
// particle); the deterministic mode replaces the first three by bin.wgsl and p2g_gather.wgsl.
// Bindings: transfer_bind.wgsl.

@compute @workgroup_size(64)
fn grid_clear(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = linear_index(gid, nwg);
    if (k >= p.nodes) {
        return;
    }
    gm[k] = 0.0;
    gmv[3u * k] = 0.0;
    gmv[3u * k + 1u] = 0.0;
    gmv[3u * k + 2u] = 0.0;
}

// grid_update.wgsl's update_node at every node of the chunk.
@compute @workgroup_size(64)
fn grid_update(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = linear_index(gid, nwg);
    if (k >= p.nodes) {
        return;
    }
    update_node(k, gm[k], vec3<f32>(gmv[3u * k], gmv[3u * k + 1u], gmv[3u * k + 2u]));
}

// v_p = sum w v_i, C_p = 4/dx^2 sum w v_i (x_i - x_p)^T, x <- clamp(x + dt v_p), F <- (I + dt C) Fp.
@compute @workgroup_size(64)
fn g2p(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let li = linear_index(gid, nwg);
    if (li >= p.n) {
        return;
    }
    let i = particle_index(li);
    let e = li / p.np;
    let x = load_x(i);
    let st = stencil(x);
    var vp = vec3<f32>(0.0);
    var cp = m3_zero();
    for (var a = 0u; a < 3u; a++) {
        for (var b = 0u; b < 3u; b++) {
            let wab = st.w[0][a] * st.w[1][b];
            for (var c = 0u; c < 3u; c++) {
                let w = wab * st.w[2][c];
                let nn = node_index(e, st.base + vec3<u32>(a, b, c));
                let wv = vec3<f32>(w * gv[3u * nn], w * gv[3u * nn + 1u], w * gv[3u * nn + 2u]);
                let dpos = vec3<f32>(st.dpos[0][a], st.dpos[1][b], st.dpos[2][c]);
                for (var r = 0u; r < 3u; r++) {
                    vp[r] += wv[r];
                    for (var s = 0u; s < 3u; s++) {
                        cp[r][s] += wv[r] * dpos[s];
                    }
                }
            }
        }
    }
    for (var r = 0u; r < 3u; r++) {
        for (var s = 0u; s < 3u; s++) {
            cp[r][s] *= p.kc;
        }
    }
    for (var d = 0u; d < 3u; d++) {
        let nx = x[d] + p.dt * vp[d];
        xcol[3u * i + d] = min(max(nx, p.lo), p.hi);
        vcol[3u * i + d] = vp[d];
    }
    var f = m3_zero();
    for (var r = 0u; r < 3u; r++) {
        for (var s = 0u; s < 3u; s++) {
            f[r][s] = fpcol[9u * i + 3u * r + s];
        }
    }
    for (var r = 0u; r < 3u; r++) {
        for (var s = 0u; s < 3u; s++) {
            ccol[9u * i + 3u * r + s] = cp[r][s];
            fcol[9u * i + 3u * r + s] = f[r][s] + p.dt * (cp[r][0] * f[0][s] + cp[r][1] * f[1][s] + cp[r][2] * f[2][s]);
        }
    }
}
