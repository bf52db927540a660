//! `particles.clear_forces`: zeroes the force accumulator `particle_f` at the start of a substep.
//!
//! Forward: f ← 0. Adjoint: f is overwritten with a constant, so ∂L/∂f(before) = 0.

use diffsim_engine::EngineError;
use diffsim_engine::gpu_sim::{Bind, GpuBuildCx, GpuKernels, GpuSystem, Pass, adj_state, state};
use diffsim_engine::{ColumnAccess, ModelView, Real, StepCx, System, View, ViewMut};

use super::gpu::{self as pgpu, ParticleParams};

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
    fn gpu(&self) -> Option<Box<dyn GpuSystem>> {
        Some(Box::new(*self))
    }
}

/// GPU: `wgsl/clear.wgsl`, the same kernel zeroing `particle_f` (forward) or its adjoint.
impl GpuSystem for ClearForces {
    fn name(&self) -> &str {
        "particles.clear_forces"
    }
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError> {
        let n = 3 * cx.count("particle_f") * cx.num_envs;
        let params = cx.uniform("particles.clear_forces", &ParticleParams::of(cx)?.with_n(n)?)?;
        let src = pgpu::source(&[pgpu::CLEAR]);
        let pass = |label: &str, col| Pass::new(cx, label, &src, "clear", vec![Bind::rw(col), Bind::uniform(0)], n);
        Ok(GpuKernels {
            forward: vec![pass("particles.clear_forces", state("particle_f"))?],
            adjoint: vec![pass("particles.clear_forces adjoint", adj_state("particle_f"))?],
            buffers: vec![params],
        })
    }
}
