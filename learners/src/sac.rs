//! SAC (sapo.md §3.4, the PQL-style baseline of the paper's comparisons): an off-policy
//! zeroth-order learner that only steps the `VecEnv` forward, with no tape and no simulator
//! gradients.
//!
//! - Data: `warmup_steps` uniform-random steps per env, then `steps_per_iteration` policy steps per
//!   env and iteration into a ring replay buffer; each transition stores its n-step return
//!   R = Σ_{k<m} γᵏ r_{t+k} and the bootstrap factor γᵐ (0 after a termination; a time-out
//!   bootstraps from the terminal observation). Returns are cut at the end of a collection block
//!   (m < n there), so no transition waits for data that is not collected yet.
//! - Critics: twin Q(o, a) with Polyak-averaged targets (τ); target
//!   y = R + γᵐ·(min_k Q̄_k(o', a') − α log π(a'|o')), a' ~ π(·|o'); loss Σ_k MSE(Q_k, y).
//! - Actor: tanh-squashed Gaussian with a state-dependent log std clamped to [−5, 2] (`nets::Actor`);
//!   loss E[α log π(a|o) − min_k Q_k(o, a)], a reparameterized.
//! - Temperature: log α trained toward the target entropy −dA/2.
//! - `updates_per_iteration` gradient updates per iteration on uniform minibatches; AdamW with a
//!   gradient-norm clip; observations normalized by running statistics at sample time, ±5.

use diffsim_tasks::{Task, TaskRng, VecEnv};
use ndarray::Array2;
use tch::nn::{self, Module, OptimizerConfig};
use tch::{Kind, Tensor};

use crate::diff_rl::LearnError;
use crate::nets::{
    Activation, Actor, Mlp, RunningMeanStd, StdKind, array_to_tensor, entropy_sample, orthogonal_linear,
    tensor_to_array,
};
use crate::zeroth::{EpisodeTracker, IterationStats, ZerothOrder};

/// Hyperparameters (sapo.md §3.4).
#[derive(Clone, Debug)]
pub struct SacConfig {
    pub warmup_steps: usize,
    pub steps_per_iteration: usize,
    pub replay_size: usize,
    /// n of the n-step returns.
    pub nstep: usize,
    pub updates_per_iteration: usize,
    pub batch: usize,
    /// Polyak factor of the target critics.
    pub tau: f64,
    pub gamma: f64,
    pub init_alpha: f64,
    pub alpha_lr: f64,
    pub lr: f64,
    pub max_grad_norm: f64,
    pub actor_hidden: Vec<i64>,
    pub critic_hidden: Vec<i64>,
    pub obs_clip: f64,
    pub seed: i64,
}

impl Default for SacConfig {
    fn default() -> Self {
        Self {
            warmup_steps: 32,
            steps_per_iteration: 32,
            replay_size: 1_000_000,
            nstep: 3,
            updates_per_iteration: 8,
            batch: 2048,
            tau: 0.005,
            gamma: 0.99,
            init_alpha: 1.0,
            alpha_lr: 5e-3,
            lr: 5e-4,
            max_grad_norm: 0.5,
            actor_hidden: vec![400, 200, 100],
            critic_hidden: vec![400, 200, 100],
            obs_clip: 5.0,
            seed: 0,
        }
    }
}

/// Q(o, a): an MLP on the concatenation → Linear(1).
#[derive(Debug)]
pub struct QNet {
    trunk: Mlp,
    out: nn::Linear,
}

impl QNet {
    pub fn new(vs: nn::Path, obs_dim: i64, act_dim: i64, hidden: &[i64]) -> Self {
        let trunk = Mlp::new(&vs / "trunk", obs_dim + act_dim, hidden, Activation::Silu, 2f64.sqrt());
        let out = orthogonal_linear(&vs / "out", trunk.out_dim, 1, 1.0);
        Self { trunk, out }
    }
    /// `[N]` values.
    pub fn q(&self, obs: &Tensor, act: &Tensor) -> Tensor {
        self.out.forward(&self.trunk.forward(&Tensor::cat(&[obs, act], -1))).squeeze_dim(-1)
    }
}

