//! PPO (sapo.md §3.3, the PQL-style baseline of the paper's comparisons): a zeroth-order learner
//! that only steps the `VecEnv` forward, with no tape and no simulator gradients.
//!
//! One iteration (`Ppo::train_iteration`):
//!  1. an H-step rollout under the current policy, no gradients: observations normalized with
//!     running statistics frozen for the rollout and clamped to ±5; Gaussian actions
//!     ("dreamerv3_normal": μ = tanh(raw_μ), σ = 0.9·sigmoid(raw_σ + 2) + 0.1), clamped to [−1, 1]
//!     by the env; a time-out adds γ·V(terminal obs) to its reward (time-out bootstrap);
//!  2. GAE(γ, τ) advantages and returns A_t + V_t; value targets normalized by a running
//!     mean/std of the returns (value normalization), advantages normalized over the batch;
//!  3. `mini_epochs` passes over shuffled minibatches of the N·H samples, minimizing
//!     −min(ρA, clip(ρ, 1 ± ε)A) + ½·c_v·(V − V̂)² − c_H·H[π] with AdamW and a gradient-norm clip;
//!     after every minibatch the learning rate adapts to the KL between the rollout policy and the
//!     new one (÷1.5 above 2× the threshold, ×1.5 below half of it, within `lr_range`).
//!
//! Left out: the bounds loss of the PQL config (soft bound 1.1 on μ) is identically zero here,
//! because μ = tanh(·) ∈ (−1, 1); value clipping is off in the paper's config.

use diffsim_tasks::{Task, VecEnv};
use ndarray::{Array1, Array2};
use tch::nn::{self, Module, OptimizerConfig};
use tch::{Kind, Tensor};

use crate::diff_rl::LearnError;
use crate::nets::{Activation, Critic, Mlp, RunningMeanStd, array_to_tensor, orthogonal_linear, tensor_to_array};
use crate::zeroth::{EpisodeTracker, IterationStats, ZerothOrder};

/// Hyperparameters (sapo.md §3.3).
#[derive(Clone, Debug)]
pub struct PpoConfig {
    /// H, env steps per iteration and env.
    pub horizon: usize,
    pub gamma: f64,
    /// GAE τ.
    pub gae_lambda: f64,
    /// Surrogate clip ε.
    pub clip: f64,
    /// Value loss coefficient c_v (the loss adds ½·c_v·MSE).
    pub value_coef: f64,
    pub entropy_coef: f64,
    pub mini_epochs: usize,
    /// Samples per minibatch (the N·H samples are split into ⌈N·H / minibatch⌉ minibatches).
    pub minibatch: usize,
    pub lr: f64,
    /// KL threshold of the adaptive learning rate.
    pub kl_threshold: f64,
    pub lr_range: (f64, f64),
    pub max_grad_norm: f64,
    pub actor_hidden: Vec<i64>,
    pub critic_hidden: Vec<i64>,
    /// Normalized observations are clamped to ±`obs_clip`.
    pub obs_clip: f64,
    pub value_norm: bool,
    pub advantage_norm: bool,
    pub seed: i64,
}

impl Default for PpoConfig {
    fn default() -> Self {
        Self {
            horizon: 32,
            gamma: 0.99,
            gae_lambda: 0.95,
            clip: 0.2,
            value_coef: 4.0,
            entropy_coef: 0.0,
            mini_epochs: 5,
            minibatch: 2048,
            lr: 5e-4,
            kl_threshold: 0.008,
            lr_range: (1e-6, 1e-2),
            max_grad_norm: 0.5,
            actor_hidden: vec![400, 200, 100],
            critic_hidden: vec![400, 200, 100],
            obs_clip: 5.0,
            value_norm: true,
            advantage_norm: true,
            seed: 0,
        }
    }
}

/// The "dreamerv3_normal" Gaussian policy head of sapo.md §3.3.
#[derive(Debug)]
pub struct GaussianPolicy {
    trunk: Mlp,
    head: nn::Linear,
    act_dim: i64,
}

impl GaussianPolicy {
    pub fn new(vs: nn::Path, obs_dim: i64, act_dim: i64, hidden: &[i64]) -> Self {
        let trunk = Mlp::new(&vs / "trunk", obs_dim, hidden, Activation::Silu, 2f64.sqrt());
        let head = orthogonal_linear(&vs / "head", trunk.out_dim, 2 * act_dim, 0.01);
        Self { trunk, head, act_dim }
    }
    /// (μ, σ), each `[N, dA]`.
    pub fn dist(&self, obs: &Tensor) -> (Tensor, Tensor) {
        let raw = self.head.forward(&self.trunk.forward(obs));
        let parts = raw.split(self.act_dim, -1);
        let mu = parts[0].tanh();
        let std = (&parts[1] + 2.0).sigmoid() * 0.9 + 0.1;
        (mu, std)
    }
}

