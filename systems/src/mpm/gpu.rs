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
//! reverse tape) adds the deciding body's two pose adjoints with atomics. Which coupling, the
//! body count and 1/dt are WGSL constants of the transfer's kernels.
//!
//! **Grid.** `mpm.transfer` owns one dense grid per env of G³ nodes over the env's domain
//! [0, 1]³ (`Own` buffers: mass, momentum, velocity, and for the adjoint ∂L/∂velocity, turned
//! in place into ∂L/∂momentum, and ∂L/∂mass: 11 floats per node, 4.9 MiB per env at G = 48). The
//! CPU uses a bounding-box sub-grid with the same global node indices, so both see the same
//! cells and boundary conditions. The grid is scratch: it never enters the state, the tape or
//! the recompute buffers. Every node is visited by the clear and grid-update passes, which a real
//! GPU does in microseconds; on lavapipe the ~6 dispatches per substep dominate a step.
//!
//! **Reduction.** P2G and the G2P adjoint scatter into grid nodes with atomic adds (native
//! `atomicAdd` on `atomic<f32>` where the device has `SHADER_FLOAT32_ATOMIC`, else a
//! compare-exchange loop on the u32 bits, chosen at build time as for the springs) in both
//! `Scatter` modes: a fixed-order MPM reduction would need a per-step particle sort. The order
//! of the additions into a node therefore varies from run to run, and the results differ from
//! the CPU's in the last bits of each node sum (tolerances in tests/tests/gpu_mpm.rs).
//!
//! **SVD.** f32 Jacobi on FᵀF (at most 6 sweeps) with the CPU's sign conventions (`svd.rs`);
//! the CPU's f32 path computes its SVD in f64, so the material's outputs agree to f32
//! resolution of the singular values, not bitwise.