/// A ring buffer of n-step transitions, raw (unnormalized) observations.
#[derive(Clone, Debug)]
pub struct ReplayBuffer {
    capacity: usize,
    obs_dim: usize,
    act_dim: usize,
    obs: Vec<f32>,
    act: Vec<f32>,
    ret: Vec<f32>,
    next_obs: Vec<f32>,
    /// γᵐ, or 0 after a termination.
    discount: Vec<f32>,
    /// Next write position once full.
    head: usize,
}

impl ReplayBuffer {
    pub fn new(capacity: usize, obs_dim: usize, act_dim: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            obs_dim,
            act_dim,
            obs: vec![],
            act: vec![],
            ret: vec![],
            next_obs: vec![],
            discount: vec![],
            head: 0,
        }
    }
    pub fn len(&self) -> usize {
        self.ret.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ret.is_empty()
    }
    pub fn push(&mut self, obs: &[f32], act: &[f32], ret: f32, next_obs: &[f32], discount: f32) {
        if self.len() < self.capacity {
            self.obs.extend_from_slice(obs);
            self.act.extend_from_slice(act);
            self.ret.push(ret);
            self.next_obs.extend_from_slice(next_obs);
            self.discount.push(discount);
        } else {
            let (i, od, ad) = (self.head, self.obs_dim, self.act_dim);
            self.obs[i * od..(i + 1) * od].copy_from_slice(obs);
            self.act[i * ad..(i + 1) * ad].copy_from_slice(act);
            self.ret[i] = ret;
            self.next_obs[i * od..(i + 1) * od].copy_from_slice(next_obs);
            self.discount[i] = discount;
            self.head = (self.head + 1) % self.capacity;
        }
    }
    /// (obs, act, ret, next_obs, discount) at `idx` as tensors.
    fn gather(&self, idx: &[usize]) -> [Tensor; 5] {
        let rows = |v: &[f32], w: usize| {
            let out: Vec<f32> = idx.iter().flat_map(|&i| v[i * w..(i + 1) * w].iter().copied()).collect();
            Tensor::from_slice(&out).reshape([idx.len() as i64, w as i64])
        };
        let scalars = |v: &[f32]| Tensor::from_slice(&idx.iter().map(|&i| v[i]).collect::<Vec<_>>());
        [
            rows(&self.obs, self.obs_dim),
            rows(&self.act, self.act_dim),
            scalars(&self.ret),
            rows(&self.next_obs, self.obs_dim),
            scalars(&self.discount),
        ]
    }
}

/// One collected env step of all envs.
struct Step {
    obs: Array2<f32>,
    act: Array2<f32>,
    reward: Vec<f32>,
    /// Observation after the step: the terminal one for a finished episode.
    next_obs: Array2<f32>,
    /// Episode ended by termination (no bootstrap) or a diverged env (no usable next obs).
    terminal: Vec<bool>,
    /// Episode ended by a time-out (bootstrap from the terminal obs).
    timeout: Vec<bool>,
}

/// n-step transitions of a collected block: for each (t, env) the return over up to n steps that
/// stops at the block end, a termination or a time-out.
fn push_nstep(buffer: &mut ReplayBuffer, block: &[Step], n: usize, gamma: f64) {
    let envs = block.first().map_or(0, |s| s.obs.nrows());
    for t in 0..block.len() {
        for e in 0..envs {
            let (mut ret, mut g, mut discount, mut last) = (0.0f64, 1.0f64, None, t);
            for (k, step) in block[t..].iter().enumerate().take(n) {
                ret += g * f64::from(step.reward[e]);
                g *= gamma;
                last = t + k;
                if step.terminal[e] {
                    discount = Some(0.0);
                    break;
                }
                if step.timeout[e] {
                    break;
                }
            }
            let discount = discount.unwrap_or(g);
            let s = &block[t];
            let next = block[last].next_obs.row(e);
            buffer.push(
                s.obs.row(e).as_slice().expect("standard layout"),
                s.act.row(e).as_slice().expect("standard layout"),
                ret as f32,
                next.as_slice().expect("standard layout"),
                discount as f32,
            );
        }
    }
}

