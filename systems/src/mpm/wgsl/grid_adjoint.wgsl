// mpm.transfer adjoint, reverse grid update: one invocation per node (transfer.rs "Reverse the
// grid update"). v_bar_out -> v_bar_in through the walls' mask, the floor's friction law and the
// collider projection's hand-written adjoint; then (mv)_bar = v_bar_in / m (in place in gvbar) and m_bar =
// -v_bar_in . (v_in - g dt) / m. The pose adjoint of every node the collider touches goes to
// collider_q / collider_qd (or, for the multi-body coupling, to the deciding body's rows of
// body_pose / body_pose_next): with atomic adds (grid_adjoint_atomic.wgsl), or summed per grid row
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

// The pose adjoint of one node: the contributions of the collider projection there to the pose
// rows of `body` (NO_SHAPE: none), POSE_W floats each at the substep's start (q_bar, or the
// body's start pose) and end (qd_bar, or its end pose). The rigid collider is body 0 of width 4.
struct PoseBar {
    body: u32,
    start: array<f32, 7>,
    end: array<f32, 7>,
}

// Reverses the grid update at local node k in place (gvbar, gmbar) and returns its pose adjoint.
fn node_adjoint(k: u32) -> PoseBar {
    var pb: PoseBar;
    pb.body = NO_SHAPE;
    let m = gm[k];
    if (m <= MASS_EPS) {
        gmbar[k] = 0.0;
        return pb;
    }
    let e = p.e0 + k / (p.res * p.res * p.res);
    let inv = 1.0 / m;
    let gdt = vec3<f32>(p.gdt_x, p.gdt_y, p.gdt_z);
    let vin = vec3<f32>(gmv[3u * k] * inv + p.gdt_x, gmv[3u * k + 1u] * inv + p.gdt_y, gmv[3u * k + 2u] * inv + p.gdt_z);
    let g = node_coords(k);
    let x = node_position(g);
    let vb = vec3<f32>(gvbar[3u * k], gvbar[3u * k + 1u], gvbar[3u * k + 2u]);
    var vbar = vb;
    if (BODIES) {
        // The deciding body's start and end poses (collider_bodies.wgsl); one shape search
        // serves the recomputed projection and the adjoint.
        let hit = bodies_nearest(x, e);
        let out = bodies_project_hit(hit, x, vin, e, true);
        let ob = floor_friction_adjoint(g, out, select(vec3<f32>(0.0), vb, wall_keep(g, floor_friction(g, out))));
        let adj = bodies_project_vjp(hit, x, vin, e, ob);
        vbar = adj.v;
        pb.body = adj.body;
        pb.start = adj.start;
        pb.end = adj.end;
    } else {
        let q = load_q(e);
        let qd = load_qd(e);
        let out = collider_project(x, vin, q, qd);
        let ob = floor_friction_adjoint(g, out, select(vec3<f32>(0.0), vb, wall_keep(g, floor_friction(g, out))));
        let adj = collider_project_adjoint(x, vin, q, qd, ob);
        vbar = adj.vbar;
        if (any(adj.qbar != vec4<f32>(0.0)) || any(adj.qdbar != vec4<f32>(0.0))) {
            pb.body = 0u;
            for (var c = 0u; c < 4u; c++) {
                pb.start[c] = adj.qbar[c];
                pb.end[c] = adj.qdbar[c];
            }
        }
    }
    var mb = 0.0;
    for (var d = 0u; d < 3u; d++) {
        gvbar[3u * k + d] = vbar[d] * inv;
        mb -= vbar[d] * (vin[d] - gdt[d]) * inv;
    }
    gmbar[k] = mb;
    return pb;
}
