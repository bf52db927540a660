//! `particles.springs`: damped springs between particle pairs (Hooke's law plus a dashpot along
//! the spring axis).
//!
//! Forward, for a spring (i, j) with rest length L, stiffness kₑ, damping k_d:
//!   d = x_j − x_i,  l = |d|,  n = d / l,  v = v_j − v_i
//!   s = kₑ (l − L) + k_d (v · n)          (scalar tension)
//!   f_i += s n,  f_j −= s n
//! Adjoint, with F̄ = f̄_i − f̄_j (F = s n acts +F on i and −F on j):
//!   s̄ = F̄ · n,  n̄ = s F̄ + k_d s̄ v,  l̄ = kₑ s̄,  v̄ = k_d s̄ n
//!   d̄ = l̄ n + (n̄ − n (n · n̄)) / l      (∂n/∂d = (I − n nᵀ) / l)
//!   x̄_j += d̄, x̄_i −= d̄, v̄_j += v̄, v̄_i −= v̄
//! Springs of zero length (l < 1e-9) exert no force: the direction is undefined there.

use diffsim_engine::EngineError;
use diffsim_engine::gpu_sim::{
    Bind, GpuBuildCx, GpuKernels, GpuSystem, Pass, Scatter, Src, adj_state, model, state, topology,
};
use diffsim_engine::scalar::vec3;
use diffsim_engine::{ColumnAccess, ModelView, Real, StepCx, System, View, ViewMut};

use super::gpu::{self as pgpu, ParticleParams};

#[derive(Clone, Copy, Debug, Default)]
pub struct Springs;

const MIN_LENGTH: f64 = 1e-9;

/// Geometry of one spring evaluated at a state.
struct SpringEval<R> {
    n: [R; 3],
    l: R,
    v: [R; 3],
    s: R,
}

fn eval<R: Real>(q: &[R], qd: &[R], i: usize, j: usize, p: &[f64]) -> Option<SpringEval<R>> {
    let d = vec3::sub(vec3::load(q, j), vec3::load(q, i));
    let l = vec3::dot(d, d).sqrt();
    if l.to_f64() < MIN_LENGTH {
        return None;
    }
    let n = vec3::scale(d, R::one() / l);
    let v = vec3::sub(vec3::load(qd, j), vec3::load(qd, i));
    let (rest, ke, kd) = (R::from_f64(p[0]), R::from_f64(p[1]), R::from_f64(p[2]));
    let s = ke * (l - rest) + kd * vec3::dot(v, n);
    Some(SpringEval { n, l, v, s })
}

