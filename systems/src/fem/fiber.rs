//! `fem.fiber_muscles`: contractile muscle forces along a per-tetrahedron fiber direction, the
//! anisotropic alternative to the volumetric activation of `fem.tetrahedra` (which is what
//! Rewarped's SoftJumper uses, rewarped.md §5; this system is for scenes that want fibers).
//!
//! Per tetrahedron (vertices x₀..x₃; model: B = D_m⁻¹ and rest volume V from `tet_params`, unit
//! rest-frame fiber d̂ from `tet_fiber`; state: activation a from `tet_activation`), with the
//! fiber stretch vector u = F d̂ = D_s (B d̂) = Σⱼ wⱼ (xⱼ − x₀), w = B d̂:
//!   Ψ_f = a k/2 (|u|² − 1)       (energy density; k = `stiffness`, Pa)
//!   fⱼ = −V ∂Ψ_f/∂xⱼ = −V a k wⱼ u  (j = 1..3),   f₀ = −(f₁ + f₂ + f₃)
//! so a > 0 pulls the element together along the fiber (|u| shrinks) and a < 0 stretches it;
//! the forces are linear in x, so inverted elements need nothing special.
//!
//! Adjoint (by hand; particle_f is accumulated, so f̄ passes through). With ȳⱼ = f̄ⱼ − f̄₀ the
//! loss term is Σⱼ ȳⱼ · fⱼ = −V a k (u · Y), Y = Σⱼ wⱼ ȳⱼ:
//!   ā += −V k (u · Y),   ū = −V a k Y,   x̄ⱼ += wⱼ ū,   x̄₀ −= Σⱼ wⱼ ū.
//!
//! GPU: `wgsl/fiber*.wgsl`, a per-tetrahedron pass and a per-particle gather as `fem.tetrahedra`.

use diffsim_engine::EngineError;
use diffsim_engine::gpu_sim::{Bind, GpuBuildCx, GpuKernels, GpuSystem, Pass, Src, adj_state, state, topology};
use diffsim_engine::scene::TET_PARAMS;
use diffsim_engine::{ColumnAccess, ModelView, Real, StepCx, System, View, ViewMut};

use super::gpu::{self as fgpu, FemParams};

/// Fiber muscles of every tetrahedron, `stiffness` k in Pa (scaled by each rest volume).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FiberMuscles {
    pub stiffness: f64,
}

/// w = B d̂ and the coefficient V k of tetrahedron `t`.
fn fiber_weights(prm: &[f64], fiber: &[f64], t: usize, stiffness: f64) -> ([f64; 3], f64) {
    let p = &prm[TET_PARAMS * t..TET_PARAMS * (t + 1)];
    let d = &fiber[3 * t..3 * t + 3];
    let w = std::array::from_fn(|i| p[3 * i] * d[0] + p[3 * i + 1] * d[1] + p[3 * i + 2] * d[2]);
    (w, p[9] * stiffness)
}

/// The four vertex indices (within the env) of tetrahedron `t`.
fn verts(idx: &[u32], t: usize) -> [usize; 4] {
    std::array::from_fn(|k| idx[4 * t + k] as usize)
}

/// u = Σⱼ wⱼ (xⱼ − x₀) of one tetrahedron over a `[P, 3]` column.
fn stretch<R: Real>(q: &[R], v: [usize; 4], w: [f64; 3]) -> [R; 3] {
    std::array::from_fn(|c| {
        (0..3).fold(R::zero(), |acc, j| acc + R::from_f64(w[j]) * (q[3 * v[j + 1] + c] - q[3 * v[0] + c]))
    })
}