/// log N(a; μ, σ²) summed over the last dimension.
pub fn gaussian_log_prob(a: &Tensor, mu: &Tensor, std: &Tensor) -> Tensor {
    let z = (a - mu) / std;
    let half_log_2pi = 0.5 * (2.0 * std::f64::consts::PI).ln();
    (z.square() * -0.5 - std.log() - half_log_2pi).sum_dim_intlist(-1, false, Kind::Float)
}

/// KL(N(μ₀, σ₀²) ‖ N(μ₁, σ₁²)) summed over the last dimension.
pub fn gaussian_kl(mu0: &Tensor, std0: &Tensor, mu1: &Tensor, std1: &Tensor) -> Tensor {
    ((std1 / std0).log() + (std0.square() + (mu0 - mu1).square()) / (std1.square() * 2.0) - 0.5).sum_dim_intlist(
        -1,
        false,
        Kind::Float,
    )
}

/// GAE(γ, τ) over `[H, N]` rewards, values and done flags (done after step t), bootstrapping from
/// `last_value` `[N]`: δ_t = r_t + γ(1 − d_t)V_{t+1} − V_t, A_t = δ_t + γτ(1 − d_t)A_{t+1}.
pub fn gae(
    rewards: &Array2<f64>,
    values: &Array2<f64>,
    dones: &Array2<bool>,
    last_value: &Array1<f64>,
    gamma: f64,
    lambda: f64,
) -> Array2<f64> {
    let (h, n) = rewards.dim();
    let mut adv = Array2::zeros((h, n));
    for e in 0..n {
        let mut next_adv = 0.0;
        let mut next_value = last_value[e];
        for t in (0..h).rev() {
            let live = if dones[[t, e]] { 0.0 } else { 1.0 };
            let delta = rewards[[t, e]] + gamma * live * next_value - values[[t, e]];
            next_adv = delta + gamma * lambda * live * next_adv;
            adv[[t, e]] = next_adv;
            next_value = values[[t, e]];
        }
    }
    adv
}

pub struct Ppo {
    pub cfg: PpoConfig,
    pub vs: nn::VarStore,
    pub policy: GaussianPolicy,
    critic: Critic,
    opt: nn::Optimizer,
    pub lr: f64,
    pub obs_rms: RunningMeanStd,
    /// Running statistics of the returns (value normalization), dimension 1.
    pub value_rms: RunningMeanStd,
    pub iteration: usize,
    pub env_steps: usize,
    episodes: EpisodeTracker,
}

impl Ppo {
    pub fn new(obs_dim: usize, act_dim: usize, num_envs: usize, cfg: PpoConfig) -> Result<Self, LearnError> {
        tch::manual_seed(cfg.seed);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let (od, ad) = (obs_dim as i64, act_dim as i64);
        let policy = GaussianPolicy::new(vs.root() / "actor", od, ad, &cfg.actor_hidden);
        let critic = Critic::new(vs.root() / "critic", od, &cfg.critic_hidden, Activation::Silu, 2f64.sqrt());
        let opt = nn::AdamW { beta1: 0.9, beta2: 0.999, wd: 0.01, eps: 1e-5, amsgrad: false }.build(&vs, cfg.lr)?;
        Ok(Self {
            lr: cfg.lr,
            obs_rms: RunningMeanStd::new(obs_dim, true, 1e-4),
            value_rms: RunningMeanStd::new(1, true, 1e-4),
            cfg,
            vs,
            policy,
            critic,
            opt,
            iteration: 0,
            env_steps: 0,
            episodes: EpisodeTracker::new(num_envs),
        })
    }

    fn normalize(&self, obs: &Array2<f32>) -> Tensor {
        self.obs_rms.normalize(&array_to_tensor(obs)).clamp(-self.cfg.obs_clip, self.cfg.obs_clip)
    }

    /// V(o) in return units, `[N]` (no gradient).
    fn value(&self, obs_n: &Tensor) -> Array1<f64> {
        let v = tch::no_grad(|| self.critic.value(obs_n));
        let v: Vec<f32> = Vec::try_from(&v.to_kind(Kind::Float).contiguous()).expect("a 1-d f32 value tensor");
        let (mean, std) = self.value_scale();
        v.into_iter().map(|x| x as f64 * std + mean).collect()
    }

    /// (mean, std) that map normalized values to returns; (0, 1) without value normalization.
    fn value_scale(&self) -> (f64, f64) {
        if self.cfg.value_norm {
            (self.value_rms.mean[0], (self.value_rms.var[0] + self.value_rms.eps).sqrt())
        } else {
            (0.0, 1.0)
        }
    }

