// mpm.transfer, deterministic P2G (Scatter::Deterministic), step 1: bin the chunk's particles by
// cell, per env, into `sorted` (chunk-local particle indices), ordered by cell and within a cell
// by particle index. A particle's cell is its stencil base (transfer_common.wgsl `base_of`), laid
// out like the nodes (node_index), so node n's particles are those of the cells n - 2 ..= n.
// Counting sort, one dispatch per step:
//   count_clear (per cell)    count = 0
//   bin_count   (per particle) slot = atomicAdd(count[cell], 1): the arrival slot, which varies
//                              run to run; the counts do not (integer adds commute exactly)
//   scan_rows   (per grid row) start = exclusive prefix sum of count along the row; rowoff = row sum
//   scan_env    (per env)      rowoff = exclusive prefix sum of the row sums over the env's rows
//   fill        (per particle) sorted[env * np + rowoff + start + slot] = particle
//   sort_cells  (per cell)     insertion sort of the cell's segment by particle index, which
//                              removes the arrival order: the result depends on the positions only.
// COUNT_T is atomic<u32> in bin_count and u32 in the others.
@group(0) @binding(0) var<storage, read> xcol: array<f32>;
@group(0) @binding(1) var<storage, read_write> count: array<COUNT_T>;
@group(0) @binding(2) var<storage, read_write> start: array<u32>;
@group(0) @binding(3) var<storage, read_write> rowoff: array<u32>;
@group(0) @binding(4) var<storage, read_write> slot: array<u32>;
@group(0) @binding(5) var<storage, read_write> sorted: array<u32>;
@group(0) @binding(6) var<uniform> p: Params;

// The local cell index of chunk-local particle li.
fn cell_of(li: u32) -> u32 {
    let i = particle_index(li);
    let b = vec3<u32>(base_of(xcol[3u * i]), base_of(xcol[3u * i + 1u]), base_of(xcol[3u * i + 2u]));
    return node_index(li / p.np, b);
}
