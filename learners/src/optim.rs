//! Adam and AdamW over a list of tch variables, with their moments in the open so checkpoints can
//! save and restore them (tch's `nn::Optimizer` keeps its state inside libtorch, out of reach).
//!
//! The update is PyTorch's (Kingma & Ba 2015, Alg. 1; Loshchilov & Hutter 2019 for the decoupled
//! weight decay), step t = 1, 2, …:
//!   AdamW: θ ← θ·(1 − lr·wd);            Adam: g ← g + wd·θ
//!   m ← β₁m + (1 − β₁)g;   v ← β₂v + (1 − β₂)g²
//!   θ ← θ − lr/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε)

use tch::{Kind, Tensor};

/// Adam (`decoupled = false`) or AdamW (`decoupled = true`).
#[derive(Debug)]
pub struct Adam {
    params: Vec<Tensor>,
    pub lr: f64,
    pub betas: (f64, f64),
    pub eps: f64,
    pub weight_decay: f64,
    pub decoupled: bool,
    /// First and second moments, one per parameter (same shapes).
    pub m: Vec<Tensor>,
    pub v: Vec<Tensor>,
    /// Steps taken (the t of the bias corrections).
    pub steps: u64,
}

impl Adam {
    pub fn new(params: Vec<Tensor>, lr: f64, betas: (f64, f64), weight_decay: f64, decoupled: bool) -> Self {
        let m = params.iter().map(|p| p.zeros_like().detach()).collect();
        let v = params.iter().map(|p| p.zeros_like().detach()).collect();
        Self { params, lr, betas, eps: 1e-8, weight_decay, decoupled, m, v, steps: 0 }
    }

    pub fn params(&self) -> &[Tensor] {
        &self.params
    }

    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
    }

    /// Global L2 norm of the gradients (undefined gradients count as 0).
    pub fn grad_norm(&self) -> f64 {
        let sq: f64 = self
            .params
            .iter()
            .map(|p| p.grad())
            .filter(|g| g.defined())
            .map(|g| g.square().sum(Kind::Double).double_value(&[]))
            .sum();
        sq.sqrt()
    }

    /// Scales the gradients so their global norm is at most `max` (PyTorch's `clip_grad_norm_`:
    /// factor max/(norm + 1e-6) when below 1). Returns the norm before clipping.
    pub fn clip_grad_norm(&mut self, max: f64) -> f64 {
        let norm = self.grad_norm();
        let scale = max / (norm + 1e-6);
        if scale < 1.0 {
            tch::no_grad(|| {
                for p in &self.params {
                    let mut g = p.grad();
                    if g.defined() {
                        let _ = g.g_mul_scalar_(scale);
                    }
                }
            });
        }
        norm
    }

    /// One update with the current gradients (parameters without a gradient are left alone).
    pub fn step(&mut self) {
        self.steps += 1;
        let (b1, b2) = self.betas;
        let t = self.steps as i32;
        let (bc1, bc2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
        tch::no_grad(|| {
            for ((p, m), v) in self.params.iter().zip(&mut self.m).zip(&mut self.v) {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let mut p = p.shallow_clone();
                let g = if self.decoupled || self.weight_decay == 0.0 {
                    if self.decoupled && self.weight_decay != 0.0 {
                        let _ = p.g_mul_scalar_(1.0 - self.lr * self.weight_decay);
                    }
                    g
                } else {
                    &g + &p * self.weight_decay
                };
                let _ = m.g_mul_scalar_(b1).g_add_(&(&g * (1.0 - b1)));
                let _ = v.g_mul_scalar_(b2).g_add_(&(g.square() * (1.0 - b2)));
                let denom = v.sqrt() / bc2.sqrt() + self.eps;
                let _ = p.g_sub_(&(&*m / denom * (self.lr / bc1)));
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One scalar parameter, two steps, against the update written out by hand.
    #[test]
    fn adamw_matches_the_update_by_hand() {
        let p = Tensor::from_slice(&[1.5f64]).set_requires_grad(true);
        let mut opt = Adam::new(vec![p.shallow_clone()], 0.1, (0.7, 0.95), 0.01, true);
        let (mut x, mut m, mut v) = (1.5f64, 0.0f64, 0.0f64);
        for t in 1..=2 {
            opt.zero_grad();
            (&p * &p).sum(Kind::Double).backward();
            opt.step();
            let g = 2.0 * x;
            x *= 1.0 - 0.1 * 0.01;
            m = 0.7 * m + 0.3 * g;
            v = 0.95 * v + 0.05 * g * g;
            let (bc1, bc2) = (1.0 - 0.7f64.powi(t), 1.0 - 0.95f64.powi(t));
            x -= 0.1 / bc1 * m / (v.sqrt() / bc2.sqrt() + 1e-8);
            assert!((p.double_value(&[0]) - x).abs() < 1e-12, "step {t}: {} vs {x}", p.double_value(&[0]));
        }
    }
}
