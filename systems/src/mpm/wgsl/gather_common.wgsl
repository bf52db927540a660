// mpm.transfer, deterministic P2G and reverse G2P (Scatter::Deterministic): what the per-node
// gathers share. Node g of local env e receives from the particles of the cells b with
// g - 2 <= b <= g per axis (a particle's stencil covers base .. base + 2), visited in increasing
// cell index and, within a cell, in increasing particle index (bin.wgsl), so each node's sum is
// added in an order fixed by the particle positions alone. Bindings count, start, rowoff and
// sorted (bin.wgsl's, read-only here) are declared by the including kernel.

// Start of local cell k's segment in `sorted`.
fn segment_start(k: u32) -> u32 {
    return (k / (p.res * p.res * p.res)) * p.np + rowoff[k / p.res] + start[k];
}

// The cells whose particles reach node g along each axis: lo ..= hi.
struct CellRange {
    lo: vec3<u32>,
    hi: vec3<u32>,
}

fn cell_range(g: vec3<u32>) -> CellRange {
    return CellRange(max(g, vec3<u32>(2u)) - vec3<u32>(2u), min(g, vec3<u32>(p.res - 3u)));
}
