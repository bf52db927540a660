// mpm.transfer, deterministic P2G and reverse G2P (Scatter::Deterministic): what the gathers
// share. Node g of local env e receives from the particles of the cells b with g - 2 <= b <= g
// per axis (a particle's stencil covers base .. base + 2). A gather runs one invocation per grid
// row (e, gx, gy): it walks the (up to) 3 x 3 cell rows (bx, by) that reach it in increasing
// order, each one's particles in `sorted` order (by bz, then by particle index: bin.wgsl), and
// adds each particle's three z-nodes into a row accumulator. So every node's sum is added in
// increasing cell index, then particle index: an order fixed by the particle positions alone.
// Per row rather than per node, because a node's 27 cell lookups cost more than its particles
// on CPU drivers (lavapipe), and a row's 9 lookups serve its G nodes. ROW_NODES (= G) is
// prepended by mpm/gpu.rs. Bindings start, blocksum and sorted (bin.wgsl's, read-only here)
// are declared by the including kernel.

// Start of local cell k's segment in `sorted` (chunk-global: bin.wgsl's two-level prefix sum).
fn segment_start(k: u32) -> u32 {
    return blocksum[k / SCAN_BLOCK] + start[k];
}

// End of local cell k's segment: the next cell's start, or n after the chunk's last cell.
fn segment_end(k: u32) -> u32 {
    if (k + 1u >= p.nodes) {
        return p.n;
    }
    return segment_start(k + 1u);
}

// The particles of cells (bx, by, zlo ..= zhi) of local env e: one contiguous range of `sorted`
// (start, end), since a row's cells are consecutive there.
fn row_range(e: u32, bx: u32, by: u32, zlo: u32, zhi: u32) -> vec2<u32> {
    let row = (e * p.res + bx) * p.res + by;
    return vec2<u32>(segment_start(row * p.res + zlo), segment_end(row * p.res + zhi));
}

// The B-spline weight of node coordinate gd along one axis for a particle at xd, and
// x_i - x_p: transfer_common.wgsl `stencil`'s entry for offset gd - base, with the same f32
// expressions, without its arrays (a dynamically indexed function-local array is a memory
// round trip per lane on CPU drivers).
fn axis_weight(xd: f32, gd: u32) -> vec2<f32> {
    let bi = base_of(xd);
    let fx = xd * p.inv_dx - f32(bi);
    let o = gd - bi;
    if (o == 0u) {
        let a = 1.5 - fx;
        return vec2<f32>(0.5 * a * a, -fx * p.dx);
    } else if (o == 1u) {
        let m = fx - 1.0;
        return vec2<f32>(0.75 - m * m, (1.0 - fx) * p.dx);
    }
    let c = fx - 0.5;
    return vec2<f32>(0.5 * c * c, (2.0 - fx) * p.dx);
}

// Grid row `row` of the chunk: (local env, gx, gy).
fn row_coords(row: u32) -> vec3<u32> {
    return vec3<u32>(row / (p.res * p.res), (row / p.res) % p.res, row % p.res);
}

// The cell rows that reach node row (gx, gy): lo ..= hi per axis.
fn cell_rows(gx: u32, gy: u32) -> vec4<u32> {
    let g = vec2<u32>(gx, gy);
    let lo = max(g, vec2<u32>(2u)) - vec2<u32>(2u);
    let hi = min(g, vec2<u32>(p.res - 3u));
    return vec4<u32>(lo, hi);
}
