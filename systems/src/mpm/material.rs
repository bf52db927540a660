//! `mpm.material`: per particle, the plastic return mapping F ← Z(F) and the Kirchhoff stress
//! τ(F), both from one SVD F = U Σ Vᵀ (Rewarped's `eval_stress`, rewarped.md §4).
//!
//! Materials (`mpm_material` = [kind, μ, λ, τ_y] per particle):
//! - `COROTATED` (0): τ = 2μ (F − R) Fᵀ + λ (J − 1) J I = U diag(2μ(σ² − σ) + λ(J−1)J) Uᵀ, Z = id.
//! - `PLASTICINE` (1): von Mises return mapping on the Hencky strain ε = log max(σ, 0.01):
//!   ε̄ = ε − tr(ε)/3, Δγ = ‖ε̄‖ − τ_y/(2μ); if Δγ > 0, ε ← ε − Δγ ε̄/‖ε̄‖ and F = U exp(ε) Vᵀ.
//!   Stress (Hencky): τ = U diag(2μ log σ + λ tr log σ) Uᵀ with σ clamped to ≥ 1e-5.
//! - `NEO_HOOKEAN` (2): τ = μ (F Fᵀ − I) + λ log J I = U diag(μ(σ² − 1) + λ log J) Uᵀ, Z = id.
//! - `WATER` (3, weakly compressible): Z(F) = J^{1/3} I = U diag(J^{1/3}) Uᵀ (shear forgotten),
//!   τ = λ J (J − 1) I.
//!
//! Both maps are isotropic matrix functions (`svd::IsoMap`), so the adjoint is the transpose of
//! their differential in the SVD frame, with the documented safe treatment of equal singular
//! values (see `svd.rs`). Forward for f32/f64 evaluates the maps on the primal SVD; for scalars
//! that carry a derivative (duals, tapes) it adds the differential applied to dM = Uᵀ (F − F₀) V,
//! which is exactly the tangent the adjoint transposes.
//!
//! Reads `mpm_F` [P, 9] (row-major; the trial F of the last G2P), writes the projected `mpm_Fp`
//! and `mpm_stress` [P, 9]; model `mpm_material`. (Z writes a column of its own because the
//! schedule allows one writer of `mpm_F` per stage, and that is G2P's F ← (I + Δt C) Fp.)

use std::any::TypeId;

use diffsim_engine::{ColumnAccess, ModelView, Real, StepCx, System, View, ViewMut};
use rayon::prelude::*;

use super::svd::{Form, IsoMap, M3, Svd, matmul, mul_cr, mul_rc, svd3, transpose};

pub const COROTATED: f64 = 0.0;
pub const PLASTICINE: f64 = 1.0;
pub const NEO_HOOKEAN: f64 = 2.0;
pub const WATER: f64 = 3.0;

/// Lower clamp of σ in the plastic return mapping (Rewarped / PlasticineLab).
const PLASTIC_SIGMA_MIN: f64 = 0.01;
/// Lower clamp of σ in the Hencky stress.
const HENCKY_SIGMA_MIN: f64 = 1e-5;
/// Lower clamp of J in log J (neo-Hookean).
const J_MIN: f64 = 1e-6;

#[derive(Clone, Copy, Debug)]
pub struct Material {
    /// Threads over one env's particles when a chunk holds fewer envs than this (see
    /// `Transfer::threads`); 1 = serial.
    pub threads: usize,
}

impl Default for Material {
    fn default() -> Self {
        Self { threads: 1 }
    }
}

/// Forward of one block of particles: `params` [4 each], F in, Fp and τ out.
fn forward_block<R: Real>(params: &[f64], fcol: &[R], fpcol: &mut [R], tcol: &mut [R]) {
    let tangent = has_tangent::<R>();
    for p in 0..fcol.len() / 9 {
        let f = load(fcol, p);
        let f0 = primal(&f);
        let ev = eval(&f0, &params[4 * p..4 * p + 4], tangent);
        let Svd { u, v, .. } = ev.svd;
        // dM = Uᵀ (F − F₀) V: zero for floats, the tangent/tape path otherwise.
        let dm = tangent.then(|| {
            let df = [0, 1, 2].map(|i| [0, 1, 2].map(|j| f[i][j] - R::from_f64(f0[i][j])));
            mul_rc(&mul_cr(&transpose(&u), &df), &v)
        });
        let tau = compose(&u, ev.stress.val, dm.as_ref().map(|dm| ev.stress.lift(dm)).as_ref(), &u);
        store(tcol, p, &tau);
        match &ev.plastic {
            Some((pl, form)) => {
                let right = if *form == Form::A { &v } else { &u };
                let fnew = compose(&u, pl.val, dm.as_ref().map(|dm| pl.lift(dm)).as_ref(), right);
                store(fpcol, p, &fnew);
            }
            None => fpcol[9 * p..9 * p + 9].copy_from_slice(&fcol[9 * p..9 * p + 9]),
        }
    }
}

/// What one particle's forward computed, kept for the adjoint.
struct Eval {
    svd: Svd,
    /// The return mapping when the particle yielded this substep (else Z = id), and its form.
    plastic: Option<(IsoMap, Form)>,
    stress: IsoMap,
}

