//! Networks and normalizers of the first-order learners (sapo.md §1.4(a)(b), §1.7, §3.1):
//! - `Mlp`: Linear → LayerNorm → activation per hidden layer (SiLU for SAPO, ELU for SHAC/APG),
//!   orthogonal weights, zero biases;
//! - `Actor`: a tanh-squashed Gaussian with a state-dependent log-std head clamped to [−5, 2]
//!   (SAPO) or a state-independent log-std parameter (SHAC/APG), plus SAPO's one-sample entropy
//!   estimate;
//! - `Critic`: an MLP value head; the learners hold an ensemble of them;
//! - `RunningMeanStd`: running observation mean/variance (parallel-moments update, f64 stats),
//!   normalizing differentiably with a frozen copy inside each epoch;
//! - each network reads the observation through an `encoder::Encoder` (flat, or a PointNet).
//!
//! This module owns no optimizer and no environment: it maps tensors to tensors.

use std::ops::Range;

use diffsim_engine::Real;
use ndarray::Array2;
use tch::Tensor;
use tch::nn::{self, Init, Module};

use crate::encoder::{Encoder, PointCloudLayout};

/// A simulator scalar the learners exchange with tch: f32 (training) or f64 (gradient checks
/// through `VecEnv<T, f64>` and double networks).
pub trait SimFloat: Real + tch::kind::Element {}
impl SimFloat for f32 {}
impl SimFloat for f64 {}

/// Hidden-layer activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// SAPO (design choice V).
    Silu,
    /// SHAC and APG.
    Elu,
}

impl Activation {
    fn apply(self, x: &Tensor) -> Tensor {
        match self {
            Activation::Silu => x.silu(),
            Activation::Elu => x.elu(),
        }
    }
}

/// Linear layer with orthogonal weights (gain `gain`) and zero bias.
pub fn orthogonal_linear(vs: nn::Path, din: i64, dout: i64, gain: f64) -> nn::Linear {
    let cfg = nn::LinearConfig { ws_init: Init::Orthogonal { gain }, bs_init: Some(Init::Const(0.0)), bias: true };
    nn::linear(vs, din, dout, cfg)
}

/// Hidden layers: Linear → LayerNorm → activation, for each width in `hidden`.
#[derive(Debug)]
pub struct Mlp {
    layers: Vec<(nn::Linear, nn::LayerNorm)>,
    act: Activation,
    pub out_dim: i64,
}

impl Mlp {
    pub fn new(vs: nn::Path, din: i64, hidden: &[i64], act: Activation, gain: f64) -> Self {
        let mut layers = Vec::new();
        let mut d = din;
        for (i, &h) in hidden.iter().enumerate() {
            let lin = orthogonal_linear(&vs / format!("l{i}"), d, h, gain);
            let ln = nn::layer_norm(&vs / format!("ln{i}"), vec![h], Default::default());
            layers.push((lin, ln));
            d = h;
        }
        Self { layers, act, out_dim: d }
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Tensor {
        let mut y = x.shallow_clone();
        for (lin, ln) in &self.layers {
            y = self.act.apply(&ln.forward(&lin.forward(&y)));
        }
        y
    }
}

/// log(1 − tanh²u), computed stably as 2·(log 2 − u − softplus(−2u)) (sapo.md §1.4(a)).
pub fn log1m_tanh2(u: &Tensor) -> Tensor {
    (-u - (u * -2.0).softplus() + std::f64::consts::LN_2) * 2.0
}

/// One-sample entropy estimate of the squashed Gaussian, summed over action dimensions
/// (sapo.md §1.4(b)): Ĥ = Σ_j [ℓ_j + ½ε'_j² + ½log(2π) + log(1 − tanh²u'_j)], u' = μ + σε'.
pub fn entropy_sample(mu: &Tensor, log_std: &Tensor, eps: &Tensor) -> Tensor {
    let u = mu + log_std.exp() * eps;
    let half_log_2pi = 0.5 * (2.0 * std::f64::consts::PI).ln();
    (log_std + eps.square() * 0.5 + half_log_2pi + log1m_tanh2(&u)).sum_dim_intlist(-1, false, mu.kind())
}

/// The std parameterization of an `Actor`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum StdKind {
    /// SAPO: a linear log-std head on the trunk, clamped to [−5, 2].
    StateDependent,
    /// SHAC/APG: one learned log-std per action dimension, initialised to `init_log_std`.
    StateIndependent { init_log_std: f64 },
}

/// Gaussian policy with tanh on the sample: a = tanh(μ + σε).
#[derive(Debug)]
pub struct Actor {
    encoder: Encoder,
    trunk: Mlp,
    mu: nn::Linear,
    log_std_head: Option<nn::Linear>,
    log_std_param: Option<Tensor>,
    pub act_dim: i64,
}

