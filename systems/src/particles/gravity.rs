//! `particles.gravity`: adds m·g to every particle's force.
//!
//! Forward: f_i += m_i g. The force depends on no state or control, so the adjoint only lets
//! ∂L/∂f pass through (accumulate semantics) and adds nothing.

use diffsim_engine::{ColumnAccess, ModelView, Real, StepCx, System, View, ViewMut};

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
}
