//! 3×3 singular value decomposition and the derivative of isotropic matrix functions built on it.
//!
//! The MPM materials are all of two forms in the SVD F = U Σ Vᵀ (U, V rotations, Σ = diag(σ)):
//! - type A, F ↦ U diag(f(σ)) Vᵀ (the plastic return mapping Z(F));
//! - type B, F ↦ U diag(h(σ)) Uᵀ (Kirchhoff stresses τ(F): Hencky, fixed-corotated, neo-Hookean);
//!
//! with f, h : ℝ³ → ℝ³ symmetric (permuting σ permutes the outputs). Their differential, with
//! dM = Uᵀ dF V, s = (dM_ij + dM_ji)/2 and a = (dM_ij − dM_ji)/2, is in the rotated frame
//!   diag:  dX_ii = Σ_k ∂f_i/∂σ_k dM_kk
//!   A, i≠j: dX_ij = s · (f_j − f_i)/(σ_j − σ_i) + a · (f_j + f_i)/(σ_j + σ_i)
//!   B, i≠j: dX_ij = s · (h_j − h_i)/(σ_j − σ_i) + a · (h_j − h_i)/(σ_j + σ_i)
//! (from dM = Ω_U Σ + dΣ − Σ Ω_V with Ω = Uᵀ dU, Vᵀ dV antisymmetric; cf. Papadopoulo & Lourakis
//! 2000 for the SVD differential, Stomakhin et al. 2012 / Jiang et al. 2016 §"dP/dF" for writing it
//! with divided differences). Written this way nothing divides by σ_j² − σ_i²: the only possibly
//! singular quotient is the divided difference (f_j − f_i)/(σ_j − σ_i), and for a symmetric smooth
//! f it has the finite limit ∂f_j/∂σ_j − ∂f_j/∂σ_i as σ_i → σ_j (the rest state F = I has σ all
//! equal, so this case is the common one, not an edge case).
//!
//! **Safe formulas, stated:** when |σ_j − σ_i| < `DEGENERATE` · max(1, |σ_i|, |σ_j|) the divided
//! difference is replaced by its limit ½(J_jj − J_ji + J_ii − J_ij) (error O(|σ_j − σ_i|)); the
//! sums σ_i + σ_j (zero only for an inverted F with σ₃ = −σ_i) are clamped away from zero with a
//! sign-preserving ε (`SUM_EPS`). Both the forward tangent (`lift`) and the adjoint (`pullback`) use
//! the same coefficients, so they stay exact transposes of each other.
//!
//! The SVD itself is computed on primal values in f64 (Jacobi eigen-decomposition of FᵀF, then
//! U from a Gram–Schmidt QR of F V), with Warp's sign convention: det U = det V = +1 and the last
//! singular value carries the sign of det F.

use diffsim_engine::Real;

pub type M3 = [[f64; 3]; 3];

/// Relative gap below which two singular values count as equal (see module docs).
pub const DEGENERATE: f64 = 1e-6;
/// Smallest |σ_i + σ_j| used as a denominator (sign kept).
pub const SUM_EPS: f64 = 1e-8;

/// F = U diag(σ) Vᵀ with det U = det V = 1; |σ₀| ≥ |σ₁| ≥ |σ₂|, only σ₂ may be negative.
#[derive(Clone, Copy, Debug)]
pub struct Svd {
    pub u: M3,
    pub s: [f64; 3],
    pub v: M3,
}

pub fn matmul(a: &M3, b: &M3) -> M3 {
    let mut c = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            c[i][j] = a[i][0] * b[0][j] + a[i][1] * b[1][j] + a[i][2] * b[2][j];
        }
    }
    c
}

pub fn transpose(a: &M3) -> M3 {
    [[a[0][0], a[1][0], a[2][0]], [a[0][1], a[1][1], a[2][1]], [a[0][2], a[1][2], a[2][2]]]
}

#[cfg(test)]
fn det(a: &M3) -> f64 {
    a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
        + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0])
}

/// Most Jacobi sweeps (quadratic convergence: at `TOL2_F64`, 3.1 to 3.3 on average for F = I +
/// ε·rand, ε from 1e-4 to 0.1, and 3.4 for random F; at most 4 in 10⁵ matrices of each).
const MAX_SWEEPS: usize = 12;

