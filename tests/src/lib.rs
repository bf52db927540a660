//! The gradient-test harness, reusable from every crate's tests and from `diffsim check-grad`.
//!
//! Two independent checks of an adjoint, both in f64:
//! - **dot-product test**: push a random tangent ẋ forward with dual numbers (J ẋ, exact to
//!   rounding) and a random cotangent ȳ backward through the adjoint (Jᵀ ȳ); then
//!   ⟨ȳ, J ẋ⟩ must equal ⟨Jᵀ ȳ, ẋ⟩ to ~1e-10 relative;
//! - **central finite differences** along ẋ: (⟨ȳ, y(x + hẋ)⟩ − ⟨ȳ, y(x − hẋ)⟩) / 2h against the
//!   same ⟨Jᵀ ȳ, ẋ⟩, to ~1e-4 relative on smooth states.
//!
//! Both run on a single system (`SystemCheck`) or on a whole multi-step rollout through the
//! `Sim` tape (`RolloutCheck`). The code under test is the production code, instantiated at
//! `f64` and `Dual` (systems are generic over `Real`).

pub mod gpu;
pub mod mpm_scene;

use diffsim_engine::columns::dot;
use diffsim_engine::{Access, Columns, Dual, EngineError, Model, Real, Sim, SimFactory, StepCx, System};

/// The proptest config of a property test of `n` cases, times `$DIFFSIM_SOAK` where that is set:
/// a soak run. Each run draws new random cases, so a case that fails once in thousands shows in
/// CI only now and then; `DIFFSIM_SOAK=30 make test`-style runs find it on one machine in one go
/// (the failing seed is printed, and proptest's regression files keep the CPU tests' ones).
pub fn cases(n: u32) -> proptest::test_runner::Config {
    let soak = match std::env::var("DIFFSIM_SOAK") {
        Ok(v) => v.parse::<u32>().unwrap_or_else(|_| panic!("DIFFSIM_SOAK={v:?}: expected a whole number ≥ 1")),
        Err(_) => 1,
    };
    proptest::test_runner::Config { cases: n * soak.max(1), ..proptest::test_runner::Config::default() }
}

/// A deterministic generator for test data (SplitMix64); proptest chooses the seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Fills every column of a set with uniform values in [-1, 1).
    pub fn fill(&mut self, c: &mut Columns<f64>) {
        for (_, col) in c.columns_mut() {
            for x in col.iter_mut() {
                *x = self.uniform(-1.0, 1.0);
            }
        }
    }
    pub fn like(&mut self, c: &Columns<f64>) -> Columns<f64> {
        let mut o = c.zeros_like();
        self.fill(&mut o);
        o
    }
}

/// Relative error |a − b| / max(|a|, |b|, floor).
pub fn rel_err(a: f64, b: f64, floor: f64) -> f64 {
    (a - b).abs() / a.abs().max(b.abs()).max(floor)
}

/// The two sides of the dot-product test and of the finite-difference test.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GradReport {
    /// ⟨Jᵀ ȳ, ẋ⟩ from the adjoint.
    pub adjoint: f64,
    /// ⟨ȳ, J ẋ⟩ from dual numbers.
    pub dual: f64,
    /// Central finite difference of ⟨ȳ, y⟩ along ẋ.
    pub fd: f64,
    /// Σ |(Jᵀ ȳ)_i ẋ_i|: the size of the terms the adjoint side sums. When they cancel, the sum is
    /// far smaller than its terms and rounding alone limits the agreement to ~ε · scale.
    pub scale: f64,
    /// ε Σ |ȳ_i y_i| / h: what one ulp of rounding in each output y_i does to the central
    /// difference. The loss ⟨ȳ, y⟩ is a sum of terms of that size, computed to a few ulps each,
    /// and the difference of two such losses is divided by 2h, so where the outputs are large
    /// against the slope (a stress of ~1e4 Pa moved by 1e-6 of F) this, not the O(h²)
    /// truncation, is the central difference's error.
    pub fd_noise: f64,
}

/// How many `fd_noise` units of |adjoint − fd| `fd_err` forgives: each output within 10 ulps
/// (measured on sand's cohesive tip projection, where the stress is ~1e4 Pa and the slope ~0.05:
/// |fd − dual| ≤ 0.6 units at h = 1e-6, and it scales as 1/h, from 2e-6 relative at h = 1e-4 to
/// 8e-4 at h = 1e-7, as rounding does and truncation does not).
pub const FD_NOISE_ULPS: f64 = 10.0;

