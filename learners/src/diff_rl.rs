//! First-order (analytic-gradient) RL over a differentiable `VecEnv`: SAPO (sapo.md §1.3), SHAC
//! (§3.1) and APG/BPTT (§3.2). They share one epoch loop; `Algo` switches the parts that differ
//! (entropy and temperature: SAPO; critic ensemble vs target critic; no critic: APG). Each preset
//! (`DiffRlConfig::sapo/shac/apg`) holds sapo.md's defaults.
//!
//! One epoch (`DiffRl::train_epoch`), top to bottom like sapo.md §1.3:
//!  0. linear LR decay;
//!  1. an H-step differentiable rollout: the actor (tch) maps each observation leaf to an action,
//!     the env steps on its tape; the objective J (rewards, entropy, critic bootstraps, segment
//!     discounting) is built in tch on leaf tensors of the rewards, observations and terminal
//!     observations;
//!  2. the actor gradient by the exact bridge (`sweep`): tch autograd gives the explicit partials
//!     of −J/(H·N); the reverse sweep over the tape then alternates one simulator adjoint step
//!     with one policy VJP per env step (∂L/∂a_t → θ and ∂L/∂o_t → the step before);
//!     clip and step the actor;
//!  3. the temperature step (SAPO);
//!  4. TD(λ) critic targets (no gradient) and 16 × 4 contiguous-minibatch critic regressions;
//!     the Polyak step of the target critic (SHAC).
//!
//! Decisions sapo.md leaves open (§5): bootstraps use V(o_{t+1}) (the paper form, §1.8); AdamW
//! weight decay 0.01 (also on log α); an actor gradient whose norm is NaN or > 1e6 skips the
//! epoch's whole update (actor, temperature, critic; `EpochStats::skipped`) instead of aborting,
//! and the NaN/inf events the `VecEnv` isolated during the rollout are reported in
//! `EpochStats::nan_events` with the system and env that produced them.
//!
//! Reproducibility: tch's global RNG is re-seeded at the start of every epoch from (seed, epoch)
//! (`epoch_seed`), so a run resumed from a checkpoint at an epoch boundary draws the same noise as
//! the run that wrote it. Optimizer moments live in `optim::Adam` so checkpoints can save them.

use std::time::{Duration, Instant};

use diffsim_engine::{EngineError, Real};
use diffsim_tasks::{NanEvent, Task, VecEnv};
use ndarray::{Array1, Array2};
use tch::nn;
use tch::{Kind, Tensor};

use crate::encoder::PointCloudLayout;
use crate::nets::{
    Activation, Actor, Critic, RunningMeanStd, SimFloat, StdKind, array_to_tensor, ensemble_mean_min, entropy_sample,
    tensor_to_array,
};
use crate::optim::Adam;
use crate::sweep::{RolloutTape, StepSeed, SweepHooks};

/// The seed of tch's RNG for epoch `epoch` of a run seeded `seed` (SplitMix64 of both, so
/// neighbouring seeds and epochs draw unrelated noise).
pub fn epoch_seed(seed: i64, epoch: usize) -> i64 {
    let mut z = (seed as u64) ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 1) as i64
}

