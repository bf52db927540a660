//! `fem.tetrahedra`: elastic, damping and muscle forces of linear tetrahedra with the stable
//! neo-Hookean energy of Smith, de Goes and Kim, "Stable Neo-Hookean Flesh Simulation" (ACM TOG
//! 37(2), 2018), in the form Warp's `eval_tetrahedra` evaluates for Rewarped's SoftJumper
//! (rewarped.md §5).
//!
//! Per tetrahedron (x₀..x₃, v₀..v₃; model: B = D_m⁻¹, rest volume V, Lamé μ, λ, damping k; state:
//! activation a):
//!   D_s = [x₁−x₀, x₂−x₀, x₃−x₀],  F = D_s B,  Ḟ = [v₁−v₀, v₂−v₀, v₃−v₀] B,  I_C = ‖F‖²_F,  J = det F
//!   Ψ(F) = μ/2 (I_C − 3) − μ/2 log(I_C + 1) + λ/2 (J − α + a)²,   α = 1 + μ/λ − μ/(4λ)
//! (Smith et al. §3.4–3.5: the log(I_C + 1) "rest stability" term, α chosen so F = I is stress
//! free at a = 0; the paper's simpler form μ/2 (I_C − 3) − μ(J − 1) + λ/2 (J − 1)² differs only in
//! that term). The energy is finite for every F, inverted elements (J ≤ 0) included: J enters as a
//! polynomial and I_C + 1 ≥ 1, so nothing divides by J or takes its logarithm.
//!
//! The activation shifts the volumetric rest point to J = α − a: a > 0 contracts the element (as a
//! muscle), a < 0 inflates it. Rewarped's activation is isotropic (no fiber direction).
//!
//! Forces, with P = μ (1 − 1/(I_C + 1)) F + k Ḟ and the column gᵢ = ∂J/∂xᵢ of det(B) cof(D_s):
//!   g₁ = det B (d₂ × d₃), g₂ = det B (d₃ × d₁), g₃ = det B (d₁ × d₂),  J̇ = Σᵢ gᵢ · (vᵢ − v₀)
//!   s = V (λ (J − α + a) + k J̇),  H = V P Bᵀ
//!   fᵢ = −(Hᵢ + s gᵢ)   (i = 1..3, Hᵢ the i-th column),   f₀ = −(f₁ + f₂ + f₃)
//! i.e. f = −V ∂Ψ/∂x (the elastic part is −V P(F) D_m⁻ᵀ) plus Rayleigh-like damping on Ḟ and J̇.
//! Difference from Warp (stated on purpose): Warp's volumetric damping uses Σᵢ gᵢ · vᵢ with
//! absolute velocities, which is not Galilean invariant and can inject energy into a translating
//! body; here J̇ uses vᵢ − v₀, the exact rate of J, so damping only dissipates.
//!
//! Adjoint (hand-written; f̄ passes through since f is accumulated). With ȳᵢ = f̄ᵢ − f̄₀:
//!   H̄ᵢ = −ȳᵢ,  s̄ = −Σ ȳᵢ · gᵢ,  ḡᵢ = −s ȳᵢ
//!   P̄ = V H̄ B;  F̄ = c P̄ + 2 (μ/(I_C + 1)²) ⟨P̄, F⟩ F,  c = μ (1 − 1/(I_C + 1));  Ḟ̄ = k P̄
//!   J̄ = V λ s̄,  ā += V λ s̄,  J̇̄ = V k s̄;  ḡᵢ += J̇̄ uᵢ,  ūᵢ = columns of Ḟ̄ Bᵀ + J̇̄ gᵢ
//!   d̄ᵢ = columns of F̄ Bᵀ + J̄ gᵢ + (terms of ḡ through the cross products)
//!   x̄ᵢ += d̄ᵢ, x̄₀ −= Σ d̄ᵢ;  v̄ᵢ += ūᵢ, v̄₀ −= Σ ūᵢ.
//!
//! GPU: `wgsl/tet_common.wgsl` evaluates the same formulas in the same order; the `GpuSystem`
//! impl below runs them as a per-tetrahedron pass and a per-particle gather (fem/gpu.rs).