pub struct Sac {
    pub cfg: SacConfig,
    pub actor_vs: nn::VarStore,
    pub actor: Actor,
    critic_vs: nn::VarStore,
    critics: [QNet; 2],
    target_vs: nn::VarStore,
    targets: [QNet; 2],
    log_alpha: Tensor,
    _alpha_vs: nn::VarStore,
    opt_actor: nn::Optimizer,
    opt_critic: nn::Optimizer,
    opt_alpha: nn::Optimizer,
    target_entropy: f64,
    pub obs_rms: RunningMeanStd,
    pub buffer: ReplayBuffer,
    pub iteration: usize,
    pub env_steps: usize,
    episodes: EpisodeTracker,
    rng: TaskRng,
    warmed_up: bool,
}

impl Sac {
    pub fn new(obs_dim: usize, act_dim: usize, num_envs: usize, cfg: SacConfig) -> Result<Self, LearnError> {
        tch::manual_seed(cfg.seed);
        let dev = tch::Device::Cpu;
        let (od, ad) = (obs_dim as i64, act_dim as i64);
        let actor_vs = nn::VarStore::new(dev);
        let actor = Actor::new(
            actor_vs.root() / "actor",
            od,
            ad,
            &cfg.actor_hidden,
            Activation::Silu,
            2f64.sqrt(),
            StdKind::StateDependent,
        );
        let q_pair =
            |vs: &nn::VarStore| [0, 1].map(|k| QNet::new(vs.root() / format!("q{k}"), od, ad, &cfg.critic_hidden));
        let critic_vs = nn::VarStore::new(dev);
        let critics = q_pair(&critic_vs);
        let mut target_vs = nn::VarStore::new(dev);
        let targets = q_pair(&target_vs);
        target_vs.copy(&critic_vs)?;
        target_vs.freeze();
        let alpha_vs = nn::VarStore::new(dev);
        let log_alpha = alpha_vs.root().var("log_alpha", &[1], nn::Init::Const(cfg.init_alpha.ln()));
        let adamw = |vs: &nn::VarStore, lr: f64| {
            nn::AdamW { beta1: 0.9, beta2: 0.999, wd: 0.01, eps: 1e-8, amsgrad: false }.build(vs, lr)
        };
        let opt_actor = adamw(&actor_vs, cfg.lr)?;
        let opt_critic = adamw(&critic_vs, cfg.lr)?;
        let opt_alpha = nn::Adam::default().build(&alpha_vs, cfg.alpha_lr)?;
        Ok(Self {
            target_entropy: -(act_dim as f64) / 2.0,
            obs_rms: RunningMeanStd::new(obs_dim, true, 1e-4),
            buffer: ReplayBuffer::new(cfg.replay_size, obs_dim, act_dim),
            rng: TaskRng::new(cfg.seed as u64 ^ 0x5ac),
            cfg,
            actor_vs,
            actor,
            critic_vs,
            critics,
            target_vs,
            targets,
            log_alpha,
            _alpha_vs: alpha_vs,
            opt_actor,
            opt_critic,
            opt_alpha,
            iteration: 0,
            env_steps: 0,
            episodes: EpisodeTracker::new(num_envs),
            warmed_up: false,
        })
    }

    pub fn alpha(&self) -> f64 {
        self.log_alpha.exp().double_value(&[0])
    }

    fn normalize(&self, obs: &Tensor) -> Tensor {
        self.obs_rms.normalize(obs).clamp(-self.cfg.obs_clip, self.cfg.obs_clip)
    }

    /// Reparameterized a ~ π(·|o) and log π(a|o), `[N, dA]` and `[N]`.
    fn sample(&self, obs_n: &Tensor) -> (Tensor, Tensor) {
        let (mu, log_std) = self.actor.dist(obs_n);
        let eps = Tensor::randn_like(&mu);
        let a = (&mu + log_std.exp() * &eps).tanh();
        // entropy_sample is the one-sample −log π of this very sample.
        (a, -entropy_sample(&mu, &log_std, &eps))
    }

