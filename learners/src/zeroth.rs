//! What the zeroth-order learners (PPO, SAC) share: the `ZerothOrder` interface (one training
//! iteration, acting, and the training loop over both), per-iteration statistics and the
//! bookkeeping of finished-episode returns over a vector of envs.

use diffsim_tasks::{Task, VecEnv};
use ndarray::Array2;

use crate::diff_rl::LearnError;

/// A learner that only steps the env forward (no tape).
pub trait ZerothOrder {
    /// One iteration (collection and updates) from the env's current observations `obs`, which
    /// are updated in place.
    fn train_iteration<T: Task>(
        &mut self,
        env: &mut VecEnv<T>,
        obs: &mut Array2<f32>,
    ) -> Result<IterationStats, LearnError>;

    /// Actions for raw observations: sampled, or the distribution's mode when `deterministic`.
    fn act(&self, obs: &Array2<f32>, deterministic: bool) -> Array2<f32>;

    /// `iterations` iterations from `env.reset(seed)`; `on_iteration` sees every iteration's stats.
    fn train<T: Task>(
        &mut self,
        env: &mut VecEnv<T>,
        seed: u64,
        iterations: usize,
        mut on_iteration: impl FnMut(&IterationStats),
    ) -> Result<(), LearnError> {
        let mut obs = env.reset(seed)?;
        for _ in 0..iterations {
            let s = self.train_iteration(env, &mut obs)?;
            on_iteration(&s);
        }
        Ok(())
    }
}

/// One training iteration of a zeroth-order learner.
#[derive(Clone, Debug)]
pub struct IterationStats {
    pub iteration: usize,
    /// Env steps taken since construction (all envs).
    pub env_steps: usize,
    /// Mean undiscounted return of the episodes that finished during this iteration (NaN if none).
    pub mean_return: f64,
    pub policy_loss: f64,
    pub value_loss: f64,
    /// PPO: mean KL of the policy update; SAC: the temperature α.
    pub extra: f64,
    pub lr: f64,
    /// Seconds spent in `VecEnv::step` (simulation) and in the whole iteration.
    pub sim_s: f64,
    pub wall_s: f64,
}

/// Running undiscounted returns per env; collects the returns of finished episodes.
#[derive(Clone, Debug)]
pub struct EpisodeTracker {
    running: Vec<f64>,
    finished: Vec<f64>,
}

impl EpisodeTracker {
    pub fn new(num_envs: usize) -> Self {
        Self { running: vec![0.0; num_envs], finished: Vec::new() }
    }
    /// Adds env `e`'s reward; `done` closes its episode.
    pub fn add(&mut self, e: usize, reward: f64, done: bool) {
        self.running[e] += reward;
        if done {
            self.finished.push(self.running[e]);
            self.running[e] = 0.0;
        }
    }
    /// Mean of the episodes finished since the last call (NaN if none), and forgets them.
    pub fn take_mean(&mut self) -> f64 {
        let n = self.finished.len();
        let mean = if n == 0 { f64::NAN } else { self.finished.iter().sum::<f64>() / n as f64 };
        self.finished.clear();
        mean
    }
}
