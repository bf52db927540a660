// mpm.transfer, deterministic P2G (Scatter::Deterministic), step 1: bin the chunk's particles by
// cell into `sorted` (chunk-local particle indices), ordered by cell and within a cell by
// particle index: the unique such order, so it depends on the positions only. A particle's cell
// is its stencil base (transfer_common.wgsl `base_of`), laid out like the nodes (node_index), so
// node n's particles are those of the cells n - 2 ..= n. A counting sort whose every pass is
// parallel (N cells, n particles, k particles in a cell, 64 invocations per workgroup):
//   bin_count  (per particle) cellof = its cell; slot = atomicAdd(count[cell], 1): the arrival
//                             slot, which varies run to run; the counts do not (integer adds
//                             commute exactly)
//   scan_local (per block of SCAN_BLOCK cells, one workgroup) start = exclusive prefix sum of
//                             count within the block (SCAN_PER serial cells per invocation, then
//                             a workgroup scan); blocksum = the block's total; count = 0 again,
//                             ready for the next bin_count (the buffer starts zeroed)
//   scan_blocks (one workgroup) blocksum = exclusive prefix sum of the block totals, in place,
//                             and blocksum[blocks] = n
//   fill       (per particle) arrival[segment_start(cell) + slot] = particle (arrival order)
//   rank       (per particle) sorted[segment_start(cell) + r] = particle, r = how many
//                             particles of the cell have a lower index: the stable order
// Work O(N + n + sum over cells of k^2), depth O(SCAN_PER + N / SCAN_BLOCK / 64 + max k): the
// rank pass reads its cell's k entries, and k is ~8 at MPM densities (2 particles per dx).
// The prefix sums run over the whole chunk, so they include the particles of the chunk's earlier
// envs (every env has np): segment_start is chunk-global.
// COUNT_T is atomic<u32> in bin_count and u32 in the others. SCAN_PER and SCAN_BLOCK
// (= 64 SCAN_PER) are prepended by mpm/gpu.rs.
@group(0) @binding(0) var<storage, read> xcol: array<f32>;
@group(0) @binding(1) var<storage, read_write> count: array<COUNT_T>;
@group(0) @binding(2) var<storage, read_write> start: array<u32>;
@group(0) @binding(3) var<storage, read_write> blocksum: array<u32>;
@group(0) @binding(4) var<storage, read_write> slot: array<u32>;
@group(0) @binding(5) var<storage, read_write> sorted: array<u32>;
@group(0) @binding(6) var<storage, read_write> arrival: array<u32>;
@group(0) @binding(7) var<storage, read_write> cellof: array<u32>;
@group(0) @binding(8) var<uniform> p: Params;

// The local cell index of chunk-local particle li.
fn cell_of(li: u32) -> u32 {
    let i = particle_index(li);
    let b = vec3<u32>(base_of(xcol[3u * i]), base_of(xcol[3u * i + 1u]), base_of(xcol[3u * i + 2u]));
    return node_index(li / p.np, b);
}
