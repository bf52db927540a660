//! GPU mirrors of the MPM systems (`mpm.material`, `mpm.transfer`, `mpm.collider_drive`,
//! `mpm.collider_integrate`): the uniform block [`MpmParams`] (WGSL `struct Params` in
//! `wgsl/common.wgsl`), the WGSL sources assembled from `wgsl/`, and the `GpuSystem` impls. The
//! CPU systems in `material.rs`, `transfer.rs` and `collider.rs` only hand out these mirrors
//! (`System::gpu`); the kernels follow their forward and adjoint line by line, in f32. The
//! hinge-tree systems of `kinematic.rs` have theirs in `kinematic_gpu.rs`.
//!
//! **Couplings.** The grid update calls `couple` (`wgsl/collider_bodies.wgsl`), which is the
//! one-body rigid projection (`wgsl/collider_sdf.wgsl`) or, for `Coupling::Bodies`, the
//! multi-body one: each shape row carries its body, the poses at the substep's start and end
//! are bound where the rigid pose and velocity are, shapes are culled by bounding spheres as on
//! the CPU, and the adjoint (hand-written, where the CPU replays the projection on its f64
//! reverse tape) adds the deciding body's two pose adjoints into `body_pose`/`body_pose_next`,
//! with atomics or, deterministic, per grid row and body then per env in a fixed order. Which
//! coupling, the body count and 1/dt are WGSL constants of the transfer's kernels.
//!
//! **Grid.** `mpm.transfer` owns one dense grid per env of G³ nodes over the env's domain
//! [0, 1]³ (`Own` buffers: mass, momentum, velocity, and for the adjoint ∂L/∂velocity, turned
//! in place into ∂L/∂momentum, and ∂L/∂mass: 11 floats per node, 4.9 MiB per env at G = 48). The
//! CPU uses a bounding-box sub-grid with the same global node indices, so both see the same
//! cells and boundary conditions. The grid is scratch: it never enters the state, the tape or
//! the recompute buffers. With atomics every node is visited by the clear and grid-update
//! passes, which a real GPU does in microseconds; deterministic, every node is written by its
//! row's gather, which also runs the grid update (no per-node pass). On lavapipe the per-node
//! work dominates a step even for empty nodes: its SIMD groups run both sides of every branch
//! under a mask and skip only loops no lane enters, so the long per-node code (the collider's
//! projection and its reverse) runs in loops over the nodes particles reach. The deterministic
//! reduction adds 2 u32 per node (cell counts and starts), one per 1 024 nodes (scan blocks) and
//! 16 u32 or floats per particle.
//!
//! **Reduction** (`Scatter`). P2G and the reverse G2P add many particles into each grid node,
//! and the reverse grid update adds every node the roller touches into the env's pose adjoint.
//! - `Scatter::Atomic`: atomic adds (native `atomicAdd` on `atomic<f32>` where the device has
//!   `SHADER_FLOAT32_ATOMIC`, else a compare-exchange loop on the u32 bits, chosen at build time
//!   as for the springs). The order of the additions varies run to run: two GPU runs of a
//!   RollingFlat rollout differ by ~3e-5 in ∂L/∂act (tests/tests/gpu_mpm.rs).
//! - `Scatter::Deterministic`: every sum has an order fixed by the particle positions, so runs
//!   are bitwise reproducible whatever the scheduling (tests/tests/gpu_mpm_det.rs, also with
//!   another chunking). Each substep first bins the particles of each env by cell (the cell of
//!   a particle is its stencil base) with a counting sort whose passes are all parallel
//!   (`wgsl/bin.wgsl`: count with integer atomics, which commute exactly; a two-level prefix
//!   sum, per workgroup then over the workgroups' totals; fill by arrival slot; then each
//!   particle's rank among the lower-index particles of its cell, which removes the arrival
//!   order). Then one invocation per grid row gathers its nodes' sums from the 3 × 3
//!   cell rows that reach it, cell by cell and particle by particle in index order
//!   (`wgsl/gather_common.wgsl`, `p2g_gather.wgsl`; the reverse G2P splits into a particle pass
//!   that keeps v̄_p, C̄_p and `g2p_adjoint_gather.wgsl`, on the bins of the recomputed P2G).
//!   The pose adjoint is summed per grid row in z order, then per env in row order
//!   (`wgsl/grid_adjoint_det.wgsl`). Per-row gathers rather than per-node ones: a node's 27
//!   cell lookups cost more than its particles on lavapipe, where per-node gathers made the
//!   forward 8× slower than atomics. Dispatches per substep: forward 6 (binning 5, gather with
//!   grid update) + G2P; the adjoint's recompute the same but G2P.
//!
//! Cost on lavapipe (per-pass wall time, each dispatch submitted and waited on alone, RollingFlat
//! at 8 envs): before the parallel binning and the fused, range-limited grid update, the
//! per-node grid_update (25 % of forward+backward), p2g_gather (24 %) and the reverse grid rows
//! (15 %) dominated and the binning was ~10 %; after, p2g_gather is about half and the binning
//! ~11 % of a smaller total. A real GPU was not measured.
//!
//! Either way each node's sum is added in another order than the CPU's (particle order within
//! the env's sub-grid), so both differ from the CPU in the last bits (same tolerances).
//!
//! **Env chunks.** A binding cannot exceed the device's `max_storage_buffer_binding_size` (128
//! MiB on lavapipe: the 3-vector grids of ~100 envs at G = 48). The envs are split into as few
//! equal chunks as keep every per-chunk buffer within it ([`env_chunks`]); each chunk has its own
//! grids, scratch and uniform block (`e0` = its first env) and its own dispatches of every
//! transfer pass, and the kernels index the grids by the env within the chunk, the state by the
//! global particle, the roller by the global env. One chunk (the usual case) costs nothing extra.
//! `Gpu::with_storage_binding_limit` lowers the limit to test this on small grids.
//!
//! **SVD.** f32 Jacobi on FᵀF (at most 6 sweeps) with the CPU's sign conventions (`svd.rs`);
//! the CPU's f32 path computes its SVD in f64, so the material's outputs agree to f32
//! resolution of the singular values, not bitwise.