impl GradReport {
    /// |adjoint − dual| relative to max(|adjoint|, |dual|), floored at 1e-4 of the terms' scale
    /// (so cancellation in the dot product does not read as an error; a wrong adjoint moves the
    /// result by a sizeable fraction of its terms and is still caught).
    pub fn dual_err(&self) -> f64 {
        rel_err(self.adjoint, self.dual, (1e-4 * self.scale).max(1e-12))
    }
    /// |adjoint − fd|, less the central difference's own rounding (`FD_NOISE_ULPS` ×
    /// `fd_noise`), relative to max(|adjoint|, |fd|), with the same floor as `dual_err`, so that
    /// neither the difference's rounding nor cancellation in the dot product reads as an error
    /// (e.g. fk at seed 4249170408354749916: terms summing to 5.7e-6 agreed to 1.0e-4 relative,
    /// 6e-10 absolute). The dot-product test (`dual_err`) has no such allowance.
    pub fn fd_err(&self) -> f64 {
        let excess = ((self.adjoint - self.fd).abs() - FD_NOISE_ULPS * self.fd_noise).max(0.0);
        excess / self.adjoint.abs().max(self.fd.abs()).max((1e-4 * self.scale).max(1e-8))
    }
}

fn seed_dual(x: &Columns<f64>, xdot: &Columns<f64>) -> Columns<Dual> {
    x.zip_map(xdot, Dual::new)
}

/// Checks one system's adjoint at a point (state, control) of a packed model.
pub struct SystemCheck<'a> {
    pub model: &'a Model,
    pub state: &'a Columns<f64>,
    pub control: &'a Columns<f64>,
    pub cx: StepCx,
    /// Finite-difference step along the random direction.
    pub h: f64,
}

impl<'a> SystemCheck<'a> {
    /// A check of a system of `sim`'s schedule at `state` and `control`, at the schedule's
    /// substep dt (step 0, substep 0).
    pub fn on(sim: &'a Sim<f64>, state: &'a Columns<f64>, control: &'a Columns<f64>, h: f64) -> Self {
        let cx = StepCx { dt: sim.schedule.substep_dt(), step: 0, substep: 0 };
        Self { model: &sim.model, state, control, cx, h }
    }
}

/// [`SystemCheck::on`] `sim` at `state` with a control drawn from `rng`, then the directions
/// from `rng`, at step `h`; panics with the harness's message (a column the system writes
/// without declaring it).
pub fn check_at<S: System<f64> + System<Dual>>(
    sim: &Sim<f64>,
    sys: &S,
    state: &Columns<f64>,
    rng: &mut Rng,
    h: f64,
) -> GradReport {
    let control = rng.like(&sim.control);
    SystemCheck::on(sim, state, &control, h).run(sys, rng).unwrap_or_else(|e| panic!("{e}"))
}

