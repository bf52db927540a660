//! `particles.integrate`: semi-implicit (symplectic) Euler for particles.
//!
//! Forward (per particle):  qd' = qd + dt · f / m ;  q' = q + dt · qd'.
//! Adjoint, with q̄', q̄d' the incoming adjoints:
//!   s = q̄d' + dt · q̄'        (q' depends on qd')
//!   q̄ = q̄'                   (∂q'/∂q = I)
//!   q̄d = s                   (∂qd'/∂qd = I)
//!   f̄ += dt / m · s          (∂qd'/∂f = dt/m · I)
//! The WGSL kernel in `integrate_gpu.rs` implements the same forward.

use diffsim_engine::EngineError;
use diffsim_engine::gpu_sim::{Bind, GpuBuildCx, GpuKernels, GpuSystem, Pass, adj_state, model, state};
use diffsim_engine::{ColumnAccess, ModelView, Real, StepCx, System, View, ViewMut};

use super::gpu::{self as pgpu, ParticleParams};

#[derive(Clone, Copy, Debug, Default)]
pub struct Integrate;

impl<R: Real> System<R> for Integrate {
    fn name(&self) -> &str {
        "particles.integrate"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        vec![
            ColumnAccess::state("particle_q", 3),
            ColumnAccess::state("particle_qd", 3),
            ColumnAccess::state("particle_f", 3),
            ColumnAccess::write("particle_q", 3),
            ColumnAccess::write("particle_qd", 3),
            ColumnAccess::model("particle_mass", 1),
        ]
    }
    fn forward(&self, cx: &StepCx, model: &ModelView, _: &View<R>, state: &mut ViewMut<R>) {
        let dt = R::from_f64(cx.dt);
        let mass = model.param("particle_mass");
        let [q, qd, f] = state.cols_mut(["particle_q", "particle_qd", "particle_f"]);
        for (k, &m) in mass.iter().enumerate() {
            let inv_m = R::from_f64(1.0 / m);
            for c in 0..3 {
                let i = 3 * k + c;
                qd[i] += dt * f[i] * inv_m;
                q[i] += dt * qd[i];
            }
        }
    }
    fn adjoint(
        &self,
        cx: &StepCx,
        model: &ModelView,
        _: &View<R>,
        _: &View<R>,
        adj: &mut ViewMut<R>,
        _: &mut ViewMut<R>,
    ) {
        let dt = R::from_f64(cx.dt);
        let mass = model.param("particle_mass");
        let [aq, aqd, af] = adj.cols_mut(["particle_q", "particle_qd", "particle_f"]);
        for (k, &m) in mass.iter().enumerate() {
            let inv_m = R::from_f64(1.0 / m);
            for c in 0..3 {
                let i = 3 * k + c;
                let s = aqd[i] + dt * aq[i];
                aqd[i] = s;
                af[i] += dt * inv_m * s;
            }
        }
    }
    fn gpu(&self) -> Option<Box<dyn GpuSystem>> {
        Some(Box::new(*self))
    }
}

/// GPU: the forward is `integrate.wgsl` (shared with `integrate_gpu.rs`), the adjoint
/// `wgsl/integrate_adjoint.wgsl`; one invocation per particle each.
impl GpuSystem for Integrate {
    fn name(&self) -> &str {
        "particles.integrate"
    }
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError> {
        let n = cx.count("particle_mass") * cx.num_envs;
        let fwd_params = cx.uniform(
            "particles.integrate",
            &super::integrate_gpu::IntegrateParams { dt: cx.dt, n: pgpu::to_u32(n, "particles")? },
        )?;
        let adj_params = cx.uniform("particles.integrate adjoint", &ParticleParams::of(cx)?.with_n(n)?)?;
        let fwd = vec![
            Bind::rw(state("particle_q")),
            Bind::rw(state("particle_qd")),
            Bind::read(state("particle_f")),
            Bind::read(model("particle_mass")),
            Bind::uniform(0),
        ];
        let adj = vec![
            Bind::read(adj_state("particle_q")),
            Bind::rw(adj_state("particle_qd")),
            Bind::rw(adj_state("particle_f")),
            Bind::read(model("particle_mass")),
            Bind::uniform(1),
        ];
        let asrc = pgpu::source(&[pgpu::INTEGRATE_ADJOINT]);
        Ok(GpuKernels {
            forward: vec![Pass::new(
                cx,
                "particles.integrate",
                super::integrate_gpu::INTEGRATE_WGSL,
                "integrate",
                fwd,
                n,
            )?],
            adjoint: vec![Pass::new(cx, "particles.integrate adjoint", &asrc, "integrate_adjoint", adj, n)?],
            buffers: vec![fwd_params, adj_params],
        })
    }
}