use diffsim_engine::EngineError;
use diffsim_engine::gpu_sim::{
    Bind, GpuBuildCx, GpuKernels, GpuSystem, Pass, Scatter, Src, adj_control, adj_state, control, model, state,
};

use super::collider::{Bodies, ColliderDrive, ColliderIntegrate, Coupling, Shape};
use super::material::{self, Material};
use super::transfer::{Floor, Transfer};
use crate::particles::gpu::{assemble, atomic_source, to_u32};

/// The uniform block of every MPM kernel, laid out by encase (field order = WGSL order).
#[derive(Clone, Copy, Debug, Default, PartialEq, encase::ShaderType)]
pub struct MpmParams {
    pub n: u32,
    pub np: u32,
    pub res: u32,
    pub nodes: u32,
    pub bound: u32,
    pub sticky: u32,
    pub nshapes: u32,
    pub envs: u32,
    pub dt: f32,
    pub inv_dx: f32,
    pub dx: f32,
    pub kc: f32,
    pub gdt_x: f32,
    pub gdt_y: f32,
    pub gdt_z: f32,
    pub lo: f32,
    pub hi: f32,
    pub friction: f32,
    pub softness: f32,
    pub inv_step: f32,
    pub na: u32,
    /// `mpm.transfer`: the first env of the dispatch's env chunk (module docs); 0 elsewhere.
    pub e0: u32,
}

impl MpmParams {
    /// Particle counts and dt of a build context; the grid fields are left at zero.
    pub fn of(cx: &GpuBuildCx) -> Result<Self, EngineError> {
        let np = cx.count("mpm_mass_vol");
        Ok(Self {
            n: to_u32(np * cx.num_envs, "mpm particles")?,
            np: to_u32(np, "mpm particles per env")?,
            envs: to_u32(cx.num_envs, "envs")?,
            dt: cx.dt,
            ..Self::default()
        })
    }
}

const COMMON: &str = include_str!("wgsl/common.wgsl");

/// Kernel source: the MPM block followed by `parts`.
fn source(parts: &[&str]) -> String {
    assemble(COMMON, parts)
}

/// GPU: `wgsl/material.wgsl`, one invocation per particle (SVD, return mapping, stress).
impl GpuSystem for Material {
    fn name(&self) -> &str {
        "mpm.material"
    }
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError> {
        // The kernels cover every material of `material.rs` (WGSL `material_eval`), sand's
        // Drucker–Prager return included (`drucker_prager` in material_common.wgsl).
        let params = MpmParams::of(cx)?;
        let n = params.n as usize;
        let uniform = cx.uniform("mpm.material", &params)?;
        let fwd = vec![
            Bind::read(state("mpm_F")),
            Bind::rw(state("mpm_Fp")),
            Bind::rw(state("mpm_stress")),
            Bind::read(model("mpm_material")),
            Bind::uniform(0),
        ];
        let adj = vec![
            Bind::read(state("mpm_F")),
            Bind::read(model("mpm_material")),
            Bind::rw(adj_state("mpm_F")),
            Bind::rw(adj_state("mpm_Fp")),
            Bind::rw(adj_state("mpm_stress")),
            Bind::uniform(0),
        ];
        // The row width of `mpm_material` comes from the CPU side, so the two cannot drift apart.
        let stride = format!("const MAT_STRIDE: u32 = {}u;", material::PARAMS);
        let common = include_str!("wgsl/material_common.wgsl");
        let fsrc = source(&[&stride, common, include_str!("wgsl/material.wgsl")]);
        let asrc = source(&[&stride, common, include_str!("wgsl/material_adjoint.wgsl")]);
        Ok(GpuKernels {
            forward: vec![Pass::new(cx, "mpm.material", &fsrc, "material_forward", fwd, n)?],
            adjoint: vec![Pass::new(cx, "mpm.material adjoint", &asrc, "material_adjoint", adj, n)?],
            buffers: vec![uniform],
        })
    }
}

