//! GPU mirrors (`gpu_sim::GpuSystem`) of the articulation contact systems:
//! `articulation.ground_contact` (`wgsl/contact_ground*.wgsl`) and `articulation.shape_contact` /
//! `articulation.shape_pair_contact` between spheres, capsules and boxes (`wgsl/contact_pair*.wgsl`,
//! `wgsl/contact_box.wgsl`), forward and adjoint, with the same formulas, branches and order of
//! f32 operations as the CPU systems (`contact.rs`, `shape_contact.rs`). The shared WGSL
//! (`wgsl/contact_common.wgsl`: the uniform block [`ContactParams`], rotations, the penalty law
//! and its adjoint; `wgsl/contact_shapes.wgsl`: the shape columns) is assembled in front of each
//! kernel by `particles::gpu::assemble`.
//!
//! Reductions, in every `Scatter` mode (they evaluate each contact once, so atomics have nothing
//! to save and the results are reproducible):
//! - ground: one invocation per body sums its shapes' wrenches in shape order (the CPU loop's).
//! - shape pairs: one invocation per pair writes its wrench (or its 2 × 13 pose and twist
//!   adjoints) into a scratch buffer, then one invocation per body adds its entries over a CSR
//!   body → (pair, side) adjacency in pair order, as the CPU loop adds them. A pair with a box
//!   has several contact points (up to 3 for a capsule whose core enters the box, up to 40 for
//!   two boxes); its invocation generates them one at a time in the CPU's order and adds their
//!   forces from zero into the pair's one wrench, as `shape_contact::pair_wrench` does, so the
//!   scratch keeps one fixed-size row per pair and the sums round as the CPU's.
//!
//! Adjoint of a box pair (`box_pair_adjoint`, by hand): point by point, the penalty law's
//! adjoint, then the reverse of that point's geometry in the branch the forward took (nearest
//! face and its sign, or the closest point with its clamped coordinates; the core parameter s of
//! a capsule outside the box: constant 0 or 1, free −num/den, or clamped to a face crossing
//! (σ hᵢ − aᵢ)/eᵢ; box–box: the sample's own box and the box it is inside), into each box's
//! centre and rotation and the core's end and direction, then into the bodies' poses.
//!
//! The pair list (which shapes collide) is fixed by the model, so it is built once on the host by
//! the CPU's own rule (`shape_contact::Shapes::pairs`), per env, with each pair's mean contact
//! parameters and radii computed in f64 and rounded once as the CPU's `from_f64` does.

use diffsim_engine::articulation::{SHAPE_BOX, SHAPE_CAPSULE, SHAPE_SPHERE};
use diffsim_engine::gpu_sim::{Bind, GpuBuildCx, GpuKernels, GpuSystem, Pass, Src, adj_state, model, state, topology};
use diffsim_engine::{EngineError, Model};

use super::shape_contact;
use crate::particles::gpu::{assemble, to_u32};

/// The uniform block of every contact kernel, laid out by encase (field order = WGSL order).
#[derive(Clone, Copy, Debug, Default, PartialEq, encase::ShaderType)]
pub struct ContactParams {
    /// Invocations that do work in this dispatch, over all envs (bodies or shape pairs).
    pub n: u32,
    /// Shapes per env.
    pub ns: u32,
    /// Bodies per env.
    pub nb: u32,
}

const COMMON: &str = include_str!("wgsl/contact_common.wgsl");
/// The 3x3 type, dot/cross and the quaternion rotation with its adjoint (`wgsl/rotation.wgsl`),
/// shared with the locomotion tasks' torso kernels.
pub const ROTATION: &str = include_str!("wgsl/rotation.wgsl");
const SHAPES: &str = include_str!("wgsl/contact_shapes.wgsl");
const GROUND: &str = include_str!("wgsl/contact_ground.wgsl");
const GROUND_FORWARD: &str = include_str!("wgsl/contact_ground_forward.wgsl");
const GROUND_ADJOINT: &str = include_str!("wgsl/contact_ground_adjoint.wgsl");
const PAIR: &str = include_str!("wgsl/contact_pair.wgsl");
const PAIR_FORWARD: &str = include_str!("wgsl/contact_pair_forward.wgsl");
const PAIR_ADJOINT: &str = include_str!("wgsl/contact_pair_adjoint.wgsl");
const PAIR_BOX: &str = include_str!("wgsl/contact_box.wgsl");

/// f32 values per pair in the pair-parameter buffer: kₑ, k_d, k_f, μ, reach, reach².
const PAIR_C: usize = 6;
/// Adjoint scratch per pair: both bodies' pose (7) and twist (6) adjoints.
const PAIR_ADJ: usize = 26;

/// Kernel source: the shared block, the shape columns, then `parts`.
fn source(parts: &[&str]) -> String {
    let mut all = vec![ROTATION, SHAPES];
    all.extend_from_slice(parts);
    assemble(COMMON, &all)
}

