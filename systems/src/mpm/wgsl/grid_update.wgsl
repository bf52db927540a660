// The grid update of local node k from its mass m and momentum mv, written to gv (transfer.wgsl
// grid_update, and p2g_gather.wgsl's, fused into the deterministic gather): v = mv / m + g dt,
// then the collider, the floor's friction, the walls; empty nodes get v = 0.
fn update_node(k: u32, m: f32, mv: vec3<f32>) {
    if (m <= MASS_EPS) {
        gv[3u * k] = 0.0;
        gv[3u * k + 1u] = 0.0;
        gv[3u * k + 2u] = 0.0;
        return;
    }
    let e = p.e0 + k / (p.res * p.res * p.res);
    let inv = 1.0 / m;
    var v = vec3<f32>(mv.x * inv + p.gdt_x, mv.y * inv + p.gdt_y, mv.z * inv + p.gdt_z);
    let g = node_coords(k);
    v = couple(node_position(g), v, e);
    v = floor_friction(g, v);
    let keep = wall_keep(g, v);
    v = select(vec3<f32>(0.0), v, keep);
    gv[3u * k] = v.x;
    gv[3u * k + 1u] = v.y;
    gv[3u * k + 2u] = v.z;
}