    /// Steps every env `steps` times with `policy` (raw obs → actions) and stores the block.
    fn collect<T: Task>(
        &mut self,
        env: &mut VecEnv<T>,
        obs: &mut Array2<f32>,
        steps: usize,
        random: bool,
    ) -> Result<f64, LearnError> {
        let (n, ad) = (env.num_envs(), env.spec().act_dim);
        let mut block = Vec::with_capacity(steps);
        let mut sim_s = 0.0;
        for _ in 0..steps {
            let act = if random {
                Array2::from_shape_fn((n, ad), |_| self.rng.uniform(-1.0, 1.0) as f32)
            } else {
                self.act(obs, false)
            };
            let ts = std::time::Instant::now();
            let res = env.step(act.view())?;
            sim_s += ts.elapsed().as_secs_f64();
            let mut next_obs = res.obs.clone();
            let (mut terminal, mut timeout) = (vec![false; n], vec![false; n]);
            for e in 0..n {
                let done = res.terminated[e] || res.truncated[e];
                self.episodes.add(e, f64::from(res.reward[e]), done);
                match (&res.final_obs[e], done) {
                    (Some(fo), true) => {
                        next_obs.row_mut(e).assign(fo);
                        terminal[e] = res.terminated[e];
                        timeout[e] = !res.terminated[e];
                    }
                    // A diverged env has no usable terminal observation: no bootstrap.
                    (None, true) => terminal[e] = true,
                    _ => {}
                }
            }
            self.obs_rms.update(obs);
            block.push(Step { obs: obs.clone(), act, reward: res.reward.to_vec(), next_obs, terminal, timeout });
            *obs = res.obs;
        }
        push_nstep(&mut self.buffer, &block, self.cfg.nstep, self.cfg.gamma);
        self.env_steps += steps * n;
        Ok(sim_s)
    }

    /// One gradient update of critics, actor and temperature; returns (critic loss, actor loss).
    fn update(&mut self) -> (f64, f64) {
        let len = self.buffer.len();
        let idx: Vec<usize> =
            (0..self.cfg.batch.min(len).max(1)).map(|_| (self.rng.next_u64() % len as u64) as usize).collect();
        let [o, a, ret, o2, discount] = self.buffer.gather(&idx);
        let (o, o2) = (self.normalize(&o), self.normalize(&o2));
        let alpha = self.alpha();
        let y = tch::no_grad(|| {
            let (a2, logp2) = self.sample(&o2);
            let q_next = self.targets[0].q(&o2, &a2).min_other(&self.targets[1].q(&o2, &a2));
            &ret + &discount * (q_next - logp2 * alpha)
        });
        let critic_loss = self
            .critics
            .iter()
            .map(|c| (c.q(&o, &a) - &y).square().mean(Kind::Float))
            .fold(Tensor::zeros([], (Kind::Float, tch::Device::Cpu)), |acc, l| acc + l);
        self.opt_critic.zero_grad();
        critic_loss.backward();
        self.opt_critic.clip_grad_norm(self.cfg.max_grad_norm);
        self.opt_critic.step();

        let (a_new, logp) = self.sample(&o);
        let q = self.critics[0].q(&o, &a_new).min_other(&self.critics[1].q(&o, &a_new));
        let actor_loss = (&logp * alpha - q).mean(Kind::Float);
        self.opt_actor.zero_grad();
        actor_loss.backward();
        self.opt_actor.clip_grad_norm(self.cfg.max_grad_norm);
        self.opt_actor.step();
        // The actor loss also left gradients on the critics; the next critic step zeroes them.

        let alpha_loss = -(&self.log_alpha * (logp.detach() + self.target_entropy)).mean(Kind::Float);
        self.opt_alpha.zero_grad();
        alpha_loss.backward();
        self.opt_alpha.step();

        tch::no_grad(|| {
            let src = self.critic_vs.variables();
            for (name, mut t) in self.target_vs.variables() {
                if let Some(s) = src.get(&name) {
                    t.copy_(&(&t * (1.0 - self.cfg.tau) + s * self.cfg.tau));
                }
            }
        });
        (critic_loss.double_value(&[]), actor_loss.double_value(&[]))
    }
}

