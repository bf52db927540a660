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

use diffsim_engine::scalar::vec3;
use diffsim_engine::{ColumnAccess, ModelView, Real, StepCx, System, View, ViewMut};

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
}
