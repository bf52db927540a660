//! `fem.activation`: maps the action vector to per-tetrahedron muscle activations, once per env
//! step (Stage::Step), as Rewarped's SoftJumper does (rewarped.md §6.1: each action drives
//! `group` consecutive tetrahedra, activation = scale · action).
//!
//! Forward: a_t = scale · act[⌊t / group⌋] for t < group · A, else 0 (tetrahedra beyond the last
//! action group stay passive). Adjoint: āct[⌊t / group⌋] += scale · ā_t; ā_t ← 0 (overwritten).

use diffsim_engine::EngineError;
use diffsim_engine::gpu_sim::{Bind, GpuBuildCx, GpuKernels, GpuSystem, Pass, adj_control, adj_state, control, state};
use diffsim_engine::{ANY_WIDTH, ColumnAccess, ModelView, Real, StepCx, System, View, ViewMut};

use super::gpu::{self as fgpu, FemParams};

#[derive(Clone, Copy, Debug)]
pub struct Activation {
    /// Tetrahedra per action.
    pub group: usize,
    /// Activation per unit action (Rewarped: 0.3).
    pub scale: f64,
}

impl<R: Real> System<R> for Activation {
    fn name(&self) -> &str {
        "fem.activation"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        vec![ColumnAccess::control("act", ANY_WIDTH), ColumnAccess::write("tet_activation", 1)]
    }
    fn forward(&self, _: &StepCx, _: &ModelView, control: &View<R>, state: &mut ViewMut<R>) {
        let n = control.num_envs().max(1);
        let act = control.col("act");
        let na = act.len() / n;
        let out = state.col_mut("tet_activation");
        let nt = out.len() / n;
        let scale = R::from_f64(self.scale);
        for e in 0..control.num_envs() {
            for t in 0..nt {
                let a = t / self.group;
                out[e * nt + t] = if a < na { scale * act[e * na + a] } else { R::zero() };
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
        let n = control.num_envs().max(1);
        let na = control.col("act").len() / n;
        let abar = adj.col_mut("tet_activation");
        let nt = abar.len() / n;
        let scale = R::from_f64(self.scale);
        let aact = adj_control.col_mut("act");
        for e in 0..control.num_envs() {
            for t in 0..nt {
                let a = t / self.group;
                if a < na {
                    aact[e * na + a] += scale * abar[e * nt + t];
                }
                abar[e * nt + t] = R::zero();
            }
        }
    }
    fn gpu(&self) -> Option<Box<dyn GpuSystem>> {
        Some(Box::new(*self))
    }
}

/// GPU: `wgsl/activation*.wgsl`; the forward is one invocation per (env, tetrahedron), the
/// adjoint one per (env, action) summing its group in tetrahedron order, then one per
/// (env, tetrahedron) zeroing ā. Own buffers: 0 params (n = tetrahedra), 1 params (n = actions).
impl GpuSystem for Activation {
    fn name(&self) -> &str {
        "fem.activation"
    }
    fn build(&self, cx: &GpuBuildCx) -> Result<GpuKernels, EngineError> {
        let nt = cx.state.spec("tet_activation").map_or(0, |s| s.per_env());
        let na = cx.control.spec("act").map_or(0, |s| s.per_env());
        let base = FemParams {
            n: 0,
            np: 0,
            nt: fgpu::to_u32(nt, "tetrahedra per env")?,
            activated: 1,
            na: fgpu::to_u32(na, "actions per env")?,
            group: fgpu::to_u32(self.group.max(1), "tetrahedra per action")?,
            scale: self.scale as f32,
        };
        let tets = FemParams { n: fgpu::to_u32(nt * cx.num_envs, "tetrahedra")?, ..base };
        let acts = FemParams { n: fgpu::to_u32(na * cx.num_envs, "actions")?, ..base };
        let fwd = vec![Bind::read(control("act")), Bind::rw(state("tet_activation")), Bind::uniform(0)];
        let adj = |own| vec![Bind::rw(adj_state("tet_activation")), Bind::rw(adj_control("act")), Bind::uniform(own)];
        let fsrc = fgpu::source(&[fgpu::ACTIVATION]);
        let asrc = fgpu::source(&[fgpu::ACTIVATION_ADJOINT]);
        Ok(GpuKernels {
            forward: vec![Pass::new(cx, "fem.activation", &fsrc, "activation_forward", fwd, nt * cx.num_envs)?],
            adjoint: vec![
                Pass::new(cx, "fem.activation adjoint", &asrc, "activation_adjoint", adj(1), na * cx.num_envs)?,
                Pass::new(cx, "fem.activation clear", &asrc, "activation_clear", adj(0), nt * cx.num_envs)?,
            ],
            buffers: vec![cx.uniform("fem.activation tets", &tets)?, cx.uniform("fem.activation actions", &acts)?],
        })
    }
}
