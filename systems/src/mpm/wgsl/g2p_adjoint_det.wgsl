// Reverse G2P in a fixed order (Scatter::Deterministic), particle pass: nothing is scattered;
// the particle's v_bar_p and C_bar_p (12 floats) are kept in pscr for vbar_gather
// (g2p_adjoint_gather.wgsl), which sums each node's contributions in the binned order.
@group(0) @binding(10) var<storage, read_write> pscr: array<f32>;

fn add_vbar(i: u32, v: f32) {}

fn keep_adjoint(li: u32, vpbar: vec3<f32>, cbar: M3) {
    for (var r = 0u; r < 3u; r++) {
        pscr[12u * li + r] = vpbar[r];
        for (var s = 0u; s < 3u; s++) {
            pscr[12u * li + 3u + 3u * r + s] = cbar[r][s];
        }
    }
}
