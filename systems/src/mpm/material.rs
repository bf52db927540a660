//! `mpm.material`: per particle, the plastic return mapping F ← Z(F) and the Kirchhoff stress
//! τ(F), both from one SVD F = U Σ Vᵀ (Rewarped's `eval_stress`, rewarped.md §4).
//!
//! Materials (`mpm_material` = [kind, μ, λ, τ_y, 0] per particle):
//! - `COROTATED` (0): τ = 2μ (F − R) Fᵀ + λ (J − 1) J I = U diag(2μ(σ² − σ) + λ(J−1)J) Uᵀ, Z = id.
//! - `PLASTICINE` (1): von Mises return mapping on the Hencky strain ε = log max(σ, 0.01):
//!   ε̄ = ε − tr(ε)/3, Δγ = ‖ε̄‖ − τ_y/(2μ); if Δγ > 0, ε ← ε − Δγ ε̄/‖ε̄‖ and F = U exp(ε) Vᵀ.
//!   Stress (Hencky): τ = U diag(2μ log σ + λ tr log σ) Uᵀ with σ clamped to ≥ 1e-5.
//! - `NEO_HOOKEAN` (2): τ = μ (F Fᵀ − I) + λ log J I = U diag(μ(σ² − 1) + λ log J) Uᵀ, Z = id.
//! - `WATER` (3, weakly compressible): Z(F) = J^{1/3} I (shear forgotten), computed without an SVD
//!   from J = det F (`water`, with its own adjoint),
//!   τ = λ J (J − 1) I.
//! - `SAND` (4, `mpm_material` = [4, μ, λ, α, c]): Drucker–Prager return mapping (`sand.rs`),
//!   Hencky stress as plasticine.
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

use super::sand;
use super::svd::{Form, IsoMap, M3, Svd, TOL2_F32, TOL2_F64, matmul, mul_cr, mul_rc, svd3_tol, transpose};

pub const COROTATED: f64 = 0.0;
pub const PLASTICINE: f64 = 1.0;
pub const NEO_HOOKEAN: f64 = 2.0;
pub const WATER: f64 = 3.0;
/// Parameters per particle in `mpm_material`.
pub const PARAMS: usize = 5;

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

/// Forward of one block of particles: `params` [PARAMS each], F in, Fp and τ out.
fn forward_block<R: Real>(params: &[f64], fcol: &[R], fpcol: &mut [R], tcol: &mut [R]) {
    for p in 0..fcol.len() / 9 {
        forward_particle(params, fcol, fpcol, tcol, p);
    }
}

/// Forward of particle `p`.
#[inline(always)]
fn forward_particle<R: Real>(params: &[f64], fcol: &[R], fpcol: &mut [R], tcol: &mut [R], p: usize) {
    let tangent = has_tangent::<R>();
    let f = load(fcol, p);
    if params[PARAMS * p] == WATER {
        let (fp, tau) = water(&f, params[PARAMS * p + 2]);
        store(fpcol, p, &diag_matrix(fp));
        store(tcol, p, &diag_matrix(tau));
        return;
    }
    let f0 = primal(&f);
    let svd = svd3_tol(&f0, svd_tol::<R>());
    let ev = eval(svd, &params[PARAMS * p..PARAMS * p + PARAMS], tangent);
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

/// What one particle's forward computed, kept for the adjoint.
struct Eval {
    svd: Svd,
    /// The return mapping when the particle yielded this substep (else Z = id), and its form.
    plastic: Option<(IsoMap, Form)>,
    stress: IsoMap,
}

/// The plastic return mapping f(σ) with its Jacobian (zero unless `derivatives`), or `None` when
/// inside the yield surface; `eps` = log max(σ, `PLASTIC_SIGMA_MIN`) (`plastic_strain`).
fn von_mises(s: [f64; 3], eps: [f64; 3], mu: f64, yield_stress: f64, derivatives: bool) -> Option<([f64; 3], M3)> {
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
    if !derivatives {
        return Some((f, jac));
    }
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

/// Water without an SVD: J = det F, Fp = J^{1/3} I and τ = λ J (J − 1) I (returned as the two
/// diagonal values). J is a polynomial of F, so it is computed in `R` and carries the tangent;
/// J^{1/3} is evaluated on the primal and linearised, c = c₀ + (J − J₀)/(3 c₀²), which is exact
/// for floats (J − J₀ = 0) and gives duals/tapes the derivative the adjoint (`water_adjoint`)
/// transposes. Same values as the SVD form U diag(J^{1/3}) Uᵀ = J^{1/3} I (`eval`'s water arm,
/// kept as the reference the unit tests compare against).
fn water<R: Real>(f: &[[R; 3]; 3], lambda: f64) -> (R, R) {
    let j = det3(f);
    let j0 = j.to_f64();
    let (c0, dc) = cbrt_and_slope(j0);
    let c = R::from_f64(c0) + (j - R::from_f64(j0)) * R::from_f64(dc);
    (c, R::from_f64(lambda) * j * (j - R::one()))
}

/// J^{1/3} and its derivative 1/(3 J^{2/3}); the derivative is 0 at |J^{1/3}| ≤ 1e-12 (where it
/// is unbounded), as the SVD form's Jacobian.
fn cbrt_and_slope(j: f64) -> (f64, f64) {
    let c = j.cbrt();
    (c, if c.abs() > 1e-12 { 1.0 / (3.0 * c * c) } else { 0.0 })
}

/// Adjoint of `water`: F̄ += cof(F) (∂c/∂J Σᵢ F̄pᵢᵢ + λ (2J − 1) Σᵢ τ̄ᵢᵢ), with cof(F) = ∂J/∂F.
fn water_adjoint<R: Real>(f: &M3, lambda: f64, fpbar: &[[R; 3]; 3], tbar: &[[R; 3]; 3], fbar: &mut [[R; 3]; 3]) {
    let j = det3(f);
    let (_, dc) = cbrt_and_slope(j);
    let jbar = R::from_f64(dc) * (fpbar[0][0] + fpbar[1][1] + fpbar[2][2])
        + R::from_f64(lambda * (2.0 * j - 1.0)) * (tbar[0][0] + tbar[1][1] + tbar[2][2]);
    let cof = cofactor(f);
    for i in 0..3 {
        for k in 0..3 {
            fbar[i][k] += jbar * R::from_f64(cof[i][k]);
        }
    }
}

fn det3<R: Real>(a: &[[R; 3]; 3]) -> R {
    a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
        + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0])
}