impl<R: Real> System<R> for Springs {
    fn name(&self) -> &str {
        "particles.springs"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        vec![
            ColumnAccess::state("particle_q", 3),
            ColumnAccess::state("particle_qd", 3),
            ColumnAccess::accumulate("particle_f", 3),
            ColumnAccess::model("spring_params", 3),
            ColumnAccess::model("spring_indices", 2),
        ]
    }
    fn forward(&self, _: &StepCx, model: &ModelView, _: &View<R>, state: &mut ViewMut<R>) {
        let (idx, params) = (model.topo("spring_indices"), model.param("spring_params"));
        let ns = model.count("spring_indices");
        let np = state.layout().spec("particle_q").map_or(0, |s| s.count);
        let [q, qd, f] = state.cols_mut(["particle_q", "particle_qd", "particle_f"]);
        for e in 0..model.num_envs() {
            let (q, qd, f) = (&q[3 * np * e..], &qd[3 * np * e..], &mut f[3 * np * e..]);
            for k in e * ns..(e + 1) * ns {
                let (i, j) = (idx[2 * k] as usize, idx[2 * k + 1] as usize);
                if let Some(sp) = eval(q, qd, i, j, &params[3 * k..3 * k + 3]) {
                    let force = vec3::scale(sp.n, sp.s);
                    vec3::add_to(f, i, force);
                    vec3::add_to(f, j, vec3::neg(force));
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
        let (idx, params) = (model.topo("spring_indices"), model.param("spring_params"));
        let ns = model.count("spring_indices");
        let np = pre.layout().spec("particle_q").map_or(0, |s| s.count);
        let (q, qd) = (pre.col("particle_q"), pre.col("particle_qd"));
        let [aq, aqd, af] = adj.cols_mut(["particle_q", "particle_qd", "particle_f"]);
        for e in 0..model.num_envs() {
            let o = 3 * np * e;
            let (q, qd) = (&q[o..], &qd[o..]);
            let (aq, aqd, af) = (&mut aq[o..], &mut aqd[o..], &af[o..]);
            for k in e * ns..(e + 1) * ns {
                let (i, j) = (idx[2 * k] as usize, idx[2 * k + 1] as usize);
                let p = &params[3 * k..3 * k + 3];
                let Some(sp) = eval(q, qd, i, j, p) else { continue };
                let (ke, kd) = (R::from_f64(p[1]), R::from_f64(p[2]));
                let adj_force = vec3::sub(vec3::load(af, i), vec3::load(af, j));
                let adj_s = vec3::dot(adj_force, sp.n);
                let adj_n = vec3::add(vec3::scale(adj_force, sp.s), vec3::scale(sp.v, kd * adj_s));
                let adj_l = ke * adj_s;
                let adj_v = vec3::scale(sp.n, kd * adj_s);
                let nn = vec3::dot(sp.n, adj_n);
                let tangential = vec3::scale(vec3::sub(adj_n, vec3::scale(sp.n, nn)), R::one() / sp.l);
                let adj_d = vec3::add(vec3::scale(sp.n, adj_l), tangential);
                vec3::add_to(aq, j, adj_d);
                vec3::add_to(aq, i, vec3::neg(adj_d));
                vec3::add_to(aqd, j, adj_v);
                vec3::add_to(aqd, i, vec3::neg(adj_v));
            }
        }
    }
    fn gpu(&self) -> Option<Box<dyn GpuSystem>> {
        Some(Box::new(*self))
    }
}

/// GPU, two reductions (`Scatter`): deterministic, `wgsl/springs_gather*.wgsl`, one invocation
/// per particle summing its springs in spring order over a CSR adjacency uploaded here; or
/// atomic, `wgsl/springs_atomic*.wgsl`, one invocation per spring adding into both endpoints.
///
/// Cost of determinism (measured on lavapipe, release, a loaded 2-core VM, so ±10%): the gather
/// evaluates every spring once per endpoint. chain_reach with 32 links (61 springs per env) at
/// 1024 envs: forward 12.8–14.0k env-steps/s deterministic vs 15.3–16.2k atomic (~15% slower),
/// forward+backward 3.2–3.7k vs 5.2–5.4k (~35% slower; the adjoint gather repeats the spring
/// adjoint per endpoint too). With the default 4 links the difference is within the noise
/// (`diffsim bench --backend gpu --gpu-scatter deterministic|atomic`).
impl GpuSystem for Springs {
    fn name(&self) -> &str {
        "particles.springs"
    }
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError> {
        let base = ParticleParams::of(cx)?;
        let (np, ns) = (base.np as usize, base.ns as usize);
        let common = [Bind::read(state("particle_q")), Bind::read(state("particle_qd"))];
        let (sp, si) = (Bind::read(model("spring_params")), Bind::read(topology("spring_indices")));
        match cx.scatter {
            Scatter::Deterministic => {
                let n = np * cx.num_envs;
                let params = cx.uniform("particles.springs", &base.with_n(n)?)?;
                let (off, ent) = pgpu::spring_adjacency(cx.model.topology.get("spring_indices")?, cx.num_envs, np, ns);
                let off = cx.gpu.storage_u32("particles.springs adjacency offsets", &off)?;
                let ent = cx.gpu.storage_u32("particles.springs adjacency", &ent)?;
                let mut fwd = common.to_vec();
                fwd.extend([
                    Bind::rw(state("particle_f")),
                    sp.clone(),
                    si.clone(),
                    Bind::read(Src::Own(1)),
                    Bind::read(Src::Own(2)),
                    Bind::uniform(0),
                ]);
                let mut adj = common.to_vec();
                adj.extend([
                    sp,
                    si,
                    Bind::read(adj_state("particle_f")),
                    Bind::rw(adj_state("particle_q")),
                    Bind::rw(adj_state("particle_qd")),
                    Bind::read(Src::Own(1)),
                    Bind::read(Src::Own(2)),
                    Bind::uniform(0),
                ]);
                let fsrc = pgpu::source(&[pgpu::SPRINGS_COMMON, pgpu::SPRINGS_GATHER]);
                let asrc = pgpu::source(&[pgpu::SPRINGS_COMMON, pgpu::SPRINGS_GATHER_ADJOINT]);
                Ok(GpuKernels {
                    forward: vec![Pass::new(cx, "particles.springs", &fsrc, "springs_forward", fwd, n)?],
                    adjoint: vec![Pass::new(cx, "particles.springs adjoint", &asrc, "springs_adjoint", adj, n)?],
                    buffers: vec![params, off, ent],
                })
            }
            Scatter::Atomic => {
                let n = ns * cx.num_envs;
                let params = cx.uniform("particles.springs", &base.with_n(n)?)?;
                let native = cx.f32_atomics();
                let mut fwd = common.to_vec();
                fwd.extend([Bind::rw(state("particle_f")), sp.clone(), si.clone(), Bind::uniform(0)]);
                let mut adj = common.to_vec();
                adj.extend([
                    sp,
                    si,
                    Bind::read(adj_state("particle_f")),
                    Bind::rw(adj_state("particle_q")),
                    Bind::rw(adj_state("particle_qd")),
                    Bind::uniform(0),
                ]);
                let fsrc =
                    pgpu::source(&[pgpu::SPRINGS_COMMON, &pgpu::atomic_source(pgpu::SPRINGS_ATOMIC, native, &["f"])]);
                let asrc = pgpu::source(&[
                    pgpu::SPRINGS_COMMON,
                    &pgpu::atomic_source(pgpu::SPRINGS_ATOMIC_ADJOINT, native, &["aq", "aqd"]),
                ]);
                Ok(GpuKernels {
                    forward: vec![Pass::new(cx, "particles.springs atomic", &fsrc, "springs_forward_atomic", fwd, n)?],
                    adjoint: vec![Pass::new(
                        cx,
                        "particles.springs atomic adjoint",
                        &asrc,
                        "springs_adjoint_atomic",
                        adj,
                        n,
                    )?],
                    buffers: vec![params],
                })
            }
        }
    }
}