use diffsim_engine::EngineError;
use diffsim_engine::gpu_sim::{
    Bind, GpuBuildCx, GpuKernels, GpuSystem, Pass, Src, adj_control, adj_state, control, model, state,
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

/// Own buffers of the transfer, by index.
mod own {
    pub const PARAMS: usize = 0;
    pub const SHAPES: usize = 1;
    pub const GM: usize = 2;
    pub const GMV: usize = 3;
    pub const GV: usize = 4;
    pub const GVBAR: usize = 5;
    pub const GMBAR: usize = 6;
}

/// GPU: `wgsl/transfer.wgsl` + `wgsl/p2g.wgsl`: grid_clear (per node), p2g (per particle,
/// atomic scatter), grid_update (per node), g2p (per particle).
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
        let nodes = per_env * cx.num_envs;
        let (dx, dt) = (g.dx(), f64::from(cx.dt));
        // The coupling's shapes (for `Bodies`, slot 7 of each row is the shape's body), Coulomb
        // constants and the WGSL constants of `wgsl/collider_bodies.wgsl`.
        let (shapes, friction, softness, nbodies) = match &self.collider {
            None => (Vec::new(), 0.0, 0.0, 0),
            Some(Coupling::Rigid(c)) => (shape_rows(&c.shapes), c.friction, c.softness, 0),
            Some(Coupling::Bodies(b)) => (body_shape_rows(b)?, b.friction, b.softness, b.bodies),
        };
        let coupling = format!(
            "const BODIES: bool = {};\nconst NBODIES: u32 = {}u;\nconst INV_DT: f32 = {:?};\nconst CULL_RANGE: f32 = \
             {:?};\n",
            nbodies > 0,
            to_u32(nbodies, "collider bodies")?,
            (1.0 / dt) as f32,
            if softness > 0.0 { ((1.0 / super::collider::MIN_INFLUENCE).ln() / softness) as f32 } else { 0.0 },
        );
        let params = MpmParams {
            res: to_u32(g.res, "grid res")?,
            nodes: to_u32(nodes, "grid nodes over all envs")?,
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
        let n = params.n as usize;
        let mut shapes_buf = shapes.clone();
        shapes_buf.resize(shapes.len().max(8), 0.0);
        // One dense grid per env: a 48³ grid is 1.3 MiB per env and per vector column, so
        // lavapipe's 128 MiB binding limit is reached near 100 envs; say which knob to turn.
        let grid = |label: &str, len: usize| {
            cx.gpu.storage_f32_zeroed(label, len).map_err(|e| {
                EngineError::Gpu(format!(
                    "mpm.transfer: the grids of {} envs at G = {} ({nodes} nodes) do not fit: {e}; use fewer envs or \
                     a smaller grid",
                    cx.num_envs, g.res
                ))
            })
        };
        let buffers = vec![
            cx.uniform("mpm.transfer", &params)?,
            cx.gpu.storage_f32("mpm.transfer shapes", &shapes_buf)?,
            grid("mpm.transfer grid m", nodes)?,
            grid("mpm.transfer grid mv", 3 * nodes)?,
            grid("mpm.transfer grid v", 3 * nodes)?,
            grid("mpm.transfer grid adjoint v", 3 * nodes)?,
            grid("mpm.transfer grid adjoint m", nodes)?,
        ];
        let (q, qd) = if let Some(c) = &self.collider {
            let [(q, _), (qd, _)] = c.columns();
            (state(q), state(qd))
        } else {
            (Src::Own(own::SHAPES), Src::Own(own::SHAPES))
        };
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
                Bind::rw(Src::Own(own::GM)),
                Bind::rw(Src::Own(own::GMV)),
                Bind::rw(Src::Own(own::GV)),
                Bind::uniform(own::PARAMS),
            ]
        };
        // The floor's friction coefficient is a constant of the kernels (0: slip or sticky).
        let gf = if let Floor::Friction(gf) = g.floor { gf as f32 } else { 0.0 };
        let tc = &format!("const GROUND_FRICTION: f32 = {gf:e};\n{}", include_str!("wgsl/transfer_common.wgsl"));
        let sdf = format!(
            "{coupling}{}\n{}",
            include_str!("wgsl/collider_sdf.wgsl"),
            include_str!("wgsl/collider_bodies.wgsl")
        );
        let sdf = sdf.as_str();
        let bind = include_str!("wgsl/transfer_bind.wgsl");
        let plain = bind.replace("GRID_T", "f32");
        let native = cx.f32_atomics();
        let atomic = atomic_source(&bind.replace("GRID_T", "atomic<ATOMIC_T>"), native, &[]);
        let p2g = atomic_source(include_str!("wgsl/p2g.wgsl"), native, &["gm", "gmv"]);
        let fsrc = source(&[&plain, tc, sdf, include_str!("wgsl/transfer.wgsl")]);
        let psrc = source(&[&atomic, tc, sdf, &p2g]);
        let pass = |label: &str, src: &str, entry: &str, count: usize| Pass::new(cx, label, src, entry, binds(), count);
        let forward = || -> Result<Vec<Pass>, EngineError> {
            Ok(vec![
                pass("mpm.transfer grid_clear", &fsrc, "grid_clear", nodes)?,
                pass("mpm.transfer p2g", &psrc, "p2g", n)?,
                pass("mpm.transfer grid_update", &fsrc, "grid_update", nodes)?,
                pass("mpm.transfer g2p", &fsrc, "g2p", n)?,
            ])
        };
        // Adjoint: recompute the grid (the forward's first three passes on the pre-state), then
        // reverse G2P (scatter), the grid update (per node) and P2G (gather).
        let g2p_binds = vec![
            Bind::read(state("mpm_x")),
            Bind::read(state("mpm_Fp")),
            Bind::rw(Src::Own(own::GV)),
            Bind::rw(Src::Own(own::GVBAR)),
            Bind::rw(adj_state("mpm_x")),
            Bind::rw(adj_state("mpm_v")),
            Bind::rw(adj_state("mpm_C")),
            Bind::rw(adj_state("mpm_F")),
            Bind::rw(adj_state("mpm_Fp")),
            Bind::uniform(own::PARAMS),
        ];
        let (aq, aqd) = if let Some(c) = &self.collider {
            let [(q, _), (qd, _)] = c.columns();
            (adj_state(q), adj_state(qd))
        } else {
            // Never written without a collider (nshapes = 0); any read-write buffer will do.
            (Src::Own(own::GMBAR), Src::Own(own::GMBAR))
        };
        let grid_binds = vec![
            Bind::read(q.clone()),
            Bind::read(qd.clone()),
            Bind::read(Src::Own(own::SHAPES)),
            Bind::rw(Src::Own(own::GM)),
            Bind::rw(Src::Own(own::GMV)),
            Bind::rw(Src::Own(own::GVBAR)),
            Bind::rw(Src::Own(own::GMBAR)),
            Bind::rw(aq.clone()),
            Bind::rw(aqd.clone()),
            Bind::uniform(own::PARAMS),
        ];
        let p2g_binds = vec![
            Bind::read(state("mpm_x")),
            Bind::read(state("mpm_v")),
            Bind::read(state("mpm_C")),
            Bind::read(state("mpm_stress")),
            Bind::read(model("mpm_mass_vol")),
            Bind::rw(Src::Own(own::GVBAR)),
            Bind::rw(Src::Own(own::GMBAR)),
            Bind::rw(adj_state("mpm_x")),
            Bind::rw(adj_state("mpm_v")),
            Bind::rw(adj_state("mpm_C")),
            Bind::rw(adj_state("mpm_stress")),
            Bind::uniform(own::PARAMS),
        ];
        let g2p_adj = include_str!("wgsl/g2p_adjoint.wgsl");
        let clear_src = source(&[&g2p_adj.replace("VBAR_T", "f32"), tc, include_str!("wgsl/g2p_adjoint_clear.wgsl")]);
        let g2p_src = source(&[
            &atomic_source(&g2p_adj.replace("VBAR_T", "atomic<ATOMIC_T>"), native, &[]),
            tc,
            &atomic_source(include_str!("wgsl/g2p_adjoint_body.wgsl"), native, &["gvbar"]),
        ]);
        let grid_src =
            source(&[&atomic_source(include_str!("wgsl/grid_adjoint.wgsl"), native, &["aq", "aqd"]), tc, sdf]);
        let p2g_src = source(&[include_str!("wgsl/p2g_adjoint.wgsl"), tc]);
        let mut adjoint = forward()?;
        adjoint.pop();
        adjoint.extend([
            Pass::new(cx, "mpm.transfer vbar_clear", &clear_src, "vbar_clear", g2p_binds.clone(), 3 * nodes)?,
            Pass::new(cx, "mpm.transfer g2p adjoint", &g2p_src, "g2p_adjoint", g2p_binds, n)?,
            Pass::new(cx, "mpm.transfer grid adjoint", &grid_src, "grid_adjoint", grid_binds, nodes)?,
            Pass::new(cx, "mpm.transfer p2g adjoint", &p2g_src, "p2g_adjoint", p2g_binds, n)?,
        ]);
        Ok(GpuKernels { forward: forward()?, adjoint, buffers })
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
    fn params_layout_is_twenty_one_scalars() {
        use encase::ShaderType;
        assert_eq!(u64::from(MpmParams::min_size()), 84);
    }
}
