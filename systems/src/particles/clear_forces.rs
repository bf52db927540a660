//! `particles.clear_forces`: zeroes the force accumulator `particle_f` at the start of a substep.
//!
//! Forward: f ← 0. Adjoint: f is overwritten with a constant, so ∂L/∂f(before) = 0.

use diffsim_engine::{ColumnAccess, ModelView, Real, StepCx, System, View, ViewMut};

#[derive(Clone, Copy, Debug, Default)]
pub struct ClearForces;

impl<R: Real> System<R> for ClearForces {
    fn name(&self) -> &str {
        "particles.clear_forces"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        vec![ColumnAccess::write("particle_f", 3)]
    }
    fn forward(&self, _: &StepCx, _: &ModelView, _: &View<R>, state: &mut ViewMut<R>) {
        state.col_mut("particle_f").fill(R::zero());
    }
    fn adjoint(&self, _: &StepCx, _: &ModelView, _: &View<R>, _: &View<R>, adj: &mut ViewMut<R>, _: &mut ViewMut<R>) {
        adj.col_mut("particle_f").fill(R::zero());
    }
}
