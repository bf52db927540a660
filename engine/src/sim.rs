//! `Sim`: a validated schedule bound to a packed scene (Model, State, Control mirrors) and a
//! backend, with an optional tape for reverse-mode differentiation of whole rollouts.

use crate::columns::{Columns, Layout};
use crate::cpu::{Cpu, RecordedStep};
use crate::error::EngineError;
use crate::model::Model;
use crate::scalar::Real;
use crate::schedule::Schedule;
use crate::tape::{Tape, TapeMemory};

/// Gradients of a loss over a recorded rollout.
#[derive(Clone, Debug)]
pub struct Gradients<R: Real> {
    /// ∂L/∂(state at the first recorded step).
    pub initial_state: Columns<R>,
    /// ∂L/∂(control of step t), t = 0..H.
    pub controls: Vec<Columns<R>>,
}

/// Builds the same simulation in any scalar: f32 to train, f64 and `Dual` to test gradients.
pub trait SimFactory {
    fn sim<R: Real>(&self) -> Result<Sim<R>, EngineError>;
}

pub struct Sim<R: Real> {
    pub model: Model,
    pub state: Columns<R>,
    pub control: Columns<R>,
    pub schedule: Schedule<R>,
    pub cpu: Cpu,
    tape: Option<Tape<R>>,
    step: usize,
}

impl<R: Real> Sim<R> {
    /// Validates `schedule` against the scene's layouts.
    pub fn new(
        model: Model,
        state: Columns<R>,
        control_layout: Layout,
        schedule: Schedule<R>,
        cpu: Cpu,
    ) -> Result<Self, EngineError> {
        schedule.validate(state.layout(), &control_layout, &model)?;
        let control = Columns::zeros(control_layout, state.num_envs());
        Ok(Self { model, state, control, schedule, cpu, tape: None, step: 0 })
    }
    pub fn num_envs(&self) -> usize {
        self.state.num_envs()
    }
    /// Env steps taken since construction.
    pub fn steps_taken(&self) -> usize {
        self.step
    }
    /// Sets a control column (all envs), checking its length.
    pub fn set_control(&mut self, name: &str, values: &[R]) -> Result<(), EngineError> {
        self.control.set(name, values)
    }
    /// Starts recording a fresh tape; later `step`s are differentiable by `backward`.
    pub fn record(&mut self) {
        self.tape = Some(Tape::new());
    }
    pub fn stop_recording(&mut self) -> Option<Tape<R>> {
        self.tape.take()
    }
    pub fn tape(&self) -> Option<&Tape<R>> {
        self.tape.as_ref()
    }
    pub fn tape_memory(&self) -> Option<TapeMemory> {
        let per_env = self.state.layout().per_env() * std::mem::size_of::<R>();
        self.tape.as_ref().map(|t| t.memory(self.schedule.recompute_states(per_env)))
    }

    /// One env step for every environment.
    pub fn step(&mut self) -> Result<(), EngineError> {
        if let Some(t) = &mut self.tape {
            t.record(self.step, &self.state, &self.control);
        }
        let result = self.cpu.forward_step(&self.schedule, self.step, &self.model, &self.control, &mut self.state);
        // A NaN check that fails has still stepped the state (every env with `NanCheck::EveryStep`,
        // the named env part-way with `EverySystem`): count the step, so the next one (a caller
        // that isolates the env and goes on, as `VecEnv::step`) keeps its own index, on the tape
        // and in the `StepCx` that step-dependent systems read.
        if matches!(result, Ok(()) | Err(EngineError::NonFinite { .. })) {
            self.step += 1;
        }
        result
    }

    /// Environments whose state holds a NaN or inf in any column.
    pub fn non_finite_envs(&self) -> Vec<usize> {
        (0..self.num_envs())
            .filter(|&e| {
                self.state.columns().any(|(spec, col)| {
                    let n = spec.per_env();
                    col[e * n..(e + 1) * n].iter().any(|x| !x.is_finite())
                })
            })
            .collect()
    }

    /// Marks `envs` as diverged in the last recorded step (no-op when not recording): backward
    /// gives them no gradient through that step. Reset them afterwards.
    pub fn mark_diverged(&mut self, envs: &[usize]) {
        if let Some(t) = &mut self.tape {
            t.mark_diverged(envs);
        }
    }

    /// Replaces the state of `envs` by their rows in `init`; on a tape this cuts only those
    /// environments' gradient paths.
    pub fn reset_envs(&mut self, envs: &[usize], init: &Columns<R>) -> Result<(), EngineError> {
        for &e in envs {
            for (spec, _) in init.columns() {
                let src = init.env(&spec.name, e)?.to_vec();
                self.state.env_mut(&spec.name, e)?.copy_from_slice(&src);
            }
        }
        if let Some(t) = &mut self.tape {
            t.cut(envs);
        }
        Ok(())
    }

    /// Reverse sweep over the recorded rollout. `seed(t, adj)` adds ∂L/∂(state after step t) for
    /// the loss terms that live at step t (rewards, final state); it is called for t = H-1 .. 0.
    pub fn backward(&self, mut seed: impl FnMut(usize, &mut Columns<R>)) -> Result<Gradients<R>, EngineError> {
        self.backward_sweep(|t, adj, _| seed(t, adj))
    }

    /// `backward` for learners whose controls depend on later states (a policy a_t = π(o_t)):
    /// `seed(t, adj, next)` also receives ∂L/∂control_{t+1} (`None` for the last step), which
    /// the reverse sweep has just finished, so the seed can add the policy's vector-Jacobian
    /// product ∂L/∂a_{t+1} · ∂a_{t+1}/∂o_{t+1} into the observation column of the state after
    /// step t before step t is differentiated (DESIGN.md §2, "gradient bridge"). Exact: every
    /// path through later observations is accounted for, in one sweep.
    pub fn backward_sweep(
        &self,
        mut seed: impl FnMut(usize, &mut Columns<R>, Option<&Columns<R>>),
    ) -> Result<Gradients<R>, EngineError> {
        let tape = self.tape.as_ref().ok_or_else(|| EngineError::Tape("backward without `record()`".into()))?;
        let mut adj_state: Columns<R> = self.state.zeros_like();
        let mut controls: Vec<Columns<R>> = (0..tape.len()).map(|_| self.control.zeros_like()).collect();
        let mut scratch = Vec::new();
        for t in (0..tape.len()).rev() {
            seed(t, &mut adj_state, controls.get(t + 1));
            let recorded =
                RecordedStep { step: tape.step_index(t), control: tape.control(t), pre_step: tape.checkpoint(t) };
            self.cpu.backward_step(
                &self.schedule,
                &self.model,
                recorded,
                &mut adj_state,
                &mut controls[t],
                &mut scratch,
            )?;
            // A diverged step has no gradient (its recompute is NaN; NaN · 0 is NaN, so the rows
            // are overwritten, not scaled); a reset cuts the path into the previous step.
            for &e in tape.diverged(t) {
                zero_env(&mut adj_state, e);
                zero_env(&mut controls[t], e);
            }
            for &e in tape.cuts(t) {
                zero_env(&mut adj_state, e);
            }
        }
        Ok(Gradients { initial_state: adj_state, controls })
    }
}

/// Zeroes environment `e`'s rows of every column.
fn zero_env<R: Real>(c: &mut Columns<R>, e: usize) {
    let n = c.num_envs();
    for (_, col) in c.columns_mut() {
        let per = col.len() / n;
        col[e * per..(e + 1) * per].fill(R::zero());
    }
}