/// The shapes of a collider as the kernels read them: 8 floats each (see `mpm::pack_collider`).
fn shape_rows(shapes: &[Shape]) -> Vec<f32> {
    shapes
        .iter()
        .flat_map(|s| match *s {
            Shape::Capsule { center: c, radius, half_height } => [0.0, c[0], c[1], c[2], radius, half_height, 0.0, 0.0],
            Shape::Cylinder { center: c, radius, half_height } => {
                [1.0, c[0], c[1], c[2], radius, half_height, 0.0, 0.0]
            }
            Shape::Box { center: c, half_extents: h } => [2.0, c[0], c[1], c[2], h[0], h[1], h[2], 0.0],
        })
        .map(|x| x as f32)
        .collect()
}

/// The shapes of a multi-body coupling: `shape_rows` with each shape's body in slot 7.
fn body_shape_rows(b: &Bodies) -> Result<Vec<f32>, EngineError> {
    let mut rows = shape_rows(&b.shapes.iter().map(|s| s.shape).collect::<Vec<_>>());
    for (k, s) in b.shapes.iter().enumerate() {
        if s.body >= b.bodies {
            return Err(EngineError::Gpu(format!(
                "mpm.transfer: shapes[{k}].body = {} but the coupling has {} bodies",
                s.body, b.bodies
            )));
        }
        rows[8 * k + 7] = s.body as f32;
    }
    Ok(rows)
}

/// Own buffers of the transfer: the collider shapes, then per env chunk (module docs, "Env
/// chunks") [`own::ATOMIC_LEN`] or, with `Scatter::Deterministic`, [`own::DET_LEN`] buffers,
/// indexed from the chunk's first one.
mod own {
    pub const SHAPES: usize = 0;
    pub const PARAMS: usize = 0;
    pub const GM: usize = 1;
    pub const GMV: usize = 2;
    pub const GV: usize = 3;
    pub const GVBAR: usize = 4;
    pub const GMBAR: usize = 5;
    pub const ATOMIC_LEN: usize = 6;
    /// Deterministic reduction only (`wgsl/bin.wgsl`): particles per cell, a cell's offset in
    /// its scan block, the scan blocks' offsets, a particle's arrival slot in its cell, the
    /// binned particle indices, the reverse G2P's v̄_p and C̄_p, the rows' pose adjoint sums,
    /// the particles in arrival order, each particle's cell.
    pub const COUNT: usize = 6;
    pub const START: usize = 7;
    pub const BLOCKSUM: usize = 8;
    pub const SLOT: usize = 9;
    pub const SORTED: usize = 10;
    pub const PSCR: usize = 11;
    pub const ROWPOSE: usize = 12;
    pub const ARRIVAL: usize = 13;
    pub const CELLOF: usize = 14;
    pub const DET_LEN: usize = 15;
}

/// Floats per particle of the reverse G2P's scratch (v̄_p, C̄_p), deterministic mode.
const PSCR_PER_PARTICLE: usize = 12;

/// Cells per invocation and per workgroup of the binning's first-level prefix sum
/// (`wgsl/bin_passes.wgsl` `scan_local`; WGSL `SCAN_PER`, `SCAN_BLOCK`).
const SCAN_PER: usize = 16;
const SCAN_BLOCK: usize = 64 * SCAN_PER;

/// The env chunks of the transfer's grids, `(first env, envs)`: as few equal chunks as keep
/// every per-chunk buffer within `limit` bytes (the device's storage binding limit). The largest
/// per-env buffers are the 3-vector grids (3 G³ floats) and, deterministic, the reverse G2P's
/// particle scratch (12 floats per particle). `None` when one env alone is over the limit.
pub fn env_chunks(envs: usize, limit: u64, res: usize, np: usize, det: bool) -> Option<Vec<(usize, usize)>> {
    let floats = (3 * res.pow(3)).max(if det { PSCR_PER_PARTICLE * np } else { 0 });
    let per_chunk = usize::try_from(limit / (4 * floats as u64).max(1)).unwrap_or(usize::MAX);
    if per_chunk == 0 {
        return None;
    }
    let chunks = envs.div_ceil(per_chunk).max(1);
    let size = envs.div_ceil(chunks);
    Some((0..envs).step_by(size.max(1)).map(|e0| (e0, size.min(envs - e0))).collect())
}

/// The transfer's kernel sources for one scatter mode (shared by the env chunks).
struct TransferSources {
    /// grid_clear, grid_update, g2p.
    forward: String,
    /// Atomic: p2g.
    p2g: String,
    /// Deterministic: bin_count; the other binning passes; p2g_gather; vbar_gather.
    bin_count: String,
    bin: String,
    p2g_gather: String,
    vbar_gather: String,
    vbar_clear: String,
    g2p_adjoint: String,
    grid_adjoint: String,
    p2g_adjoint: String,
}