/// The five shape columns, bindings 0–4 of every contact kernel.
fn shape_binds() -> Vec<Bind> {
    vec![
        Bind::read(model("shape_size")),
        Bind::read(model("shape_pose")),
        Bind::read(model("shape_contact")),
        Bind::read(topology("shape_body")),
        Bind::read(topology("shape_kind")),
    ]
}

fn params(cx: &GpuBuildCx, n: usize) -> Result<ContactParams, EngineError> {
    Ok(ContactParams {
        n: to_u32(n, "contact dispatch size")?,
        ns: to_u32(cx.count("shape_kind"), "shapes per env")?,
        nb: to_u32(cx.count("joint_kind"), "bodies per env")?,
    })
}

/// GPU mirror of `articulation.ground_contact`: one invocation per body, forward and adjoint.
#[derive(Clone, Copy, Debug, Default)]
pub struct GroundContactGpu;

impl GpuSystem for GroundContactGpu {
    fn name(&self) -> &str {
        "articulation.ground_contact"
    }
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError> {
        let n = cx.count("joint_kind") * cx.num_envs;
        let mut fwd = shape_binds();
        fwd.extend([Bind::read(state("body_q")), Bind::read(state("body_qd")), Bind::rw(state("body_f"))]);
        fwd.push(Bind::uniform(0));
        let mut adj = shape_binds();
        adj.extend([
            Bind::read(state("body_q")),
            Bind::read(state("body_qd")),
            Bind::read(adj_state("body_f")),
            Bind::rw(adj_state("body_q")),
            Bind::rw(adj_state("body_qd")),
            Bind::uniform(0),
        ]);
        let fsrc = source(&[GROUND, GROUND_FORWARD]);
        let asrc = source(&[GROUND, GROUND_ADJOINT]);
        Ok(GpuKernels {
            buffers: vec![cx.uniform("articulation.ground_contact", &params(cx, n)?)?],
            forward: vec![Pass::new(cx, "articulation.ground_contact", &fsrc, "ground_forward", fwd, n)?],
            adjoint: vec![Pass::new(cx, "articulation.ground_contact adjoint", &asrc, "ground_adjoint", adj, n)?],
        })
    }
}

/// The host-side pair table of a shape-contact system over all envs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PairTable {
    /// Per pair (shape A, shape B, body A, body B), global indices (env · count + local).
    pub rows: Vec<u32>,
    /// Per pair [`PAIR_C`] values: mean (kₑ, k_d, k_f, μ), `reach` and its square: r_A + r_B
    /// between two spheres or capsules, the segment's radius against a box, 0 for two boxes.
    pub params: Vec<f32>,
}

impl PairTable {
    pub fn len(&self) -> usize {
        self.rows.len() / 4
    }
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The pairs the CPU system tests (`pairs`, or every pair of unrelated bodies if None), env by
    /// env in the CPU's order. Pairs with a shape of unknown kind are dropped (the CPU skips
    /// them).
    pub fn new(system: &str, model: &Model, pairs: Option<&[(u32, u32)]>) -> Result<Self, EngineError> {
        let view = model.view_all();
        let sh = shape_contact::Shapes::of(&view);
        let mut table = Self::default();
        let mut env_pairs = Vec::new();
        for e in 0..view.num_envs() {
            sh.pairs(e, pairs, &mut env_pairs);
            for &(i, j) in &env_pairs {
                if i as usize >= sh.ns || j as usize >= sh.ns {
                    return Err(EngineError::Gpu(format!(
                        "{system}: pair ({i}, {j}) names a shape beyond the {} shapes per env",
                        sh.ns
                    )));
                }
                let (si, sj) = (e * sh.ns + i as usize, e * sh.ns + j as usize);
                let known = |s: usize| [SHAPE_SPHERE, SHAPE_CAPSULE, SHAPE_BOX].contains(&sh.kind[s]);
                if !(known(si) && known(sj)) {
                    continue;
                }
                let body = |s: usize| to_u32(e * sh.nb + sh.body[s] as usize, "global body index");
                table.rows.extend([to_u32(si, "global shape index")?, to_u32(sj, "global shape index")?]);
                table.rows.extend([body(si)?, body(sj)?]);
                let c = sh.params(si, sj);
                // Segment–segment: r_A + r_B; segment–box: the segment's radius (the box's size
                // is its half extents); box–box: unused.
                let radius = |s: usize| if sh.kind[s] == SHAPE_BOX { 0.0 } else { sh.size[3 * s] };
                let reach = radius(si) + radius(sj);
                table.params.extend(c.iter().map(|&x| x as f32));
                table.params.extend([reach as f32, (reach * reach) as f32]);
            }
        }
        debug_assert_eq!(table.params.len(), PAIR_C * table.len());
        Ok(table)
    }