impl<R: Real> System<R> for FiberMuscles {
    fn name(&self) -> &str {
        "fem.fiber_muscles"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        vec![
            ColumnAccess::state("particle_q", 3),
            ColumnAccess::state("tet_activation", 1),
            ColumnAccess::accumulate("particle_f", 3),
            ColumnAccess::model("tet_params", TET_PARAMS),
            ColumnAccess::model("tet_fiber", 3),
            ColumnAccess::model("tet_indices", 4),
        ]
    }
    fn forward(&self, _: &StepCx, model: &ModelView, _: &View<R>, state: &mut ViewMut<R>) {
        let (idx, prm, fiber) = (model.topo("tet_indices"), model.param("tet_params"), model.param("tet_fiber"));
        let nt = model.count("tet_indices");
        let np = state.layout().spec("particle_q").map_or(0, |s| s.count);
        let [q, a, f] = state.cols_mut(["particle_q", "tet_activation", "particle_f"]);
        for e in 0..model.num_envs() {
            let o = 3 * np * e;
            let (q, f) = (&q[o..o + 3 * np], &mut f[o..o + 3 * np]);
            for (t, &a_t) in a.iter().enumerate().take((e + 1) * nt).skip(e * nt) {
                let vs = verts(idx, t);
                let (w, vk) = fiber_weights(prm, fiber, t, self.stiffness);
                let u = stretch(q, vs, w);
                let c = -R::from_f64(vk) * a_t;
                for c3 in 0..3 {
                    let mut f0 = R::zero();
                    for j in 0..3 {
                        let fj = c * R::from_f64(w[j]) * u[c3];
                        f[3 * vs[j + 1] + c3] += fj;
                        f0 -= fj;
                    }
                    f[3 * vs[0] + c3] += f0;
                }
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
        let (idx, prm, fiber) = (model.topo("tet_indices"), model.param("tet_params"), model.param("tet_fiber"));
        let nt = model.count("tet_indices");
        let np = pre.layout().spec("particle_q").map_or(0, |s| s.count);
        let (q, a) = (pre.col("particle_q"), pre.col("tet_activation"));
        let [q_bar, a_bar, f_bar] = adj.cols_mut(["particle_q", "tet_activation", "particle_f"]);
        for e in 0..model.num_envs() {
            let o = 3 * np * e;
            let (q, q_bar, f_bar) = (&q[o..o + 3 * np], &mut q_bar[o..o + 3 * np], &f_bar[o..o + 3 * np]);
            for t in e * nt..(e + 1) * nt {
                let vs = verts(idx, t);
                let (w, vk) = fiber_weights(prm, fiber, t, self.stiffness);
                let u = stretch(q, vs, w);
                // Y = Σⱼ wⱼ (f̄ⱼ − f̄₀).
                let y: [R; 3] = std::array::from_fn(|c| {
                    (0..3).fold(R::zero(), |acc, j| {
                        acc + R::from_f64(w[j]) * (f_bar[3 * vs[j + 1] + c] - f_bar[3 * vs[0] + c])
                    })
                });
                let vk = R::from_f64(vk);
                a_bar[t] -= vk * (u[0] * y[0] + u[1] * y[1] + u[2] * y[2]);
                for c in 0..3 {
                    let ub = -vk * a[t] * y[c];
                    for j in 0..3 {
                        q_bar[3 * vs[j + 1] + c] += R::from_f64(w[j]) * ub;
                        q_bar[3 * vs[0] + c] -= R::from_f64(w[j]) * ub;
                    }
                }
            }
        }
    }
    fn gpu(&self) -> Option<Box<dyn GpuSystem>> {
        Some(Box::new(*self))
    }
}

/// GPU: one invocation per tetrahedron writes its corners' forces (adjoint: x̄ terms, and ā
/// directly) to a scratch buffer, then one per particle adds them in tetrahedron order over the
/// CSR adjacency of fem/gpu.rs. Own buffers: 0 params (n = tetrahedra), 1 params (n =
/// particles), 2 `[w, V k]` per tetrahedron, 3–4 the adjacency, 5 the scratch (12 floats per
/// tetrahedron).
impl GpuSystem for FiberMuscles {
    fn name(&self) -> &str {
        "fem.fiber_muscles"
    }
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError> {
        let (np, nt) = (cx.count("particle_q"), cx.count("tet_indices"));
        let (ntot, ptot) = (nt * cx.num_envs, np * cx.num_envs);
        let base = FemParams {
            np: fgpu::to_u32(np, "particles per env")?,
            nt: fgpu::to_u32(nt, "tetrahedra per env")?,
            activated: 1,
            ..FemParams::default()
        };
        let tets = FemParams { n: fgpu::to_u32(ntot, "tetrahedra")?, ..base };
        let parts = FemParams { n: fgpu::to_u32(ptot, "particles")?, ..base };
        let (off, ent) = fgpu::tet_adjacency(cx.model.topology.get("tet_indices")?, cx.num_envs, np, nt);
        let derived =
            fgpu::fiber_derived(cx.model.params.get("tet_params")?, cx.model.params.get("tet_fiber")?, self.stiffness);
        let buffers = vec![
            cx.uniform("fem.fiber_muscles tets", &tets)?,
            cx.uniform("fem.fiber_muscles particles", &parts)?,
            cx.gpu.storage_f32("fem.fiber_muscles weights", &derived)?,
            cx.gpu.storage_u32("fem.fiber_muscles adjacency offsets", &off)?,
            cx.gpu.storage_u32("fem.fiber_muscles adjacency", &ent)?,
            cx.gpu.storage_f32_zeroed("fem.fiber_muscles scratch", 12 * ntot)?,
        ];
        let csr = [Bind::read(Src::Own(3)), Bind::read(Src::Own(4)), Bind::rw(Src::Own(5))];
        let fwd = |own| {
            let mut b = vec![
                Bind::read(state("particle_q")),
                Bind::rw(state("particle_f")),
                Bind::read(topology("tet_indices")),
                Bind::read(Src::Own(2)),
                Bind::read(state("tet_activation")),
            ];
            b.extend_from_slice(&csr);
            b.push(Bind::uniform(own));
            b
        };
        let adj = |own| {
            let mut b = vec![
                Bind::read(state("particle_q")),
                Bind::read(topology("tet_indices")),
                Bind::read(Src::Own(2)),
                Bind::read(state("tet_activation")),
                Bind::read(adj_state("particle_f")),
                Bind::rw(adj_state("particle_q")),
                Bind::rw(adj_state("tet_activation")),
            ];
            b.extend_from_slice(&csr);
            b.push(Bind::uniform(own));
            b
        };
        let fsrc = fgpu::source(&[fgpu::FIBER_COMMON, fgpu::FIBER]);
        let asrc = fgpu::source(&[fgpu::FIBER_COMMON, fgpu::FIBER_ADJOINT]);
        Ok(GpuKernels {
            forward: vec![
                Pass::new(cx, "fem.fiber_muscles forces", &fsrc, "fiber_forces", fwd(0), ntot)?,
                Pass::new(cx, "fem.fiber_muscles gather", &fsrc, "fiber_gather", fwd(1), ptot)?,
            ],
            adjoint: vec![
                Pass::new(cx, "fem.fiber_muscles adjoint", &asrc, "fiber_adjoint", adj(0), ntot)?,
                Pass::new(cx, "fem.fiber_muscles adjoint gather", &asrc, "fiber_adjoint_gather", adj(1), ptot)?,
            ],
            buffers,
        })
    }
}
