//! The `System` trait: one differentiable stage of the step, with its forward and its adjoint.
//!
//! A system reads and writes named columns of a chunk of environments. Its adjoint receives
//! `adj_state` holding ∂L/∂(state after the system) and must leave ∂L/∂(state before the system)
//! in it, *accumulating* into the columns it reads and into `adj_control`. For a column the system
//! overwrites (`Access::Write`) that means: read the incoming adjoint, zero it, then accumulate
//! through the Jacobian; for `Access::Accumulate` (`f += g(x)`) the incoming adjoint passes through
//! unchanged. This module owns the contract only; systems live in the `diffsim-systems` crate.

use crate::columns::{View, ViewMut};
use crate::error::ColumnSet;
use crate::scalar::Real;

/// How a system touches a column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    /// Overwrites the column (its previous value is read only if also declared `Read`).
    Write,
    /// Adds into a column that an earlier system of the same stage initialized (`f += g`).
    Accumulate,
}

/// One declared column access: set, name, width per entity, mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnAccess {
    pub set: ColumnSet,
    pub name: String,
    pub width: usize,
    pub access: Access,
}

/// Width placeholder for columns whose width the scene decides (e.g. `joint_q`, `[1, Q]`).
pub const ANY_WIDTH: usize = usize::MAX;

impl ColumnAccess {
    pub fn read(set: ColumnSet, name: &str, width: usize) -> Self {
        Self { set, name: name.to_string(), width, access: Access::Read }
    }
    pub fn write(name: &str, width: usize) -> Self {
        Self { set: ColumnSet::State, name: name.to_string(), width, access: Access::Write }
    }
    pub fn accumulate(name: &str, width: usize) -> Self {
        Self { set: ColumnSet::State, name: name.to_string(), width, access: Access::Accumulate }
    }
    pub fn state(name: &str, width: usize) -> Self {
        Self::read(ColumnSet::State, name, width)
    }
    pub fn control(name: &str, width: usize) -> Self {
        Self::read(ColumnSet::Control, name, width)
    }
    pub fn model(name: &str, width: usize) -> Self {
        Self::read(ColumnSet::Model, name, width)
    }
}

/// Where in the env step a system runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Once per env step, before the substeps (e.g. map actions to targets).
    Step,
    /// `substeps` times per env step (forces, integration).
    Substep,
    /// Once per env step, after the substeps (observations, rewards).
    Post,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stage::Step => "step",
            Stage::Substep => "substep",
            Stage::Post => "post",
        })
    }
}

/// Timing context handed to systems.
#[derive(Clone, Copy, Debug)]
pub struct StepCx {
    /// Length of one substep, seconds.
    pub dt: f64,
    /// Env step index since the last `Sim::reset` (for error messages and schedules of targets).
    pub step: usize,
    pub substep: usize,
}

/// Model columns a system can read: real parameters and integer topology.
pub struct ModelView<'a> {
    pub params: View<'a, f64>,
    pub topology: View<'a, u32>,
}

impl<'a> ModelView<'a> {
    pub fn num_envs(&self) -> usize {
        self.params.num_envs()
    }
    /// The model of some of this view's environments (local indices).
    pub fn sub(&self, envs: std::ops::Range<usize>) -> ModelView<'a> {
        ModelView { params: self.params.sub(envs.clone()), topology: self.topology.sub(envs) }
    }
    /// A model parameter column (f64, converted by the system into its scalar).
    pub fn param(&self, name: &str) -> &'a [f64] {
        self.params.col(name)
    }
    /// An integer topology column (spring endpoints, tet vertices).
    pub fn topo(&self, name: &str) -> &'a [u32] {
        self.topology.col(name)
    }
    /// Entities per env of a model column, from its layout.
    pub fn count(&self, name: &str) -> usize {
        self.params.layout().spec(name).or_else(|| self.topology.layout().spec(name)).map(|s| s.count).unwrap_or(0)
    }
}

/// One differentiable stage. Generic over the scalar so the same code runs in f32, f64 and duals.
pub trait System<R: Real>: Send + Sync {
    /// Dotted name, e.g. `particles.springs`.
    fn name(&self) -> &str;
    /// Every column the system reads or writes, with its width per entity.
    fn access(&self) -> Vec<ColumnAccess>;
    /// Advances `state` in place for every env of the chunk.
    fn forward(&self, cx: &StepCx, model: &ModelView, control: &View<R>, state: &mut ViewMut<R>);
    /// Pulls ∂L/∂(state after) back to ∂L/∂(state before), accumulating into `adj_control`.
    /// `pre` is the state this system's forward saw.
    fn adjoint(
        &self,
        cx: &StepCx,
        model: &ModelView,
        control: &View<R>,
        pre: &View<R>,
        adj_state: &mut ViewMut<R>,
        adj_control: &mut ViewMut<R>,
    );
    /// The system's GPU mirror (WGSL forward and adjoint kernels with the same semantics, see
    /// `gpu_sim`), or `None` when it has none yet; `GpuSim::new` names the first such system.
    fn gpu(&self) -> Option<Box<dyn crate::gpu_sim::GpuSystem>> {
        None
    }
}
