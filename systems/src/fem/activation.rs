//! `fem.activation`: maps the action vector to per-tetrahedron muscle activations, once per env
//! step (Stage::Step), as Rewarped's SoftJumper does (rewarped.md §6.1: each action drives
//! `group` consecutive tetrahedra, activation = scale · action).
//!
//! Forward: a_t = scale · act[⌊t / group⌋] for t < group · A, else 0 (tetrahedra beyond the last
//! action group stay passive). Adjoint: āct[⌊t / group⌋] += scale · ā_t; ā_t ← 0 (overwritten).

use diffsim_engine::{ANY_WIDTH, ColumnAccess, ModelView, Real, StepCx, System, View, ViewMut};

#[derive(Clone, Copy, Debug)]
pub struct Activation {
    /// Tetrahedra per action.
    pub group: usize,
    /// Activation per unit action (Rewarped: 0.3).
    pub scale: f64,
}

impl<R: Real> System<R> for Activation {
    fn name(&self) -> &str {
        "fem.activation"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        vec![ColumnAccess::control("act", ANY_WIDTH), ColumnAccess::write("tet_activation", 1)]
    }
    fn forward(&self, _: &StepCx, _: &ModelView, control: &View<R>, state: &mut ViewMut<R>) {
        let n = control.num_envs().max(1);
        let act = control.col("act");
        let na = act.len() / n;
        let out = state.col_mut("tet_activation");
        let nt = out.len() / n;
        let scale = R::from_f64(self.scale);
        for e in 0..control.num_envs() {
            for t in 0..nt {
                let a = t / self.group;
                out[e * nt + t] = if a < na { scale * act[e * na + a] } else { R::zero() };
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
        let n = control.num_envs().max(1);
        let na = control.col("act").len() / n;
        let abar = adj.col_mut("tet_activation");
        let nt = abar.len() / n;
        let scale = R::from_f64(self.scale);
        let aact = adj_control.col_mut("act");
        for e in 0..control.num_envs() {
            for t in 0..nt {
                let a = t / self.group;
                if a < na {
                    aact[e * na + a] += scale * abar[e * nt + t];
                }
                abar[e * nt + t] = R::zero();
            }
        }
    }
}