impl TransferSources {
    /// `gf`: the floor's friction coefficient; `coupling`: the WGSL constants of
    /// `wgsl/collider_bodies.wgsl`.
    fn new(native: bool, det: bool, res: usize, gf: f32, coupling: &str) -> Self {
        // The floor's friction coefficient is a constant of the kernels (0: slip or sticky).
        let tc = &format!("const GROUND_FRICTION: f32 = {gf:e};\n{}", include_str!("wgsl/transfer_common.wgsl"));
        let sdf = &format!(
            "{coupling}{}\n{}",
            include_str!("wgsl/collider_sdf.wgsl"),
            include_str!("wgsl/collider_bodies.wgsl")
        );
        let bind = include_str!("wgsl/transfer_bind.wgsl");
        let fbind = &bind.replace("GRID_T", "f32");
        let update = include_str!("wgsl/grid_update.wgsl");
        let gather = include_str!("wgsl/gather_common.wgsl");
        // The row accumulators of the gathers hold G nodes.
        let row_nodes = format!(
            "const ROW_NODES: u32 = {res}u;\nconst SCAN_PER: u32 = {SCAN_PER}u;\nconst SCAN_BLOCK: u32 = {SCAN_BLOCK}u;"
        );
        let bin = include_str!("wgsl/bin.wgsl");
        let g2p_adj = include_str!("wgsl/g2p_adjoint.wgsl");
        let g2p_body = include_str!("wgsl/g2p_adjoint_body.wgsl");
        let grid_adj = include_str!("wgsl/grid_adjoint.wgsl");
        let atomic = atomic_source(&bind.replace("GRID_T", "atomic<ATOMIC_T>"), native, &[]);
        let p2g = atomic_source(include_str!("wgsl/p2g.wgsl"), native, &["gm", "gmv"]);
        let (g2p_adjoint, grid_adjoint) = if det {
            (
                source(&[&g2p_adj.replace("VBAR_T", "f32"), tc, include_str!("wgsl/g2p_adjoint_det.wgsl"), g2p_body]),
                source(&[&grid_adj.replace("AQ_T", "f32"), tc, sdf, include_str!("wgsl/grid_adjoint_det.wgsl")]),
            )
        } else {
            (
                source(&[
                    &atomic_source(&g2p_adj.replace("VBAR_T", "atomic<ATOMIC_T>"), native, &[]),
                    tc,
                    &atomic_source(include_str!("wgsl/g2p_adjoint_atomic.wgsl"), native, &["gvbar"]),
                    g2p_body,
                ]),
                source(&[
                    &atomic_source(&grid_adj.replace("AQ_T", "atomic<ATOMIC_T>"), native, &[]),
                    tc,
                    sdf,
                    &atomic_source(include_str!("wgsl/grid_adjoint_atomic.wgsl"), native, &["aq", "aqd"]),
                ]),
            )
        };
        Self {
            forward: source(&[fbind, tc, sdf, update, include_str!("wgsl/transfer.wgsl")]),
            p2g: source(&[&atomic, tc, sdf, &p2g]),
            bin_count: source(&[
                &row_nodes,
                &bin.replace("COUNT_T", "atomic<u32>"),
                tc,
                include_str!("wgsl/bin_count.wgsl"),
            ]),
            bin: source(&[
                &row_nodes,
                &bin.replace("COUNT_T", "u32"),
                tc,
                gather,
                include_str!("wgsl/bin_passes.wgsl"),
            ]),
            p2g_gather: source(&[&row_nodes, fbind, tc, sdf, update, gather, include_str!("wgsl/p2g_gather.wgsl")]),
            vbar_gather: source(&[&row_nodes, tc, gather, include_str!("wgsl/g2p_adjoint_gather.wgsl")]),
            vbar_clear: source(&[&g2p_adj.replace("VBAR_T", "f32"), tc, include_str!("wgsl/g2p_adjoint_clear.wgsl")]),
            g2p_adjoint,
            grid_adjoint,
            p2g_adjoint: source(&[include_str!("wgsl/p2g_adjoint.wgsl"), tc]),
        }
    }
}

