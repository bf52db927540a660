//! `particles.ground_contact`: penalty contact of particles (spheres of radius r) with the ground
//! plane y = 0, with viscous friction capped by Coulomb's law.
//!
//! Forward, per particle with penetration p = r − y > 0:
//!   N = kₑ p − k_d v_y                       (normal spring-damper; no force if N ≤ 0)
//!   f_y += N
//!   v_t = (v_x, 0, v_z), s = |v_t|
//!   sticking  (k_f s ≤ μ N):  f_t += −k_f v_t
//!   sliding   (k_f s > μ N):  f_t += −μ N v_t / s
//! Adjoint (f̄ incoming, passes through since f is accumulated):
//!   sticking: v̄_t += −k_f f̄_t
//!   sliding:  u = v_t / s, N̄ += −μ (u · f̄_t), ū = −μ N f̄_t, v̄_t += (ū − u (u · ū)) / s
//!   N̄ += f̄_y ; ȳ += −kₑ N̄ ; v̄_y += −k_d N̄
//! The branches are kinks: gradients are exact within a branch (dual test) and finite-difference
//! tests sample states away from the switching surfaces.

use diffsim_engine::EngineError;
use diffsim_engine::gpu_sim::{Bind, GpuBuildCx, GpuKernels, GpuSystem, Pass, adj_state, model, state};
use diffsim_engine::{ColumnAccess, ModelView, Real, StepCx, System, View, ViewMut};

use super::gpu::{self as pgpu, ParticleParams};

#[derive(Clone, Copy, Debug, Default)]
pub struct GroundContact;

/// Contact regime of one particle at a state.
enum Regime<R> {
    Free,
    Sticking { n: R },
    Sliding { n: R, s: R },
}

fn regime<R: Real>(y: R, r: f64, v: [R; 3], g: &[f64]) -> Regime<R> {
    let (ke, kd, kf, mu) = (R::from_f64(g[0]), R::from_f64(g[1]), R::from_f64(g[2]), R::from_f64(g[3]));
    let pen = R::from_f64(r) - y;
    if pen.to_f64() <= 0.0 {
        return Regime::Free;
    }
    let n = ke * pen - kd * v[1];
    if n.to_f64() <= 0.0 {
        return Regime::Free;
    }
    let s2 = v[0] * v[0] + v[2] * v[2];
    // Compare squared magnitudes so the sticking branch never takes a sqrt (smooth at v_t = 0).
    let cap = mu * n;
    if (kf * kf * s2).to_f64() <= (cap * cap).to_f64() {
        Regime::Sticking { n }
    } else {
        Regime::Sliding { n, s: s2.sqrt() }
    }
}