#[derive(Debug, thiserror::Error)]
pub enum LearnError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Tch(#[from] tch::TchError),
    #[error("learner.pointnet_points/pointnet_offset do not fit the task's observation: {0}")]
    PointCloud(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algo {
    Sapo,
    Shac,
    Apg,
}

/// Hyperparameters (sapo.md §2.1 for SAPO, §3.1 SHAC, §3.2 APG).
#[derive(Clone, Debug)]
pub struct DiffRlConfig {
    pub algo: Algo,
    /// H, env steps per epoch and env.
    pub horizon: usize,
    /// E, the length of the linear LR decay.
    pub epochs: usize,
    pub gamma: f64,
    /// TD(λ) of the critic targets.
    pub lambda: f64,
    pub actor_hidden: Vec<i64>,
    pub critic_hidden: Vec<i64>,
    pub activation: Activation,
    /// Orthogonal-init gain of every Linear.
    pub init_gain: f64,
    pub std: StdKind,
    /// Critics in the ensemble (SAPO 2, SHAC 1, APG 0).
    pub num_critics: usize,
    /// SHAC's target critic: Polyak θ' ← a θ' + (1 − a) θ after each critic phase.
    pub target_critic: Option<f64>,
    pub actor_lr: f64,
    pub critic_lr: f64,
    /// Both LRs decay linearly to this.
    pub lr_end: f64,
    pub alpha_lr: f64,
    pub betas: (f64, f64),
    /// `Some(wd)`: AdamW with this weight decay; `None`: Adam.
    pub weight_decay: Option<f64>,
    pub actor_clip: f64,
    pub critic_clip: f64,
    pub alpha_clip: f64,
    pub critic_iterations: usize,
    pub critic_minibatches: usize,
    /// SAPO: entropy in the return and the critic targets, learned temperature.
    pub entropy: bool,
    pub init_alpha: f64,
    /// Running obs normalization: unbiased batch variance, initial count.
    pub obs_norm_unbiased: bool,
    pub obs_norm_init_count: f64,
    /// Skip the actor step when the gradient norm is NaN or above this.
    pub max_grad_norm: f64,
    /// tch's RNG seed (init and action noise).
    pub seed: i64,
    /// Measurement only: drop ∂L/∂o_t through the policy (the o_t → a_t path), keeping only the
    /// explicit obs terms. The exact bridge is `false`.
    pub detach_obs_path: bool,
    /// sapo.md §1.8: bootstrap non-terminal values (actor return and critic targets) from the
    /// pre-step observation o_t, as the released mineral code does; `false` is the paper's o_{t+1}.
    pub mineral_compat_bootstrap: bool,
    /// A PointNet encoder on this block of the observation (sapo.md §2.2: RollingFlat, SoftJumper,
    /// HandFlip, FluidMove), one per network; `None`: the networks read the flat observation.
    pub point_cloud: Option<PointCloudLayout>,
}

impl DiffRlConfig {
    /// SAPO (sapo.md §2.1, AntRun sizes).
    pub fn sapo() -> Self {
        Self {
            algo: Algo::Sapo,
            horizon: 32,
            epochs: 2000,
            gamma: 0.99,
            lambda: 0.95,
            actor_hidden: vec![128, 64, 32],
            critic_hidden: vec![64, 64],
            activation: Activation::Silu,
            init_gain: 1.0,
            std: StdKind::StateDependent,
            num_critics: 2,
            target_critic: None,
            actor_lr: 2e-3,
            critic_lr: 5e-4,
            lr_end: 1e-5,
            alpha_lr: 5e-3,
            betas: (0.7, 0.95),
            weight_decay: Some(0.01),
            actor_clip: 0.5,
            critic_clip: 0.5,
            alpha_clip: 0.5,
            critic_iterations: 16,
            critic_minibatches: 4,
            entropy: true,
            init_alpha: 1.0,
            obs_norm_unbiased: true,
            obs_norm_init_count: 1.0,
            max_grad_norm: 1e6,
            seed: 0,
            detach_obs_path: false,
            mineral_compat_bootstrap: false,
            point_cloud: None,
        }
    }

    /// SHAC (sapo.md §3.1, AntRun: critic lr 2e-3, target Polyak 0.2).
    pub fn shac() -> Self {
        Self {
            algo: Algo::Shac,
            activation: Activation::Elu,
            init_gain: std::f64::consts::SQRT_2,
            std: StdKind::StateIndependent { init_log_std: -1.0 },
            num_critics: 1,
            target_critic: Some(0.2),
            critic_lr: 2e-3,
            weight_decay: None,
            actor_clip: 1.0,
            critic_clip: 1.0,
            entropy: false,
            obs_norm_unbiased: false,
            obs_norm_init_count: 1e-4,
            ..Self::sapo()
        }
    }

    /// APG / BPTT (sapo.md §3.2): SHAC's actor, no critic.
    pub fn apg() -> Self {
        Self { algo: Algo::Apg, num_critics: 0, target_critic: None, ..Self::shac() }
    }
}

/// Normalized entropy h = (Ĥ + κ) / (2κ), κ = dA / 2 (sapo.md §1.2 II).
pub fn normalized_entropy(h: f64, act_dim: usize) -> f64 {
    let kappa = act_dim as f64 / 2.0;
    (h + kappa) / (2.0 * kappa)
}

/// TD(λ) targets by the backward recursion of sapo.md §1.4(d). All arrays are `[H, N]`:
/// `reward` r̃_t (entropy included), `v_next` the bootstrap value of step t's next state (terminal
/// obs at a truncation, 0 at an early termination, V(s_H) at t = H − 1), `done` d_t (1 at t = H−1).
pub fn td_lambda_targets(
    reward: &Array2<f32>,
    v_next: &Array2<f32>,
    done: &Array2<f32>,
    gamma: f64,
    lambda: f64,
) -> Array2<f32> {
    let (h, n) = reward.dim();
    let mut y = Array2::zeros((h, n));
    for e in 0..n {
        let (mut big_l, mut a, mut b) = (1.0f64, 0.0f64, 0.0f64);
        for t in (0..h).rev() {
            let (r, v, d) = (reward[(t, e)] as f64, v_next[(t, e)] as f64, done[(t, e)] as f64);
            big_l = big_l * lambda * (1.0 - d) + d;
            a = (1.0 - d) * (lambda * gamma * a + gamma * v + (1.0 - big_l) / (1.0 - lambda) * r);
            b = gamma * (v * d + b * (1.0 - d)) + r;
            y[(t, e)] = ((1.0 - lambda) * a + big_l * b) as f32;
        }
    }
    y
}

/// What a rollout leaves for the actor step, the temperature and the critic.
struct Rollout {
    actor_loss: f64,
    grads: Vec<Tensor>,
    /// Detached normalized observations o_t, each `[N, obs_dim]`.
    buf_obs: Vec<Tensor>,
    /// `[H, N]`: rewards, raw entropies, target-critic bootstrap values, segment ends.
    buf_r: Array2<f32>,
    buf_ent: Array2<f32>,
    buf_v: Array2<f32>,
    buf_d: Array2<f32>,
    /// Returns and lengths of the episodes that ended.
    ended: Vec<f64>,
    ended_lengths: Vec<usize>,
    nan_events: Vec<NanEvent>,
    /// Time in `VecEnv::step` and in the simulator's part of the reverse sweep.
    sim_forward: Duration,
    adjoint: Duration,
}

/// One epoch's numbers.
#[derive(Clone, Debug, Default)]
pub struct EpochStats {
    pub epoch: usize,
    /// −J / (H·N) of the rollout.
    pub actor_loss: f64,
    /// Actor gradient norm before clipping.
    pub grad_norm: f64,
    /// The actor step was skipped (NaN or huge gradient).
    pub skipped: bool,
    pub alpha: f64,
    pub mean_entropy: f64,
    /// Mean critic loss over the critic phase.
    pub critic_loss: f64,
    /// Mean task reward per env step over the epoch's rollout (all N·H steps; a learning signal
    /// for tasks whose episodes outlast many epochs, e.g. the 300-step MPM tasks).
    pub step_reward: f64,
    /// Mean of the (undiscounted) returns of the episodes that ended this epoch.
    pub episode_return: Option<f64>,
    /// Mean length (env steps) of the episodes that ended this epoch.
    pub episode_length: Option<f64>,
    /// Episodes that ended this epoch.
    pub episodes: usize,
    /// NaN/inf events the `VecEnv` isolated during this epoch's rollout (system, column, env).
    pub nan_events: Vec<NanEvent>,
    /// Wall-clock seconds of the epoch, and the parts spent in the simulator's forward steps and
    /// in its adjoint (the rest is tch: networks, losses, optimizers, conversions).
    pub wall_s: f64,
    pub sim_forward_s: f64,
    pub adjoint_s: f64,
}

impl EpochStats {
    /// Seconds outside the simulator (networks, losses, optimizers, array conversions).
    pub fn tch_s(&self) -> f64 {
        (self.wall_s - self.sim_forward_s - self.adjoint_s).max(0.0)
    }
}

/// A first-order learner: networks, optimizers, normalizer and episode bookkeeping.
pub struct DiffRl {
    pub cfg: DiffRlConfig,
    pub(crate) obs_dim: usize,
    pub(crate) act_dim: usize,
    pub actor_vs: nn::VarStore,
    pub actor: Actor,
    pub critic_vs: nn::VarStore,
    critics: Vec<Critic>,
    pub(crate) target_vs: Option<nn::VarStore>,
    target_critics: Vec<Critic>,
    pub alpha_vs: nn::VarStore,
    log_alpha: Tensor,
    pub(crate) opt_actor: Adam,
    pub(crate) opt_critic: Option<Adam>,
    pub(crate) opt_alpha: Option<Adam>,
    pub obs_rms: RunningMeanStd,
    /// The networks' precision (`Kind::Float` to train; `Kind::Double` for gradient checks).
    pub(crate) kind: Kind,
    pub epoch: usize,
    /// Env steps taken by training so far.
    pub env_steps: u64,
    /// The current episode's return and length, per env.
    pub(crate) ep_return: Vec<f64>,
    pub(crate) ep_length: Vec<usize>,
    pub finished_returns: Vec<f64>,
}

/// The optimizer of `vs`'s trainable variables, in `trainable_variables()` order (sorted by name,
/// so a checkpoint can pair moments with variables).
fn optimizer(cfg: &DiffRlConfig, vs: &nn::VarStore, lr: f64) -> Adam {
    let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let params = named.into_iter().map(|(_, t)| t).collect();
    match cfg.weight_decay {
        Some(wd) => Adam::new(params, lr, cfg.betas, wd, true),
        None => Adam::new(params, lr, cfg.betas, 0.0, false),
    }
}

fn build_critics(vs: &nn::VarStore, cfg: &DiffRlConfig, obs_dim: i64) -> Vec<Critic> {
    (0..cfg.num_critics)
        .map(|k| {
            let path = vs.root() / format!("critic{k}");
            Critic::with_encoder(path, obs_dim, &cfg.critic_hidden, cfg.activation, cfg.init_gain, cfg.point_cloud)
        })
        .collect()
}

/// A tensor that is 0 where the tensor is undefined (an input autograd never reached).
fn defined_or_zeros(g: Tensor, like: &Tensor) -> Tensor {
    if g.defined() { g } else { like.zeros_like() }
}

impl DiffRl {
    pub fn new(obs_dim: usize, act_dim: usize, num_envs: usize, cfg: DiffRlConfig) -> Result<Self, LearnError> {
        Self::with_kind(obs_dim, act_dim, num_envs, cfg, Kind::Float)
    }

    /// `new` with networks, temperature and optimizer state in `kind` (`Kind::Double` with a
    /// `VecEnv<T, f64>` runs the whole bridge in f64, for gradient checks). The initial values are
    /// those of `new`, rounded from f32.
    pub fn with_kind(
        obs_dim: usize,
        act_dim: usize,
        num_envs: usize,
        cfg: DiffRlConfig,
        kind: Kind,
    ) -> Result<Self, LearnError> {
        if let Some(layout) = cfg.point_cloud {
            layout.check(obs_dim).map_err(LearnError::PointCloud)?;
        }
        tch::manual_seed(cfg.seed);
        let dev = tch::Device::Cpu;
        let mut actor_vs = nn::VarStore::new(dev);
        let (od, ad) = (obs_dim as i64, act_dim as i64);
        let (hidden, act, gain) = (&cfg.actor_hidden, cfg.activation, cfg.init_gain);
        let actor = Actor::with_encoder(actor_vs.root() / "actor", od, ad, hidden, act, gain, cfg.std, cfg.point_cloud);
        let mut critic_vs = nn::VarStore::new(dev);
        let critics = build_critics(&critic_vs, &cfg, od);
        let (target_vs, target_critics) = match cfg.target_critic {
            Some(_) => {
                let mut vs = nn::VarStore::new(dev);
                let c = build_critics(&vs, &cfg, od);
                vs.copy(&critic_vs)?;
                vs.set_kind(kind);
                (Some(vs), c)
            }
            None => (None, Vec::new()),
        };
        let mut alpha_vs = nn::VarStore::new(dev);
        let log_alpha = alpha_vs.root().var("log_alpha", &[1], nn::Init::Const(cfg.init_alpha.ln()));
        // In place (`set_data`): the layers' and `log_alpha`'s handles see the new kind.
        for vs in [&mut actor_vs, &mut critic_vs, &mut alpha_vs] {
            vs.set_kind(kind);
        }
        let opt_actor = optimizer(&cfg, &actor_vs, cfg.actor_lr);
        let opt_critic = if critics.is_empty() { None } else { Some(optimizer(&cfg, &critic_vs, cfg.critic_lr)) };
        let opt_alpha = if cfg.entropy { Some(optimizer(&cfg, &alpha_vs, cfg.alpha_lr)) } else { None };
        let raw = cfg.point_cloud.map_or(0..0, |l| l.range());
        let obs_rms = RunningMeanStd::new(obs_dim, cfg.obs_norm_unbiased, cfg.obs_norm_init_count).with_raw(raw);
        Ok(Self {
            cfg,
            obs_dim,
            act_dim,
            actor_vs,
            actor,
            critic_vs,
            critics,
            target_vs,
            target_critics,
            alpha_vs,
            log_alpha,
            opt_actor,
            opt_critic,
            opt_alpha,
            obs_rms,
            kind,
            epoch: 0,
            env_steps: 0,
            ep_return: vec![0.0; num_envs],
            ep_length: vec![0; num_envs],
            finished_returns: Vec::new(),
        })
    }

    pub fn alpha(&self) -> f64 {
        self.log_alpha.exp().double_value(&[0])
    }

    /// The critic the actor bootstraps from: mean of the ensemble (SAPO) or the target (SHAC).
    fn actor_value(&self, obs_n: &Tensor) -> Tensor {
        match self.cfg.target_critic {
            Some(_) => ensemble_mean_min(&self.target_critics, obs_n).0,
            None => ensemble_mean_min(&self.critics, obs_n).0,
        }
    }
    /// The critic of the TD targets: min of the ensemble (SAPO) or the target (SHAC).
    fn target_value(&self, obs_n: &Tensor) -> Tensor {
        match self.cfg.target_critic {
            Some(_) => ensemble_mean_min(&self.target_critics, obs_n).1,
            None => ensemble_mean_min(&self.critics, obs_n).1,
        }
    }

    /// Actions for raw observations `[N, obs_dim]`: sampled, or tanh(μ) when `deterministic`.
    pub fn act<R: SimFloat>(&self, obs: &Array2<R>, deterministic: bool) -> Array2<R> {
        tch::no_grad(|| {
            let o = self.obs_rms.normalize(&array_to_tensor(obs).to_kind(self.kind));
            let a = if deterministic { self.actor.mean_action(&o) } else { self.actor.sample(&o).action };
            tensor_to_array(&a)
        })
    }

    /// One epoch from the env's current state and observations `obs` (updated in place).
    pub fn train_epoch<T: Task, R: SimFloat>(
        &mut self,
        env: &mut VecEnv<T, R>,
        obs: &mut Array2<R>,
    ) -> Result<EpochStats, LearnError> {
        let started = Instant::now();
        let cfg = self.cfg.clone();
        let (h, n, ad) = (cfg.horizon, env.num_envs(), self.act_dim);
        let gamma = cfg.gamma;
        let kappa = ad as f64 / 2.0;
        let target_entropy = -kappa;
        tch::manual_seed(epoch_seed(cfg.seed, self.epoch));

        // (0) linear LR decay to lr_end.
        let frac = (self.epoch as f64 / cfg.epochs.max(1) as f64).min(1.0);
        self.opt_actor.lr = cfg.actor_lr + (cfg.lr_end - cfg.actor_lr) * frac;
        if let Some(o) = &mut self.opt_critic {
            o.lr = cfg.critic_lr + (cfg.lr_end - cfg.critic_lr) * frac;
        }

        // (1) differentiable rollout of H steps and (2) the actor gradient, then clip and step.
        // The gradients come in `actor_vs.trainable_variables()` order; the optimizer holds the
        // same variables sorted by name.
        let params = self.actor_vs.trainable_variables();
        let Rollout {
            actor_loss,
            grads,
            buf_obs,
            buf_r,
            buf_ent,
            buf_v,
            buf_d,
            ended,
            ended_lengths,
            nan_events,
            sim_forward,
            adjoint,
        } = self.rollout(env, obs)?;
        let step_reward = buf_r.iter().map(|&r| r as f64).sum::<f64>() / buf_r.len().max(1) as f64;
        let grad_norm = grads.iter().map(|g| g.square().sum(Kind::Double).double_value(&[])).sum::<f64>().sqrt();
        let skipped = !grad_norm.is_finite() || grad_norm > cfg.max_grad_norm;
        if !skipped {
            let scale = (cfg.actor_clip / (grad_norm + 1e-6)).min(1.0);
            self.opt_actor.zero_grad();
            let surrogate: Tensor = params.iter().zip(&grads).map(|(p, g)| (p * (g * scale)).sum(p.kind())).sum();
            surrogate.backward();
            self.opt_actor.step();
        }
        // (3) temperature step: L_α = exp(log α)·κ·(mean_t Ĥ_t − H̄), averaged over envs.
        let mean_entropy = buf_ent.mean().unwrap_or(0.0) as f64;
        if let (false, Some(opt)) = (skipped, &mut self.opt_alpha) {
            opt.zero_grad();
            let l_alpha = self.log_alpha.exp() * kappa * (mean_entropy - target_entropy);
            l_alpha.sum(self.kind).backward();
            opt.clip_grad_norm(cfg.alpha_clip);
            opt.step();
        }

        // (4) critic targets with the updated α, then 16 × 4 contiguous minibatches.
        let mut critic_loss = 0.0;
        if let (false, Some(opt)) = (skipped, &mut self.opt_critic) {
            let alpha_new = if cfg.entropy { self.log_alpha.exp().double_value(&[0]) as f32 } else { 0.0 };
            let soft_r = if cfg.entropy {
                &buf_r + &buf_ent.mapv(|x| alpha_new * normalized_entropy(x as f64, ad) as f32)
            } else {
                buf_r.clone()
            };
            let y = td_lambda_targets(&soft_r, &buf_v, &buf_d, gamma, cfg.lambda);
            let x = Tensor::cat(&buf_obs, 0);
            let y = Tensor::from_slice(y.as_slice().expect("standard layout")).to_kind(self.kind);
            let total = (h * n) as i64;
            let mb = total / cfg.critic_minibatches as i64;
            let mut count = 0;
            for _ in 0..cfg.critic_iterations {
                for b in 0..cfg.critic_minibatches as i64 {
                    let (xb, yb) = (x.narrow(0, b * mb, mb), y.narrow(0, b * mb, mb));
                    opt.zero_grad();
                    let losses: Vec<Tensor> =
                        self.critics.iter().map(|c| (c.value(&xb) - &yb).square().mean(self.kind)).collect();
                    let l = Tensor::stack(&losses, 0).mean(self.kind);
                    l.backward();
                    tch::no_grad(|| {
                        for p in self.critic_vs.trainable_variables() {
                            let mut g = p.grad();
                            if g.defined() {
                                let _ = g.nan_to_num_(0.0, 0.0, 0.0);
                            }
                        }
                    });
                    opt.clip_grad_norm(cfg.critic_clip);
                    opt.step();
                    critic_loss += l.double_value(&[]);
                    count += 1;
                }
            }
            critic_loss /= count.max(1) as f64;
            // SHAC's target critic: θ' ← a θ' + (1 − a) θ.
            if let (Some(a), Some(tvs)) = (cfg.target_critic, &mut self.target_vs) {
                let src = self.critic_vs.variables();
                tch::no_grad(|| {
                    for (name, mut dst) in tvs.variables() {
                        let s = &src[&name];
                        let mixed = &dst * a + s * (1.0 - a);
                        dst.copy_(&mixed);
                    }
                });
            }
        }

        self.finished_returns.extend(&ended);
        let mean = |xs: &[f64]| (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64);
        let lengths: Vec<f64> = ended_lengths.iter().map(|&l| l as f64).collect();
        let stats = EpochStats {
            epoch: self.epoch,
            actor_loss,
            grad_norm,
            skipped,
            alpha: if cfg.entropy { self.alpha() } else { 0.0 },
            mean_entropy,
            critic_loss,
            step_reward,
            episode_return: mean(&ended),
            episode_length: mean(&lengths),
            episodes: ended.len(),
            nan_events,
            wall_s: started.elapsed().as_secs_f64(),
            sim_forward_s: sim_forward.as_secs_f64(),
            adjoint_s: adjoint.as_secs_f64(),
        };
        self.epoch += 1;
        self.env_steps += (h * n) as u64;
        Ok(stats)
    }

    /// −J/(H·N) of one H-step rollout from `obs` and its gradient w.r.t. the actor's trainable
    /// variables (in `actor_vs.trainable_variables()` order), without updating anything but the
    /// observation statistics and the episode bookkeeping.
    pub fn actor_gradient<T: Task, R: SimFloat>(
        &mut self,
        env: &mut VecEnv<T, R>,
        obs: &mut Array2<R>,
    ) -> Result<(f64, Vec<Tensor>), LearnError> {
        let r = self.rollout(env, obs)?;
        Ok((r.actor_loss, r.grads))
    }

    /// (1) the differentiable rollout of H steps and (2) the actor gradient through the bridge.
    fn rollout<T: Task, R: SimFloat>(
        &mut self,
        env: &mut VecEnv<T, R>,
        obs: &mut Array2<R>,
    ) -> Result<Rollout, LearnError> {
        let cfg = self.cfg.clone();
        let kind = self.kind;
        // A per-env vector as a tensor of the networks' kind.
        let per_env = |v: &[f64]| Tensor::from_slice(v).to_kind(kind);
        let (h, n, ad) = (cfg.horizon, env.num_envs(), self.act_dim);
        let gamma = cfg.gamma;
        let kappa = ad as f64 / 2.0;
        let mut tape = RolloutTape::start(env);
        let rms = self.obs_rms.clone();
        self.obs_rms.update(obs);
        let alpha = if cfg.entropy { self.alpha() } else { 0.0 };
        let mut obs_leaf = vec![array_to_tensor(obs).to_kind(kind).set_requires_grad(true)];
        let mut actions: Vec<Tensor> = Vec::with_capacity(h);
        let mut reward_leaf: Vec<Tensor> = Vec::with_capacity(h);
        let mut final_leaf: Vec<Option<Tensor>> = Vec::with_capacity(h);
        let mut j = Tensor::zeros([n as i64], (kind, tch::Device::Cpu));
        let mut acc = j.zeros_like();
        let mut disc = vec![1.0f64; n];
        let mut buf_obs = Vec::with_capacity(h);
        let (mut buf_r, mut buf_ent, mut buf_v, mut buf_d) =
            (Array2::zeros((h, n)), Array2::zeros((h, n)), Array2::zeros((h, n)), Array2::zeros((h, n)));
        let mut ended = Vec::new();
        let mut ended_lengths = Vec::new();
        let mut nan_events = Vec::new();
        let mut sim_forward = Duration::ZERO;
        for t in 0..h {
            let o_n = rms.normalize(&obs_leaf[t]);
            buf_obs.push(o_n.detach());
            let s = self.actor.sample(&o_n);
            let ent = if cfg.entropy {
                let eps = Tensor::randn_like(&s.mu);
                Some(entropy_sample(&s.mu, &s.log_std, &eps))
            } else {
                None
            };
            let actions_t = tensor_to_array::<R>(&s.action);
            let t0 = Instant::now();
            let mut res = tape.step(env, actions_t.view())?;
            sim_forward += t0.elapsed();
            nan_events.append(&mut res.diverged);
            actions.push(s.action);
            self.obs_rms.update(&res.obs);
            let r = Tensor::from_slice(&res.reward.to_vec()).to_kind(kind).set_requires_grad(true);
            let next = array_to_tensor(&res.obs).to_kind(kind).set_requires_grad(true);
            let last = t + 1 == h;
            let done: Vec<bool> = (0..n).map(|e| res.terminated[e] || res.truncated[e]).collect();
            // Terminal observations: bootstrap at a finite truncation, 0 at a termination.
            let mut boot = vec![0.0f64; n];
            let fin = if done.iter().any(|&d| d) {
                let mut f = Array2::from_elem((n, self.obs_dim), R::zero());
                for (e, fo) in res.final_obs.iter().enumerate() {
                    if let Some(fo) = fo
                        && res.truncated[e]
                        && !res.terminated[e]
                        && fo.iter().all(|x| x.is_finite())
                    {
                        f.row_mut(e).assign(fo);
                        boot[e] = 1.0;
                    }
                }
                Some(array_to_tensor(&f).to_kind(kind).set_requires_grad(true))
            } else {
                None
            };
            let done_t = per_env(&done.iter().map(|&d| d as u8 as f64).collect::<Vec<_>>());
            let boot_t = per_env(&boot);
            // Bootstrap values: for the actor (with gradient into the obs) and the targets.
            let has_critic = cfg.num_critics > 0;
            // Non-terminal bootstraps: V(o_{t+1}) (paper), or V(o_t) (released mineral, §1.8).
            let boot_obs = if cfg.mineral_compat_bootstrap { &obs_leaf[t] } else { &next };
            let mut v_act = j.zeros_like();
            if has_critic && last {
                v_act = &v_act + (1.0 - &done_t) * self.actor_value(&rms.normalize(boot_obs));
            }
            if let (true, Some(f)) = (has_critic, &fin) {
                v_act = &v_act + &done_t * &boot_t * self.actor_value(&rms.normalize(f));
            }
            if has_critic {
                let v_tgt: Tensor = tch::no_grad(|| {
                    let vn = self.target_value(&rms.normalize(boot_obs));
                    let vf = fin.as_ref().map_or(vn.zeros_like(), |f| self.target_value(&rms.normalize(f)) * &boot_t);
                    &done_t * vf + (1.0 - &done_t) * vn
                });
                buf_v.row_mut(t).assign(&Array1::from(Vec::<f32>::try_from(&v_tgt.to_kind(Kind::Float))?));
            }
            // J: discounted soft rewards per segment, closed by a bootstrap at dones and at H − 1.
            let soft = match &ent {
                Some(e) => &r + (e + kappa) / (2.0 * kappa) * alpha,
                None => r.shallow_clone(),
            };
            acc = &acc + per_env(&disc) * soft;
            let end: Vec<f64> = (0..n).map(|e| if done[e] || last { 1.0 } else { 0.0 }).collect();
            let end_t = per_env(&end);
            j = &j + &end_t * (&acc + per_env(&disc) * &v_act * gamma);
            acc = &acc * (1.0 - &end_t);
            for e in 0..n {
                disc[e] = if end[e] > 0.0 { 1.0 } else { disc[e] * gamma };
            }
            // Buffers for the temperature and the critic (detached).
            buf_r.row_mut(t).assign(&res.reward.mapv(|x| x.to_f64() as f32));
            if let Some(e) = &ent {
                buf_ent.row_mut(t).assign(&Array1::from(Vec::<f32>::try_from(&e.detach().to_kind(Kind::Float))?));
            }
            buf_d.row_mut(t).assign(&Array1::from_iter(end.iter().map(|&x| x as f32)));
            for (((ret, len), &r), &d) in self.ep_return.iter_mut().zip(&mut self.ep_length).zip(&res.reward).zip(&done)
            {
                *ret += r.to_f64();
                *len += 1;
                if d {
                    ended.push(*ret);
                    ended_lengths.push(*len);
                    *ret = 0.0;
                    *len = 0;
                }
            }
            reward_leaf.push(r);
            final_leaf.push(fin);
            obs_leaf.push(next);
            *obs = res.obs;
        }
        let loss = -j.mean(kind) / h as f64;
        let actor_loss = loss.double_value(&[]);

        // (2) ∂loss/∂θ through the bridge.
        let params = self.actor_vs.trainable_variables();
        let mut bridge = PolicyBridge::new(&loss, &params, &obs_leaf, &actions, &reward_leaf, &final_leaf);
        bridge.through_obs = !cfg.detach_obs_path;
        let t0 = Instant::now();
        tape.sweep(env, &mut bridge)?;
        let adjoint = t0.elapsed().saturating_sub(bridge.hook_time);
        env.stop_recording();
        Ok(Rollout {
            actor_loss,
            grads: bridge.param_grads,
            buf_obs,
            buf_r,
            buf_ent,
            buf_v,
            buf_d,
            ended,
            ended_lengths,
            nan_events,
            sim_forward,
            adjoint,
        })
    }

    /// The ensemble's trainable variables (e.g. to inspect or perturb them in tests).
    pub fn critic_variables(&self) -> Vec<Tensor> {
        self.critic_vs.trainable_variables()
    }

    /// `env.reset(seed)`, then `epochs` epochs; `on_epoch` sees each epoch's stats.
    pub fn train<T: Task, R: SimFloat>(
        &mut self,
        env: &mut VecEnv<T, R>,
        seed: u64,
        epochs: usize,
        mut on_epoch: impl FnMut(&EpochStats),
    ) -> Result<Vec<EpochStats>, LearnError> {
        let mut obs = env.reset(seed)?;
        let mut all = Vec::with_capacity(epochs);
        for _ in 0..epochs {
            let s = self.train_epoch(env, &mut obs)?;
            on_epoch(&s);
            all.push(s);
        }
        Ok(all)
    }

    /// Mean undiscounted return of the first episode of every env after `env.reset(seed)`,
    /// without recording; sampled actions unless `deterministic`.
    pub fn evaluate<T: Task, R: SimFloat>(
        &self,
        env: &mut VecEnv<T, R>,
        seed: u64,
        deterministic: bool,
    ) -> Result<f64, LearnError> {
        evaluate_with(env, seed, |o| self.act(o, deterministic))
    }
}

/// Mean undiscounted return of the first episode of every env after `env.reset(seed)` under the
/// policy `policy` (raw obs → actions).
pub fn evaluate_with<T: Task, R: Real>(
    env: &mut VecEnv<T, R>,
    seed: u64,
    policy: impl FnMut(&Array2<R>) -> Array2<R>,
) -> Result<f64, LearnError> {
    let ret = episode_returns_with(env, seed, policy)?;
    Ok(ret.iter().sum::<f64>() / ret.len() as f64)
}

/// The undiscounted return of the first episode of every env after `env.reset(seed)` under
/// `policy` (raw obs → actions), one per env.
pub fn episode_returns_with<T: Task, R: Real>(
    env: &mut VecEnv<T, R>,
    seed: u64,
    mut policy: impl FnMut(&Array2<R>) -> Array2<R>,
) -> Result<Vec<f64>, LearnError> {
    env.stop_recording();
    let n = env.num_envs();
    let mut obs = env.reset(seed)?;
    let mut ret = vec![0.0f64; n];
    let mut finished = vec![false; n];
    while !finished.iter().all(|&f| f) {
        let res = env.step(policy(&obs).view())?;
        for e in 0..n {
            if !finished[e] {
                ret[e] += res.reward[e].to_f64();
                finished[e] = res.terminated[e] || res.truncated[e];
            }
        }
        obs = res.obs;
    }
    Ok(ret)
}

/// The learner's side of the sweep: the explicit partials of the loss from tch, and one policy
/// VJP per step, which turns ∂L/∂a_t into parameter gradients and ∂L/∂o_t.
struct PolicyBridge<'a> {
    params: &'a [Tensor],
    obs_leaf: &'a [Tensor],
    actions: &'a [Tensor],
    /// ∂L/∂o_t held explicitly (entropy, critic), t = 0..=H; index 0 unused.
    explicit_obs: Vec<Tensor>,
    explicit_reward: Vec<Tensor>,
    explicit_final: Vec<Option<Tensor>>,
    /// ∂L/∂o_t through the policy at step t, set by `action_adjoint(t)`.
    policy_obs: Vec<Option<Tensor>>,
    param_grads: Vec<Tensor>,
    /// Pass ∂L/∂o_t through the policy to the step before (exact); `false` only to measure.
    through_obs: bool,
    /// Time spent in the hooks (tch), to tell the simulator's adjoint time from the sweep's.
    hook_time: Duration,
}

impl<'a> PolicyBridge<'a> {
    /// Explicit partials of `loss` (keeps the graph: the action branches share the trunk).
    fn new(
        loss: &Tensor,
        params: &'a [Tensor],
        obs_leaf: &'a [Tensor],
        actions: &'a [Tensor],
        reward_leaf: &[Tensor],
        final_leaf: &[Option<Tensor>],
    ) -> Self {
        let h = actions.len();
        let mut inputs: Vec<&Tensor> = params.iter().collect();
        inputs.extend(obs_leaf[1..].iter());
        inputs.extend(reward_leaf.iter());
        inputs.extend(final_leaf.iter().flatten());
        let mut g = Tensor::run_backward(&[loss], &inputs, true, false).into_iter();
        let param_grads: Vec<Tensor> = params.iter().map(|p| defined_or_zeros(g.next().unwrap(), p)).collect();
        let mut explicit_obs = vec![obs_leaf[0].zeros_like()];
        explicit_obs.extend(obs_leaf[1..].iter().map(|o| defined_or_zeros(g.next().unwrap(), o)));
        let explicit_reward = reward_leaf.iter().map(|r| defined_or_zeros(g.next().unwrap(), r)).collect();
        let explicit_final =
            final_leaf.iter().map(|f| f.as_ref().map(|f| defined_or_zeros(g.next().unwrap(), f))).collect();
        Self {
            params,
            obs_leaf,
            actions,
            explicit_obs,
            explicit_reward,
            explicit_final,
            policy_obs: (0..h).map(|_| None).collect(),
            param_grads,
            through_obs: true,
            hook_time: Duration::ZERO,
        }
    }
}

impl<R: SimFloat> SweepHooks<R> for PolicyBridge<'_> {
    fn seed(&mut self, t: usize) -> Result<StepSeed<R>, EngineError> {
        let t0 = Instant::now();
        let mut o = self.explicit_obs[t + 1].shallow_clone();
        if let (true, Some(p)) = (self.through_obs, self.policy_obs.get(t + 1).and_then(|p| p.as_ref())) {
            o += p;
        }
        let seed = StepSeed {
            obs: Some(tensor_to_array(&o)),
            reward: Some(Array1::from(tensor_to_array(&self.explicit_reward[t]).into_raw_vec_and_offset().0)),
            final_obs: self.explicit_final[t].as_ref().map(tensor_to_array::<R>),
        };
        self.hook_time += t0.elapsed();
        Ok(seed)
    }

    fn action_adjoint(&mut self, t: usize, adj_action: Array2<R>) -> Result<(), EngineError> {
        let t0 = Instant::now();
        let a = &self.actions[t];
        let s = (a * array_to_tensor(&adj_action).to_kind(a.kind())).sum(a.kind());
        let mut inputs: Vec<&Tensor> = self.params.iter().collect();
        inputs.push(&self.obs_leaf[t]);
        let mut g = Tensor::run_backward(&[&s], &inputs, false, false);
        let go = g.pop().expect("obs gradient");
        for (acc, gp) in self.param_grads.iter_mut().zip(g) {
            if gp.defined() {
                *acc = &*acc + gp;
            }
        }
        self.policy_obs[t] = Some(defined_or_zeros(go, &self.obs_leaf[t]));
        self.hook_time += t0.elapsed();
        Ok(())
    }
}
