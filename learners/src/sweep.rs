//! The exact gradient bridge between a closed-loop policy in tch and a recorded `VecEnv` rollout
//! (DESIGN.md §2 "Gradient bridge to tch").
//!
//! With a policy, ∂L/∂obs_t depends on ∂L/∂a_t (obs_t feeds a_t), and ∂L/∂a_t depends on
//! ∂L/∂obs_{t+1}, so a whole-horizon `VecEnv::backward` with fixed obs adjoints is not enough.
//! `RolloutTape::sweep` runs `VecEnv::backward_sweep`, which differentiates one env step at a
//! time and, between steps, asks the learner for the adjoints of what step t returned after
//! handing it ∂L/∂a_{t+1}. That is one backward per step: O(H), exact, no truncation of the
//! obs → action path. The tests check it against `VecEnv::backward_with_final_obs` and against
//! finite differences.

use diffsim_engine::EngineError;
use diffsim_engine::Real;
use diffsim_tasks::{StepResult, StepSeeds, Task, VecEnv};
use ndarray::{Array1, Array2, ArrayView2};

/// Adjoints of what one step returned (rows indexed by env). `None` means zero.
#[derive(Clone, Debug, Default)]
pub struct StepSeed<R = f32> {
    /// ∂L/∂obs_t `[N, obs_dim]`; rows of envs that autoreset after step t are ignored (the obs
    /// returned for them is a fresh episode's first obs, with no upstream).
    pub obs: Option<Array2<R>>,
    /// ∂L/∂reward_t `[N]`.
    pub reward: Option<Array1<R>>,
    /// ∂L/∂final_obs_t `[N, obs_dim]`; only rows of envs that autoreset after step t are read.
    pub final_obs: Option<Array2<R>>,
}

/// What the learner supplies during the sweep, called for t = H−1 .. 0 in this order:
/// `seed(t)`, then (after step t is differentiated) `action_adjoint(t, ∂L/∂a_t)`.
pub trait SweepHooks<R = f32> {
    fn seed(&mut self, t: usize) -> Result<StepSeed<R>, EngineError>;
    fn action_adjoint(&mut self, t: usize, adj_action: Array2<R>) -> Result<(), EngineError>;
}

/// A rollout recorded on a `VecEnv` tape, differentiated through a closed-loop policy.
#[derive(Clone, Debug, Default)]
pub struct RolloutTape {
    steps: usize,
}

impl RolloutTape {
    /// Starts recording on `env` (`VecEnv::record`, a fresh tape).
    pub fn start<T: Task, R: Real>(env: &mut VecEnv<T, R>) -> Self {
        env.record();
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.steps
    }
    pub fn is_empty(&self) -> bool {
        self.steps == 0
    }

    /// `env.step(actions)` on the tape.
    pub fn step<T: Task, R: Real>(
        &mut self,
        env: &mut VecEnv<T, R>,
        actions: ArrayView2<R>,
    ) -> Result<StepResult<R>, EngineError> {
        let res = env.step(actions)?;
        self.steps += 1;
        Ok(res)
    }

    /// The reverse sweep (see the module doc) on `VecEnv::backward_sweep`, which hands over
    /// ∂L/∂a_{t+1} before step t is differentiated; the hooks see, for t = H−1 .. 0,
    /// `seed(t)` then `action_adjoint(t, ∂L/∂a_t)`.
    pub fn sweep<T: Task, R: Real>(
        &self,
        env: &VecEnv<T, R>,
        hooks: &mut impl SweepHooks<R>,
    ) -> Result<(), EngineError> {
        let spec = env.spec();
        let (n, od) = (env.num_envs(), spec.obs_dim);
        let h = self.len();
        let grads = env.backward_sweep(|t, next| {
            if let Some(g) = next {
                hooks.action_adjoint(t + 1, g.to_owned())?;
            }
            let seed = hooks.seed(t)?;
            Ok(StepSeeds {
                obs: seed.obs.unwrap_or_else(|| Array2::from_elem((n, od), R::zero())),
                reward: seed.reward.unwrap_or_else(|| Array1::from_elem(n, R::zero())),
                // Only the rows of envs that ended at step t are read.
                final_obs: (0..n).map(|e| seed.final_obs.as_ref().map(|f| f.row(e).to_owned())).collect(),
            })
        })?;
        if grads.len() != h {
            return Err(EngineError::Tape(format!("the env recorded {} steps, the rollout {h}", grads.len())));
        }
        if let Some(g0) = grads.into_iter().next() {
            hooks.action_adjoint(0, g0)?;
        }
        Ok(())
    }
}