/// The plastic return mapping f(σ) with its Jacobian, or `None` when inside the yield surface.
fn von_mises(s: [f64; 3], mu: f64, yield_stress: f64) -> Option<([f64; 3], M3)> {
    let clamped = s.map(|x| x.max(PLASTIC_SIGMA_MIN));
    let eps = clamped.map(f64::ln);
    let mean = (eps[0] + eps[1] + eps[2]) / 3.0;
    let dev = eps.map(|e| e - mean);
    let n = (dev[0] * dev[0] + dev[1] * dev[1] + dev[2] * dev[2]).sqrt();
    let r = yield_stress / (2.0 * mu);
    if n - r <= 0.0 {
        return None;
    }
    let c = r / n;
    let f = [0, 1, 2].map(|i| (mean + c * dev[i]).exp());
    let mut jac = [[0.0; 3]; 3];
    for i in 0..3 {
        for k in 0..3 {
            let delta = if i == k { 1.0 } else { 0.0 };
            let de = if s[k] > PLASTIC_SIGMA_MIN { 1.0 / s[k] } else { 0.0 };
            jac[i][k] = f[i] * (1.0 / 3.0 + c * (delta - 1.0 / 3.0) - c * dev[i] * dev[k] / (n * n)) * de;
        }
    }
    Some((f, jac))
}

/// Water's Z: all singular values become J^{1/3} (J = σ₀σ₁σ₂, signed), with the Jacobian
/// ∂J^{1/3}/∂σ_k = (Π_{l≠k} σ_l) / (3 J^{2/3}).
fn fluid(s: [f64; 3]) -> ([f64; 3], M3) {
    let c = (s[0] * s[1] * s[2]).cbrt();
    let row = [0, 1, 2].map(|k| if c.abs() > 1e-12 { s[(k + 1) % 3] * s[(k + 2) % 3] / (3.0 * c * c) } else { 0.0 });
    ([c; 3], [row; 3])
}

/// Kirchhoff stress in the principal frame, h(σ), and its Jacobian.
fn stress(kind: f64, s: [f64; 3], mu: f64, lambda: f64) -> ([f64; 3], M3) {
    let mut h = [0.0; 3];
    let mut jac = [[0.0; 3]; 3];
    if kind == PLASTICINE {
        let c = s.map(|x| x.max(HENCKY_SIGMA_MIN));
        let l = c.map(f64::ln);
        let tr = l[0] + l[1] + l[2];
        for i in 0..3 {
            h[i] = 2.0 * mu * l[i] + lambda * tr;
            for k in 0..3 {
                let dl = if s[k] > HENCKY_SIGMA_MIN { 1.0 / s[k] } else { 0.0 };
                jac[i][k] = (if i == k { 2.0 * mu } else { 0.0 } + lambda) * dl;
            }
        }
    } else if kind == NEO_HOOKEAN {
        let j = s[0] * s[1] * s[2];
        let lj = j.max(J_MIN).ln();
        for i in 0..3 {
            h[i] = mu * (s[i] * s[i] - 1.0) + lambda * lj;
            for k in 0..3 {
                let others = s[(k + 1) % 3] * s[(k + 2) % 3];
                let dlj = if j > J_MIN { others / j } else { 0.0 };
                jac[i][k] = if i == k { 2.0 * mu * s[i] } else { 0.0 } + lambda * dlj;
            }
        }
    } else if kind == WATER {
        let j = s[0] * s[1] * s[2];
        for i in 0..3 {
            h[i] = lambda * j * (j - 1.0);
            for k in 0..3 {
                jac[i][k] = lambda * (2.0 * j - 1.0) * s[(k + 1) % 3] * s[(k + 2) % 3];
            }
        }
    } else {
        let j = s[0] * s[1] * s[2];
        for i in 0..3 {
            h[i] = 2.0 * mu * (s[i] * s[i] - s[i]) + lambda * (j - 1.0) * j;
            for k in 0..3 {
                let others = s[(k + 1) % 3] * s[(k + 2) % 3];
                jac[i][k] =
                    if i == k { 2.0 * mu * (2.0 * s[i] - 1.0) } else { 0.0 } + lambda * (2.0 * j - 1.0) * others;
            }
        }
    }
    (h, jac)
}

/// SVD, return mapping and stress of one particle; `derivatives` also builds the differentials
/// (the plain-float forward needs only the values).
fn eval(f: &M3, p: &[f64], derivatives: bool) -> Eval {
    let (kind, mu, lambda, yield_stress) = (p[0], p[1], p[2], p[3]);
    let svd = svd3(f);
    let map = |form, val, jac| if derivatives { IsoMap::new(form, svd.s, val, jac) } else { IsoMap::values(val) };
    let plastic = if kind == PLASTICINE {
        von_mises(svd.s, mu, yield_stress).map(|(f, j)| (f, j, Form::A))
    } else if kind == WATER {
        Some((fluid(svd.s).0, fluid(svd.s).1, Form::B))
    } else {
        None
    };
    let stress = match plastic {
        Some((fs, fj, _)) => {
            let (h, hj) = stress(kind, fs, mu, lambda);
            map(Form::B, h, matmul(&hj, &fj))
        }
        None => {
            let (h, hj) = stress(kind, svd.s, mu, lambda);
            map(Form::B, h, hj)
        }
    };
    let plastic = plastic.map(|(fs, fj, form)| (map(form, fs, fj), form));
    Eval { svd, plastic, stress }
}

