//! `particles.actuation`: external forces on chosen particles, driven by the control column `act`
//! (`[A, 3]` per env, one row per actuated particle, in [-1, 1] by convention).
//!
//! Forward: f_{p_a} += scale · act_a. Adjoint: āct_a += scale · f̄_{p_a} (f̄ passes through).

use diffsim_engine::EngineError;
use diffsim_engine::gpu_sim::Src;
use diffsim_engine::gpu_sim::{Bind, GpuBuildCx, GpuKernels, GpuSystem, Pass, adj_control, adj_state, control, state};
use diffsim_engine::{ColumnAccess, ModelView, Real, StepCx, System, View, ViewMut};

use super::gpu::{self as pgpu, ParticleParams};

#[derive(Clone, Debug)]
pub struct Actuation {
    /// Particle index (within an env) driven by each action row.
    pub particles: Vec<usize>,
    /// Newtons per unit action.
    pub scale: f64,
}

impl<R: Real> System<R> for Actuation {
    fn name(&self) -> &str {
        "particles.actuation"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        vec![ColumnAccess::accumulate("particle_f", 3), ColumnAccess::control("act", 3)]
    }
    fn forward(&self, _: &StepCx, _: &ModelView, control: &View<R>, state: &mut ViewMut<R>) {
        let act = control.col("act");
        let na = self.particles.len();
        let np = state.layout().spec("particle_f").map_or(0, |s| s.count);
        let f = state.col_mut("particle_f");
        let scale = R::from_f64(self.scale);
        for e in 0..control.num_envs() {
            for (a, &p) in self.particles.iter().enumerate() {
                for c in 0..3 {
                    f[3 * (e * np + p) + c] += scale * act[3 * (e * na + a) + c];
                }
            }
        }
    }
    fn adjoint(
        &self,
        _: &StepCx,
        _: &ModelView,
        control: &View<R>,
        _: &View<R>,
        adj: &mut ViewMut<R>,
        adj_control: &mut ViewMut<R>,
    ) {
        let na = self.particles.len();
        let np = adj.layout().spec("particle_f").map_or(0, |s| s.count);
        let af = adj.col("particle_f");
        let scale = R::from_f64(self.scale);
        let mut rows = Vec::with_capacity(na * 3 * control.num_envs());
        for e in 0..control.num_envs() {
            for &p in &self.particles {
                for c in 0..3 {
                    rows.push(scale * af[3 * (e * np + p) + c]);
                }
            }
        }
        for (a, r) in adj_control.col_mut("act").iter_mut().zip(rows) {
            *a += r;
        }
    }
    fn gpu(&self) -> Option<Box<dyn GpuSystem>> {
        Some(Box::new(self.clone()))
    }
}

/// GPU: `wgsl/actuation.wgsl` (one invocation per env, its actions in order) and
/// `wgsl/actuation_adjoint.wgsl` (one per action row); the actuated particle indices are an
/// own u32 buffer.
impl GpuSystem for Actuation {
    fn name(&self) -> &str {
        "particles.actuation"
    }
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError> {
        let np = cx.count("particle_f");
        let indices = self
            .particles
            .iter()
            .map(|&p| {
                if p < np {
                    pgpu::to_u32(p, "actuated particle")
                } else {
                    Err(EngineError::Gpu(format!("particles.actuation: particle {p} out of range (np = {np})")))
                }
            })
            .collect::<Result<Vec<u32>, _>>()?;
        let na = indices.len();
        let base =
            ParticleParams { na: pgpu::to_u32(na, "actions")?, scale: self.scale as f32, ..ParticleParams::of(cx)? };
        let fwd_params = cx.uniform("particles.actuation", &base.with_n(cx.num_envs)?)?;
        let adj_params = cx.uniform("particles.actuation adjoint", &base.with_n(cx.num_envs * na)?)?;
        let particles = cx.gpu.storage_u32("particles.actuation indices", &indices)?;
        let fwd =
            vec![Bind::rw(state("particle_f")), Bind::read(control("act")), Bind::read(Src::Own(2)), Bind::uniform(0)];
        let adj = vec![
            Bind::read(adj_state("particle_f")),
            Bind::rw(adj_control("act")),
            Bind::read(Src::Own(2)),
            Bind::uniform(1),
        ];
        let fsrc = pgpu::source(&[pgpu::ACTUATION]);
        let asrc = pgpu::source(&[pgpu::ACTUATION_ADJOINT]);
        let envs = if na == 0 { 0 } else { cx.num_envs };
        Ok(GpuKernels {
            forward: vec![Pass::new(cx, "particles.actuation", &fsrc, "actuation_forward", fwd, envs)?],
            adjoint: vec![Pass::new(
                cx,
                "particles.actuation adjoint",
                &asrc,
                "actuation_adjoint",
                adj,
                cx.num_envs * na,
            )?],
            buffers: vec![fwd_params, adj_params, particles],
        })
    }
}
