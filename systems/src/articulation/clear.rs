//! `articulation.clear`: zeroes the accumulators `joint_tau` and `body_f` at the start of a
//! substep. Adjoint: both are overwritten with constants, so their adjoints become 0.

use diffsim_engine::{ANY_WIDTH, ColumnAccess, ModelView, Real, StepCx, System, View, ViewMut};

#[derive(Clone, Copy, Debug, Default)]
pub struct ClearForces;

impl<R: Real> System<R> for ClearForces {
    fn name(&self) -> &str {
        "articulation.clear"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        vec![ColumnAccess::write("joint_tau", ANY_WIDTH), ColumnAccess::write("body_f", 6)]
    }
    fn forward(&self, _: &StepCx, _: &ModelView, _: &View<R>, state: &mut ViewMut<R>) {
        state.col_mut("joint_tau").fill(R::zero());
        state.col_mut("body_f").fill(R::zero());
    }
    fn adjoint(&self, _: &StepCx, _: &ModelView, _: &View<R>, _: &View<R>, adj: &mut ViewMut<R>, _: &mut ViewMut<R>) {
        adj.col_mut("joint_tau").fill(R::zero());
        adj.col_mut("body_f").fill(R::zero());
    }
    /// The GPU mirror: `articulation::gpu`.
    fn gpu(&self) -> Option<Box<dyn diffsim_engine::gpu_sim::GpuSystem>> {
        Some(Box::new(*self))
    }
}