impl SystemCheck<'_> {
    fn forward<R: Real>(&self, sys: &dyn System<R>, state: &Columns<R>, control: &Columns<R>) -> Columns<R> {
        let mut out = state.clone();
        sys.forward(&self.cx, &self.model.view_all(), &control.view_all(), &mut out.view_all_mut());
        out
    }

    /// Runs the dot-product and finite-difference tests with directions drawn from `rng`.
    pub fn run<S: System<f64> + System<Dual>>(&self, sys: &S, rng: &mut Rng) -> Result<GradReport, String> {
        self.run_pair(sys, sys, rng)
    }

    /// The same checks for a system given as two trait objects, its f64 instance `f` and its dual
    /// instance `d` (e.g. taken by position from two schedules of one task). `Err` names a column
    /// the forward changed without declaring it written.
    pub fn run_pair(&self, f: &dyn System<f64>, d: &dyn System<Dual>, rng: &mut Rng) -> Result<GradReport, String> {
        let sd = rng.like(self.state);
        let cd = rng.like(self.control);
        let ybar = rng.like(self.state);

        let out = self.forward(f, self.state, self.control);
        let written: Vec<String> =
            f.access().into_iter().filter(|a| a.access != Access::Read).map(|a| a.name).collect();
        for ((spec, before), (_, after)) in self.state.columns().zip(out.columns()) {
            if !written.contains(&spec.name) && before != after {
                return Err(format!(
                    "system `{}` changed column `{}` it does not declare as written",
                    f.name(),
                    spec.name
                ));
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
        let scale = abs_dot(&adj_state, &sd) + abs_dot(&adj_control, &cd);

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
        let fd_noise = f64::EPSILON * abs_dot(&ybar, &out) / self.h;
        Ok(GradReport { adjoint, dual, fd, scale, fd_noise })
    }
}

/// Σ |a_i b_i| over two sets with the same layout.
fn abs_dot(a: &Columns<f64>, b: &Columns<f64>) -> f64 {
    a.columns().zip(b.columns()).map(|((_, x), (_, y))| x.iter().zip(y).map(|(u, v)| (u * v).abs()).sum::<f64>()).sum()
}

/// Checks the gradient of L = Σ_t ⟨ȳ_t, s_{t+1}⟩ over an H-step rollout with respect to the
/// initial state and every step's control, through `Sim::record` / `Sim::backward`.
pub struct RolloutCheck {
    pub horizon: usize,
    pub h: f64,
    /// Scales the random initial-state perturbation (0 keeps the scene's initial state fixed).
    pub state_dir_scale: f64,
}

impl RolloutCheck {
    fn rollout<R: Real>(
        sim: &mut Sim<R>,
        s0: Columns<R>,
        controls: &[Columns<R>],
        record: bool,
    ) -> Result<Vec<Columns<R>>, EngineError> {
        sim.state = s0;
        if record {
            sim.record();
        }
        let mut states = Vec::with_capacity(controls.len());
        for c in controls {
            sim.control.copy_from(c);
            sim.step()?;
            states.push(sim.state.clone());
        }
        Ok(states)
    }

    pub fn run<F: SimFactory>(&self, factory: &F, rng: &mut Rng) -> Result<GradReport, EngineError> {
        let mut sim64: Sim<f64> = factory.sim()?;
        let s0 = sim64.state.clone();
        let controls: Vec<Columns<f64>> = (0..self.horizon).map(|_| rng.like(&sim64.control)).collect();
        let sd = rng.like(&s0).map(|x| x * self.state_dir_scale);
        let cds: Vec<Columns<f64>> = controls.iter().map(|c| rng.like(c)).collect();
        let ybars: Vec<Columns<f64>> = (0..self.horizon).map(|_| rng.like(&s0)).collect();
        let loss = |states: &[Columns<f64>]| states.iter().zip(&ybars).map(|(s, y)| dot(s, y)).sum::<f64>();

        // Adjoint through the tape.
        let states64 = Self::rollout(&mut sim64, s0.clone(), &controls, true)?;
        let grads = sim64.backward(|t, adj| {
            for ((_, a), (_, y)) in adj.columns_mut().zip(ybars[t].columns()) {
                for (x, &v) in a.iter_mut().zip(y) {
                    *x += v;
                }
            }
        })?;
        let adjoint =
            dot(&grads.initial_state, &sd) + grads.controls.iter().zip(&cds).map(|(g, d)| dot(g, d)).sum::<f64>();
        let scale = abs_dot(&grads.initial_state, &sd)
            + grads.controls.iter().zip(&cds).map(|(g, d)| abs_dot(g, d)).sum::<f64>();

        // Dual numbers.
        let mut simd: Sim<Dual> = factory.sim()?;
        let cdual: Vec<Columns<Dual>> = controls.iter().zip(&cds).map(|(c, d)| seed_dual(c, d)).collect();
        let states = Self::rollout(&mut simd, seed_dual(&s0, &sd), &cdual, false)?;
        let dual = states.iter().zip(&ybars).map(|(s, y)| dot(y, &s.map(|d| d.t))).sum::<f64>();

        // Central differences.
        let at = |sign: f64| -> Result<f64, EngineError> {
            let s = s0.zip_map(&sd, |x, d| x + sign * self.h * d);
            let cs: Vec<Columns<f64>> =
                controls.iter().zip(&cds).map(|(c, d)| c.zip_map(d, |x, d| x + sign * self.h * d)).collect();
            let mut sim: Sim<f64> = factory.sim()?;
            Ok(loss(&Self::rollout(&mut sim, s, &cs, false)?))
        };
        let fd = (at(1.0)? - at(-1.0)?) / (2.0 * self.h);
        let fd_noise = f64::EPSILON * states64.iter().zip(&ybars).map(|(s, y)| abs_dot(y, s)).sum::<f64>() / self.h;
        Ok(GradReport { adjoint, dual, fd, scale, fd_noise })
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
        SystemCheck { model: &model, state: &state, control: &control, cx, h: 1e-6 }.run(sys, &mut rng)
    }

    #[test]
    fn a_correct_adjoint_passes_and_a_wrong_one_fails() {
        let good = check(&Square { k: 2.0, sneaky: false }).unwrap();
        assert!(good.dual_err() < 1e-12 && good.fd_err() < 1e-6, "{good:?}");
        let bad = check(&Square { k: 3.0, sneaky: false }).unwrap();
        assert!(bad.dual_err() > 1e-3 && bad.fd_err() > 1e-3, "{bad:?}");
    }

    /// The central difference's rounding allowance only forgives its own size: a difference of
    /// many noise units still reads as an error, and the dot-product test forgives nothing.
    #[test]
    fn fd_noise_forgives_only_rounding() {
        let r = GradReport { adjoint: 1.0, dual: 1.0, fd: 1.0 + 5.0 * 1e-6, scale: 1.0, fd_noise: 1e-6 };
        assert_eq!(r.fd_err(), 0.0, "{r:?}");
        let r = GradReport { fd: 1.0 + 1e-3, ..r };
        assert!((r.fd_err() - (1e-3 - FD_NOISE_ULPS * 1e-6) / (1.0 + 1e-3)).abs() < 1e-12, "{r:?}");
        let r = GradReport { dual: 1.0 + 5.0 * 1e-6, ..r };
        assert!(r.dual_err() > 4e-6, "{r:?}");
        let good = check(&Square { k: 2.0, sneaky: false }).unwrap();
        assert!(good.fd_noise > 0.0 && FD_NOISE_ULPS * good.fd_noise < 1e-6 * good.adjoint.abs(), "{good:?}");
    }

    #[test]
    fn an_undeclared_write_is_named() {
        let err = check(&Square { k: 2.0, sneaky: true }).unwrap_err();
        assert!(err.contains("`x`"), "{err}");
    }
}