/// GPU: `wgsl/transfer.wgsl` + `wgsl/p2g.wgsl` (atomic) or `wgsl/bin*.wgsl` +
/// `wgsl/p2g_gather.wgsl` (deterministic): grid_clear or the binning (per node and particle),
/// p2g (per particle, atomic scatter) or p2g_gather (per node), grid_update (per node), g2p (per
/// particle); once per env chunk.
impl GpuSystem for Transfer {
    fn name(&self) -> &str {
        "mpm.transfer"
    }
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError> {
        let g = &self.grid;
        if g.res < 4 {
            return Err(EngineError::Gpu(format!("mpm.transfer: grid res {} < 4", g.res)));
        }
        let per_env = g.res.pow(3);
        let (dx, dt) = (g.dx(), f64::from(cx.dt));
        // The coupling's shapes (for `Bodies`, slot 7 of each row is the shape's body), Coulomb
        // constants and the WGSL constants of `wgsl/collider_bodies.wgsl`.
        let (shapes, friction, softness, nbodies) = match &self.collider {
            None => (Vec::new(), 0.0, 0.0, 0),
            Some(Coupling::Rigid(c)) => (shape_rows(&c.shapes), c.friction, c.softness, 0),
            Some(Coupling::Bodies(b)) => (body_shape_rows(b)?, b.friction, b.softness, b.bodies),
        };
        // POSE_W / POSE_BODIES: the pose adjoint rows the grid adjoint writes (4 floats of the one
        // rigid collider, or 7 of each body).
        let coupling = format!(
            "const BODIES: bool = {};\nconst NBODIES: u32 = {}u;\nconst POSE_W: u32 = {}u;\nconst POSE_BODIES: u32 = \
             {}u;\nconst INV_DT: f32 = {:?};\nconst CULL_RANGE: f32 = {:?};\n",
            nbodies > 0,
            to_u32(nbodies, "collider bodies")?,
            if nbodies > 0 { 7 } else { 4 },
            to_u32(nbodies.max(1), "collider bodies")?,
            (1.0 / dt) as f32,
            if softness > 0.0 { ((1.0 / super::collider::MIN_INFLUENCE).ln() / softness) as f32 } else { 0.0 },
        );
        let params = MpmParams {
            res: to_u32(g.res, "grid res")?,
            bound: to_u32(g.bound, "grid bound")?,
            sticky: u32::from(g.floor == Floor::Sticky),
            nshapes: to_u32(shapes.len() / 8, "collider shapes")?,
            inv_dx: g.res as f32,
            dx: dx as f32,
            kc: (4.0 / (dx * dx)) as f32,
            gdt_x: (g.gravity[0] * dt) as f32,
            gdt_y: (g.gravity[1] * dt) as f32,
            gdt_z: (g.gravity[2] * dt) as f32,
            lo: dx as f32,
            hi: ((g.res as f64 - 2.0) * dx) as f32,
            friction: friction as f32,
            softness: softness as f32,
            ..MpmParams::of(cx)?
        };
        let np = params.np as usize;
        let det = cx.scatter == Scatter::Deterministic;
        let limits = cx.gpu.limits();
        let limit = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size);
        let chunks = env_chunks(cx.num_envs, limit, g.res, np, det).ok_or_else(|| {
            EngineError::Gpu(format!(
                "mpm.transfer: the grid of one env at G = {} ({} nodes, {} bytes per velocity grid) exceeds the \
                 device's storage binding limit of {limit} bytes; use a smaller grid",
                g.res,
                per_env,
                12 * per_env
            ))
        })?;
        let mut shapes_buf = shapes.clone();
        shapes_buf.resize(shapes.len().max(8), 0.0);
        let gf = if let Floor::Friction(gf) = g.floor { gf as f32 } else { 0.0 };
        let srcs = TransferSources::new(cx.f32_atomics(), det, g.res, gf, &coupling);
        // The pose columns, and the floats of one grid row's pose adjoint sum (deterministic):
        // q̄ and q̄d of the rigid collider (4 + 4), or both poses of every body (7 + 7 each).
        let pose = self.collider.as_ref().map(|c| {
            let [(q, wq), (qd, wqd)] = c.columns();
            Pose { q, qd, slots: (wq + wqd) * nbodies.max(1) }
        });
        let mut kernels = GpuKernels {
            buffers: vec![cx.gpu.storage_f32("mpm.transfer shapes", &shapes_buf)?],
            ..GpuKernels::default()
        };
        for &(e0, envs) in &chunks {
            let chunk = Chunk { base: kernels.buffers.len(), envs, np, res: g.res, per_env, pose };
            let cp = MpmParams {
                n: to_u32(envs * np, "mpm particles of an env chunk")?,
                nodes: to_u32(envs * per_env, "grid nodes of an env chunk")?,
                envs: to_u32(envs, "envs of an env chunk")?,
                e0: to_u32(e0, "first env of an env chunk")?,
                ..params
            };
            kernels.buffers.push(cx.uniform("mpm.transfer", &cp)?);
            kernels.buffers.extend(chunk.buffers(cx, det)?);
            debug_assert_eq!(kernels.buffers.len() - chunk.base, if det { own::DET_LEN } else { own::ATOMIC_LEN });
            kernels.forward.extend(chunk.forward(cx, &srcs, det)?);
            kernels.adjoint.extend(chunk.adjoint(cx, &srcs, det)?);
        }
        Ok(kernels)
    }
}

/// The collider's pose columns (state and adjoint) and the floats of one grid row's pose adjoint
/// sum in deterministic mode (`wgsl/grid_adjoint_det.wgsl`).
#[derive(Clone, Copy)]
struct Pose {
    q: &'static str,
    qd: &'static str,
    slots: usize,
}

/// One env chunk of the transfer: its buffers start at `Own(base)` (layout in [`own`]).
struct Chunk {
    base: usize,
    envs: usize,
    np: usize,
    res: usize,
    per_env: usize,
    /// `None` without a collider.
    pose: Option<Pose>,
}

