// mpm.transfer adjoint, reverse grid update: one invocation per node (transfer.rs "Reverse the
// grid update"). v_bar_out -> v_bar_in through the walls' mask and the collider projection's
// hand-written adjoint; then (mv)_bar = v_bar_in / m (in place in gvbar) and m_bar =
// -v_bar_in . (v_in - g dt) / m. The pose adjoint of every node the collider touches goes to
// collider_q / collider_qd: with atomic adds (grid_adjoint_atomic.wgsl), or summed per grid row
// and then per env in a fixed order (grid_adjoint_det.wgsl). Empty nodes keep the CPU's
// treatment: v_bar stays, m_bar = 0. AQ_T is atomic<ATOMIC_T> in the atomic kernel, f32 in the
// deterministic ones.
@group(0) @binding(0) var<storage, read> qcol: array<f32>;
@group(0) @binding(1) var<storage, read> qdcol: array<f32>;
@group(0) @binding(2) var<storage, read> shapes: array<f32>;
@group(0) @binding(3) var<storage, read_write> gm: array<f32>;
@group(0) @binding(4) var<storage, read_write> gmv: array<f32>;
@group(0) @binding(5) var<storage, read_write> gvbar: array<f32>;
@group(0) @binding(6) var<storage, read_write> gmbar: array<f32>;
@group(0) @binding(7) var<storage, read_write> aq: array<AQ_T>;
@group(0) @binding(8) var<storage, read_write> aqd: array<AQ_T>;
@group(0) @binding(9) var<uniform> p: Params;

// The pose adjoint of one node: (q_bar, qd_bar) contributions of the collider projection there.
struct PoseBar {
    q: vec4<f32>,
    qd: vec4<f32>,
}

// Reverses the grid update at local node k in place (gvbar, gmbar) and returns its pose adjoint.
fn node_adjoint(k: u32) -> PoseBar {
    let m = gm[k];
    if (m <= MASS_EPS) {
        gmbar[k] = 0.0;
        return PoseBar(vec4<f32>(0.0), vec4<f32>(0.0));
    }
    let e = p.e0 + k / (p.res * p.res * p.res);
    let inv = 1.0 / m;
    let gdt = vec3<f32>(p.gdt_x, p.gdt_y, p.gdt_z);
    let vin = vec3<f32>(gmv[3u * k] * inv + p.gdt_x, gmv[3u * k + 1u] * inv + p.gdt_y, gmv[3u * k + 2u] * inv + p.gdt_z);
    let g = node_coords(k);
    let x = node_position(g);
    let q = load_q(e);
    let qd = load_qd(e);
    let out = collider_project(x, vin, q, qd);
    let vb = vec3<f32>(gvbar[3u * k], gvbar[3u * k + 1u], gvbar[3u * k + 2u]);
    let ob = select(vec3<f32>(0.0), vb, wall_keep(g, out));
    let adj = collider_project_adjoint(x, vin, q, qd, ob);
    var mb = 0.0;
    for (var d = 0u; d < 3u; d++) {
        gvbar[3u * k + d] = adj.vbar[d] * inv;
        mb -= adj.vbar[d] * (vin[d] - gdt[d]) * inv;
    }
    gmbar[k] = mb;
    return PoseBar(adj.qbar, adj.qdbar);
}
