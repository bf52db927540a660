//! `Schedule`: the ordered systems of one env step, their validation, and how one step of one
//! chunk of environments runs forward and backward.
//!
//! One env step is, in order:
//! 1. `Stage::Step` systems, once (e.g. actions → targets);
//! 2. `substeps` × the `Stage::Substep` systems (clear forces, forces, integrate);
//! 3. `Stage::Post` systems, once (observations, rewards).
//!
//! Validation (before anything runs) rejects: a read of a column nothing writes and no input
//! provides, an accumulate before the stage initializes the column, two overwriting writers of one
//! column in one stage, and a column absent from or of the wrong width in the scene.
//!
//! Backward for one step recomputes from the step's checkpoint, in one of two ways:
//! - when the pre-states of all the step's systems (1 + K·S + P of them) fit in
//!   `pre_state_budget` bytes per env, one forward pass stores every system's pre-state and the
//!   adjoints then run in reverse over them (each system's forward recomputed once);
//! - otherwise it stores the K+2 stage boundary states, then, segment by segment in reverse,
//!   recomputes the pre-state of every system of that segment and runs the adjoints in reverse
//!   (each system recomputed twice). Memory: O(K + S) states for one step.
//!
//! Both give bitwise the same gradients (same forward code on the same inputs).

use crate::columns::{Columns, Layout, View, ViewMut};
use crate::error::{ColumnSet, EngineError, ScheduleError};
use crate::model::Model;
use crate::profile::{Phase, SystemProfile};
use crate::scalar::Real;
use crate::system::{Access, ModelView, Stage, StepCx, System};

/// When to scan written columns for NaN/inf.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NanCheck {
    /// After every system, on the columns it wrote: errors name the system. Slowest.
    EverySystem,
    /// Once per env step, on every written column; on a hit the step is replayed from a copy of
    /// its start with `EverySystem` checks, so the error still names the system that produced
    /// the value. Measured ~1.3× cheaper than `EverySystem` on chain_reach (see the bench).
    EveryStep,
    Off,
}

pub struct Schedule<R: Real> {
    /// Env step length in seconds; a substep is `dt / substeps`.
    pub dt: f64,
    pub substeps: usize,
    pub nan_check: NanCheck,
    systems: Vec<(Stage, Box<dyn System<R>>)>,
    /// Per system (same order): the state columns it writes or accumulates, with their widths.
    /// Cached so the NaN check does not rebuild access lists in the hot loop.
    writes: Vec<Vec<(String, usize)>>,
    /// Per-system timing, when enabled by `enable_profile`.
    profile: Option<SystemProfile>,
    /// Bytes per env of stored pre-states up to which `backward_step` keeps every system's
    /// pre-state from one recompute pass (see the module docs). 0 forces the two-pass scheme.
    pub pre_state_budget: usize,
}

/// Default `Schedule::pre_state_budget`: 4 MiB per env (AntRun needs ~0.3, Humanoid and
/// HandReorient ~3-4; an MPM env's ~30 falls back to the two-pass scheme).
pub const PRE_STATE_BUDGET: usize = 4 << 20;

impl<R: Real> Schedule<R> {
    pub fn new(dt: f64, substeps: usize) -> Self {
        Self {
            dt,
            substeps,
            nan_check: NanCheck::EveryStep,
            systems: Vec::new(),
            writes: Vec::new(),
            profile: None,
            pre_state_budget: PRE_STATE_BUDGET,
        }
    }

