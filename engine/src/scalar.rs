//! The scalar type every differentiable system is written over.
//!
//! Systems are generic over [`Real`] so that the *same code* runs in `f32` (training speed),
//! in `f64` (finite differences, adjoint tests) and in [`Dual`] (forward-mode tangents for the
//! dot-product test ⟨ȳ, J ẋ⟩ = ⟨Jᵀ ȳ, ẋ⟩). This module owns only arithmetic; it knows nothing
//! about states or systems.

use std::fmt::Debug;
use std::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Sub, SubAssign};

/// A real number the simulator can run in: `f32`, `f64` or [`Dual`].
pub trait Real:
    Copy
    + Debug
    + Default
    + Send
    + Sync
    + PartialOrd
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
{
    /// Converts a constant (model parameter, dt) into this scalar; tangents are zero.
    fn from_f64(v: f64) -> Self;
    /// The primal value (a dual number drops its tangent).
    fn to_f64(self) -> f64;
    fn sqrt(self) -> Self;
    fn exp(self) -> Self;
    fn tanh(self) -> Self;
    /// (sin x, cos x).
    fn sin_cos(self) -> (Self, Self);

    fn zero() -> Self {
        Self::from_f64(0.0)
    }
    fn one() -> Self {
        Self::from_f64(1.0)
    }
    fn is_finite(self) -> bool {
        self.to_f64().is_finite()
    }
    /// max by primal value; the derivative follows the selected branch.
    fn max(self, o: Self) -> Self {
        if self.to_f64() >= o.to_f64() { self } else { o }
    }
    /// min by primal value; the derivative follows the selected branch.
    fn min(self, o: Self) -> Self {
        if self.to_f64() <= o.to_f64() { self } else { o }
    }
}

macro_rules! impl_real_float {
    ($t:ty) => {
        impl Real for $t {
            #[inline(always)]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline(always)]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline(always)]
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
            #[inline(always)]
            fn sin_cos(self) -> (Self, Self) {
                <$t>::sin_cos(self)
            }
        }
    };
}
impl_real_float!(f32);
impl_real_float!(f64);

/// A forward-mode dual number `v + t·ε` (ε² = 0) in f64: `t` carries one directional derivative.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Dual {
    pub v: f64,
    pub t: f64,
}

impl Dual {
    pub const fn new(v: f64, t: f64) -> Self {
        Self { v, t }
    }
}

impl PartialOrd for Dual {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        self.v.partial_cmp(&o.v)
    }
}

impl Add for Dual {
    type Output = Self;
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        Dual::new(self.v + o.v, self.t + o.t)
    }
}
impl Sub for Dual {
    type Output = Self;
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        Dual::new(self.v - o.v, self.t - o.t)
    }
}
impl Mul for Dual {
    type Output = Self;
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        Dual::new(self.v * o.v, self.t * o.v + self.v * o.t)
    }
}
impl Div for Dual {
    type Output = Self;
    #[inline(always)]
    fn div(self, o: Self) -> Self {
        // (a/b)' = (a' b − a b') / b²
        Dual::new(self.v / o.v, (self.t * o.v - self.v * o.t) / (o.v * o.v))
    }
}
impl Neg for Dual {
    type Output = Self;
    #[inline(always)]
    fn neg(self) -> Self {
        Dual::new(-self.v, -self.t)
    }
}
impl AddAssign for Dual {
    fn add_assign(&mut self, o: Self) {
        *self = *self + o;
    }
}
impl SubAssign for Dual {
    fn sub_assign(&mut self, o: Self) {
        *self = *self - o;
    }
}
impl MulAssign for Dual {
    fn mul_assign(&mut self, o: Self) {
        *self = *self * o;
    }
}
impl DivAssign for Dual {
    fn div_assign(&mut self, o: Self) {
        *self = *self / o;
    }
}

impl Real for Dual {
    fn from_f64(v: f64) -> Self {
        Dual::new(v, 0.0)
    }
    fn to_f64(self) -> f64 {
        self.v
    }
    fn sqrt(self) -> Self {
        let s = self.v.sqrt();
        Dual::new(s, self.t / (2.0 * s))
    }
    fn exp(self) -> Self {
        let e = self.v.exp();
        Dual::new(e, self.t * e)
    }
    fn tanh(self) -> Self {
        let th = self.v.tanh();
        Dual::new(th, self.t * (1.0 - th * th))
    }
    fn sin_cos(self) -> (Self, Self) {
        let (s, c) = self.v.sin_cos();
        (Dual::new(s, self.t * c), Dual::new(c, -self.t * s))
    }
    fn is_finite(self) -> bool {
        self.v.is_finite() && self.t.is_finite()
    }
}

/// Small fixed-size vector helpers over [`Real`]; glam only covers f32/f64, not duals.
pub mod vec3 {
    use super::Real;

    #[inline(always)]
    pub fn load<R: Real>(s: &[R], i: usize) -> [R; 3] {
        [s[3 * i], s[3 * i + 1], s[3 * i + 2]]
    }
    #[inline(always)]
    pub fn add_to<R: Real>(s: &mut [R], i: usize, v: [R; 3]) {
        s[3 * i] += v[0];
        s[3 * i + 1] += v[1];
        s[3 * i + 2] += v[2];
    }
    #[inline(always)]
    pub fn store<R: Real>(s: &mut [R], i: usize, v: [R; 3]) {
        s[3 * i] = v[0];
        s[3 * i + 1] = v[1];
        s[3 * i + 2] = v[2];
    }
    #[inline(always)]
    pub fn add<R: Real>(a: [R; 3], b: [R; 3]) -> [R; 3] {
        [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
    }
    #[inline(always)]
    pub fn sub<R: Real>(a: [R; 3], b: [R; 3]) -> [R; 3] {
        [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
    }
    #[inline(always)]
    pub fn scale<R: Real>(a: [R; 3], s: R) -> [R; 3] {
        [a[0] * s, a[1] * s, a[2] * s]
    }
    #[inline(always)]
    pub fn dot<R: Real>(a: [R; 3], b: [R; 3]) -> R {
        a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
    }
    #[inline(always)]
    pub fn neg<R: Real>(a: [R; 3]) -> [R; 3] {
        [-a[0], -a[1], -a[2]]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dual_chain_rule_matches_analytic_derivative() {
        // f(x) = sqrt(x) * exp(x) / (1 + x²); f'(x) by hand at x = 0.7.
        let x = 0.7f64;
        let d = Dual::new(x, 1.0);
        let f = d.sqrt() * d.exp() / (Dual::from_f64(1.0) + d * d);
        let g = x.sqrt() * x.exp();
        let dg = x.exp() / (2.0 * x.sqrt()) + g;
        let h = 1.0 + x * x;
        let expect = (dg * h - g * 2.0 * x) / (h * h);
        assert!((f.t - expect).abs() < 1e-14, "{} vs {}", f.t, expect);
        assert!((f.v - g / h).abs() < 1e-15);
    }

    #[test]
    fn tanh_derivative() {
        let d = Dual::new(0.3, 1.0).tanh();
        assert!((d.t - (1.0 - 0.3f64.tanh().powi(2))).abs() < 1e-15);
    }

    #[test]
    fn sin_cos_derivatives() {
        for x in [-7.1, -0.9, 0.0, 0.4, 2.5, 40.0] {
            let (s, c) = Dual::new(x, 1.0).sin_cos();
            assert_eq!((s.v, c.v), x.sin_cos());
            assert!((s.t - x.cos()).abs() < 1e-15 && (c.t + x.sin()).abs() < 1e-15, "{x}");
        }
    }
}