/// ∂ det F / ∂F.
fn cofactor(a: &M3) -> M3 {
    let c = |r0: usize, r1: usize, c0: usize, c1: usize| a[r0][c0] * a[r1][c1] - a[r0][c1] * a[r1][c0];
    [
        [c(1, 2, 1, 2), -c(1, 2, 0, 2), c(1, 2, 0, 1)],
        [-c(0, 2, 1, 2), c(0, 2, 0, 2), -c(0, 2, 0, 1)],
        [c(0, 1, 1, 2), -c(0, 1, 0, 2), c(0, 1, 0, 1)],
    ]
}

fn diag_matrix<R: Real>(d: R) -> [[R; 3]; 3] {
    let z = R::zero();
    [[d, z, z], [z, d, z], [z, z, d]]
}

/// The von Mises return mapping's Hencky strain log max(σ, `PLASTIC_SIGMA_MIN`).
fn plastic_strain(s: [f64; 3]) -> [f64; 3] {
    s.map(|x| x.max(PLASTIC_SIGMA_MIN).ln())
}

/// Kirchhoff stress in the principal frame, h(σ), and its Jacobian (zero unless `derivatives`).
fn stress(kind: f64, s: [f64; 3], mu: f64, lambda: f64, derivatives: bool) -> ([f64; 3], M3) {
    if kind == PLASTICINE || kind == sand::SAND {
        return hencky(s, s.map(|x| x.max(HENCKY_SIGMA_MIN).ln()), mu, lambda, derivatives);
    }
    let mut h = [0.0; 3];
    let mut jac = [[0.0; 3]; 3];
    if kind == NEO_HOOKEAN {
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

/// Hencky stress h = 2μ l + λ tr l from l = log max(σ, `HENCKY_SIGMA_MIN`) (passed in: the
/// return mapping may already have it), and its Jacobian when `derivatives` (else zero).
fn hencky(s: [f64; 3], l: [f64; 3], mu: f64, lambda: f64, derivatives: bool) -> ([f64; 3], M3) {
    let mut h = [0.0; 3];
    let mut jac = [[0.0; 3]; 3];
    let tr = l[0] + l[1] + l[2];
    for i in 0..3 {
        h[i] = 2.0 * mu * l[i] + lambda * tr;
        if derivatives {
            for k in 0..3 {
                let dl = if s[k] > HENCKY_SIGMA_MIN { 1.0 / s[k] } else { 0.0 };
                jac[i][k] = (if i == k { 2.0 * mu } else { 0.0 } + lambda) * dl;
            }
        }
    }
    (h, jac)
}

/// Return mapping and stress of one particle from the SVD of its F; `derivatives` also builds
/// the differentials (the plain-float forward needs only the values).
fn eval(svd: Svd, p: &[f64], derivatives: bool) -> Eval {
    let (kind, mu, lambda, yield_stress) = (p[0], p[1], p[2], p[3]);
    let map = |form, val, jac| if derivatives { IsoMap::new(form, svd.s, val, jac) } else { IsoMap::values(val) };
    // Plasticine that stays elastic with every σ ≥ PLASTIC_SIGMA_MIN: neither log clamp acts, so
    // the stress's Hencky strain is the return mapping's, reused (the same bits, 3 logs fewer).
    let mut elastic_strain = None;
    let plastic = if kind == PLASTICINE {
        let eps = plastic_strain(svd.s);
        let z = von_mises(svd.s, eps, mu, yield_stress, derivatives);
        if z.is_none() && svd.s.iter().all(|&x| x >= PLASTIC_SIGMA_MIN) {
            elastic_strain = Some(eps);
        }
        z.map(|(f, j)| (f, j, Form::A))
    } else if kind == WATER {
        let (f, j) = fluid(svd.s);
        Some((f, j, Form::B))
    } else if kind == sand::SAND {
        sand::drucker_prager(svd.s, mu, lambda, p[3], p[4]).map(|(f, j)| (f, j, Form::A))
    } else {
        None
    };
    let stress = match plastic {
        Some((fs, fj, _)) => {
            let (h, hj) = stress(kind, fs, mu, lambda, derivatives);
            map(Form::B, h, if derivatives { matmul(&hj, &fj) } else { hj })
        }
        None => {
            let (h, hj) = match elastic_strain {
                Some(l) => hencky(svd.s, l, mu, lambda, derivatives),
                None => stress(kind, svd.s, mu, lambda, derivatives),
            };
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
    let Some(x) = x else {
        // Values only: Σ_k (U_ik d_k) W_jk in f64, rounded once (plain loops: nested array `map`
        // closures are not inlined here).
        let mut out = [[R::zero(); 3]; 3];
        for i in 0..3 {
            let ud = [u[i][0] * d[0], u[i][1] * d[1], u[i][2] * d[2]];
            for j in 0..3 {
                out[i][j] = R::from_f64(ud[0] * w[j][0] + ud[1] * w[j][1] + ud[2] * w[j][2]);
            }
        }
        return out;
    };
    let mut inner = *x;
    for i in 0..3 {
        inner[i][i] += R::from_f64(d[i]);
    }
    mul_rc(&mul_cr(u, &inner), &transpose(w))
}

/// The SVD's stopping tolerance for scalar `R`: f32 values need less than f64 (`svd.rs`).
fn svd_tol<R: 'static>() -> f64 {
    if TypeId::of::<R>() == TypeId::of::<f32>() { TOL2_F32 } else { TOL2_F64 }
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
            ColumnAccess::model("mpm_material", PARAMS),
        ]
    }
    fn forward(&self, _: &StepCx, model: &ModelView, _: &View<R>, state: &mut ViewMut<R>) {
        let params = model.param("mpm_material");
        let [fcol, fpcol, tcol] = state.cols_mut(["mpm_F", "mpm_Fp", "mpm_stress"]);
        let (fcol, np): (&[R], usize) = (fcol, fcol.len() / 9);
        if self.threads > 1 && model.num_envs() < self.threads {
            let bs = (np / model.num_envs().max(1)).div_ceil(self.threads).max(1);
            params
                .par_chunks(PARAMS * bs)
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
            if params[PARAMS * p] == WATER {
                let mut fbar = load(af, p);
                water_adjoint(&f0, params[PARAMS * p + 2], &load(afp, p), &load(at, p), &mut fbar);
                store(af, p, &fbar);
                store(afp, p, &[[R::zero(); 3]; 3]);
                store(at, p, &[[R::zero(); 3]; 3]);
                continue;
            }
            let ev = eval(svd3_tol(&f0, svd_tol::<R>()), &params[PARAMS * p..PARAMS * p + PARAMS], true);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The direct water path gives the values of the SVD form U diag(J^{1/3}) Uᵀ and
    /// U diag(λ J (J − 1)) Uᵀ that `eval` builds (on stretched, compressed and inverted F).
    #[test]
    fn water_without_svd_matches_the_svd_form() {
        let mut s = 7u64;
        let mut u = || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        let lambda = 3.0e4;
        for case in 0..100 {
            let mut f = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
            for row in f.iter_mut() {
                for x in row.iter_mut() {
                    *x += 0.8 * u();
                }
            }
            if case % 4 == 0 {
                f[2] = f[2].map(|x| -x);
            }
            let (fp, tau) = water(&f, lambda);
            let ev = eval(svd3_tol(&f, TOL2_F64), &[WATER, 0.0, lambda, 0.0, 0.0], false);
            let (pl, form) = ev.plastic.expect("water always projects");
            let zf = compose::<f64>(&ev.svd.u, pl.val, None, if form == Form::A { &ev.svd.v } else { &ev.svd.u });
            let zt = compose::<f64>(&ev.svd.u, ev.stress.val, None, &ev.svd.u);
            for i in 0..3 {
                for j in 0..3 {
                    let (e_f, e_t) = (if i == j { fp } else { 0.0 }, if i == j { tau } else { 0.0 });
                    assert!((zf[i][j] - e_f).abs() < 1e-10, "Fp {f:?}: {zf:?} vs {fp}");
                    assert!((zt[i][j] - e_t).abs() < 1e-9 * lambda, "τ {f:?}: {zt:?} vs {tau}");
                }
            }
        }
    }
}