fn load<R: Real>(c: &[R], p: usize) -> [[R; 3]; 3] {
    let o = 9 * p;
    [[c[o], c[o + 1], c[o + 2]], [c[o + 3], c[o + 4], c[o + 5]], [c[o + 6], c[o + 7], c[o + 8]]]
}
fn store<R: Real>(c: &mut [R], p: usize, m: &[[R; 3]; 3]) {
    for i in 0..3 {
        for j in 0..3 {
            c[9 * p + 3 * i + j] = m[i][j];
        }
    }
}
fn primal<R: Real>(m: &[[R; 3]; 3]) -> M3 {
    m.map(|r| r.map(|x| x.to_f64()))
}
/// U diag(d) Wᵀ + U X Wᵀ (X may be all zero).
fn compose<R: Real>(u: &M3, d: [f64; 3], x: Option<&[[R; 3]; 3]>, w: &M3) -> [[R; 3]; 3] {
    let mut inner = [[R::zero(); 3]; 3];
    if let Some(x) = x {
        inner = *x;
    }
    for i in 0..3 {
        inner[i][i] += R::from_f64(d[i]);
    }
    mul_rc(&mul_cr(u, &inner), &transpose(w))
}

/// Whether `R` carries derivatives (anything but the plain floats).
fn has_tangent<R: 'static>() -> bool {
    TypeId::of::<R>() != TypeId::of::<f32>() && TypeId::of::<R>() != TypeId::of::<f64>()
}

impl<R: Real> System<R> for Material {
    fn name(&self) -> &str {
        "mpm.material"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        vec![
            ColumnAccess::state("mpm_F", 9),
            ColumnAccess::write("mpm_Fp", 9),
            ColumnAccess::write("mpm_stress", 9),
            ColumnAccess::model("mpm_material", 4),
        ]
    }
    fn forward(&self, _: &StepCx, model: &ModelView, _: &View<R>, state: &mut ViewMut<R>) {
        let params = model.param("mpm_material");
        let [fcol, fpcol, tcol] = state.cols_mut(["mpm_F", "mpm_Fp", "mpm_stress"]);
        let (fcol, np): (&[R], usize) = (fcol, fcol.len() / 9);
        if self.threads > 1 && model.num_envs() < self.threads {
            let bs = (np / model.num_envs().max(1)).div_ceil(self.threads).max(1);
            params
                .par_chunks(4 * bs)
                .zip(fcol.par_chunks(9 * bs))
                .zip(fpcol.par_chunks_mut(9 * bs))
                .zip(tcol.par_chunks_mut(9 * bs))
                .for_each(|(((pa, f), fp), t)| forward_block(pa, f, fp, t));
        } else {
            forward_block(params, fcol, fpcol, tcol);
        }
    }
    fn adjoint(
        &self,
        _: &StepCx,
        model: &ModelView,
        _: &View<R>,
        pre: &View<R>,
        adj: &mut ViewMut<R>,
        _: &mut ViewMut<R>,
    ) {
        let params = model.param("mpm_material");
        let fpre = pre.col("mpm_F");
        let [af, afp, at] = adj.cols_mut(["mpm_F", "mpm_Fp", "mpm_stress"]);
        for p in 0..fpre.len() / 9 {
            let f0 = primal(&load(fpre, p));
            let ev = eval(&f0, &params[4 * p..4 * p + 4], true);
            let Svd { u, v, .. } = ev.svd;
            let ut = transpose(&u);
            let mut mbar = [[R::zero(); 3]; 3];
            let tbar = load(at, p);
            ev.stress.pullback(&mul_rc(&mul_cr(&ut, &tbar), &u), &mut mbar);
            // F̄ (read only: accumulate) gets F̄p through Z, and τ̄ through τ.
            let fpbar = load(afp, p);
            let mut fbar = load(af, p);
            match &ev.plastic {
                Some((pl, form)) => {
                    let right = if *form == Form::A { &v } else { &u };
                    pl.pullback(&mul_rc(&mul_cr(&ut, &fpbar), right), &mut mbar)
                }
                None => {
                    for i in 0..3 {
                        for j in 0..3 {
                            fbar[i][j] += fpbar[i][j];
                        }
                    }
                }
            }
            let back = mul_rc(&mul_cr(&u, &mbar), &transpose(&v));
            for i in 0..3 {
                for j in 0..3 {
                    fbar[i][j] += back[i][j];
                }
            }
            store(af, p, &fbar);
            store(afp, p, &[[R::zero(); 3]; 3]);
            store(at, p, &[[R::zero(); 3]; 3]);
        }
    }
    fn gpu(&self) -> Option<Box<dyn diffsim_engine::gpu_sim::GpuSystem>> {
        Some(Box::new(*self))
    }
}
