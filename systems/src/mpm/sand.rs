//! Sand: Drucker–Prager elastoplasticity on the Hencky strain (Klár et al. 2016, "Drucker-Prager
//! elastoplasticity for sand animation", §4 and its technical document; rewarped.md §4 SAND).
//!
//! The return mapping works on the principal log strains of the trial F = U Σ Vᵀ:
//!   ε = log max(σ, 0.05) (the clamp of rewarped.md), tr = Σ ε, ε̂ = ε − tr/3, n = ‖ε̂‖,
//!   A = α (3λ + 2μ) / (2μ),  δγ = n + A (tr − c),
//! with α = √(2/3) · 2 sin φ / (3 − sin φ) from the friction angle φ and c the cohesion, here the
//! log-strain trace of the cone's tip (the volumetric extension the material holds without
//! yielding; c = 0 is cohesionless sand, Klár's case). With Hencky stress τ = 2μ ε + λ tr ε this
//! is the Drucker–Prager cone ‖dev τ‖ ≤ −α (tr τ − (3λ + 2μ) c) in stress space. Three cases:
//! - I, inside the cone (δγ ≤ 0): elastic, Z = id (`None`);
//! - II, beyond the tip (tr > c): every direction of stress is lost, ε ← (c/3)(1, 1, 1);
//! - III, outside with compression: project along the deviator, ε ← ε − δγ ε̂ / n
//!   (= tr/3 + (1 − δγ/n) ε̂: the volume is kept, the shear shrinks onto the cone).
//!
//! `drucker_prager` returns f(σ) = exp(ε_new) and its Jacobian ∂f/∂σ; `material.rs` lifts them to
//! F ↦ U diag(f(σ)) Vᵀ with `svd::IsoMap` (form A), which gives the forward tangent and the adjoint
//! through the SVD. f is symmetric (permuting σ permutes f), as IsoMap requires.
//! Case III's Jacobian, with P = I − 11ᵀ/3 and e = ε̂/n:
//!   ∂ε_new_i/∂ε_k = 1/3 − A e_i − A (tr − c) (P_ik − e_i e_k) / n,
//! and ∂ε_k/∂σ_k = 1/σ_k where σ_k > 0.05 (0 on the clamp). Case II's f is constant.
//!
//! **Angle of repose** (tests/tests/fluid.rs `sand_column_collapses_into_a_pile`). A collapsed
//! column's flank comes out at about 0.45 φ on a 24³ grid (11.3° for φ = 25°, 18.5° for 40°;
//! 15–16° for 25° at 48³), not at φ. The return mapping above agrees with Klár et al. 2016 §7.3
//! (α, A, the three cases, the volume-keeping cone return; the unit test checks that the result
//! lies on the cone), so no bug explains it; what does:
//! 1. Drucker–Prager is not Mohr–Coulomb. On an infinite slope of angle β equilibrium fixes
//!    σ_xy/σ_yy = tan β but not the lateral stresses; with σ_xx = σ_zz = k σ_yy the cone
//!    ‖dev τ‖ ≤ −α tr τ reads (2/3)(1 − k)² + 2 tan² β ≤ α² (1 + 2k)², so the steepest stable
//!    slope depends on k: for φ = 25° it is 6.9° at the elastic K₀ = ν/(1 − ν) = 0.43 (ν = 0.3)
//!    and 29.6° at k = 1 (φ = 40°: 25.8° and 43.4°), where Mohr–Coulomb holds β = φ for any k.
//!    The lateral stress a pile is left with comes from how it spread (a flank that flowed
//!    outwards is unloaded laterally), so its slope ends well below φ. (The same bound is why
//!    a confined layer at rest, k = K₀, only just stays inside the 25° cone: K₀ ≥ 0.405 needed.)
//! 2. Dynamics: the column starts stress-free, so gravity sets off elastic waves that nothing
//!    damps, and their tensile phases send particles to the tip (stress-free) again and again:
//!    a vibrated pile flows to a lower slope. The summit ends higher as Δt shrinks (24³, 1 ms:
//!    0.043 above the floor; 0.25 ms: 0.056).
//! 3. Resolution: at 24³ the pile is 1–2 cells tall over a 3-cell sticky band and the quadratic
//!    stencil is 3 cells wide; the summit rises with G (0.043 at 24³, 0.051 at 32³, 0.067 at
//!    48³, against 0.155 at the start: Lube et al. 2004 find the summit of a column this squat
//!    undisturbed), the flank less (11° → 15–16°).
//! 4. No hardening: Klár's φ_F grows from 25° to 35° with plastic strain; a fixed φ is the
//!    loosest state. (Nor Tampubolon et al. 2017's volume correction, which keeps the volume
//!    change a tip projection discards; rewarped.md's SAND has neither.)
//!
//! The floor decides whether a pile forms at all: on a slip floor (ground_friction 0) the base
//! slides out and the sand spreads flat over the whole floor; with `Floor::Friction(0.5)` it
//! leaves a 0.028-high pancake; the sticky floor (≥ 99) gives the pile above.

use super::svd::M3;

/// Material id of sand in `mpm_material`.
pub const SAND: f64 = 4.0;
/// Lower clamp of σ in the sand return mapping (rewarped.md §4).
pub const SIGMA_MIN: f64 = 0.05;