/// One differentiable policy sample.
#[derive(Debug)]
pub struct ActorSample {
    /// tanh(u), `[N, dA]`.
    pub action: Tensor,
    pub mu: Tensor,
    /// Clamped log std, `[N, dA]`.
    pub log_std: Tensor,
}

impl Actor {
    pub fn new(
        vs: nn::Path,
        obs_dim: i64,
        act_dim: i64,
        hidden: &[i64],
        act: Activation,
        gain: f64,
        std: StdKind,
    ) -> Self {
        Self::with_encoder(vs, obs_dim, act_dim, hidden, act, gain, std, None)
    }

    /// `new` with a PointNet on the observation's point block when `points` is given.
    #[allow(clippy::too_many_arguments)]
    pub fn with_encoder(
        vs: nn::Path,
        obs_dim: i64,
        act_dim: i64,
        hidden: &[i64],
        act: Activation,
        gain: f64,
        std: StdKind,
        points: Option<PointCloudLayout>,
    ) -> Self {
        let encoder = Encoder::new(&vs / "encoder", obs_dim, points, act, gain);
        let trunk = Mlp::new(&vs / "trunk", encoder.out_dim(), hidden, act, gain);
        let mu = orthogonal_linear(&vs / "mu", trunk.out_dim, act_dim, gain);
        let (log_std_head, log_std_param) = match std {
            StdKind::StateDependent => (Some(orthogonal_linear(&vs / "log_std", trunk.out_dim, act_dim, gain)), None),
            StdKind::StateIndependent { init_log_std } => {
                (None, Some(vs.var("log_std", &[act_dim], Init::Const(init_log_std))))
            }
        };
        Self { encoder, trunk, mu, log_std_head, log_std_param, act_dim }
    }

    /// μ and the (clamped, for the state-dependent head) log std for normalized observations.
    pub fn dist(&self, obs: &Tensor) -> (Tensor, Tensor) {
        let z = self.trunk.forward(&self.encoder.forward(obs));
        let mu = self.mu.forward(&z);
        let log_std = match (&self.log_std_head, &self.log_std_param) {
            (Some(head), _) => head.forward(&z).clamp(-5.0, 2.0),
            (None, Some(p)) => p.expand_as(&mu),
            (None, None) => unreachable!("an actor has one std parameterization"),
        };
        (mu, log_std)
    }

    /// Reparameterised sample a = tanh(μ + σε), ε ~ N(0, I).
    pub fn sample(&self, obs: &Tensor) -> ActorSample {
        let (mu, log_std) = self.dist(obs);
        let eps = Tensor::randn_like(&mu);
        let action = (&mu + log_std.exp() * eps).tanh();
        ActorSample { action, mu, log_std }
    }

    /// tanh(μ): the deterministic action.
    pub fn mean_action(&self, obs: &Tensor) -> Tensor {
        self.dist(obs).0.tanh()
    }
}

/// A value network V(o): hidden MLP → Linear(1).
#[derive(Debug)]
pub struct Critic {
    encoder: Encoder,
    trunk: Mlp,
    out: nn::Linear,
}

impl Critic {
    pub fn new(vs: nn::Path, obs_dim: i64, hidden: &[i64], act: Activation, gain: f64) -> Self {
        Self::with_encoder(vs, obs_dim, hidden, act, gain, None)
    }

    /// `new` with a PointNet on the observation's point block when `points` is given.
    pub fn with_encoder(
        vs: nn::Path,
        obs_dim: i64,
        hidden: &[i64],
        act: Activation,
        gain: f64,
        points: Option<PointCloudLayout>,
    ) -> Self {
        let encoder = Encoder::new(&vs / "encoder", obs_dim, points, act, gain);
        let trunk = Mlp::new(&vs / "trunk", encoder.out_dim(), hidden, act, gain);
        let out = orthogonal_linear(&vs / "out", trunk.out_dim, 1, gain);
        Self { encoder, trunk, out }
    }
    /// `[N]` values of normalized observations `[N, obs_dim]`.
    pub fn value(&self, obs: &Tensor) -> Tensor {
        self.out.forward(&self.trunk.forward(&self.encoder.forward(obs))).squeeze_dim(-1)
    }
}

/// Mean and min over an ensemble's values, each `[N]`.
pub fn ensemble_mean_min(critics: &[Critic], obs: &Tensor) -> (Tensor, Tensor) {
    let vs: Vec<Tensor> = critics.iter().map(|c| c.value(obs)).collect();
    let all = Tensor::stack(&vs, 0);
    (all.mean_dim(0, false, all.kind()), all.min_dim(0, false).0)
}

/// Running mean and variance of observations (sapo.md §1.7, §3.1, §3.2).
#[derive(Clone, Debug, PartialEq)]
pub struct RunningMeanStd {
    pub mean: Vec<f64>,
    pub var: Vec<f64>,
    pub count: f64,
    /// Batch variance with the n − 1 denominator (SAPO) or n (SHAC/APG).
    pub unbiased: bool,
    pub eps: f64,
    /// Entries passed through unnormalized (a point cloud's positions, sapo.md §1.7: "particle
    /// positions go into PointNet unnormalised"); their statistics are still tracked.
    pub raw: Range<usize>,
}

