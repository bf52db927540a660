// mpm.transfer, shared by its kernels (transfer.rs): the quadratic B-spline stencil, node
// indices and the walls and floor. ATOMIC_T and the bodies of the ADD(...) helpers of the
// scatter kernels are filled in by mpm/gpu.rs: native atomicAdd on atomic<f32> where the device
// has SHADER_FLOAT32_ATOMIC, else a compare-exchange loop on the u32 bits.
//
// Grid layout: node (gx, gy, gz) of env e is e * G^3 + (gx * G + gy) * G + gz; one grid per env
// over its domain [0, 1]^3 (dx = 1/G), as the CPU's sub-grid uses global node indices. e counts
// from the first env of the chunk (p.e0): particle li of the chunk (global index
// particle_index(li)) is in env li / np of the chunk's grids; q and q_bar are indexed by the
// global env p.e0 + e.
const MASS_EPS: f32 = 1e-15;
const MIN_INFLUENCE: f32 = 0.1;

struct Stencil {
    base: vec3<u32>,
    // w[d][o], dw[d][o]: weight of the node o steps above the base along axis d, its x-derivative.
    w: M3,
    dw: M3,
    // x_i - x_p along axis d for the node o steps above the base.
    dpos: M3,
}

// The stencil's base node along one axis (also the particle's cell in the deterministic P2G's
// binning, bin.wgsl), clamped to the grid (the CPU clamps only below; particles stay inside by
// G2P's clamp).
fn base_of(xd: f32) -> u32 {
    return min(u32(max(xd * p.inv_dx - 0.5, 0.0)), p.res - 3u);
}

// The global index (into the state columns) of local particle li of this env chunk.
fn particle_index(li: u32) -> u32 {
    return p.e0 * p.np + li;
}

fn stencil(x: vec3<f32>) -> Stencil {
    var st: Stencil;
    let g = f32(p.res);
    for (var d = 0u; d < 3u; d++) {
        let xs = x[d] * p.inv_dx;
        let bi = base_of(x[d]);
        st.base[d] = bi;
        let fx = xs - f32(bi);
        let a = 1.5 - fx;
        let c = fx - 0.5;
        let m = fx - 1.0;
        st.w[d] = array<f32, 3>(0.5 * a * a, 0.75 - m * m, 0.5 * c * c);
        st.dw[d] = array<f32, 3>(-a * p.inv_dx, -2.0 * m * p.inv_dx, c * p.inv_dx);
        st.dpos[d] = array<f32, 3>(-fx * p.dx, (1.0 - fx) * p.dx, (2.0 - fx) * p.dx);
    }
    return st;
}

fn node_index(e: u32, g: vec3<u32>) -> u32 {
    return e * p.res * p.res * p.res + (g.x * p.res + g.y) * p.res + g.z;
}

// Which velocity components the walls and the floor keep at node g (transfer.rs `wall_mask`).
fn wall_keep(g: vec3<u32>, v: vec3<f32>) -> vec3<bool> {
    let b = p.bound;
    if (p.sticky == 1u && g.y < b && v.y < 0.0) {
        return vec3<bool>(false);
    }
    var keep = vec3<bool>(true);
    for (var d = 0u; d < 3u; d++) {
        if ((g[d] < b && v[d] < 0.0) || (g[d] + b >= p.res && v[d] > 0.0)) {
            keep[d] = false;
        }
    }
    return keep;
}

// The floor's friction law (transfer.rs `floor_scale`, `Floor::Friction`): where v_y < 0 in the
// bottom `bound` cells, v <- max(1 + gf v_y / |v|, 0) v, before `wall_keep`. GROUND_FRICTION
// (gf) is a constant mpm/gpu.rs prepends to this file, 0 for the slip and sticky floors. |v| is
// max(length(v), -v_y) > 0 (f32 squares of speeds below ~1e-19 underflow to 0).
fn floor_acts(g: vec3<u32>, v: vec3<f32>) -> bool {
    return GROUND_FRICTION > 0.0 && g.y < p.bound && v.y < 0.0;
}

fn floor_friction(g: vec3<u32>, v: vec3<f32>) -> vec3<f32> {
    if (!floor_acts(g, v)) {
        return v;
    }
    let n = max(length(v), -v.y);
    return max(1.0 + GROUND_FRICTION * v.y / n, 0.0) * v;
}

// v_bar of the law's input from v_bar of its output (transfer.rs `floor_adjoint`): with e = v/|v|
// and s = 1 + gf e_y > 0, v_bar_in = s v_bar + gf (v_bar . v) grad(e_y)
// = s v_bar + gf (v_bar . e) (y_axis - e_y e), in e so that no power of a tiny |v| under- or
// overflows; 0 on the clamp (s <= 0).
fn floor_friction_adjoint(g: vec3<u32>, v: vec3<f32>, vbar: vec3<f32>) -> vec3<f32> {
    if (!floor_acts(g, v)) {
        return vbar;
    }
    let n = max(length(v), -v.y);
    let e = v / n;
    let s = 1.0 + GROUND_FRICTION * e.y;
    if (s <= 0.0) {
        return vec3<f32>(0.0);
    }
    return s * vbar + (GROUND_FRICTION * dot(vbar, e)) * (vec3<f32>(0.0, 1.0, 0.0) - e.y * e);
}

fn node_coords(k: u32) -> vec3<u32> {
    let r = p.res;
    let local = k % (r * r * r);
    return vec3<u32>(local / (r * r), (local / r) % r, local % r);
}

fn node_position(g: vec3<u32>) -> vec3<f32> {
    return vec3<f32>(g) / f32(p.res);
}