impl<R: Real> System<R> for GroundContact {
    fn name(&self) -> &str {
        "particles.ground_contact"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        vec![
            ColumnAccess::state("particle_q", 3),
            ColumnAccess::state("particle_qd", 3),
            ColumnAccess::accumulate("particle_f", 3),
            ColumnAccess::model("particle_radius", 1),
            ColumnAccess::model("ground", 4),
        ]
    }
    fn forward(&self, _: &StepCx, model: &ModelView, _: &View<R>, state: &mut ViewMut<R>) {
        let (radius, ground) = (model.param("particle_radius"), model.param("ground"));
        let np = radius.len() / model.num_envs().max(1);
        let [q, qd, f] = state.cols_mut(["particle_q", "particle_qd", "particle_f"]);
        for (k, &r) in radius.iter().enumerate() {
            let g = &ground[4 * (k / np.max(1))..][..4];
            let v = [qd[3 * k], qd[3 * k + 1], qd[3 * k + 2]];
            let (kf, mu) = (R::from_f64(g[2]), R::from_f64(g[3]));
            match regime(q[3 * k + 1], r, v, g) {
                Regime::Free => {}
                Regime::Sticking { n } => {
                    f[3 * k] -= kf * v[0];
                    f[3 * k + 1] += n;
                    f[3 * k + 2] -= kf * v[2];
                }
                Regime::Sliding { n, s } => {
                    f[3 * k] -= mu * n * v[0] / s;
                    f[3 * k + 1] += n;
                    f[3 * k + 2] -= mu * n * v[2] / s;
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
        let (radius, ground) = (model.param("particle_radius"), model.param("ground"));
        let np = radius.len() / model.num_envs().max(1);
        let (q, qd) = (pre.col("particle_q"), pre.col("particle_qd"));
        let [aq, aqd, af] = adj.cols_mut(["particle_q", "particle_qd", "particle_f"]);
        for (k, &r) in radius.iter().enumerate() {
            let g = &ground[4 * (k / np.max(1))..][..4];
            let (ke, kd, kf, mu) = (R::from_f64(g[0]), R::from_f64(g[1]), R::from_f64(g[2]), R::from_f64(g[3]));
            let v = [qd[3 * k], qd[3 * k + 1], qd[3 * k + 2]];
            let (afx, afy, afz) = (af[3 * k], af[3 * k + 1], af[3 * k + 2]);
            let adj_n = match regime(q[3 * k + 1], r, v, g) {
                Regime::Free => continue,
                Regime::Sticking { .. } => {
                    aqd[3 * k] -= kf * afx;
                    aqd[3 * k + 2] -= kf * afz;
                    afy
                }
                Regime::Sliding { n, s } => {
                    let (ux, uz) = (v[0] / s, v[2] / s);
                    let adj_ux = -mu * n * afx;
                    let adj_uz = -mu * n * afz;
                    let uu = ux * adj_ux + uz * adj_uz;
                    aqd[3 * k] += (adj_ux - ux * uu) / s;
                    aqd[3 * k + 2] += (adj_uz - uz * uu) / s;
                    afy - mu * (ux * afx + uz * afz)
                }
            };
            aq[3 * k + 1] -= ke * adj_n;
            aqd[3 * k + 1] -= kd * adj_n;
        }
    }
    fn gpu(&self) -> Option<Box<dyn GpuSystem>> {
        Some(Box::new(*self))
    }
}

/// GPU: `wgsl/ground.wgsl` and `wgsl/ground_adjoint.wgsl` (regime in `wgsl/ground_common.wgsl`),
/// one invocation per particle each.
impl GpuSystem for GroundContact {
    fn name(&self) -> &str {
        "particles.ground_contact"
    }
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError> {
        let n = cx.count("particle_radius") * cx.num_envs;
        let params = cx.uniform("particles.ground_contact", &ParticleParams::of(cx)?.with_n(n)?)?;
        let fwd = vec![
            Bind::read(state("particle_q")),
            Bind::read(state("particle_qd")),
            Bind::rw(state("particle_f")),
            Bind::read(model("particle_radius")),
            Bind::read(model("ground")),
            Bind::uniform(0),
        ];
        let adj = vec![
            Bind::read(state("particle_q")),
            Bind::read(state("particle_qd")),
            Bind::read(adj_state("particle_f")),
            Bind::rw(adj_state("particle_q")),
            Bind::rw(adj_state("particle_qd")),
            Bind::read(model("particle_radius")),
            Bind::read(model("ground")),
            Bind::uniform(0),
        ];
        let fsrc = pgpu::source(&[pgpu::GROUND_COMMON, pgpu::GROUND]);
        let asrc = pgpu::source(&[pgpu::GROUND_COMMON, pgpu::GROUND_ADJOINT]);
        Ok(GpuKernels {
            forward: vec![Pass::new(cx, "particles.ground_contact", &fsrc, "ground_forward", fwd, n)?],
            adjoint: vec![Pass::new(cx, "particles.ground_contact adjoint", &asrc, "ground_adjoint", adj, n)?],
            buffers: vec![params],
        })
    }
}
