//! `particles.gravity`: adds m·g to every particle's force.
//!
//! Forward: f_i += m_i g. The force depends on no state or control, so the adjoint only lets
//! ∂L/∂f pass through (accumulate semantics) and adds nothing.

use diffsim_engine::EngineError;
use diffsim_engine::gpu_sim::{Bind, GpuBuildCx, GpuKernels, GpuSystem, Pass, model, state};
use diffsim_engine::{ColumnAccess, ModelView, Real, StepCx, System, View, ViewMut};

use super::gpu::{self as pgpu, ParticleParams};

#[derive(Clone, Copy, Debug, Default)]
pub struct Gravity;

impl<R: Real> System<R> for Gravity {
    fn name(&self) -> &str {
        "particles.gravity"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        vec![
            ColumnAccess::accumulate("particle_f", 3),
            ColumnAccess::model("particle_mass", 1),
            ColumnAccess::model("gravity", 3),
        ]
    }
    fn forward(&self, _: &StepCx, model: &ModelView, _: &View<R>, state: &mut ViewMut<R>) {
        let mass = model.param("particle_mass");
        let gravity = model.param("gravity");
        let f = state.col_mut("particle_f");
        let n = mass.len() / model.num_envs().max(1);
        for (k, m) in mass.iter().enumerate() {
            let g = &gravity[3 * (k / n.max(1))..][..3];
            for c in 0..3 {
                f[3 * k + c] += R::from_f64(m * g[c]);
            }
        }
    }
    fn adjoint(&self, _: &StepCx, _: &ModelView, _: &View<R>, _: &View<R>, _: &mut ViewMut<R>, _: &mut ViewMut<R>) {}
    fn gpu(&self) -> Option<Box<dyn GpuSystem>> {
        Some(Box::new(*self))
    }
}

/// GPU: `wgsl/gravity.wgsl`, one invocation per particle; no adjoint pass (nothing to pull back).
impl GpuSystem for Gravity {
    fn name(&self) -> &str {
        "particles.gravity"
    }
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError> {
        let n = cx.count("particle_mass") * cx.num_envs;
        let params = cx.uniform("particles.gravity", &ParticleParams::of(cx)?.with_n(n)?)?;
        let binds = vec![
            Bind::rw(state("particle_f")),
            Bind::read(model("particle_mass")),
            Bind::read(model("gravity")),
            Bind::uniform(0),
        ];
        let src = pgpu::source(&[pgpu::GRAVITY]);
        Ok(GpuKernels {
            forward: vec![Pass::new(cx, "particles.gravity", &src, "gravity_forward", binds, n)?],
            adjoint: Vec::new(),
            buffers: vec![params],
        })
    }
}