/// One Jacobi rotation in the plane (p, q) of a symmetric 3×3 matrix held as its six entries:
/// `app`, `aqq`, `apq` and the two entries `arp`, `arq` of the third row r. Zeroes `apq` and
/// rotates the columns p, q of the eigenvector matrix `v`.
///
/// The rotation is J = [[c, s], [−s, c]] with t = s/c the smaller root of t² + 2θt − 1 = 0,
/// θ = (a_qq − a_pp)/(2a_pq) (Golub & Van Loan, Alg. 8.4.1). Written without θ: with
/// d = a_qq − a_pp, r = √(d² + 4a_pq²), u = |d| + r and w = 2a_pq·sign(d), t = w/u and
/// u² + w² = 2ru, so (c, s) = (u, w)/√(2ru): two square roots and one division per rotation
/// (the textbook form needs two of each).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn rotate(app: &mut f64, aqq: &mut f64, apq: &mut f64, arp: &mut f64, arq: &mut f64, v: &mut M3, p: usize, q: usize) {
    let x = *apq;
    if x == 0.0 {
        return;
    }
    let d = *aqq - *app;
    let r = (d * d + 4.0 * x * x).sqrt();
    let u = d.abs() + r;
    let w = 2.0 * x * 1f64.copysign(d);
    let inv = 1.0 / (2.0 * r * u).sqrt();
    let (c, s) = (u * inv, w * inv);
    let (p0, q0) = (*app, *aqq);
    let cs2x = 2.0 * c * s * x;
    *app = c * c * p0 - cs2x + s * s * q0;
    *aqq = s * s * p0 + cs2x + c * c * q0;
    *apq = 0.0;
    let (rp, rq) = (*arp, *arq);
    *arp = c * rp - s * rq;
    *arq = s * rp + c * rq;
    for row in v.iter_mut() {
        let (vp, vq) = (row[p], row[q]);
        row[p] = c * vp - s * vq;
        row[q] = s * vp + c * vq;
    }
}

/// Symmetric eigen-decomposition of a Gram matrix A = FᵀF by cyclic Jacobi rotations: returns
/// (eigenvalues, eigenvectors as columns). Stops when every pair is decorrelated to `tol2`:
/// a_pq² ≤ tol2 (a_pp a_qq + 1e-16 ‖diag‖²), i.e. the columns p, q of F V make an angle within
/// √tol2 of 90° (a Gram matrix has a_pq² ≤ a_pp a_qq). Relative to each pair rather than to the
/// whole matrix, so that the QR of F V drops off-diagonal terms ~√tol2 σ_j for small σ_j too
/// (Demmel & Veselić 1992 on the relative accuracy of Jacobi); the 1e-16 ‖diag‖² floor stops
/// rounding noise of (numerically) zero columns from asking for more sweeps.
fn jacobi_eigen(a: &M3, tol2: f64) -> ([f64; 3], M3) {
    let mut v = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    let (mut a00, mut a11, mut a22) = (a[0][0], a[1][1], a[2][2]);
    let (mut a01, mut a02, mut a12) = (a[0][1], a[0][2], a[1][2]);
    for _sweep in 0..MAX_SWEEPS {
        let floor = 1e-16 * (a00 * a00 + a11 * a11 + a22 * a22);
        if a01 * a01 <= tol2 * (a00 * a11 + floor)
            && a02 * a02 <= tol2 * (a00 * a22 + floor)
            && a12 * a12 <= tol2 * (a11 * a22 + floor)
        {
            break;
        }
        rotate(&mut a00, &mut a11, &mut a01, &mut a02, &mut a12, &mut v, 0, 1);
        rotate(&mut a00, &mut a22, &mut a02, &mut a01, &mut a12, &mut v, 0, 2);
        rotate(&mut a11, &mut a22, &mut a12, &mut a01, &mut a02, &mut v, 1, 2);
    }
    ([a00, a11, a22], v)
}

fn col(m: &M3, j: usize) -> [f64; 3] {
    [m[0][j], m[1][j], m[2][j]]
}
fn dot3(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}
fn normalized_or(a: [f64; 3], fallback: [f64; 3]) -> [f64; 3] {
    let n = dot3(a, a).sqrt();
    if n > 1e-12 { [a[0] / n, a[1] / n, a[2] / n] } else { fallback }
}
/// Some unit vector orthogonal to unit `a`.
fn orthogonal(a: [f64; 3]) -> [f64; 3] {
    let e = if a[0].abs() < 0.9 { [1.0, 0.0, 0.0] } else { [0.0, 1.0, 0.0] };
    let p = cross(a, e);
    normalized_or(p, [0.0, 0.0, 1.0])
}

/// Squared correlation of the columns of F V at which `svd3` stops (`jacobi_eigen`): 1e-15,
/// i.e. converged to f64 rounding, for f64 and every scalar carrying derivatives. Stopping
/// earlier makes the computed SVD a step function of F at the stopping tolerance: at 1e-12 an
/// eigenvector of FᵀF is off by ~1e-12 λ/(λ_p − λ_q), which a central difference at h = 1e-6
/// reads as a slope (sand_material_adjoint, seed 1291460167946661487: a tip projection with σ
/// 1.3e-3 apart, off by 1.4e-4 against a 1e-4 bound). Quadratic convergence makes the last
/// three decades cheap: measured on 10⁵ matrices, 4.11 → 4.28 convergence checks per SVD for
/// F = I + 0.01·rand and 4.23 → 4.40 for random F (at most 5 for either tolerance).
pub const TOL2_F64: f64 = 1e-30;
/// The same for forwards that only need f32 values: 1e-7, i.e. the dropped off-diagonal terms
/// are at f32 rounding (Warp's svd3, which Rewarped uses, runs in f32 throughout). It saves about
/// one of the ~3 sweeps of a near-rotation F.
pub const TOL2_F32: f64 = 1e-14;

