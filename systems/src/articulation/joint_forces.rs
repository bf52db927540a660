//! `articulation.joint_forces`: generalized forces of the joints: actuation, limits, damping.
//!
//! τ_i += scale · gear_i · a_k   for the k-th actuated joint (gear ≠ 0, 1-dof joints in order);
//! τ_i += kₑ (lo − q) − k_d q̇     if q < lo;   τ_i += kₑ (hi − q) − k_d q̇   if q > hi;
//! τ_i −= damping_i q̇.
//! Adjoint (hand-written; f̄ = τ̄ passes through since τ is accumulated):
//! ā_k += scale · gear_i · τ̄_i; in a violated limit q̄ −= kₑ τ̄_i, q̇̄ −= k_d τ̄_i; q̇̄ −= damping τ̄_i.

use diffsim_engine::articulation::{KIND_PRISMATIC, KIND_REVOLUTE};
use diffsim_engine::{ANY_WIDTH, ColumnAccess, ModelView, Real, StepCx, System, View, ViewMut};

use super::fk::width;
use super::kinematics::ArticulationModel;

/// `num_actions` is the number of joints with a non-zero gear (the `act` control width).
#[derive(Clone, Copy, Debug)]
pub struct JointForces {
    pub num_actions: usize,
    pub scale: f64,
}

/// Per 1-dof joint of one env: (q index, qd index, actuator index if actuated).
fn dofs(m: &ArticulationModel, gear: &[f64]) -> Vec<(usize, usize, usize, Option<usize>)> {
    let mut a = 0;
    let mut out = Vec::new();
    for (k, (&kind, &g)) in m.kind.iter().zip(gear).enumerate() {
        if matches!(kind, KIND_REVOLUTE | KIND_PRISMATIC) {
            let act = (g != 0.0).then(|| {
                a += 1;
                a - 1
            });
            out.push((k, m.q_start[k] as usize, m.qd_start[k] as usize, act));
        }
    }
    out
}

impl<R: Real> System<R> for JointForces {
    fn name(&self) -> &str {
        "articulation.joint_forces"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        let mut v = vec![
            ColumnAccess::state("joint_q", ANY_WIDTH),
            ColumnAccess::state("joint_qd", ANY_WIDTH),
            ColumnAccess::accumulate("joint_tau", ANY_WIDTH),
            ColumnAccess::model("joint_gear", 1),
            ColumnAccess::model("joint_limit", 3),
            ColumnAccess::model("joint_damping", 1),
            ColumnAccess::model("joint_limit_gains", 2),
        ];
        if self.num_actions > 0 {
            v.push(ColumnAccess::control("act", self.num_actions));
        }
        v
    }
    fn forward(&self, _: &StepCx, model: &ModelView, control: &View<R>, state: &mut ViewMut<R>) {
        let nb = ArticulationModel::bodies(model);
        let models = ArticulationModel::all(model);
        let (nq, nd) = (width(state, "joint_q"), width(state, "joint_qd"));
        let act = if self.num_actions > 0 { control.col("act") } else { &[] };
        let (gear, limit, damping, gains) = (
            model.param("joint_gear"),
            model.param("joint_limit"),
            model.param("joint_damping"),
            model.param("joint_limit_gains"),
        );
        let [q, qd, tau] = state.cols_mut(["joint_q", "joint_qd", "joint_tau"]);
        for e in 0..model.num_envs() {
            let m = models.env_of(e, nb);
            let (ke, kd) = (R::from_f64(gains[2 * e]), R::from_f64(gains[2 * e + 1]));
            for (k, qi, di, a) in dofs(&m, &gear[e * nb..]) {
                let b = e * nb + k;
                let (x, v) = (q[e * nq + qi], qd[e * nd + di]);
                let mut t = -R::from_f64(damping[b]) * v;
                if let Some(a) = a {
                    t += R::from_f64(self.scale * gear[b]) * act[e * self.num_actions + a];
                }
                if limit[3 * b] != 0.0 {
                    let (lo, hi) = (limit[3 * b + 1], limit[3 * b + 2]);
                    if x.to_f64() < lo {
                        t += ke * (R::from_f64(lo) - x) - kd * v;
                    } else if x.to_f64() > hi {
                        t += ke * (R::from_f64(hi) - x) - kd * v;
                    }
                }
                tau[e * nd + di] += t;
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
        adj_control: &mut ViewMut<R>,
    ) {
        let nb = ArticulationModel::bodies(model);
        let models = ArticulationModel::all(model);
        let nq = pre.layout().spec("joint_q").map_or(0, |s| s.width);
        let nd = pre.layout().spec("joint_qd").map_or(0, |s| s.width);
        let q = pre.col("joint_q");
        let (gear, limit, damping, gains) = (
            model.param("joint_gear"),
            model.param("joint_limit"),
            model.param("joint_damping"),
            model.param("joint_limit_gains"),
        );
        let [aq, aqd, atau] = adj.cols_mut(["joint_q", "joint_qd", "joint_tau"]);
        let mut aact = if self.num_actions > 0 { Some(adj_control.col_mut("act")) } else { None };
        for e in 0..model.num_envs() {
            let m = models.env_of(e, nb);
            let (ke, kd) = (R::from_f64(gains[2 * e]), R::from_f64(gains[2 * e + 1]));
            for (k, qi, di, a) in dofs(&m, &gear[e * nb..]) {
                let b = e * nb + k;
                let g = atau[e * nd + di];
                aqd[e * nd + di] -= R::from_f64(damping[b]) * g;
                if let (Some(a), Some(aact)) = (a, aact.as_deref_mut()) {
                    aact[e * self.num_actions + a] += R::from_f64(self.scale * gear[b]) * g;
                }
                if limit[3 * b] != 0.0 {
                    let x = q[e * nq + qi].to_f64();
                    if x < limit[3 * b + 1] || x > limit[3 * b + 2] {
                        aq[e * nq + qi] -= ke * g;
                        aqd[e * nd + di] -= kd * g;
                    }
                }
            }
        }
    }
    /// The GPU mirror: `articulation::gpu`.
    fn gpu(&self) -> Option<Box<dyn diffsim_engine::gpu_sim::GpuSystem>> {
        Some(Box::new(*self))
    }
}