    /// CSR adjacency body → pair sides over `bodies` global bodies: `offsets[b]..offsets[b + 1]`
    /// index `entries`, an entry is `2 k + side` (side 0: the body is A, 1: B), in increasing
    /// pair k, the order the CPU loop adds them in.
    pub fn adjacency(&self, bodies: usize) -> (Vec<u32>, Vec<u32>) {
        let body = |k: usize, side: usize| self.rows[4 * k + 2 + side] as usize;
        let mut offsets = vec![0u32; bodies + 1];
        for k in 0..self.len() {
            for side in 0..2 {
                offsets[body(k, side) + 1] += 1;
            }
        }
        for b in 0..bodies {
            offsets[b + 1] += offsets[b];
        }
        let mut next = offsets.clone();
        let mut entries = vec![0u32; 2 * self.len()];
        for k in 0..self.len() {
            for side in 0..2 {
                let b = body(k, side);
                entries[next[b] as usize] = (2 * k + side) as u32;
                next[b] += 1;
            }
        }
        (offsets, entries)
    }
}

/// GPU mirror of `articulation.shape_contact` (`pairs` None) and `shape_pair_contact`.
#[derive(Clone, Debug, Default)]
pub struct ShapeContactGpu {
    pub name: &'static str,
    pub pairs: Option<Vec<(u32, u32)>>,
}

impl GpuSystem for ShapeContactGpu {
    fn name(&self) -> &str {
        self.name
    }
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError> {
        let table = PairTable::new(self.name, cx.model, self.pairs.as_deref())?;
        if table.is_empty() {
            return Ok(GpuKernels::default());
        }
        let (np, bodies) = (table.len(), cx.count("joint_kind") * cx.num_envs);
        let (offsets, entries) = table.adjacency(bodies);
        let buffers = vec![
            cx.uniform(&format!("{} pairs", self.name), &params(cx, np)?)?,
            cx.uniform(&format!("{} bodies", self.name), &params(cx, bodies)?)?,
            cx.gpu.storage_u32(&format!("{} pair rows", self.name), &table.rows)?,
            cx.gpu.storage_f32(&format!("{} pair params", self.name), &table.params)?,
            cx.gpu.storage_f32_zeroed(&format!("{} scratch", self.name), PAIR_ADJ * np)?,
            cx.gpu.storage_u32(&format!("{} adjacency offsets", self.name), &offsets)?,
            cx.gpu.storage_u32(&format!("{} adjacency", self.name), &entries)?,
        ];
        let common = |mut b: Vec<Bind>| {
            b.extend([
                Bind::read(Src::Own(2)),
                Bind::read(Src::Own(3)),
                Bind::read(state("body_q")),
                Bind::read(state("body_qd")),
                Bind::rw(Src::Own(4)),
                Bind::read(Src::Own(5)),
                Bind::read(Src::Own(6)),
            ]);
            b
        };
        let fwd = |own| {
            let mut b = common(shape_binds());
            b.extend([Bind::rw(state("body_f")), Bind::uniform(own)]);
            b
        };
        let adj = |own| {
            let mut b = common(shape_binds());
            b.extend([
                Bind::read(adj_state("body_f")),
                Bind::rw(adj_state("body_q")),
                Bind::rw(adj_state("body_qd")),
                Bind::uniform(own),
            ]);
            b
        };
        let fsrc = source(&[PAIR, PAIR_BOX, PAIR_FORWARD]);
        let asrc = source(&[PAIR, PAIR_BOX, PAIR_ADJOINT]);
        let label = |what: &str| format!("{} {what}", self.name);
        Ok(GpuKernels {
            forward: vec![
                Pass::new(cx, &label("pairs"), &fsrc, "pair_forces", fwd(0), np)?,
                Pass::new(cx, &label("gather"), &fsrc, "pair_gather", fwd(1), bodies)?,
            ],
            adjoint: vec![
                Pass::new(cx, &label("adjoint pairs"), &asrc, "pair_adjoint", adj(0), np)?,
                Pass::new(cx, &label("adjoint gather"), &asrc, "pair_adjoint_gather", adj(1), bodies)?,
            ],
            buffers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjacency_lists_each_side_once_in_pair_order() {
        // Pairs over bodies (0, 1), (1, 2), (0, 2).
        let table = PairTable { rows: vec![0, 1, 0, 1, 1, 2, 1, 2, 0, 2, 0, 2], params: vec![0.0; 3 * PAIR_C] };
        let (off, ent) = table.adjacency(3);
        assert_eq!(off, vec![0, 2, 4, 6]);
        assert_eq!(ent, vec![0, 4, 1, 2, 3, 5]);
    }

    #[test]
    fn params_layout_is_three_scalars() {
        use encase::ShaderType;
        assert_eq!(u64::from(ContactParams::min_size()), 12);
    }
}