/// SVD at full f64 accuracy (`TOL2_F64`).
pub fn svd3(f: &M3) -> Svd {
    svd3_tol(f, TOL2_F64)
}

/// F = U Σ Vᵀ: V from the Jacobi eigen-decomposition of FᵀF (stopping at `tol2`, see
/// `TOL2_F64`), U from a Gram–Schmidt QR of F V (robust for small or zero σ, unlike F V Σ⁻¹).
pub fn svd3_tol(f: &M3, tol2: f64) -> Svd {
    let (mut lam, mut v) = jacobi_eigen(&matmul(&transpose(f), f), tol2);
    // Sort eigenpairs by eigenvalue, descending, with three compare-swaps; each column swap flips
    // det V (a product of rotations: +1), so an odd count is undone by negating the last column.
    let mut flip = false;
    for (i, j) in [(0, 1), (1, 2), (0, 1)] {
        if lam[i] < lam[j] {
            lam.swap(i, j);
            for row in v.iter_mut() {
                row.swap(i, j);
            }
            flip = !flip;
        }
    }
    if flip {
        for row in v.iter_mut() {
            row[2] = -row[2];
        }
    }
    let b = matmul(f, &v);
    let (b0, b1, b2) = (col(&b, 0), col(&b, 1), col(&b, 2));
    let u0 = normalized_or(b0, [1.0, 0.0, 0.0]);
    let p = dot3(u0, b1);
    let u1 = normalized_or([b1[0] - p * u0[0], b1[1] - p * u0[1], b1[2] - p * u0[2]], orthogonal(u0));
    let u2 = cross(u0, u1);
    let s = [dot3(u0, b0), dot3(u1, b1), dot3(u2, b2)];
    let u = [[u0[0], u1[0], u2[0]], [u0[1], u1[1], u2[1]], [u0[2], u1[2], u2[2]]];
    Svd { u, s, v }
}

/// A symmetric map of the singular values with its Jacobian, and the off-diagonal coefficients
/// of its matrix function (module docs): `d[i][j]` for the symmetric part s, `p[i][j]` for the
/// antisymmetric part a.
#[derive(Clone, Copy, Debug)]
pub struct IsoMap {
    pub val: [f64; 3],
    pub jac: M3,
    pub d: M3,
    pub p: M3,
}

/// Which matrix function an `IsoMap` describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// U diag(f) Vᵀ.
    A,
    /// U diag(h) Uᵀ.
    B,
}

fn clamp_sum(x: f64) -> f64 {
    if x.abs() < SUM_EPS { SUM_EPS.copysign(x) } else { x }
}

impl IsoMap {
    pub fn new(form: Form, sigma: [f64; 3], val: [f64; 3], jac: M3) -> Self {
        let mut d = [[0.0; 3]; 3];
        let mut p = [[0.0; 3]; 3];
        for i in 0..3 {
            for j in 0..3 {
                if i == j {
                    continue;
                }
                let gap = sigma[j] - sigma[i];
                let scale = 1f64.max(sigma[i].abs()).max(sigma[j].abs());
                d[i][j] = if gap.abs() < DEGENERATE * scale {
                    0.5 * (jac[j][j] - jac[j][i] + jac[i][i] - jac[i][j])
                } else {
                    (val[j] - val[i]) / gap
                };
                let sum = clamp_sum(sigma[i] + sigma[j]);
                p[i][j] = match form {
                    Form::A => (val[j] + val[i]) / sum,
                    Form::B => (val[j] - val[i]) / sum,
                };
            }
        }
        Self { val, jac, d, p }
    }

    /// Values only (no differential): for forwards that carry no derivative.
    pub fn values(val: [f64; 3]) -> Self {
        let z = [[0.0; 3]; 3];
        Self { val, jac: z, d: z, p: z }
    }

    /// dX (rotated frame) from dM = Uᵀ dF V.
    #[inline]
    pub fn lift<R: Real>(&self, dm: &[[R; 3]; 3]) -> [[R; 3]; 3] {
        let mut x = [[R::zero(); 3]; 3];
        let half = R::from_f64(0.5);
        for i in 0..3 {
            x[i][i] = (0..3).fold(R::zero(), |acc, k| acc + R::from_f64(self.jac[i][k]) * dm[k][k]);
            for j in 0..3 {
                if i != j {
                    let s = half * (dm[i][j] + dm[j][i]);
                    let a = half * (dm[i][j] - dm[j][i]);
                    x[i][j] = R::from_f64(self.d[i][j]) * s + R::from_f64(self.p[i][j]) * a;
                }
            }
        }
        x
    }

