//! What the locomotion tasks (AntRun, Humanoid) read from their torso, body 0 of each env: its
//! pose and velocity from `body_q`/`body_qd`, the heading toward a far target, and the
//! `TorsoBelow` termination flag.

use diffsim_engine::{ColumnAccess, ModelView, Real, StepCx, System, View, ViewMut};
use diffsim_systems::articulation::spatial::{V3, cross, dot, quat_to_mat};

/// The torso (body 0) of one env.
pub struct Torso<R> {
    pub p: V3<R>,
    pub quat: [R; 4],
    pub rot: [[R; 3]; 3],
    /// Angular velocity.
    pub w: V3<R>,
    /// Linear velocity of the torso origin: v_O + ω × p of the spatial twist [ω, v_O].
    pub v: V3<R>,
}

/// Torso kinematics of env e from `body_q` / `body_qd` (`nb` bodies per env).
pub fn torso<R: Real>(bq: &[R], bqd: &[R], nb: usize, e: usize) -> Torso<R> {
    let b = e * nb;
    let p = [bq[7 * b], bq[7 * b + 1], bq[7 * b + 2]];
    let quat = [bq[7 * b + 3], bq[7 * b + 4], bq[7 * b + 5], bq[7 * b + 6]];
    let w = [bqd[6 * b], bqd[6 * b + 1], bqd[6 * b + 2]];
    let wxp = cross(w, p);
    let v = [bqd[6 * b + 3] + wxp[0], bqd[6 * b + 4] + wxp[1], bqd[6 * b + 5] + wxp[2]];
    Torso { p, quat, rot: quat_to_mat(quat), w, v }
}

/// heading · (unit vector from the torso to the target (target_x, ·, 0), in the ground plane).
pub fn heading_to_target<R: Real>(p: V3<R>, rot: &[[R; 3]; 3], target_x: f64) -> R {
    let to = [R::from_f64(target_x) - p[0], R::zero(), -p[2]];
    let heading = [rot[0][0], rot[1][0], rot[2][0]];
    dot(heading, to) / dot(to, to).sqrt()
}

/// `<task>.terminate`: 1 when the torso origin is below `height`, else 0. A flag, not
/// differentiated: its adjoint only clears the flag's (meaningless) cotangent.
#[derive(Clone, Copy, Debug)]
pub struct TorsoBelow {
    pub name: &'static str,
    pub height: f64,
}

impl<R: Real> System<R> for TorsoBelow {
    fn name(&self) -> &str {
        self.name
    }
    fn access(&self) -> Vec<ColumnAccess> {
        vec![ColumnAccess::state("body_q", 7), ColumnAccess::write("terminated", 1)]
    }
    fn forward(&self, _: &StepCx, model: &ModelView, _: &View<R>, state: &mut ViewMut<R>) {
        let nb = model.count("joint_kind");
        let [bq, t] = state.cols_mut(["body_q", "terminated"]);
        for e in 0..model.num_envs() {
            t[e] = R::from_f64(if bq[7 * e * nb + 1].to_f64() < self.height { 1.0 } else { 0.0 });
        }
    }
    fn adjoint(&self, _: &StepCx, _: &ModelView, _: &View<R>, _: &View<R>, adj: &mut ViewMut<R>, _: &mut ViewMut<R>) {
        adj.col_mut("terminated").fill(R::zero());
    }
    /// `ant_run_gpu`: one invocation per env.
    fn gpu(&self) -> Option<Box<dyn diffsim_engine::gpu_sim::GpuSystem>> {
        Some(Box::new(*self))
    }
}