impl RunningMeanStd {
    /// SAPO: eps 1e-5, unbiased batch variance, initial count 1.
    pub fn new(dim: usize, unbiased: bool, init_count: f64) -> Self {
        Self { mean: vec![0.0; dim], var: vec![1.0; dim], count: init_count, unbiased, eps: 1e-5, raw: 0..0 }
    }

    /// `self` passing the entries `raw` through unnormalized.
    pub fn with_raw(self, raw: Range<usize>) -> Self {
        Self { raw, ..self }
    }

    /// Parallel-moments update with a batch `[B, dim]`.
    pub fn update<R: Real>(&mut self, x: &Array2<R>) {
        let b = x.nrows() as f64;
        if b == 0.0 {
            return;
        }
        for (j, col) in x.columns().into_iter().enumerate() {
            let bm = col.iter().map(|&v| v.to_f64()).sum::<f64>() / b;
            let ss = col.iter().map(|&v| (v.to_f64() - bm).powi(2)).sum::<f64>();
            let bvar = if self.unbiased && b > 1.0 { ss / (b - 1.0) } else { ss / b };
            let delta = bm - self.mean[j];
            let tot = self.count + b;
            self.mean[j] += delta * b / tot;
            let m2 = self.var[j] * self.count + bvar * b + delta * delta * self.count * b / tot;
            self.var[j] = m2 / tot;
        }
        self.count += b;
    }

    /// (x − mean) / sqrt(var + eps), differentiable in x, no clamping; in x's kind.
    pub fn normalize(&self, x: &Tensor) -> Tensor {
        let raw = |j: usize| self.raw.contains(&j);
        let mean: Vec<f64> = self.mean.iter().enumerate().map(|(j, &m)| if raw(j) { 0.0 } else { m }).collect();
        let mean = Tensor::from_slice(&mean).to_kind(x.kind());
        let std: Vec<f64> =
            self.var.iter().enumerate().map(|(j, v)| if raw(j) { 1.0 } else { (v + self.eps).sqrt() }).collect();
        let std = Tensor::from_slice(&std).to_kind(x.kind());
        (x - mean) / std
    }
}

/// An `[N, d]` array as a tensor of the same precision.
pub fn array_to_tensor<R: SimFloat>(a: &Array2<R>) -> Tensor {
    let (n, d) = a.dim();
    let v: Vec<R> = a.iter().copied().collect();
    Tensor::from_slice(&v).reshape([n as i64, d as i64])
}

/// An `[N, d]` (or `[N]`, read as `[N, 1]`) tensor as an array of `R`, converting its kind.
pub fn tensor_to_array<R: SimFloat>(t: &Tensor) -> Array2<R> {
    let t = t.detach().to_kind(R::KIND).contiguous();
    let size = t.size();
    let (n, d) = (size[0] as usize, size.get(1).copied().unwrap_or(1) as usize);
    let v: Vec<R> = Vec::<R>::try_from(&t.view([-1])).expect("tensor of R::KIND");
    Array2::from_shape_vec((n, d), v).expect("shape")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_mean_std_matches_batch_moments() {
        let x = Array2::from_shape_fn((7, 2), |(i, j)| (i * i) as f32 + j as f32);
        let mut rms = RunningMeanStd::new(2, false, 1e-12);
        rms.update(&x.slice(ndarray::s![..3, ..]).to_owned());
        rms.update(&x.slice(ndarray::s![3.., ..]).to_owned());
        let m: f64 = x.column(0).iter().map(|&v| v as f64).sum::<f64>() / 7.0;
        let v: f64 = x.column(0).iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / 7.0;
        assert!((rms.mean[0] - m).abs() < 1e-9 && (rms.var[0] - v).abs() < 1e-6, "{rms:?} vs {m} {v}");
    }

    #[test]
    fn raw_entries_pass_through_the_normalizer() {
        let x = Array2::from_shape_fn((5, 4), |(i, j)| (i * (j + 1)) as f32 + 3.0);
        let rms = {
            let mut r = RunningMeanStd::new(4, false, 1e-12).with_raw(1..3);
            r.update(&x);
            r
        };
        let y = tensor_to_array::<f32>(&rms.normalize(&array_to_tensor(&x)));
        for i in 0..5 {
            assert_eq!((y[[i, 1]], y[[i, 2]]), (x[[i, 1]], x[[i, 2]]), "raw entries changed");
            for j in [0, 3] {
                let want = (x[[i, j]] as f64 - rms.mean[j]) / (rms.var[j] + rms.eps).sqrt();
                assert!((y[[i, j]] as f64 - want).abs() < 1e-5);
            }
        }
    }
}
