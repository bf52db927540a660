// mpm.transfer forward bindings (one layout for all its forward kernels). GRID_T is
// atomic<ATOMIC_T> in the P2G kernel and f32 in the others.
@group(0) @binding(0) var<storage, read_write> xcol: array<f32>;
@group(0) @binding(1) var<storage, read_write> vcol: array<f32>;
@group(0) @binding(2) var<storage, read_write> ccol: array<f32>;
@group(0) @binding(3) var<storage, read_write> fcol: array<f32>;
@group(0) @binding(4) var<storage, read> fpcol: array<f32>;
@group(0) @binding(5) var<storage, read> taucol: array<f32>;
@group(0) @binding(6) var<storage, read> mass_vol: array<f32>;
@group(0) @binding(7) var<storage, read> qcol: array<f32>;
@group(0) @binding(8) var<storage, read> qdcol: array<f32>;
@group(0) @binding(9) var<storage, read> shapes: array<f32>;
@group(0) @binding(10) var<storage, read_write> gm: array<GRID_T>;
@group(0) @binding(11) var<storage, read_write> gmv: array<GRID_T>;
@group(0) @binding(12) var<storage, read_write> gv: array<f32>;
@group(0) @binding(13) var<uniform> p: Params;

fn load_x(i: u32) -> vec3<f32> {
    return vec3<f32>(xcol[3u * i], xcol[3u * i + 1u], xcol[3u * i + 2u]);
}

