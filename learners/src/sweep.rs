//! The exact gradient bridge between a closed-loop policy in tch and a recorded `VecEnv` rollout
//! (DESIGN.md §2 "Gradient bridge to tch").
//!
//! With a policy, ∂L/∂obs_t depends on ∂L/∂a_t (obs_t feeds a_t), and ∂L/∂a_t depends on
//! ∂L/∂obs_{t+1}, so a whole-horizon `VecEnv::backward` with fixed obs adjoints is not enough.
//! `RolloutTape::sweep` runs the reverse sweep one env step at a time from the engine's public
//! per-step adjoint (`Cpu::backward_step` over `Sim::tape()`), and between steps asks the learner
//! for the adjoints of what step t returned, after handing it ∂L/∂a_{t+1}. That is one backward
//! per step: O(H), exact, no truncation of the obs → action path.
//!
//! It reproduces `VecEnv::backward_with_final_obs` step for step (the same seeds, clip gradients,
//! autoreset cuts); `tests/bridge.rs` checks the two agree bit for bit. The clip gradients and the
//! autoreset envs, which `VecEnv` keeps private, are recorded here from the actions passed and the
//! `StepResult`s returned, so every step of a rollout must go through `RolloutTape::step`.

use diffsim_engine::cpu::RecordedStep;
use diffsim_engine::{EngineError, Scratch};
use diffsim_tasks::{StepResult, Task, VecEnv};
use ndarray::{Array1, Array2, ArrayView2};

/// Adjoints of what one step returned (rows indexed by env). `None` means zero.
#[derive(Clone, Debug, Default)]
pub struct StepSeed {
    /// ∂L/∂obs_t `[N, obs_dim]`; rows of envs that autoreset after step t are ignored (the obs
    /// returned for them is a fresh episode's first obs, with no upstream).
    pub obs: Option<Array2<f32>>,
    /// ∂L/∂reward_t `[N]`.
    pub reward: Option<Array1<f32>>,
    /// ∂L/∂final_obs_t `[N, obs_dim]`; only rows of envs that autoreset after step t are read.
    pub final_obs: Option<Array2<f32>>,
}

/// What the learner supplies during the sweep, called for t = H−1 .. 0 in this order:
/// `seed(t)`, then (after step t is differentiated) `action_adjoint(t, ∂L/∂a_t)`.
pub trait SweepHooks {
    fn seed(&mut self, t: usize) -> Result<StepSeed, EngineError>;
    fn action_adjoint(&mut self, t: usize, adj_action: Array2<f32>) -> Result<(), EngineError>;
}

/// Per-step records of a rollout on a `VecEnv` tape.
#[derive(Clone, Debug, Default)]
pub struct RolloutTape {
    /// ∂control/∂action: action_scale where −1 ≤ a ≤ 1, else 0.
    clip_grad: Vec<Array2<f32>>,
    /// Envs autoreset right after each step.
    autoreset: Vec<Vec<usize>>,
}

impl RolloutTape {
    /// Starts recording on `env` (`VecEnv::record`, a fresh tape).
    pub fn start<T: Task>(env: &mut VecEnv<T>) -> Self {
        env.record();
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.clip_grad.len()
    }
    pub fn is_empty(&self) -> bool {
        self.clip_grad.is_empty()
    }

    /// `env.step(actions)`, recording what the sweep needs.
    pub fn step<T: Task>(&mut self, env: &mut VecEnv<T>, actions: ArrayView2<f32>) -> Result<StepResult, EngineError> {
        let scale = env.spec().action_scale;
        let res = env.step(actions)?;
        self.clip_grad.push(actions.mapv(|a| if (-1.0..=1.0).contains(&a) { scale } else { 0.0 }));
        let n = res.reward.len();
        self.autoreset.push((0..n).filter(|&e| res.terminated[e] || res.truncated[e]).collect());
        Ok(res)
    }

    /// The reverse sweep (see the module doc). Returns ∂L/∂(state at the first recorded step).
    pub fn sweep<T: Task>(
        &self,
        env: &VecEnv<T>,
        hooks: &mut impl SweepHooks,
    ) -> Result<diffsim_engine::Columns<f32>, EngineError> {
        let sim = env.sim();
        let tape = sim.tape().ok_or_else(|| EngineError::Tape("sweep without `record()`".into()))?;
        let h = self.len();
        if tape.len() != h {
            return Err(EngineError::Tape(format!("the sim's tape holds {} steps but {h} were recorded", tape.len())));
        }
        let spec = env.spec();
        let (n, od, ad) = (sim.num_envs(), spec.obs_dim, spec.act_dim);
        let mut adj_state = sim.state.zeros_like::<f32>();
        let mut scratch: Vec<Scratch<f32>> = Vec::new();
        for t in (0..h).rev() {
            let seed = hooks.seed(t)?;
            let resets = &self.autoreset[t];
            // ∂L/∂(state after step t): the returned obs, or the terminal obs where the env reset.
            if let Ok(col) = adj_state.get_mut(&spec.obs) {
                for (e, dst) in col.chunks_exact_mut(od).enumerate() {
                    let src = if resets.contains(&e) { seed.final_obs.as_ref() } else { seed.obs.as_ref() };
                    if let Some(src) = src {
                        dst.iter_mut().zip(src.row(e)).for_each(|(d, &s)| *d += s);
                    }
                }
            }
            if let (Ok(col), Some(r)) = (adj_state.get_mut(&spec.reward), &seed.reward) {
                col.iter_mut().zip(r).for_each(|(d, &s)| *d += s);
            }
            let mut adj_control = sim.control.zeros_like::<f32>();
            let recorded =
                RecordedStep { step: tape.step_index(t), control: tape.control(t), pre_step: tape.checkpoint(t) };
            sim.cpu.backward_step(
                &sim.schedule,
                &sim.model,
                recorded,
                &mut adj_state,
                &mut adj_control,
                &mut scratch,
            )?;
            for &e in tape.cuts(t) {
                for (_, col) in adj_state.columns_mut() {
                    let w = col.len() / n;
                    col[e * w..(e + 1) * w].fill(0.0);
                }
            }
            let g = adj_control.get(&spec.act)?;
            let g = Array2::from_shape_vec((n, ad), g.to_vec()).map_err(|_| EngineError::ShapeMismatch {
                column: spec.act.clone(),
                expected: n * ad,
                found: g.len(),
            })?;
            hooks.action_adjoint(t, g * &self.clip_grad[t])?;
        }
        Ok(adj_state)
    }
}
