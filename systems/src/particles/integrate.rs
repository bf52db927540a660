//! `particles.integrate`: semi-implicit (symplectic) Euler for particles.
//!
//! Forward (per particle):  qd' = qd + dt · f / m ;  q' = q + dt · qd'.
//! Adjoint, with q̄', q̄d' the incoming adjoints:
//!   s = q̄d' + dt · q̄'        (q' depends on qd')
//!   q̄ = q̄'                   (∂q'/∂q = I)
//!   q̄d = s                   (∂qd'/∂qd = I)
//!   f̄ += dt / m · s          (∂qd'/∂f = dt/m · I)
//! The WGSL kernel in `integrate_gpu.rs` implements the same forward.

use diffsim_engine::{ColumnAccess, ModelView, Real, StepCx, System, View, ViewMut};

#[derive(Clone, Copy, Debug, Default)]
pub struct Integrate;

impl<R: Real> System<R> for Integrate {
    fn name(&self) -> &str {
        "particles.integrate"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        vec![
            ColumnAccess::state("particle_q", 3),
            ColumnAccess::state("particle_qd", 3),
            ColumnAccess::state("particle_f", 3),
            ColumnAccess::write("particle_q", 3),
            ColumnAccess::write("particle_qd", 3),
            ColumnAccess::model("particle_mass", 1),
        ]
    }
    fn forward(&self, cx: &StepCx, model: &ModelView, _: &View<R>, state: &mut ViewMut<R>) {
        let dt = R::from_f64(cx.dt);
        let mass = model.param("particle_mass");
        let [q, qd, f] = state.cols_mut(["particle_q", "particle_qd", "particle_f"]);
        for (k, &m) in mass.iter().enumerate() {
            let inv_m = R::from_f64(1.0 / m);
            for c in 0..3 {
                let i = 3 * k + c;
                qd[i] += dt * f[i] * inv_m;
                q[i] += dt * qd[i];
            }
        }
    }
    fn adjoint(
        &self,
        cx: &StepCx,
        model: &ModelView,
        _: &View<R>,
        _: &View<R>,
        adj: &mut ViewMut<R>,
        _: &mut ViewMut<R>,
    ) {
        let dt = R::from_f64(cx.dt);
        let mass = model.param("particle_mass");
        let [aq, aqd, af] = adj.cols_mut(["particle_q", "particle_qd", "particle_f"]);
        for (k, &m) in mass.iter().enumerate() {
            let inv_m = R::from_f64(1.0 / m);
            for c in 0..3 {
                let i = 3 * k + c;
                let s = aqd[i] + dt * aq[i];
                aqd[i] = s;
                af[i] += dt * inv_m * s;
            }
        }
    }
}