impl ZerothOrder for Sac {
    /// Actions for raw observations: sampled, or tanh(μ) when `deterministic`.
    fn act(&self, obs: &Array2<f32>, deterministic: bool) -> Array2<f32> {
        tch::no_grad(|| {
            let o = self.normalize(&array_to_tensor(obs));
            let a = if deterministic { self.actor.mean_action(&o) } else { self.sample(&o).0 };
            tensor_to_array(&a)
        })
    }

    /// One iteration: warm-up on the first call, then collection and updates.
    fn train_iteration<T: Task>(
        &mut self,
        env: &mut VecEnv<T>,
        obs: &mut Array2<f32>,
    ) -> Result<IterationStats, LearnError> {
        env.stop_recording();
        let t0 = std::time::Instant::now();
        let mut sim_s = 0.0;
        if !self.warmed_up {
            sim_s += self.collect(env, obs, self.cfg.warmup_steps, true)?;
            self.warmed_up = true;
        }
        sim_s += self.collect(env, obs, self.cfg.steps_per_iteration, false)?;
        let (mut critic_loss, mut actor_loss) = (0.0, 0.0);
        for _ in 0..self.cfg.updates_per_iteration {
            let (c, a) = self.update();
            critic_loss += c;
            actor_loss += a;
        }
        let u = self.cfg.updates_per_iteration.max(1) as f64;
        self.iteration += 1;
        Ok(IterationStats {
            iteration: self.iteration,
            env_steps: self.env_steps,
            mean_return: self.episodes.take_mean(),
            policy_loss: actor_loss / u,
            value_loss: critic_loss / u,
            extra: self.alpha(),
            lr: self.cfg.lr,
            sim_s,
            wall_s: t0.elapsed().as_secs_f64(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(reward: f32, terminal: bool, timeout: bool, next: f32) -> Step {
        Step {
            obs: Array2::zeros((1, 1)),
            act: Array2::zeros((1, 1)),
            reward: vec![reward],
            next_obs: Array2::from_elem((1, 1), next),
            terminal: vec![terminal],
            timeout: vec![timeout],
        }
    }

    #[test]
    fn nstep_returns_stop_at_terminations_timeouts_and_block_end() {
        let g = 0.5;
        let block = [
            step(1.0, false, false, 10.0),
            step(2.0, false, true, 20.0),
            step(4.0, false, false, 30.0),
            step(8.0, true, false, 40.0),
        ];
        let mut buf = ReplayBuffer::new(16, 1, 1);
        push_nstep(&mut buf, &block, 3, g);
        // t0: stops at the time-out at t1: R = 1 + 0.5·2, bootstrap γ² from t1's terminal obs.
        assert_eq!((buf.ret[0], buf.discount[0], buf.next_obs[0]), (2.0, 0.25, 20.0));
        // t1: the time-out itself: one step, bootstrap γ.
        assert_eq!((buf.ret[1], buf.discount[1], buf.next_obs[1]), (2.0, 0.5, 20.0));
        // t2: runs into the termination at t3: R = 4 + 0.5·8, no bootstrap.
        assert_eq!((buf.ret[2], buf.discount[2]), (8.0, 0.0));
        // t3: terminal.
        assert_eq!((buf.ret[3], buf.discount[3]), (8.0, 0.0));
        // Cut by the block end: two steps, bootstrap γ² from the last next obs.
        let block = [step(1.0, false, false, 10.0), step(1.0, false, false, 11.0)];
        let mut buf = ReplayBuffer::new(16, 1, 1);
        push_nstep(&mut buf, &block, 3, g);
        assert_eq!((buf.ret[0], buf.discount[0], buf.next_obs[0]), (1.5, 0.25, 11.0));
    }

    #[test]
    fn replay_buffer_overwrites_the_oldest_entry_when_full() {
        let mut buf = ReplayBuffer::new(2, 1, 1);
        for i in 0..3 {
            buf.push(&[i as f32], &[0.0], i as f32, &[0.0], 1.0);
        }
        assert_eq!(buf.len(), 2);
        assert_eq!(buf.ret, vec![2.0, 1.0]);
    }
}