/// α of the Drucker–Prager cone from the friction angle in degrees (Klár et al. 2016, Eq. 22 /
/// the technical document: α = √(2/3) · 2 sin φ / (3 − sin φ)).
pub fn alpha(friction_angle_deg: f64) -> f64 {
    let s = friction_angle_deg.to_radians().sin();
    (2.0f64 / 3.0).sqrt() * 2.0 * s / (3.0 - s)
}

/// Which case of the return mapping a trial state falls in (module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    Elastic,
    Tip,
    Cone,
}

/// The principal log strains used by the return mapping, (ε, tr, ε̂, n).
fn strains(s: [f64; 3]) -> ([f64; 3], f64, [f64; 3], f64) {
    let eps = s.map(|x| x.max(SIGMA_MIN).ln());
    let tr = eps[0] + eps[1] + eps[2];
    let dev = eps.map(|e| e - tr / 3.0);
    let n = (dev[0] * dev[0] + dev[1] * dev[1] + dev[2] * dev[2]).sqrt();
    (eps, tr, dev, n)
}

/// The case of trial singular values `s` (module docs).
pub fn classify(s: [f64; 3], mu: f64, lambda: f64, alpha: f64, cohesion: f64) -> Case {
    let (_, tr, _, n) = strains(s);
    let a = alpha * (3.0 * lambda + 2.0 * mu) / (2.0 * mu);
    if n + a * (tr - cohesion) <= 0.0 {
        Case::Elastic
    } else if tr > cohesion {
        Case::Tip
    } else {
        Case::Cone
    }
}

/// The return mapping f(σ) with its Jacobian ∂f/∂σ, or `None` inside the cone (Z = id).
pub fn drucker_prager(s: [f64; 3], mu: f64, lambda: f64, alpha: f64, cohesion: f64) -> Option<([f64; 3], M3)> {
    let (_, tr, dev, n) = strains(s);
    let a = alpha * (3.0 * lambda + 2.0 * mu) / (2.0 * mu);
    match classify(s, mu, lambda, alpha, cohesion) {
        Case::Elastic => None,
        Case::Tip => Some(([(cohesion / 3.0).exp(); 3], [[0.0; 3]; 3])),
        Case::Cone => {
            // Case III has n > A (c − tr) ≥ 0, so n > 0 here.
            let dgamma = n + a * (tr - cohesion);
            let e = dev.map(|d| d / n);
            let f = [0, 1, 2].map(|i| (tr / 3.0 + (1.0 - dgamma / n) * dev[i]).exp());
            let mut jac = [[0.0; 3]; 3];
            for i in 0..3 {
                for k in 0..3 {
                    let p = if i == k { 2.0 / 3.0 } else { -1.0 / 3.0 };
                    let de = 1.0 / 3.0 - a * e[i] - a * (tr - cohesion) * (p - e[i] * e[k]) / n;
                    let ds = if s[k] > SIGMA_MIN { 1.0 / s[k] } else { 0.0 };
                    jac[i][k] = f[i] * de * ds;
                }
            }
            Some((f, jac))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Jacobian against central differences of f in each case, and the cases' invariants.
    #[test]
    fn return_mapping_jacobian_and_cases() {
        let (mu, lambda, al) = (1000.0, 1500.0, alpha(25.0));
        for (s, c, want) in [
            ([1.05, 1.02, 1.01], 0.0, Case::Tip),
            ([1.3, 0.9, 0.7], 0.0, Case::Cone),
            ([0.98, 0.97, 0.975], 0.0, Case::Elastic),
            ([1.05, 1.02, 1.01], 0.2, Case::Elastic),
            ([1.2, 0.9, 0.95], 0.05, Case::Cone),
        ] {
            assert_eq!(classify(s, mu, lambda, al, c), want, "{s:?} c = {c}");
            let Some((f, jac)) = drucker_prager(s, mu, lambda, al, c) else { continue };
            let tr_new: f64 = f.iter().map(|x| x.ln()).sum();
            let tr: f64 = s.iter().map(|x| x.ln()).sum();
            match want {
                Case::Tip => assert!((tr_new - c).abs() < 1e-12),
                _ => {
                    // Volume kept; the result lies on the cone: n_new + A (tr − c) = 0.
                    assert!((tr_new - tr).abs() < 1e-12);
                    let (_, _, _, n_new) = strains(f);
                    let a = al * (3.0 * lambda + 2.0 * mu) / (2.0 * mu);
                    assert!((n_new + a * (tr - c)).abs() < 1e-12, "{n_new}");
                }
            }
            for k in 0..3 {
                let h = 1e-6;
                let (mut sp, mut sm) = (s, s);
                sp[k] += h;
                sm[k] -= h;
                let fp = drucker_prager(sp, mu, lambda, al, c).unwrap().0;
                let fm = drucker_prager(sm, mu, lambda, al, c).unwrap().0;
                for i in 0..3 {
                    let fd = (fp[i] - fm[i]) / (2.0 * h);
                    assert!(
                        (fd - jac[i][k]).abs() < 1e-7 * (1.0 + fd.abs()),
                        "{s:?} ∂f{i}/∂σ{k}: {fd} vs {}",
                        jac[i][k]
                    );
                }
            }
        }
    }
}