    /// Starts timing every system call from now on (see `SystemProfile`); resets the counters if
    /// already on.
    pub fn enable_profile(&mut self) {
        match &self.profile {
            Some(p) => p.reset(),
            None => {
                let names = self.systems.iter().map(|(_, s)| s.name().to_string()).collect();
                self.profile = Some(SystemProfile::new(names));
            }
        }
    }
    pub fn profile(&self) -> Option<&SystemProfile> {
        self.profile.as_ref()
    }
    /// Appends a system to a stage (order within a stage is execution order).
    pub fn with(mut self, stage: Stage, system: impl System<R> + 'static) -> Self {
        self.push(stage, Box::new(system));
        self
    }
    pub fn push(&mut self, stage: Stage, system: Box<dyn System<R>>) {
        let writes =
            system.access().into_iter().filter(|a| a.access != Access::Read).map(|a| (a.name, a.width)).collect();
        self.writes.push(writes);
        self.systems.push((stage, system));
        self.profile = None;
    }
    pub fn substep_dt(&self) -> f64 {
        self.dt / self.substeps as f64
    }
    pub fn systems(&self) -> impl Iterator<Item = (Stage, &dyn System<R>)> {
        self.systems.iter().map(|(s, b)| (*s, b.as_ref()))
    }
    fn stage(&self, stage: Stage) -> Vec<(usize, &dyn System<R>)> {
        self.systems.iter().enumerate().filter(|(_, (s, _))| *s == stage).map(|(i, (_, b))| (i, b.as_ref())).collect()
    }

    /// Checks every declared access against the scene's layouts (see module docs).
    pub fn validate(&self, state: &Layout, control: &Layout, model: &Model) -> Result<(), ScheduleError> {
        if self.substeps == 0 || !self.dt.is_finite() || self.dt <= 0.0 {
            return Err(ScheduleError::BadTiming { substeps: self.substeps, dt: self.dt });
        }
        let layout_of = |set: ColumnSet| match set {
            ColumnSet::State => state,
            ColumnSet::Control => control,
            ColumnSet::Model => model.params.layout(),
        };
        // Shapes and existence.
        for (_, sys) in &self.systems {
            for a in sys.access() {
                let spec = layout_of(a.set)
                    .spec(&a.name)
                    .or_else(|| if a.set == ColumnSet::Model { model.topology.layout().spec(&a.name) } else { None });
                let Some(spec) = spec else {
                    let mut available: Vec<String> = layout_of(a.set).specs.iter().map(|s| s.name.clone()).collect();
                    if a.set == ColumnSet::Model {
                        available.extend(model.topology.layout().specs.iter().map(|s| s.name.clone()));
                    }
                    return Err(ScheduleError::UnknownColumn {
                        system: sys.name().to_string(),
                        set: a.set,
                        column: a.name,
                        available,
                    });
                };
                if a.width != crate::system::ANY_WIDTH && spec.width != a.width {
                    return Err(ScheduleError::WrongShape {
                        system: sys.name().to_string(),
                        set: a.set,
                        column: a.name,
                        expected: a.width,
                        found: spec.width,
                    });
                }
                if a.access != Access::Read && a.set != ColumnSet::State {
                    return Err(ScheduleError::WriteToInput {
                        system: sys.name().to_string(),
                        set: a.set,
                        column: a.name,
                    });
                }
            }
        }
        // Writers: any stage writing a state column feeds every later read (state persists).
        for (_, sys) in &self.systems {
            for a in sys.access() {
                if a.access == Access::Read && a.set == ColumnSet::State {
                    let written = self.systems.iter().any(|(_, o)| {
                        o.access()
                            .iter()
                            .any(|b| b.set == ColumnSet::State && b.name == a.name && b.access == Access::Write)
                    });
                    if !written {
                        return Err(ScheduleError::MissingWriter {
                            system: sys.name().to_string(),
                            set: a.set,
                            column: a.name,
                        });
                    }
                }
            }
        }
        // Per stage: one overwriting writer per column; accumulates only after it.
        for stage in [Stage::Step, Stage::Substep, Stage::Post] {
            let mut writers: Vec<(String, String)> = Vec::new(); // (column, system)
            for (_, sys) in self.stage(stage) {
                for a in sys.access() {
                    match a.access {
                        Access::Write => {
                            if let Some((_, first)) = writers.iter().find(|(c, _)| *c == a.name) {
                                return Err(ScheduleError::DoubleWriter {
                                    first: first.clone(),
                                    second: sys.name().to_string(),
                                    set: a.set,
                                    column: a.name,
                                    stage: stage.to_string(),
                                });
                            }
                            writers.push((a.name.clone(), sys.name().to_string()));
                        }
                        Access::Accumulate => {
                            if !writers.iter().any(|(c, _)| *c == a.name) {
                                return Err(ScheduleError::AccumulateBeforeWrite {
                                    system: sys.name().to_string(),
                                    set: a.set,
                                    column: a.name,
                                    stage: stage.to_string(),
                                });
                            }
                        }
                        Access::Read => {}
                    }
                }
            }
        }
        Ok(())
    }