    /// The KL-adaptive learning rate of sapo.md §3.3.
    fn adapt_lr(&mut self, kl: f64) {
        let thr = self.cfg.kl_threshold;
        let (lo, hi) = self.cfg.lr_range;
        if kl > 2.0 * thr {
            self.lr = (self.lr / 1.5).max(lo);
        } else if kl < 0.5 * thr {
            self.lr = (self.lr * 1.5).min(hi);
        }
        self.opt.set_lr(self.lr);
    }
}

impl ZerothOrder for Ppo {
    /// Actions for raw observations: sampled, or μ when `deterministic`.
    fn act(&self, obs: &Array2<f32>, deterministic: bool) -> Array2<f32> {
        tch::no_grad(|| {
            let (mu, std) = self.policy.dist(&self.normalize(obs));
            let a = if deterministic { mu } else { &mu + std * Tensor::randn_like(&mu) };
            tensor_to_array(&a)
        })
    }

    /// One iteration from the env's current observations `obs` (updated in place).
    fn train_iteration<T: Task>(
        &mut self,
        env: &mut VecEnv<T>,
        obs: &mut Array2<f32>,
    ) -> Result<IterationStats, LearnError> {
        env.stop_recording();
        let t0 = std::time::Instant::now();
        let (h, n) = (self.cfg.horizon, env.num_envs());
        let (gamma, ad) = (self.cfg.gamma, env.spec().act_dim);
        let mut obs_n = Vec::with_capacity(h);
        let (mut actions, mut mus, mut stds, mut logps) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut rewards = Array2::<f64>::zeros((h, n));
        let mut values = Array2::<f64>::zeros((h, n));
        let mut dones = Array2::from_elem((h, n), false);
        let mut raw_obs = Vec::with_capacity(h);
        let mut sim_s = 0.0;
        for t in 0..h {
            let o = self.normalize(obs);
            values.row_mut(t).assign(&self.value(&o));
            let (a, mu, std, logp) = tch::no_grad(|| {
                let (mu, std) = self.policy.dist(&o);
                let a = &mu + &std * Tensor::randn_like(&mu);
                let logp = gaussian_log_prob(&a, &mu, &std);
                (a, mu, std, logp)
            });
            let ts = std::time::Instant::now();
            let res = env.step(tensor_to_array(&a).view())?;
            sim_s += ts.elapsed().as_secs_f64();
            for e in 0..n {
                let mut r = res.reward[e] as f64;
                self.episodes.add(e, r, res.terminated[e] || res.truncated[e]);
                dones[[t, e]] = res.terminated[e] || res.truncated[e];
                // Time-out bootstrap: a truncated (not terminated) episode continues in value.
                if let (true, false, Some(fo)) = (res.truncated[e], res.terminated[e], &res.final_obs[e]) {
                    let fo = fo.clone().insert_axis(ndarray::Axis(0));
                    r += gamma * self.value(&self.normalize(&fo))[0];
                }
                rewards[[t, e]] = r;
            }
            raw_obs.push(obs.clone());
            obs_n.push(o);
            actions.push(a);
            mus.push(mu);
            stds.push(std);
            logps.push(logp);
            *obs = res.obs;
        }
        let last_value = self.value(&self.normalize(obs));
        let adv = gae(&rewards, &values, &dones, &last_value, gamma, self.cfg.gae_lambda);
        let returns = &adv + &values;
        for o in &raw_obs {
            self.obs_rms.update(o);
        }
        if self.cfg.value_norm {
            self.value_rms.update(&returns.mapv(|x| x as f32).into_shape_with_order((h * n, 1)).expect("h·n"));
        }
        let (vmean, vstd) = self.value_scale();
        let to_t = |a: &Array2<f64>| Tensor::from_slice(&a.iter().map(|&x| x as f32).collect::<Vec<_>>());
        let mut adv_t = to_t(&adv);
        if self.cfg.advantage_norm {
            adv_t = (&adv_t - adv_t.mean(Kind::Float)) / (adv_t.std(true) + 1e-8);
        }
        let ret_t = (to_t(&returns) - vmean) / vstd;
        let obs_t = Tensor::cat(&obs_n, 0);
        let act_t = Tensor::cat(&actions, 0).reshape([-1, ad as i64]);
        let mu_t = Tensor::cat(&mus, 0);
        let std_t = Tensor::cat(&stds, 0);
        let logp_t = Tensor::cat(&logps, 0);

        let total = (h * n) as i64;
        let mb = (self.cfg.minibatch as i64).min(total).max(1);
        let (mut policy_loss, mut value_loss, mut kl_sum, mut updates) = (0.0, 0.0, 0.0, 0usize);
        for _ in 0..self.cfg.mini_epochs {
            let perm = Tensor::randperm(total, (Kind::Int64, tch::Device::Cpu));
            let mut start = 0;
            while start < total {
                let idx = perm.narrow(0, start, mb.min(total - start));
                start += mb;
                let (o, a) = (obs_t.index_select(0, &idx), act_t.index_select(0, &idx));
                let (mu, std) = self.policy.dist(&o);
                let ratio = (gaussian_log_prob(&a, &mu, &std) - logp_t.index_select(0, &idx)).exp();
                let adv_mb = adv_t.index_select(0, &idx);
                let surr =
                    (&ratio * &adv_mb).min_other(&(ratio.clamp(1.0 - self.cfg.clip, 1.0 + self.cfg.clip) * &adv_mb));
                let p_loss = -surr.mean(Kind::Float);
                let v_loss = (self.critic.value(&o) - ret_t.index_select(0, &idx)).square().mean(Kind::Float);
                let entropy = (std.log() + 0.5 + 0.5 * (2.0 * std::f64::consts::PI).ln())
                    .sum_dim_intlist(-1, false, Kind::Float)
                    .mean(Kind::Float);
                let loss = &p_loss + &v_loss * (0.5 * self.cfg.value_coef) - entropy * self.cfg.entropy_coef;
                self.opt.zero_grad();
                loss.backward();
                self.opt.clip_grad_norm(self.cfg.max_grad_norm);
                self.opt.step();
                let kl = tch::no_grad(|| {
                    let (mu1, std1) = self.policy.dist(&o);
                    gaussian_kl(&mu_t.index_select(0, &idx), &std_t.index_select(0, &idx), &mu1, &std1)
                        .mean(Kind::Float)
                        .double_value(&[])
                });
                self.adapt_lr(kl);
                policy_loss += p_loss.double_value(&[]);
                value_loss += v_loss.double_value(&[]);
                kl_sum += kl;
                updates += 1;
            }
        }
        self.iteration += 1;
        self.env_steps += h * n;
        let u = updates.max(1) as f64;
        Ok(IterationStats {
            iteration: self.iteration,
            env_steps: self.env_steps,
            mean_return: self.episodes.take_mean(),
            policy_loss: policy_loss / u,
            value_loss: value_loss / u,
            extra: kl_sum / u,
            lr: self.lr,
            sim_s,
            wall_s: t0.elapsed().as_secs_f64(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gae_matches_a_hand_computed_two_step_example() {
        // One env, H = 2, no dones: δ1 = 1 + 0.9·3 − 2 = 1.7, δ0 = 0.5 + 0.9·2 − 1 = 1.3,
        // A1 = 1.7, A0 = 1.3 + 0.9·0.5·1.7 = 2.065.
        let r = Array2::from_shape_vec((2, 1), vec![0.5, 1.0]).unwrap();
        let v = Array2::from_shape_vec((2, 1), vec![1.0, 2.0]).unwrap();
        let d = Array2::from_elem((2, 1), false);
        let a = gae(&r, &v, &d, &Array1::from(vec![3.0]), 0.9, 0.5);
        assert!((a[[1, 0]] - 1.7).abs() < 1e-12 && (a[[0, 0]] - 2.065).abs() < 1e-12, "{a:?}");
        // A done after step 0 cuts both the bootstrap and the trace: A0 = 0.5 − 1.
        let d = Array2::from_shape_vec((2, 1), vec![true, false]).unwrap();
        let a = gae(&r, &v, &d, &Array1::from(vec![3.0]), 0.9, 0.5);
        assert!((a[[0, 0]] + 0.5).abs() < 1e-12, "{a:?}");
    }

    #[test]
    fn log_prob_and_kl_match_closed_forms() {
        let mu = Tensor::from_slice(&[0.3f32, -0.2]).reshape([1, 2]);
        let std = Tensor::from_slice(&[0.5f32, 1.5]).reshape([1, 2]);
        let a = Tensor::from_slice(&[0.1f32, 0.4]).reshape([1, 2]);
        let lp = gaussian_log_prob(&a, &mu, &std).double_value(&[0]);
        let expect: f64 = [(0.1, 0.3, 0.5), (0.4, -0.2, 1.5)]
            .iter()
            .map(|&(x, m, s): &(f64, f64, f64)| {
                -0.5 * ((x - m) / s).powi(2) - s.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln()
            })
            .sum();
        assert!((lp - expect).abs() < 1e-5, "{lp} vs {expect}");
        assert!(gaussian_kl(&mu, &std, &mu, &std).double_value(&[0]).abs() < 1e-7);
        let kl = gaussian_kl(&mu, &std, &(&mu + 0.5), &std).double_value(&[0]);
        // Equal σ: KL = Σ Δμ² / (2σ²) = 0.25/0.5 + 0.25/4.5.
        assert!((kl - (0.5 + 0.25 / 4.5)).abs() < 1e-5, "{kl}");
    }
}
