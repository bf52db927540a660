// mpm.transfer adjoint, reverse grid update: one invocation per node (transfer.rs "Reverse the
// grid update"). v_bar_out -> v_bar_in through the walls' mask, the floor's friction law and
// the collider projection's hand-written adjoint; then (mv)_bar = v_bar_in / m (in place in gvbar) and m_bar =
// -v_bar_in . (v_in - g dt) / m. The pose adjoint of every node the collider touches goes to
// collider_q / collider_qd (or, for the multi-body coupling, to the deciding body's rows of
// body_pose / body_pose_next) with atomic adds. Empty nodes keep the CPU's treatment: v_bar stays,
// m_bar = 0.
@group(0) @binding(0) var<storage, read> qcol: array<f32>;
@group(0) @binding(1) var<storage, read> qdcol: array<f32>;
@group(0) @binding(2) var<storage, read> shapes: array<f32>;
@group(0) @binding(3) var<storage, read_write> gm: array<f32>;
@group(0) @binding(4) var<storage, read_write> gmv: array<f32>;
@group(0) @binding(5) var<storage, read_write> gvbar: array<f32>;
@group(0) @binding(6) var<storage, read_write> gmbar: array<f32>;
@group(0) @binding(7) var<storage, read_write> aq: array<atomic<ATOMIC_T>>;
@group(0) @binding(8) var<storage, read_write> aqd: array<atomic<ATOMIC_T>>;
@group(0) @binding(9) var<uniform> p: Params;

fn add_aq(i: u32, v: f32) {
    ADD(aq)
}
fn add_aqd(i: u32, v: f32) {
    ADD(aqd)
}

@compute @workgroup_size(64)
fn grid_adjoint(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = linear_index(gid, nwg);
    if (k >= p.nodes) {
        return;
    }
    let m = gm[k];
    if (m <= MASS_EPS) {
        gmbar[k] = 0.0;
        return;
    }
    let e = k / (p.res * p.res * p.res);
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
        if (adj.body != NO_SHAPE) {
            let o = 7u * (NBODIES * e + adj.body);
            for (var c = 0u; c < 7u; c++) {
                add_aq(o + c, adj.start[c]);
                add_aqd(o + c, adj.end[c]);
            }
        }
    } else {
        let q = load_q(e);
        let qd = load_qd(e);
        let out = collider_project(x, vin, q, qd);
        let ob = floor_friction_adjoint(g, out, select(vec3<f32>(0.0), vb, wall_keep(g, floor_friction(g, out))));
        let adj = collider_project_adjoint(x, vin, q, qd, ob);
        vbar = adj.vbar;
        if (any(adj.qbar != vec4<f32>(0.0)) || any(adj.qdbar != vec4<f32>(0.0))) {
            for (var c = 0u; c < 4u; c++) {
                add_aq(4u * e + c, adj.qbar[c]);
                add_aqd(4u * e + c, adj.qdbar[c]);
            }
        }
    }
    var mb = 0.0;
    for (var d = 0u; d < 3u; d++) {
        gvbar[3u * k + d] = vbar[d] * inv;
        mb -= vbar[d] * (vin[d] - gdt[d]) * inv;
    }
    gmbar[k] = mb;
}