    /// The systems of one env step in execution order, split into segments: `[step]`,
    /// `substeps` × `[substep]`, `[post]`.
    fn segments(&self) -> Vec<Segment<'_, R>> {
        let mut segs = vec![(0, self.stage(Stage::Step))];
        let sub = self.stage(Stage::Substep);
        for k in 0..self.substeps {
            segs.push((k, sub.clone()));
        }
        segs.push((self.substeps.saturating_sub(1), self.stage(Stage::Post)));
        segs
    }

    /// A system's forward in the backward sweep's recomputation (timed as `Phase::Recompute`), with
    /// NaN checks if `NanCheck::EverySystem`.
    fn recompute_system(
        &self,
        sys: (usize, &dyn System<R>),
        cx: &StepCx,
        model: &ModelView,
        control: &View<R>,
        state: &mut ViewMut<R>,
    ) -> Result<(), EngineError> {
        let check = self.nan_check == NanCheck::EverySystem;
        self.timed(sys.0, Phase::Recompute, || self.run_system_unprofiled(sys, cx, model, control, state, check))
    }

    /// Runs system `index` forward (timed as `Phase::Forward`), then if `check` scans the columns
    /// it wrote for NaN/inf.
    fn run_system_checked(
        &self,
        sys: (usize, &dyn System<R>),
        cx: &StepCx,
        model: &ModelView,
        control: &View<R>,
        state: &mut ViewMut<R>,
        check: bool,
    ) -> Result<(), EngineError> {
        self.timed(sys.0, Phase::Forward, || self.run_system_unprofiled(sys, cx, model, control, state, check))
    }

    /// `f()`, timed into system `index`'s `phase` when profiling.
    fn timed<T>(&self, index: usize, phase: Phase, f: impl FnOnce() -> T) -> T {
        match &self.profile {
            Some(p) => p.time(index, phase, f),
            None => f(),
        }
    }

    fn run_system_unprofiled(
        &self,
        (index, sys): (usize, &dyn System<R>),
        cx: &StepCx,
        model: &ModelView,
        control: &View<R>,
        state: &mut ViewMut<R>,
        check: bool,
    ) -> Result<(), EngineError> {
        sys.forward(cx, model, control, state);
        if check {
            for (name, width) in &self.writes[index] {
                let (count, width) = state.layout().spec(name).map_or((1, *width), |s| (s.count, s.width));
                let at = Located { system: sys.name(), set: ColumnSet::State, column: name, count, width };
                check_finite(&at, state.env0(), cx.step, state.col(name))?;
            }
        }
        Ok(())
    }

    /// Advances one env step for a chunk of environments, in place.
    pub fn forward_step(
        &self,
        step: usize,
        model: &ModelView,
        control: &View<R>,
        state: &mut ViewMut<R>,
    ) -> Result<(), EngineError> {
        if self.nan_check != NanCheck::EveryStep {
            return self.run_step(step, model, control, state, self.nan_check == NanCheck::EverySystem);
        }
        let start = Columns::from_view(&state.as_view());
        self.run_step(step, model, control, state, false)?;
        let written = self.writes.iter().flatten();
        if written.clone().any(|(name, _)| state.col(name).iter().any(|x| !x.is_finite())) {
            // Replay from the start with per-system checks to name the system that produced it.
            let mut replay = start;
            self.run_step(step, model, control, &mut replay.view_all_mut(), true)?;
        }
        Ok(())
    }

    /// Runs only the systems of one stage once (e.g. `Stage::Post` to refresh observations of a
    /// freshly reset state without advancing physics), with per-system NaN checks unless off.
    pub fn forward_stage(
        &self,
        stage: Stage,
        step: usize,
        model: &ModelView,
        control: &View<R>,
        state: &mut ViewMut<R>,
    ) -> Result<(), EngineError> {
        let last = self.substeps.saturating_sub(1);
        let cx = StepCx { dt: self.substep_dt(), step, substep: if stage == Stage::Step { 0 } else { last } };
        let check = self.nan_check != NanCheck::Off;
        for (index, (st, sys)) in self.systems.iter().enumerate() {
            if *st == stage {
                self.run_system_checked((index, sys.as_ref()), &cx, model, control, state, check)?;
            }
        }
        Ok(())
    }

    /// The systems of one env step in order; `check` scans each system's writes for NaN/inf.
    fn run_step(
        &self,
        step: usize,
        model: &ModelView,
        control: &View<R>,
        state: &mut ViewMut<R>,
        check: bool,
    ) -> Result<(), EngineError> {
        let dt = self.substep_dt();
        let last = self.substeps.saturating_sub(1);
        let runs = [(Stage::Step, 0..1), (Stage::Substep, 0..self.substeps), (Stage::Post, last..last + 1)];
        for (stage, substeps) in runs {
            for substep in substeps {
                let cx = StepCx { dt, step, substep };
                for (index, (st, sys)) in self.systems.iter().enumerate() {
                    if *st == stage {
                        self.run_system_checked((index, sys.as_ref()), &cx, model, control, state, check)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Backward through one env step of a chunk. `pre_step` is the step's checkpoint; `adj_state`
    /// holds ∂L/∂(state after the step) on entry and ∂L/∂(state before) on return;
    /// ∂L/∂control is accumulated into `adj_control`. `scratch` holds the recomputed states and is
    /// reused across calls (no allocation after the first step).
    #[allow(clippy::too_many_arguments)] // the chunk's inputs, its two adjoints and its scratch
    pub fn backward_step(
        &self,
        step: usize,
        model: &ModelView,
        control: &View<R>,
        pre_step: &View<R>,
        adj_state: &mut ViewMut<R>,
        adj_control: &mut ViewMut<R>,
        scratch: &mut Scratch<R>,
    ) -> Result<(), EngineError> {
        let dt = self.substep_dt();
        let segs = self.segments();
        let per_env = pre_step.layout().per_env() * std::mem::size_of::<R>();
        if self.stores_all_pre_states(per_env) {
            return self.backward_step_stored(step, &segs, model, control, pre_step, adj_state, adj_control, scratch);
        }
        let longest = segs.iter().map(|(_, s)| s.len()).max().unwrap_or(0);
        // states[i], i < segs.len(): the state before segment i; then the pre-state of every
        // system of the segment being differentiated.
        let states = scratch.states(segs.len() + longest, pre_step);
        states[0].copy_from_view(pre_step);
        for (i, (substep, systems)) in segs[..segs.len() - 1].iter().enumerate() {
            let (done, rest) = states.split_at_mut(i + 1);
            rest[0].copy_from(&done[i]);
            let cx = StepCx { dt, step, substep: *substep };
            let mut v = rest[0].view_all_mut();
            for sys in systems {
                self.recompute_system(*sys, &cx, model, control, &mut v)?;
            }
        }
        let (boundaries, pres) = states.split_at_mut(segs.len());
        for (i, (substep, systems)) in segs.iter().enumerate().rev() {
            let cx = StepCx { dt, step, substep: *substep };
            pres[0].copy_from(&boundaries[i]);
            for (j, sys) in systems[..systems.len().saturating_sub(1)].iter().enumerate() {
                let (done, rest) = pres.split_at_mut(j + 1);
                rest[0].copy_from(&done[j]);
                self.recompute_system(*sys, &cx, model, control, &mut rest[0].view_all_mut())?;
            }
            for (&(index, sys), pre) in systems.iter().zip(pres.iter()).rev() {
                self.timed(index, Phase::Adjoint, || {
                    sys.adjoint(&cx, model, control, &pre.view_all(), adj_state, adj_control)
                });
            }
        }
        Ok(())
    }

    /// `backward_step` keeping every system's pre-state from one recompute pass.
    #[allow(clippy::too_many_arguments)]
    fn backward_step_stored(
        &self,
        step: usize,
        segs: &[Segment<'_, R>],
        model: &ModelView,
        control: &View<R>,
        pre_step: &View<R>,
        adj_state: &mut ViewMut<R>,
        adj_control: &mut ViewMut<R>,
        scratch: &mut Scratch<R>,
    ) -> Result<(), EngineError> {
        let dt = self.substep_dt();
        let total: usize = segs.iter().map(|(_, s)| s.len()).sum();
        // states[k]: the pre-state of the k-th system of the step in execution order.
        let states = scratch.states(total.max(1), pre_step);
        states[0].copy_from_view(pre_step);
        let mut k = 0;
        for (substep, systems) in segs {
            let cx = StepCx { dt, step, substep: *substep };
            for sys in systems {
                if k + 1 == total {
                    break; // the last system's output is the step's result: not needed here
                }
                let (done, rest) = states.split_at_mut(k + 1);
                rest[0].copy_from(&done[k]);
                self.recompute_system(*sys, &cx, model, control, &mut rest[0].view_all_mut())?;
                k += 1;
            }
        }
        let mut k = total;
        for (substep, systems) in segs.iter().rev() {
            let cx = StepCx { dt, step, substep: *substep };
            for &(index, sys) in systems.iter().rev() {
                k -= 1;
                let pre = states[k].view_all();
                self.timed(index, Phase::Adjoint, || sys.adjoint(&cx, model, control, &pre, adj_state, adj_control));
            }
        }
        Ok(())
    }

    /// Systems run in one env step (step-stage, K × substep-stage and post-stage systems).
    fn systems_per_step(&self) -> usize {
        let count = |stage| self.systems.iter().filter(|(st, _)| *st == stage).count();
        count(Stage::Step) + self.substeps * count(Stage::Substep) + count(Stage::Post)
    }

    /// Whether `backward_step` stores every pre-state, for states of `per_env` bytes per env.
    pub fn stores_all_pre_states(&self, per_env: usize) -> bool {
        self.systems_per_step() * per_env <= self.pre_state_budget
    }

    /// Number of state copies `backward_step` holds at its peak for states of `per_env` bytes per
    /// env: every system's pre-state, or K + 2 boundaries + S pre-states.
    pub fn recompute_states(&self, per_env: usize) -> usize {
        if self.stores_all_pre_states(per_env) {
            return self.systems_per_step().max(1);
        }
        let s = self.systems.iter().map(|(st, _)| *st).filter(|s| *s == Stage::Substep).count();
        self.substeps + 2 + s.max(self.stage(Stage::Step).len()).max(self.stage(Stage::Post).len())
    }
}

/// Recompute buffers of `Schedule::backward_step` for one chunk of environments, kept between
/// steps so the reverse sweep does not allocate.
#[derive(Debug, Default)]
pub struct Scratch<R: Real> {
    states: Vec<Columns<R>>,
}

impl<R: Real> Scratch<R> {
    /// At least `n` state buffers shaped like `like` (reallocated only if the shape changed).
    fn states(&mut self, n: usize, like: &View<R>) -> &mut [Columns<R>] {
        let fits = |c: &Columns<R>| c.num_envs() == like.num_envs() && c.layout() == like.layout();
        if !self.states.iter().all(fits) {
            self.states.clear();
        }
        while self.states.len() < n {
            self.states.push(Columns::from_view(like));
        }
        &mut self.states[..n]
    }
}

/// A run of systems sharing one substep index: (substep, [(system index, system)]).
type Segment<'a, R> = (usize, Vec<(usize, &'a dyn System<R>)>);

/// Where a column sits, for error messages.
pub struct Located<'a> {
    pub system: &'a str,
    pub set: ColumnSet,
    pub column: &'a str,
    pub count: usize,
    pub width: usize,
}

/// Errors on the first non-finite scalar of a column, naming system, column, env and entity.
pub fn check_finite<R: Real>(at: &Located, env0: usize, step: usize, data: &[R]) -> Result<(), EngineError> {
    if let Some(k) = data.iter().position(|x| !x.is_finite()) {
        let width = at.width.max(1);
        let per_env = (at.count * width).max(1);
        return Err(EngineError::NonFinite {
            system: at.system.to_string(),
            set: at.set,
            column: at.column.to_string(),
            env: env0 + k / per_env,
            entity: (k % per_env) / width,
            component: k % width,
            step,
            value: data[k].to_f64(),
        });
    }
    Ok(())
}
