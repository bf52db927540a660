//! Open-loop trajectory optimization: the action sequence a_0 .. a_{H-1} itself is the parameter.
//! Each iteration rolls the simulation out from the same initial state on the tape, runs the
//! reverse sweep with ∂L/∂reward_t = −1 / (H · N) (L is the negative mean reward), and steps the
//! actions by plain gradient descent or Adam. This is the simplest consumer of the tape and the
//! end-to-end check that simulator gradients are useful.

use diffsim_engine::{Columns, EngineError, Sim};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    /// a ← a − lr · g
    GradientDescent,
    /// Adam (β₁ 0.9, β₂ 0.999, ε 1e-8).
    Adam,
}

/// Which rewards the loss sums.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Objective {
    /// L = −(1 / H N) Σ_t Σ_env r_t (the RL return, undiscounted).
    MeanReward,
    /// L = −(1 / N) Σ_env r_{H−1} (a terminal cost: where the rollout ends).
    FinalReward,
}

#[derive(Clone, Debug)]
pub struct OpenLoopConfig {
    pub objective: Objective,
    pub horizon: usize,
    pub iterations: usize,
    pub lr: f64,
    pub optimizer: Optimizer,
    /// State column holding the per-env reward `[1, 1]`.
    pub reward: String,
}

impl Default for OpenLoopConfig {
    fn default() -> Self {
        Self {
            objective: Objective::MeanReward,
            horizon: 60,
            iterations: 100,
            lr: 0.1,
            optimizer: Optimizer::GradientDescent,
            reward: "reward".into(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct OpenLoopReport {
    /// Loss (negative mean reward) before each update, then after the last.
    pub losses: Vec<f64>,
    /// Gradient norm at each iteration.
    pub grad_norms: Vec<f64>,
}

/// The action sequence being optimized and the optimizer's moments.
pub struct OpenLoop {
    pub cfg: OpenLoopConfig,
    pub actions: Vec<Columns<f32>>,
    m: Vec<Columns<f32>>,
    v: Vec<Columns<f32>>,
    t: i32,
}

impl OpenLoop {
    /// Starts from zero actions shaped like `sim`'s control.
    pub fn new(sim: &Sim<f32>, cfg: OpenLoopConfig) -> Self {
        let zeros = || (0..cfg.horizon).map(|_| sim.control.zeros_like::<f32>()).collect::<Vec<_>>();
        Self { actions: zeros(), m: zeros(), v: zeros(), t: 0, cfg }
    }

    /// Weight of step t's reward in the loss (see `Objective`).
    fn weight(&self, t: usize, num_envs: usize) -> f64 {
        match self.cfg.objective {
            Objective::MeanReward => -1.0 / (self.cfg.horizon * num_envs) as f64,
            Objective::FinalReward if t + 1 == self.cfg.horizon => -1.0 / num_envs as f64,
            Objective::FinalReward => 0.0,
        }
    }

    /// Rolls out from `init` with the current actions and returns the loss. Records a tape when
    /// `record` is set.
    pub fn rollout(&self, sim: &mut Sim<f32>, init: &Columns<f32>, record: bool) -> Result<f64, EngineError> {
        sim.state.copy_from(init);
        if record {
            sim.record();
        }
        let mut total = 0.0f64;
        for (t, a) in self.actions.iter().enumerate() {
            sim.control.copy_from(a);
            sim.step()?;
            let w = self.weight(t, sim.num_envs());
            total += w * sim.state.get(&self.cfg.reward)?.iter().map(|&r| r as f64).sum::<f64>();
        }
        Ok(total)
    }

    /// One iteration: rollout, reverse sweep, update. Returns (loss, gradient norm).
    pub fn iterate(&mut self, sim: &mut Sim<f32>, init: &Columns<f32>) -> Result<(f64, f64), EngineError> {
        let loss = self.rollout(sim, init, true)?;
        let weights: Vec<f32> = (0..self.cfg.horizon).map(|t| self.weight(t, sim.num_envs()) as f32).collect();
        let reward = self.cfg.reward.clone();
        let grads = sim.backward(|t, adj| {
            if let Ok(r) = adj.get_mut(&reward) {
                r.iter_mut().for_each(|x| *x += weights[t]);
            }
        })?;
        let norm = grads
            .controls
            .iter()
            .flat_map(|c| c.columns().flat_map(|(_, v)| v.iter().map(|&x| (x as f64) * (x as f64))).collect::<Vec<_>>())
            .sum::<f64>()
            .sqrt();
        self.t += 1;
        let lr = self.cfg.lr as f32;
        for (k, g) in grads.controls.iter().enumerate() {
            match self.cfg.optimizer {
                Optimizer::GradientDescent => {
                    for ((_, a), (_, g)) in self.actions[k].columns_mut().zip(g.columns()) {
                        a.iter_mut().zip(g).for_each(|(a, g)| *a -= lr * g);
                    }
                }
                Optimizer::Adam => {
                    let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
                    let (c1, c2) = (1.0 - b1.powi(self.t), 1.0 - b2.powi(self.t));
                    let cols = self.actions[k].columns_mut().zip(self.m[k].columns_mut()).zip(self.v[k].columns_mut());
                    for ((((_, a), (_, m)), (_, v)), (_, g)) in cols.zip(g.columns()) {
                        for i in 0..a.len() {
                            m[i] = b1 * m[i] + (1.0 - b1) * g[i];
                            v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
                            a[i] -= lr * (m[i] / c1) / ((v[i] / c2).sqrt() + eps);
                        }
                    }
                }
            }
        }
        Ok((loss, norm))
    }

    /// Runs `cfg.iterations` iterations; `on_iter(i, loss, grad_norm)` sees each.
    pub fn optimize(
        &mut self,
        sim: &mut Sim<f32>,
        init: &Columns<f32>,
        mut on_iter: impl FnMut(usize, f64, f64),
    ) -> Result<OpenLoopReport, EngineError> {
        let mut report = OpenLoopReport { losses: Vec::new(), grad_norms: Vec::new() };
        for i in 0..self.cfg.iterations {
            let (loss, norm) = self.iterate(sim, init)?;
            on_iter(i, loss, norm);
            report.losses.push(loss);
            report.grad_norms.push(norm);
        }
        report.losses.push(self.rollout(sim, init, false)?);
        Ok(report)
    }
}
