// The bindings every articulation dynamics kernel (fk, integrate) starts with: the uniform
// block, the packed topology (per body: parent, kind, q_start, qd_start) and the packed body
// model (per body `BM` floats: axis, parent anchor, child anchor, mass, inertia about the COM in
// the body frame (row-major), COM, armature), both uploaded by articulation/gpu.rs. The
// constants NB, NQ, ND (bodies, coordinates, velocities per env; at least 1, they size the
// scratch arrays) are prepended there too. Loops run to the uniform counts p.nb, p.nq, p.nd, not
// to the constants, so that shader compilers do not unroll them.
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> topo: array<u32>;
@group(0) @binding(2) var<storage, read> bm: array<f32>;

const BM: u32 = 24u;

// Global body index of body k of the env being stepped (set by the entry point).
var<private> env_body0: u32;
// The env being stepped: its row of the per-env scratch `work` (`struct Work`, generated in
// articulation/gpu.rs with one fixed-size array per kinematic or dynamic quantity, bound by each
// kernel as its last binding).
var<private> wi: u32;

fn b_parent(k: u32) -> u32 {
    return topo[4u * (env_body0 + k)];
}
fn b_kind(k: u32) -> u32 {
    return topo[4u * (env_body0 + k) + 1u];
}
fn b_qs(k: u32) -> u32 {
    return topo[4u * (env_body0 + k) + 2u];
}
fn b_ds(k: u32) -> u32 {
    return topo[4u * (env_body0 + k) + 3u];
}
fn bm3(k: u32, o: u32) -> vec3<f32> {
    let i = BM * (env_body0 + k) + o;
    return vec3<f32>(bm[i], bm[i + 1u], bm[i + 2u]);
}
fn b_axis(k: u32) -> vec3<f32> {
    return bm3(k, 0u);
}
fn b_parent_anchor(k: u32) -> vec3<f32> {
    return bm3(k, 3u);
}
fn b_child_anchor(k: u32) -> vec3<f32> {
    return bm3(k, 6u);
}
fn b_mass(k: u32) -> f32 {
    return bm[BM * (env_body0 + k) + 9u];
}
// Rotational inertia about the COM, body frame.
fn b_inertia(k: u32) -> mat3x3<f32> {
    let i = BM * (env_body0 + k) + 10u;
    return mat3x3<f32>(
        vec3<f32>(bm[i], bm[i + 3u], bm[i + 6u]),
        vec3<f32>(bm[i + 1u], bm[i + 4u], bm[i + 7u]),
        vec3<f32>(bm[i + 2u], bm[i + 5u], bm[i + 8u]),
    );
}
fn b_com(k: u32) -> vec3<f32> {
    return bm3(k, 19u);
}
fn b_armature(k: u32) -> f32 {
    return bm[BM * (env_body0 + k) + 22u];
}