impl Chunk {
    fn own(&self, i: usize) -> Src {
        Src::Own(self.base + i)
    }

    /// The chunk's buffers after its uniform block, in [`own`] order.
    fn buffers(&self, cx: &GpuBuildCx, det: bool) -> Result<Vec<wgpu::Buffer>, EngineError> {
        let nodes = self.envs * self.per_env;
        let n = self.envs * self.np;
        let buf = |label: &str, len: usize| cx.gpu.storage_f32_zeroed(label, len.max(1));
        let mut out = vec![
            buf("mpm.transfer grid m", nodes)?,
            buf("mpm.transfer grid mv", 3 * nodes)?,
            buf("mpm.transfer grid v", 3 * nodes)?,
            buf("mpm.transfer grid adjoint v", 3 * nodes)?,
            buf("mpm.transfer grid adjoint m", nodes)?,
        ];
        if det {
            let rows = self.envs * self.res * self.res;
            out.extend([
                // Zeroed here, and zeroed again by every scan_local after bin_count's adds.
                buf("mpm.transfer cell counts", nodes)?,
                buf("mpm.transfer cell starts", nodes)?,
                buf("mpm.transfer scan block offsets", nodes.div_ceil(SCAN_BLOCK) + 1)?,
                buf("mpm.transfer particle slots", n)?,
                buf("mpm.transfer binned particles", n)?,
                buf("mpm.transfer reverse g2p scratch", PSCR_PER_PARTICLE * n)?,
                buf("mpm.transfer row pose adjoints", self.pose.map_or(0, |p| p.slots) * rows)?,
                buf("mpm.transfer particles in arrival order", n)?,
                buf("mpm.transfer particle cells", n)?,
            ]);
        }
        Ok(out)
    }

    /// Collider pose (q, qd), or a stand-in buffer without a collider.
    fn pose_src(&self) -> (Src, Src) {
        if let Some(p) = self.pose { (state(p.q), state(p.qd)) } else { (Src::Own(own::SHAPES), Src::Own(own::SHAPES)) }
    }

    fn forward(&self, cx: &GpuBuildCx, srcs: &TransferSources, det: bool) -> Result<Vec<Pass>, EngineError> {
        let (q, qd) = self.pose_src();
        let binds = || {
            vec![
                Bind::rw(state("mpm_x")),
                Bind::rw(state("mpm_v")),
                Bind::rw(state("mpm_C")),
                Bind::rw(state("mpm_F")),
                Bind::read(state("mpm_Fp")),
                Bind::read(state("mpm_stress")),
                Bind::read(model("mpm_mass_vol")),
                Bind::read(q.clone()),
                Bind::read(qd.clone()),
                Bind::read(Src::Own(own::SHAPES)),
                Bind::rw(self.own(own::GM)),
                Bind::rw(self.own(own::GMV)),
                Bind::rw(self.own(own::GV)),
                Bind::uniform(self.base + own::PARAMS),
            ]
        };
        let (n, nodes) = (self.envs * self.np, self.envs * self.per_env);
        let pass = |label: &str, src: &str, entry: &str, count: usize| Pass::new(cx, label, src, entry, binds(), count);
        let mut out = if det {
            let bin = |label: &str, src: &str, entry: &str, count: usize| {
                let binds = vec![
                    Bind::read(state("mpm_x")),
                    Bind::rw(self.own(own::COUNT)),
                    Bind::rw(self.own(own::START)),
                    Bind::rw(self.own(own::BLOCKSUM)),
                    Bind::rw(self.own(own::SLOT)),
                    Bind::rw(self.own(own::SORTED)),
                    Bind::rw(self.own(own::ARRIVAL)),
                    Bind::rw(self.own(own::CELLOF)),
                    Bind::uniform(self.base + own::PARAMS),
                ];
                Pass::new(cx, label, src, entry, binds, count)
            };
            let rows = self.envs * self.res * self.res;
            // The forward layout, then the bins: the gather also runs the grid update.
            let mut gather = binds();
            gather.extend([
                Bind::read(self.own(own::START)),
                Bind::read(self.own(own::BLOCKSUM)),
                Bind::read(self.own(own::SORTED)),
            ]);
            vec![
                bin("mpm.transfer bin_count", &srcs.bin_count, "bin_count", n)?,
                bin("mpm.transfer scan_local", &srcs.bin, "scan_local", 64 * nodes.div_ceil(SCAN_BLOCK))?,
                bin("mpm.transfer scan_blocks", &srcs.bin, "scan_blocks", 64)?,
                bin("mpm.transfer fill", &srcs.bin, "fill", n)?,
                bin("mpm.transfer rank", &srcs.bin, "rank", n)?,
                Pass::new(cx, "mpm.transfer p2g_gather", &srcs.p2g_gather, "p2g_gather", gather, rows)?,
            ]
        } else {
            vec![
                pass("mpm.transfer grid_clear", &srcs.forward, "grid_clear", nodes)?,
                pass("mpm.transfer p2g", &srcs.p2g, "p2g", n)?,
                pass("mpm.transfer grid_update", &srcs.forward, "grid_update", nodes)?,
            ]
        };
        out.push(pass("mpm.transfer g2p", &srcs.forward, "g2p", n)?);
        Ok(out)
    }

