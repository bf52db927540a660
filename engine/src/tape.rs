//! `Tape`: what backward needs of a rollout: the state at the start of every env step
//! (checkpoint), the control of every step, and which environments were reset before which step.
//!
//! Substeps are *not* stored: backward recomputes one step's substeps from its checkpoint
//! (`Schedule::backward_step`). Memory is O(H · state) for the checkpoints plus O(K + S) states
//! of scratch for the one step being differentiated, instead of O(H · K · state).

use crate::columns::Columns;
use crate::scalar::Real;

#[derive(Clone, Debug, Default)]
pub struct Tape<R: Real> {
    pub(crate) checkpoints: Vec<Columns<R>>,
    pub(crate) controls: Vec<Columns<R>>,
    /// `cuts[t]`: environments reset right before step t; their adjoint stops there.
    pub(crate) cuts: Vec<Vec<usize>>,
    /// `diverged[t]`: environments whose step t produced a non-finite state; backward drops their
    /// gradient through step t (they are reset after it).
    pub(crate) diverged: Vec<Vec<usize>>,
    /// Global env-step index of each recorded step (systems may depend on it).
    pub(crate) steps: Vec<usize>,
    pending_cuts: Vec<usize>,
}

/// Bytes a tape holds and needs, for reports and memory budgets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TapeMemory {
    pub steps: usize,
    pub checkpoint_bytes: usize,
    pub control_bytes: usize,
    /// Peak scratch of one step's recompute (K + 2 + S states).
    pub recompute_bytes: usize,
}

impl TapeMemory {
    pub fn total(&self) -> usize {
        self.checkpoint_bytes + self.control_bytes + self.recompute_bytes
    }
}

impl<R: Real> Tape<R> {
    pub fn new() -> Self {
        Self {
            checkpoints: Vec::new(),
            controls: Vec::new(),
            cuts: Vec::new(),
            diverged: Vec::new(),
            steps: Vec::new(),
            pending_cuts: Vec::new(),
        }
    }
    pub fn len(&self) -> usize {
        self.checkpoints.len()
    }
    pub fn is_empty(&self) -> bool {
        self.checkpoints.is_empty()
    }
    /// Records the state and control at the start of the next step.
    pub fn record(&mut self, step: usize, state: &Columns<R>, control: &Columns<R>) {
        self.steps.push(step);
        self.checkpoints.push(state.clone());
        self.controls.push(control.clone());
        self.cuts.push(std::mem::take(&mut self.pending_cuts));
        self.diverged.push(Vec::new());
    }
    /// Marks environments whose last recorded step diverged (NaN/inf).
    pub fn mark_diverged(&mut self, envs: &[usize]) {
        if let Some(d) = self.diverged.last_mut() {
            d.extend_from_slice(envs);
        }
    }
    pub fn diverged(&self, t: usize) -> &[usize] {
        &self.diverged[t]
    }
    /// Marks environments reset before the next recorded step.
    pub fn cut(&mut self, envs: &[usize]) {
        self.pending_cuts.extend_from_slice(envs);
    }
    pub fn checkpoint(&self, t: usize) -> &Columns<R> {
        &self.checkpoints[t]
    }
    pub fn control(&self, t: usize) -> &Columns<R> {
        &self.controls[t]
    }
    pub fn step_index(&self, t: usize) -> usize {
        self.steps[t]
    }
    pub fn cuts(&self, t: usize) -> &[usize] {
        &self.cuts[t]
    }
    pub fn memory(&self, recompute_states: usize) -> TapeMemory {
        let state_bytes = self.checkpoints.first().map_or(0, Columns::bytes);
        TapeMemory {
            steps: self.len(),
            checkpoint_bytes: self.checkpoints.iter().map(Columns::bytes).sum(),
            control_bytes: self.controls.iter().map(Columns::bytes).sum(),
            recompute_bytes: recompute_states * state_bytes,
        }
    }
}