    /// Adds the transpose of `lift` applied to X̄ into M̄.
    #[inline]
    pub fn pullback<R: Real>(&self, xbar: &[[R; 3]; 3], mbar: &mut [[R; 3]; 3]) {
        let half = R::from_f64(0.5);
        for i in 0..3 {
            for (k, row) in mbar.iter_mut().enumerate() {
                row[k] += R::from_f64(self.jac[i][k]) * xbar[i][i];
            }
            for j in 0..3 {
                if i != j {
                    let (d, p) = (R::from_f64(self.d[i][j]), R::from_f64(self.p[i][j]));
                    mbar[i][j] += xbar[i][j] * half * (d + p);
                    mbar[j][i] += xbar[i][j] * half * (d - p);
                }
            }
        }
    }
}

/// a · b for R-matrices where one side is f64 (rotations are primal constants).
#[inline]
pub fn mul_cr<R: Real>(a: &M3, b: &[[R; 3]; 3]) -> [[R; 3]; 3] {
    let mut c = [[R::zero(); 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            c[i][j] = R::from_f64(a[i][0]) * b[0][j] + R::from_f64(a[i][1]) * b[1][j] + R::from_f64(a[i][2]) * b[2][j];
        }
    }
    c
}
#[inline]
pub fn mul_rc<R: Real>(a: &[[R; 3]; 3], b: &M3) -> [[R; 3]; 3] {
    let mut c = [[R::zero(); 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            c[i][j] = a[i][0] * R::from_f64(b[0][j]) + a[i][1] * R::from_f64(b[1][j]) + a[i][2] * R::from_f64(b[2][j]);
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rand_m(seed: u64) -> M3 {
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let mut m = [[0.0; 3]; 3];
        for row in m.iter_mut() {
            for x in row.iter_mut() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                *x = ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0;
            }
        }
        m
    }

    fn check_svd(f: &M3) {
        let Svd { u, s, v } = svd3(f);
        let us = [
            [u[0][0] * s[0], u[0][1] * s[1], u[0][2] * s[2]],
            [u[1][0] * s[0], u[1][1] * s[1], u[1][2] * s[2]],
            [u[2][0] * s[0], u[2][1] * s[1], u[2][2] * s[2]],
        ];
        let r = matmul(&us, &transpose(&v));
        for i in 0..3 {
            for j in 0..3 {
                assert!((r[i][j] - f[i][j]).abs() < 1e-10, "reconstruction {f:?} -> {r:?}");
            }
        }
        assert!((det(&u) - 1.0).abs() < 1e-10 && (det(&v) - 1.0).abs() < 1e-10);
        assert!(s[0] >= s[1].abs() - 1e-12 && s[1] >= s[2].abs() - 1e-12 && s[1] >= 0.0);
        assert!((s[0] * s[1] * s[2] - det(f)).abs() < 1e-10);
    }

    #[test]
    fn svd_reconstructs_with_rotations_and_signed_last_value() {
        for seed in 0..200 {
            check_svd(&rand_m(seed));
        }
        // Degenerate inputs: identity, a rotation, rank one, a reflection.
        check_svd(&[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]);
        check_svd(&[[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]);
        check_svd(&[[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [0.0, 0.0, 0.0]]);
        check_svd(&[[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]);
        // Near rotations (clustered σ: MPM's common case), and exactly repeated σ.
        for seed in 0..200 {
            let e = rand_m(seed + 1000);
            let eps = [1e-7, 1e-4, 1e-2, 0.1][seed as usize % 4];
            check_svd(&[0, 1, 2].map(|i| [0, 1, 2].map(|j| if i == j { 1.0 } else { 0.0 } + eps * e[i][j])));
        }
        check_svd(&[[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 0.5]]);
    }

    /// The f32 tolerance reconstructs F to f32 rounding, also when one σ is small.
    #[test]
    fn svd_at_f32_tolerance_reconstructs() {
        for seed in 0..400 {
            let mut f = rand_m(seed);
            if seed % 2 == 1 {
                // Third column nearly parallel to the first: σ₂ ~ 1e-3.
                for row in f.iter_mut() {
                    row[2] = row[0] + 1e-3 * row[2];
                }
            }
            let Svd { u, s, v } = svd3_tol(&f, TOL2_F32);
            for i in 0..3 {
                for j in 0..3 {
                    let r: f64 = (0..3).map(|k| u[i][k] * s[k] * v[j][k]).sum();
                    assert!((r - f[i][j]).abs() < 3e-7, "{f:?}");
                }
            }
        }
    }
}