    /// Recompute the grid (the forward's passes but G2P, on the pre-state), then reverse G2P
    /// (scatter, or particle pass + node gather), the grid update (per node, or per grid row +
    /// per env for the pose adjoint) and P2G (gather).
    fn adjoint(&self, cx: &GpuBuildCx, srcs: &TransferSources, det: bool) -> Result<Vec<Pass>, EngineError> {
        let (q, qd) = self.pose_src();
        let (n, nodes) = (self.envs * self.np, self.envs * self.per_env);
        let mut g2p_binds = vec![
            Bind::read(state("mpm_x")),
            Bind::read(state("mpm_Fp")),
            Bind::rw(self.own(own::GV)),
            Bind::rw(self.own(own::GVBAR)),
            Bind::rw(adj_state("mpm_x")),
            Bind::rw(adj_state("mpm_v")),
            Bind::rw(adj_state("mpm_C")),
            Bind::rw(adj_state("mpm_F")),
            Bind::rw(adj_state("mpm_Fp")),
            Bind::uniform(self.base + own::PARAMS),
        ];
        let (aq, aqd) = if let Some(p) = self.pose {
            (adj_state(p.q), adj_state(p.qd))
        } else {
            // Never written without a collider (nshapes = 0); any read-write buffer will do.
            (self.own(own::GMBAR), self.own(own::GMBAR))
        };
        let mut grid_binds = vec![
            Bind::read(q),
            Bind::read(qd),
            Bind::read(Src::Own(own::SHAPES)),
            Bind::rw(self.own(own::GM)),
            Bind::rw(self.own(own::GMV)),
            Bind::rw(self.own(own::GVBAR)),
            Bind::rw(self.own(own::GMBAR)),
            Bind::rw(aq),
            Bind::rw(aqd),
            Bind::uniform(self.base + own::PARAMS),
        ];
        let p2g_binds = vec![
            Bind::read(state("mpm_x")),
            Bind::read(state("mpm_v")),
            Bind::read(state("mpm_C")),
            Bind::read(state("mpm_stress")),
            Bind::read(model("mpm_mass_vol")),
            Bind::rw(self.own(own::GVBAR)),
            Bind::rw(self.own(own::GMBAR)),
            Bind::rw(adj_state("mpm_x")),
            Bind::rw(adj_state("mpm_v")),
            Bind::rw(adj_state("mpm_C")),
            Bind::rw(adj_state("mpm_stress")),
            Bind::uniform(self.base + own::PARAMS),
        ];
        let mut out = self.forward(cx, srcs, det)?;
        out.pop();
        if det {
            g2p_binds.push(Bind::rw(self.own(own::PSCR)));
            grid_binds.push(Bind::rw(self.own(own::ROWPOSE)));
            let vbar = vec![
                Bind::read(state("mpm_x")),
                Bind::read(self.own(own::PSCR)),
                Bind::read(self.own(own::START)),
                Bind::read(self.own(own::BLOCKSUM)),
                Bind::read(self.own(own::SORTED)),
                Bind::rw(self.own(own::GVBAR)),
                Bind::uniform(self.base + own::PARAMS),
            ];
            let rows = self.envs * self.res * self.res;
            out.extend([
                Pass::new(cx, "mpm.transfer g2p adjoint", &srcs.g2p_adjoint, "g2p_adjoint", g2p_binds, n)?,
                Pass::new(cx, "mpm.transfer vbar_gather", &srcs.vbar_gather, "vbar_gather", vbar, rows)?,
                Pass::new(
                    cx,
                    "mpm.transfer grid adjoint rows",
                    &srcs.grid_adjoint,
                    "grid_adjoint_rows",
                    grid_binds.clone(),
                    rows,
                )?,
            ]);
            if let Some(p) = self.pose {
                out.push(Pass::new(
                    cx,
                    "mpm.transfer pose_reduce",
                    &srcs.grid_adjoint,
                    "pose_reduce",
                    grid_binds,
                    p.slots * self.envs,
                )?);
            }
        } else {
            out.extend([
                Pass::new(cx, "mpm.transfer vbar_clear", &srcs.vbar_clear, "vbar_clear", g2p_binds.clone(), 3 * nodes)?,
                Pass::new(cx, "mpm.transfer g2p adjoint", &srcs.g2p_adjoint, "g2p_adjoint", g2p_binds, n)?,
                Pass::new(cx, "mpm.transfer grid adjoint", &srcs.grid_adjoint, "grid_adjoint", grid_binds, nodes)?,
            ]);
        }
        out.push(Pass::new(cx, "mpm.transfer p2g adjoint", &srcs.p2g_adjoint, "p2g_adjoint", p2g_binds, n)?);
        Ok(out)
    }
}