use diffsim_engine::EngineError;
use diffsim_engine::gpu_sim::{Bind, GpuBuildCx, GpuKernels, GpuSystem, Pass, Src, adj_state, model, state, topology};
use diffsim_engine::scene::TET_PARAMS;
use diffsim_engine::{ColumnAccess, ModelView, Real, StepCx, System, View, ViewMut};

use super::gpu::{self as fgpu, FemParams};

/// The tetrahedral force system. `activated` reads the state column `tet_activation` `[T, 1]`
/// (written by `fem.activation` from the actions); without it the activation is 0.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tetrahedra {
    pub activated: bool,
}

type V3<R> = [R; 3];
/// Row-major 3×3.
type M3<R> = [[R; 3]; 3];

#[inline(always)]
fn sub<R: Real>(a: V3<R>, b: V3<R>) -> V3<R> {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
#[inline(always)]
fn cross<R: Real>(a: V3<R>, b: V3<R>) -> V3<R> {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}
#[inline(always)]
fn dot<R: Real>(a: V3<R>, b: V3<R>) -> R {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
#[inline(always)]
fn scale<R: Real>(a: V3<R>, s: R) -> V3<R> {
    [a[0] * s, a[1] * s, a[2] * s]
}
#[inline(always)]
fn axpy<R: Real>(y: &mut V3<R>, s: R, x: V3<R>) {
    for k in 0..3 {
        y[k] += s * x[k];
    }
}
/// C = A B.
#[inline(always)]
fn mul<R: Real>(a: &M3<R>, b: &M3<R>) -> M3<R> {
    let mut c = [[R::zero(); 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            c[i][j] = a[i][0] * b[0][j] + a[i][1] * b[1][j] + a[i][2] * b[2][j];
        }
    }
    c
}
/// C = A Bᵀ.
#[inline(always)]
fn mul_bt<R: Real>(a: &M3<R>, b: &M3<R>) -> M3<R> {
    let mut c = [[R::zero(); 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            c[i][j] = a[i][0] * b[j][0] + a[i][1] * b[j][1] + a[i][2] * b[j][2];
        }
    }
    c
}
/// The matrix whose columns are `c`.
#[inline(always)]
fn from_cols<R: Real>(c: &[V3<R>; 3]) -> M3<R> {
    [[c[0][0], c[1][0], c[2][0]], [c[0][1], c[1][1], c[2][1]], [c[0][2], c[1][2], c[2][2]]]
}
#[inline(always)]
fn col<R: Real>(m: &M3<R>, j: usize) -> V3<R> {
    [m[0][j], m[1][j], m[2][j]]
}
#[inline(always)]
fn det<R: Real>(m: &M3<R>) -> R {
    dot([m[0][0], m[0][1], m[0][2]], cross([m[1][0], m[1][1], m[1][2]], [m[2][0], m[2][1], m[2][2]]))
}

/// Constants of one tetrahedron, converted to the scalar.
struct Params<R> {
    b: M3<R>,
    det_b: R,
    vol: R,
    mu: R,
    lambda: R,
    damp: R,
    alpha: R,
}

#[inline(always)]
fn params<R: Real>(p: &[f64]) -> Params<R> {
    let b = [[p[0], p[1], p[2]], [p[3], p[4], p[5]], [p[6], p[7], p[8]]];
    let (mu, lambda) = (p[10], p[11]);
    Params {
        b: [
            [R::from_f64(b[0][0]), R::from_f64(b[0][1]), R::from_f64(b[0][2])],
            [R::from_f64(b[1][0]), R::from_f64(b[1][1]), R::from_f64(b[1][2])],
            [R::from_f64(b[2][0]), R::from_f64(b[2][1]), R::from_f64(b[2][2])],
        ],
        // det B = 1 / det D_m = 1 / (6 V).
        det_b: R::from_f64(1.0 / (6.0 * p[9])),
        vol: R::from_f64(p[9]),
        mu: R::from_f64(mu),
        lambda: R::from_f64(lambda),
        damp: R::from_f64(p[12]),
        alpha: R::from_f64(1.0 + mu / lambda - mu / (4.0 * lambda)),
    }
}

/// Everything the forward computes for one tetrahedron (the adjoint recomputes it from `pre`).
struct TetEval<R> {
    /// Edge vectors dᵢ = xᵢ − x₀ and velocity differences uᵢ = vᵢ − v₀.
    d: [V3<R>; 3],
    u: [V3<R>; 3],
    f: M3<R>,
    ic: R,
    g: [V3<R>; 3],
    /// s of the module docs and c = μ (1 − 1/(I_C + 1)).
    s: R,
    c: R,
    /// Forces on vertices 1..3 (f₀ = −Σ).
    force: [V3<R>; 3],
}

#[inline(always)]
fn eval<R: Real>(x: [V3<R>; 4], v: [V3<R>; 4], act: R, p: &Params<R>) -> TetEval<R> {
    let d = [sub(x[1], x[0]), sub(x[2], x[0]), sub(x[3], x[0])];
    let u = [sub(v[1], v[0]), sub(v[2], v[0]), sub(v[3], v[0])];
    let f = mul(&from_cols(&d), &p.b);
    let fdot = mul(&from_cols(&u), &p.b);
    let ic = dot(f[0], f[0]) + dot(f[1], f[1]) + dot(f[2], f[2]);
    let j = det(&f);
    let g = [scale(cross(d[1], d[2]), p.det_b), scale(cross(d[2], d[0]), p.det_b), scale(cross(d[0], d[1]), p.det_b)];
    let jdot = dot(g[0], u[0]) + dot(g[1], u[1]) + dot(g[2], u[2]);
    let c = p.mu * (R::one() - R::one() / (ic + R::one()));
    let mut pk = [[R::zero(); 3]; 3];
    for r in 0..3 {
        for k in 0..3 {
            pk[r][k] = c * f[r][k] + p.damp * fdot[r][k];
        }
    }
    let h = mul_bt(&pk, &p.b);
    let s = p.vol * (p.lambda * (j - p.alpha + act) + p.damp * jdot);
    let mut force = [[R::zero(); 3]; 3];
    for (i, (fi, gi)) in force.iter_mut().zip(&g).enumerate() {
        for k in 0..3 {
            fi[k] = -(p.vol * h[k][i] + s * gi[k]);
        }
    }
    TetEval { d, u, f, ic, g, s, c, force }
}

/// Stored energy V Ψ(F) of one tetrahedron at positions `x` (module docs), for energy checks.
pub fn tet_energy(x: [[f64; 3]; 4], act: f64, p: &[f64]) -> f64 {
    let p: Params<f64> = params(p);
    let d = [sub(x[1], x[0]), sub(x[2], x[0]), sub(x[3], x[0])];
    let f = mul(&from_cols(&d), &p.b);
    let ic: f64 = f.iter().flatten().map(|a| a * a).sum();
    let j = det(&f);
    let psi = p.mu / 2.0 * (ic - 3.0) - p.mu / 2.0 * (ic + 1.0).ln() + p.lambda / 2.0 * (j - p.alpha + act).powi(2);
    p.vol * psi
}

#[inline(always)]
fn load<R: Real>(s: &[R], i: usize) -> V3<R> {
    [s[3 * i], s[3 * i + 1], s[3 * i + 2]]
}
#[inline(always)]
fn add_at<R: Real>(s: &mut [R], i: usize, v: V3<R>) {
    for k in 0..3 {
        s[3 * i + k] += v[k];
    }
}

/// Particle indices (within the env) of tetrahedron `t`.
#[inline(always)]
fn verts(idx: &[u32], t: usize) -> [usize; 4] {
    [idx[4 * t] as usize, idx[4 * t + 1] as usize, idx[4 * t + 2] as usize, idx[4 * t + 3] as usize]
}

/// The four vertices' entries of a `[P, 3]` column.
#[inline(always)]
fn gather<R: Real>(s: &[R], v: [usize; 4]) -> [V3<R>; 4] {
    [load(s, v[0]), load(s, v[1]), load(s, v[2]), load(s, v[3])]
}

impl<R: Real> System<R> for Tetrahedra {
    fn name(&self) -> &str {
        "fem.tetrahedra"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        let mut a = vec![
            ColumnAccess::state("particle_q", 3),
            ColumnAccess::state("particle_qd", 3),
            ColumnAccess::accumulate("particle_f", 3),
            ColumnAccess::model("tet_params", TET_PARAMS),
            ColumnAccess::model("tet_indices", 4),
        ];
        if self.activated {
            a.push(ColumnAccess::state("tet_activation", 1));
        }
        a
    }
    fn forward(&self, _: &StepCx, model: &ModelView, _: &View<R>, state: &mut ViewMut<R>) {
        let (idx, prm) = (model.topo("tet_indices"), model.param("tet_params"));
        let nt = model.count("tet_indices");
        let np = state.layout().spec("particle_q").map_or(0, |s| s.count);
        #[allow(clippy::type_complexity)]
        let (q, qd, f, act): (&[R], &[R], &mut [R], Option<&[R]>) = if self.activated {
            let [q, qd, f, a] = state.cols_mut(["particle_q", "particle_qd", "particle_f", "tet_activation"]);
            (q, qd, f, Some(a))
        } else {
            let [q, qd, f] = state.cols_mut(["particle_q", "particle_qd", "particle_f"]);
            (q, qd, f, None)
        };
        for e in 0..model.num_envs() {
            let o = 3 * np * e;
            let (q, qd, f) = (&q[o..o + 3 * np], &qd[o..o + 3 * np], &mut f[o..o + 3 * np]);
            for t in e * nt..(e + 1) * nt {
                let vs = verts(idx, t);
                let p = params::<R>(&prm[TET_PARAMS * t..TET_PARAMS * (t + 1)]);
                let a = act.map_or(R::zero(), |a| a[t]);
                let ev = eval(gather(q, vs), gather(qd, vs), a, &p);
                let mut f0 = [R::zero(); 3];
                for i in 0..3 {
                    add_at(f, vs[i + 1], ev.force[i]);
                    axpy(&mut f0, -R::one(), ev.force[i]);
                }
                add_at(f, vs[0], f0);
            }
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
        let (idx, prm) = (model.topo("tet_indices"), model.param("tet_params"));
        let nt = model.count("tet_indices");
        let np = pre.layout().spec("particle_q").map_or(0, |s| s.count);
        let (q, qd) = (pre.col("particle_q"), pre.col("particle_qd"));
        let act = if self.activated { Some(pre.col("tet_activation")) } else { None };
        let mut act_bar = vec![R::zero(); if self.activated { nt * model.num_envs() } else { 0 }];
        {
            let [aq, aqd, af] = adj.cols_mut(["particle_q", "particle_qd", "particle_f"]);
            for e in 0..model.num_envs() {
                let o = 3 * np * e;
                let (q, qd) = (&q[o..o + 3 * np], &qd[o..o + 3 * np]);
                let (aq, aqd, af) = (&mut aq[o..o + 3 * np], &mut aqd[o..o + 3 * np], &af[o..o + 3 * np]);
                for t in e * nt..(e + 1) * nt {
                    let vs = verts(idx, t);
                    let p = params::<R>(&prm[TET_PARAMS * t..TET_PARAMS * (t + 1)]);
                    let a = act.map_or(R::zero(), |a| a[t]);
                    let ev = eval(gather(q, vs), gather(qd, vs), a, &p);
                    let f0bar = load(af, vs[0]);
                    let ybar = [sub(load(af, vs[1]), f0bar), sub(load(af, vs[2]), f0bar), sub(load(af, vs[3]), f0bar)];
                    let (dx, dv, abar) = tet_adjoint(&ev, &ybar, &p);
                    let (mut x0, mut v0) = ([R::zero(); 3], [R::zero(); 3]);
                    for i in 0..3 {
                        add_at(aq, vs[i + 1], dx[i]);
                        add_at(aqd, vs[i + 1], dv[i]);
                        axpy(&mut x0, -R::one(), dx[i]);
                        axpy(&mut v0, -R::one(), dv[i]);
                    }
                    add_at(aq, vs[0], x0);
                    add_at(aqd, vs[0], v0);
                    if let Some(ab) = act_bar.get_mut(t) {
                        *ab = abar;
                    }
                }
            }
        }
        if self.activated {
            for (a, b) in adj.col_mut("tet_activation").iter_mut().zip(act_bar) {
                *a += b;
            }
        }
    }
    fn gpu(&self) -> Option<Box<dyn GpuSystem>> {
        Some(Box::new(*self))
    }
}

/// GPU: `wgsl/tetrahedra*.wgsl` on `wgsl/tet_common.wgsl`. Forward and adjoint are two passes
/// each (fem/gpu.rs): one invocation per tetrahedron writes its four corners' contributions to
/// a scratch buffer, then one invocation per particle adds them in tetrahedron order over a CSR
/// adjacency built here, so the result is deterministic on every `Scatter` mode and each
/// tetrahedron is evaluated once. Own buffers: 0 params (n = tetrahedra), 1 params (n =
/// particles), 2 `[det B, α]` per tetrahedron, 3–4 the adjacency, 5 the scratch (24 floats per
/// tetrahedron: the adjoint's x̄, v̄ per corner; the forward uses the first 12), 6 and 7
/// one-float stand-ins for `tet_activation` and its adjoint when not activated.
impl GpuSystem for Tetrahedra {
    fn name(&self) -> &str {
        "fem.tetrahedra"
    }
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError> {
        let (np, nt) = (cx.count("particle_q"), cx.count("tet_indices"));
        let (ntot, ptot) = (nt * cx.num_envs, np * cx.num_envs);
        let base = FemParams {
            n: 0,
            np: fgpu::to_u32(np, "particles per env")?,
            nt: fgpu::to_u32(nt, "tetrahedra per env")?,
            activated: u32::from(self.activated),
            ..FemParams::default()
        };
        let tets = FemParams { n: fgpu::to_u32(ntot, "tetrahedra")?, ..base };
        let parts = FemParams { n: fgpu::to_u32(ptot, "particles")?, ..base };
        let (off, ent) = fgpu::tet_adjacency(cx.model.topology.get("tet_indices")?, cx.num_envs, np, nt);
        let buffers = vec![
            cx.uniform("fem.tetrahedra tets", &tets)?,
            cx.uniform("fem.tetrahedra particles", &parts)?,
            cx.gpu.storage_f32("fem.tetrahedra derived", &fgpu::tet_derived(cx.model.params.get("tet_params")?))?,
            cx.gpu.storage_u32("fem.tetrahedra adjacency offsets", &off)?,
            cx.gpu.storage_u32("fem.tetrahedra adjacency", &ent)?,
            cx.gpu.storage_f32_zeroed("fem.tetrahedra scratch", 24 * ntot)?,
            cx.gpu.storage_f32_zeroed("fem.tetrahedra no activation", 1)?,
            cx.gpu.storage_f32_zeroed("fem.tetrahedra no activation adjoint", 1)?,
        ];
        let (act, aact) = if self.activated {
            (Bind::read(state("tet_activation")), Bind::rw(adj_state("tet_activation")))
        } else {
            (Bind::read(Src::Own(6)), Bind::rw(Src::Own(7)))
        };
        let common = [
            Bind::read(state("particle_q")),
            Bind::read(state("particle_qd")),
            Bind::read(model("tet_params")),
            Bind::read(topology("tet_indices")),
            Bind::read(Src::Own(2)),
            act,
        ];
        let csr = [Bind::read(Src::Own(3)), Bind::read(Src::Own(4)), Bind::rw(Src::Own(5))];
        let mut fwd = common[..2].to_vec();
        fwd.push(Bind::rw(state("particle_f")));
        fwd.extend_from_slice(&common[2..]);
        fwd.extend_from_slice(&csr);
        let mut adj = common.to_vec();
        adj.extend([
            Bind::read(adj_state("particle_f")),
            Bind::rw(adj_state("particle_q")),
            Bind::rw(adj_state("particle_qd")),
            aact,
        ]);
        adj.extend_from_slice(&csr);
        let with = |mut b: Vec<Bind>, own: usize| {
            b.push(Bind::uniform(own));
            b
        };
        let fsrc = fgpu::source(&[fgpu::TET_COMMON, fgpu::TETRAHEDRA]);
        let asrc = fgpu::source(&[fgpu::TET_COMMON, fgpu::TETRAHEDRA_ADJOINT]);
        Ok(GpuKernels {
            forward: vec![
                Pass::new(cx, "fem.tetrahedra forces", &fsrc, "tet_forces", with(fwd.clone(), 0), ntot)?,
                Pass::new(cx, "fem.tetrahedra gather", &fsrc, "tet_gather", with(fwd, 1), ptot)?,
            ],
            adjoint: vec![
                Pass::new(cx, "fem.tetrahedra adjoint", &asrc, "tet_adjoint", with(adj.clone(), 0), ntot)?,
                Pass::new(cx, "fem.tetrahedra adjoint gather", &asrc, "tet_adjoint_gather", with(adj, 1), ptot)?,
            ],
            buffers,
        })
    }
}

/// Pulls ȳᵢ (cotangents of f₁..f₃ after folding in f₀ = −Σ) back to (d̄ᵢ, ūᵢ, ā), see module docs.
#[allow(clippy::type_complexity)]
#[inline(always)]
fn tet_adjoint<R: Real>(ev: &TetEval<R>, ybar: &[V3<R>; 3], p: &Params<R>) -> ([V3<R>; 3], [V3<R>; 3], R) {
    // fᵢ = −(V (P Bᵀ)ᵢ + s gᵢ).
    let hbar: M3<R> = from_cols(&[scale(ybar[0], -p.vol), scale(ybar[1], -p.vol), scale(ybar[2], -p.vol)]);
    let sbar = -(dot(ybar[0], ev.g[0]) + dot(ybar[1], ev.g[1]) + dot(ybar[2], ev.g[2]));
    let mut gbar = [scale(ybar[0], -ev.s), scale(ybar[1], -ev.s), scale(ybar[2], -ev.s)];
    // H = P Bᵀ → P̄ = H̄ B.
    let pbar = mul(&hbar, &p.b);
    // P = c F + k Ḟ, c = μ (1 − 1/(I_C + 1)), I_C = ‖F‖².
    let pf = pbar.iter().flatten().zip(ev.f.iter().flatten()).fold(R::zero(), |s, (&a, &b)| s + a * b);
    let ic1 = ev.ic + R::one();
    let icbar = pf * p.mu / (ic1 * ic1);
    let mut fbar = [[R::zero(); 3]; 3];
    let mut fdotbar = [[R::zero(); 3]; 3];
    for r in 0..3 {
        for k in 0..3 {
            fbar[r][k] = ev.c * pbar[r][k] + (icbar + icbar) * ev.f[r][k];
            fdotbar[r][k] = p.damp * pbar[r][k];
        }
    }
    // s = V (λ (J − α + a) + k J̇).
    let jbar = p.vol * p.lambda * sbar;
    let abar = jbar;
    let jdotbar = p.vol * p.damp * sbar;
    // J̇ = Σ gᵢ · uᵢ.
    for (gb, &u) in gbar.iter_mut().zip(&ev.u) {
        axpy(gb, jdotbar, u);
    }
    // F = D_s B → D̄_s = F̄ Bᵀ; Ḟ = U B → Ū = Ḟ̄ Bᵀ.
    let ds_bar = mul_bt(&fbar, &p.b);
    let u_bar = mul_bt(&fdotbar, &p.b);
    let mut dbar = [col(&ds_bar, 0), col(&ds_bar, 1), col(&ds_bar, 2)];
    let mut ubar = [col(&u_bar, 0), col(&u_bar, 1), col(&u_bar, 2)];
    for i in 0..3 {
        axpy(&mut ubar[i], jdotbar, ev.g[i]);
        // J = det(D_s) det B: ∂J/∂dᵢ = gᵢ.
        axpy(&mut dbar[i], jbar, ev.g[i]);
    }
    // gᵢ = det B (d_{i+1} × d_{i+2}) (cyclic): ḡ·(a × b) → ā += b × ḡ, b̄ += ḡ × a.
    for (i, &g) in gbar.iter().enumerate() {
        let (a, b) = ((i + 1) % 3, (i + 2) % 3);
        let gb = scale(g, p.det_b);
        let (ta, tb) = (cross(ev.d[b], gb), cross(gb, ev.d[a]));
        axpy(&mut dbar[a], R::one(), ta);
        axpy(&mut dbar[b], R::one(), tb);
    }
    (dbar, ubar, abar)
}
