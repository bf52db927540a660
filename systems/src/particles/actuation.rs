//! `particles.actuation`: external forces on chosen particles, driven by the control column `act`
//! (`[A, 3]` per env, one row per actuated particle, in [-1, 1] by convention).
//!
//! Forward: f_{p_a} += scale · act_a. Adjoint: āct_a += scale · f̄_{p_a} (f̄ passes through).

use diffsim_engine::{ColumnAccess, ModelView, Real, StepCx, System, View, ViewMut};

#[derive(Clone, Debug)]
pub struct Actuation {
    /// Particle index (within an env) driven by each action row.
    pub particles: Vec<usize>,
    /// Newtons per unit action.
    pub scale: f64,
}

impl<R: Real> System<R> for Actuation {
    fn name(&self) -> &str {
        "particles.actuation"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        vec![ColumnAccess::accumulate("particle_f", 3), ColumnAccess::control("act", 3)]
    }
    fn forward(&self, _: &StepCx, _: &ModelView, control: &View<R>, state: &mut ViewMut<R>) {
        let act = control.col("act");
        let na = self.particles.len();
        let np = state.layout().spec("particle_f").map_or(0, |s| s.count);
        let f = state.col_mut("particle_f");
        let scale = R::from_f64(self.scale);
        for e in 0..control.num_envs() {
            for (a, &p) in self.particles.iter().enumerate() {
                for c in 0..3 {
                    f[3 * (e * np + p) + c] += scale * act[3 * (e * na + a) + c];
                }
            }
        }
    }
    fn adjoint(
        &self,
        _: &StepCx,
        _: &ModelView,
        control: &View<R>,
        _: &View<R>,
        adj: &mut ViewMut<R>,
        adj_control: &mut ViewMut<R>,
    ) {
        let na = self.particles.len();
        let np = adj.layout().spec("particle_f").map_or(0, |s| s.count);
        let af = adj.col("particle_f");
        let scale = R::from_f64(self.scale);
        let mut rows = Vec::with_capacity(na * 3 * control.num_envs());
        for e in 0..control.num_envs() {
            for &p in &self.particles {
                for c in 0..3 {
                    rows.push(scale * af[3 * (e * np + p) + c]);
                }
            }
        }
        for (a, r) in adj_control.col_mut("act").iter_mut().zip(rows) {
            *a += r;
        }
    }
}