/// Params and the (pose coordinate, scale, lo, hi) rows of a drive.
fn drive_buffers(d: &ColliderDrive, cx: &GpuBuildCx) -> Result<Vec<wgpu::Buffer>, EngineError> {
    let params = MpmParams {
        inv_step: (1.0 / (d.substeps as f64 * f64::from(cx.dt))) as f32,
        na: to_u32(d.axes.len(), "collider drive axes")?,
        ..MpmParams::of(cx)?
    };
    let mut rows: Vec<f32> = Vec::new();
    for (k, &ax) in d.axes.iter().enumerate() {
        if ax >= 4 {
            return Err(EngineError::Gpu(format!(
                "mpm.collider_drive: axis {ax} of action {k} is not a pose coordinate"
            )));
        }
        rows.extend([ax as f32, d.scale[k] as f32, d.lo[ax] as f32, d.hi[ax] as f32]);
    }
    rows.resize(rows.len().max(4), 0.0);
    Ok(vec![cx.uniform("mpm.collider_drive", &params)?, cx.gpu.storage_f32("mpm.collider_drive axes", &rows)?])
}

/// GPU: `wgsl/collider.wgsl` and `wgsl/collider_adjoint.wgsl`, one invocation per env.
impl GpuSystem for ColliderDrive {
    fn name(&self) -> &str {
        "mpm.collider_drive"
    }
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError> {
        let buffers = drive_buffers(self, cx)?;
        let fwd = vec![
            Bind::read(state("collider_q")),
            Bind::rw(state("collider_qd")),
            Bind::read(control(&self.act)),
            Bind::read(Src::Own(1)),
            Bind::uniform(0),
        ];
        let adj = vec![
            Bind::read(state("collider_q")),
            Bind::read(control(&self.act)),
            Bind::read(Src::Own(1)),
            Bind::rw(adj_state("collider_q")),
            Bind::rw(adj_state("collider_qd")),
            Bind::rw(adj_control(&self.act)),
            Bind::uniform(0),
        ];
        let fsrc = source(&[include_str!("wgsl/collider.wgsl")]);
        let asrc = source(&[include_str!("wgsl/collider_adjoint.wgsl")]);
        Ok(GpuKernels {
            forward: vec![Pass::new(cx, "mpm.collider_drive", &fsrc, "drive_forward", fwd, cx.num_envs)?],
            adjoint: vec![Pass::new(cx, "mpm.collider_drive adjoint", &asrc, "drive_adjoint", adj, cx.num_envs)?],
            buffers,
        })
    }
}

/// GPU: `wgsl/integrate.wgsl`, forward on (q, qd), adjoint on (q̄d, q̄).
impl GpuSystem for ColliderIntegrate {
    fn name(&self) -> &str {
        "mpm.collider_integrate"
    }
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError> {
        let params = cx.uniform("mpm.collider_integrate", &MpmParams::of(cx)?)?;
        let src = source(&[include_str!("wgsl/integrate.wgsl")]);
        let n = 4 * cx.num_envs;
        let pass = |label: &str, dst: Src, from: Src| {
            Pass::new(cx, label, &src, "integrate", vec![Bind::rw(dst), Bind::read(from), Bind::uniform(0)], n)
        };
        Ok(GpuKernels {
            forward: vec![pass("mpm.collider_integrate", state("collider_q"), state("collider_qd"))?],
            adjoint: vec![pass("mpm.collider_integrate adjoint", adj_state("collider_qd"), adj_state("collider_q"))?],
            buffers: vec![params],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_layout_is_twenty_two_scalars() {
        use encase::ShaderType;
        assert_eq!(u64::from(MpmParams::min_size()), 88);
    }

    #[test]
    fn env_chunks_cover_the_envs_in_equal_chunks_within_the_limit() {
        const MIB: u64 = 1 << 20;
        // 3 · 48³ floats = 1 327 104 bytes per env: 101 envs per 128 MiB binding.
        assert_eq!(env_chunks(100, 128 * MIB, 48, 2592, false), Some(vec![(0, 100)]));
        assert_eq!(env_chunks(250, 128 * MIB, 48, 2592, true), Some(vec![(0, 84), (84, 84), (168, 82)]));
        // Deterministic: 12 floats per particle can be the larger buffer.
        assert_eq!(env_chunks(4, 256 << 10, 16, 2000, false), Some(vec![(0, 4)]));
        assert_eq!(env_chunks(4, 256 << 10, 16, 2000, true), Some(vec![(0, 2), (2, 2)]));
        for envs in 1..40 {
            let chunks = env_chunks(envs, 64 * MIB, 48, 1000, true).unwrap();
            let mut next = 0;
            for &(e0, n) in &chunks {
                assert_eq!(e0, next);
                assert!(n > 0 && 4 * (3 * 48usize.pow(3) * n) as u64 <= 64 * MIB);
                next += n;
            }
            assert_eq!(next, envs);
            assert!(chunks.len() == envs.div_ceil(50), "{envs} envs: {chunks:?}");
        }
        // One env over the limit.
        assert_eq!(env_chunks(2, MIB, 48, 10, false), None);
    }
}
