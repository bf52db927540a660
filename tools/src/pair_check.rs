//! `PairCheck`: `diffsim_tests::SystemCheck` for one system given as two trait objects, its f64
//! instance and its `Dual` instance (taken by position from two schedules of the same task),
//! since a `&dyn System<f64>` cannot itself be run in dual numbers.
//!
//! Same tests as `SystemCheck::run`, with directions drawn from the rng in the same order: the
//! forward must leave undeclared columns untouched, then the dot-product test ⟨Jᵀȳ, ẋ⟩ vs
//! ⟨ȳ, Jẋ⟩ (duals) and central finite differences of ⟨ȳ, y⟩ along ẋ.

use diffsim_engine::columns::dot;
use diffsim_engine::{Access, Columns, Dual, Model, Real, StepCx, System};
use diffsim_tests::{GradReport, Rng};

/// One point (model, state, control, timing) at which to check a system.
pub struct PairCheck<'a> {
    pub model: &'a Model,
    pub state: &'a Columns<f64>,
    pub control: &'a Columns<f64>,
    pub cx: StepCx,
    /// Finite-difference step along the random direction.
    pub h: f64,
}

impl PairCheck<'_> {
    fn forward<R: Real>(&self, sys: &dyn System<R>, state: &Columns<R>, control: &Columns<R>) -> Columns<R> {
        let mut out = state.clone();
        sys.forward(&self.cx, &self.model.view_all(), &control.view_all(), &mut out.view_all_mut());
        out
    }

    /// Runs the checks on `f` (f64) and `d` (the same system in duals). `Err` names a column the
    /// forward changed without declaring it written.
    pub fn run(&self, f: &dyn System<f64>, d: &dyn System<Dual>, rng: &mut Rng) -> Result<GradReport, String> {
        let sd = rng.like(self.state);
        let cd = rng.like(self.control);
        let ybar = rng.like(self.state);

        let out = self.forward(f, self.state, self.control);
        let written: Vec<String> =
            f.access().into_iter().filter(|a| a.access != Access::Read).map(|a| a.name).collect();
        for ((spec, before), (_, after)) in self.state.columns().zip(out.columns()) {
            if !written.contains(&spec.name) && before != after {
                return Err(format!("changed column `{}` it does not declare as written", spec.name));
            }
        }

        // Adjoint: Jᵀ ȳ.
        let mut adj_state = ybar.clone();
        let mut adj_control = self.control.zeros_like::<f64>();
        f.adjoint(
            &self.cx,
            &self.model.view_all(),
            &self.control.view_all(),
            &self.state.view_all(),
            &mut adj_state.view_all_mut(),
            &mut adj_control.view_all_mut(),
        );
        let adjoint = dot(&adj_state, &sd) + dot(&adj_control, &cd);

        // Duals: J ẋ.
        let y = self.forward(d, &self.state.zip_map(&sd, Dual::new), &self.control.zip_map(&cd, Dual::new));
        let dual = dot(&ybar, &y.map(|x| x.t));

        // Central differences along ẋ.
        let at = |sign: f64| {
            let s = self.state.zip_map(&sd, |x, v| x + sign * self.h * v);
            let c = self.control.zip_map(&cd, |x, v| x + sign * self.h * v);
            dot(&ybar, &self.forward(f, &s, &c))
        };
        let fd = (at(1.0) - at(-1.0)) / (2.0 * self.h);
        Ok(GradReport { adjoint, dual, fd })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use diffsim_engine::{ColumnAccess, ColumnSpec, Layout, ModelView, View, ViewMut};

    /// y ← x² with an adjoint x̄ += k·x·ȳ (correct for k = 2); optionally also writes `x`.
    struct Square {
        k: f64,
        sneaky: bool,
    }

    impl<R: Real> System<R> for Square {
        fn name(&self) -> &str {
            "square"
        }
        fn access(&self) -> Vec<ColumnAccess> {
            vec![ColumnAccess::state("x", 1), ColumnAccess::write("y", 1)]
        }
        fn forward(&self, _: &StepCx, _: &ModelView, _: &View<R>, state: &mut ViewMut<R>) {
            let [x, y] = state.cols_mut(["x", "y"]);
            for (y, x) in y.iter_mut().zip(x.iter_mut()) {
                *y = *x * *x;
                if self.sneaky {
                    *x += R::from_f64(1.0);
                }
            }
        }
        fn adjoint(
            &self,
            _: &StepCx,
            _: &ModelView,
            _: &View<R>,
            pre: &View<R>,
            adj: &mut ViewMut<R>,
            _: &mut ViewMut<R>,
        ) {
            let [ax, ay] = adj.cols_mut(["x", "y"]);
            for ((ax, ay), &x) in ax.iter_mut().zip(ay.iter_mut()).zip(pre.col("x")) {
                *ax += R::from_f64(self.k) * x * *ay;
                *ay = R::from_f64(0.0);
            }
        }
    }

    fn check(sys: &Square) -> Result<GradReport, String> {
        let model = Model::empty(3);
        let layout = Layout::new(vec![ColumnSpec::new("x", 1, 1), ColumnSpec::new("y", 1, 1)]);
        let mut rng = Rng::new(7);
        let state = rng.like(&Columns::zeros(layout, 3));
        let control = Columns::zeros(Layout::default(), 3);
        let cx = StepCx { dt: 0.01, step: 0, substep: 0 };
        PairCheck { model: &model, state: &state, control: &control, cx, h: 1e-6 }.run(sys, sys, &mut rng)
    }

    #[test]
    fn a_correct_adjoint_passes_and_a_wrong_one_fails() {
        let good = check(&Square { k: 2.0, sneaky: false }).unwrap();
        assert!(good.dual_err() < 1e-12 && good.fd_err() < 1e-6, "{good:?}");
        let bad = check(&Square { k: 3.0, sneaky: false }).unwrap();
        assert!(bad.dual_err() > 1e-3 && bad.fd_err() > 1e-3, "{bad:?}");
    }

    #[test]
    fn an_undeclared_write_is_named() {
        let err = check(&Square { k: 2.0, sneaky: true }).unwrap_err();
        assert!(err.contains("`x`"), "{err}");
    }
}
