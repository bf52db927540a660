//! `articulation.fk`: writes every body's pose `body_q` (x, quaternion xyzw) and spatial twist
//! `body_qd` from the joint coordinates, for the contacts and observations that read bodies.
//!
//! Forward: `kinematics` (see its module for the equations), rotation matrix → quaternion.
//! Adjoint: by hand, `kinematics_adjoint` after the quaternion's adjoint is pulled back through
//! `mat_to_quat`; FK is a pure function of (joint_q, joint_qd) and its outputs are overwritten.

use diffsim_engine::{ANY_WIDTH, ColumnAccess, ModelView, Real, StepCx, System, View, ViewMut, vjp};

use super::kinematics::{
    ArticulationModel, Kinematics, KinematicsBar, kinematics, kinematics_adjoint, kinematics_into,
};
use super::spatial::M3;

#[derive(Clone, Copy, Debug, Default)]
pub struct ForwardKinematics;

/// Quaternion (x, y, z, w) of a rotation matrix (Shepperd's method, branch on the largest
/// diagonal term for accuracy; derivatives follow the chosen branch).
pub fn mat_to_quat<R: Real>(m: &M3<R>) -> [R; 4] {
    let half = R::from_f64(0.5);
    let one = R::one();
    let tr = m[0][0] + m[1][1] + m[2][2];
    let t = [tr.to_f64(), m[0][0].to_f64(), m[1][1].to_f64(), m[2][2].to_f64()];
    let best = (0..4).max_by(|&a, &b| t[a].total_cmp(&t[b])).unwrap_or(0);
    match best {
        0 => {
            let s = (one + tr).sqrt() * R::from_f64(2.0);
            [(m[2][1] - m[1][2]) / s, (m[0][2] - m[2][0]) / s, (m[1][0] - m[0][1]) / s, s * half * half]
        }
        1 => {
            let s = (one + m[0][0] - m[1][1] - m[2][2]).sqrt() * R::from_f64(2.0);
            [s * half * half, (m[0][1] + m[1][0]) / s, (m[0][2] + m[2][0]) / s, (m[2][1] - m[1][2]) / s]
        }
        2 => {
            let s = (one + m[1][1] - m[0][0] - m[2][2]).sqrt() * R::from_f64(2.0);
            [(m[0][1] + m[1][0]) / s, s * half * half, (m[1][2] + m[2][1]) / s, (m[0][2] - m[2][0]) / s]
        }
        _ => {
            let s = (one + m[2][2] - m[0][0] - m[1][1]).sqrt() * R::from_f64(2.0);
            [(m[0][2] + m[2][0]) / s, (m[1][2] + m[2][1]) / s, s * half * half, (m[1][0] - m[0][1]) / s]
        }
    }
}

impl<R: Real> System<R> for ForwardKinematics {
    fn name(&self) -> &str {
        "articulation.fk"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        vec![
            ColumnAccess::state("joint_q", ANY_WIDTH),
            ColumnAccess::state("joint_qd", ANY_WIDTH),
            ColumnAccess::write("body_q", 7),
            ColumnAccess::write("body_qd", 6),
        ]
    }
    fn forward(&self, _: &StepCx, model: &ModelView, _: &View<R>, state: &mut ViewMut<R>) {
        let nb = ArticulationModel::bodies(model);
        let models = ArticulationModel::all(model);
        let (nq, nd) = (width(state, "joint_q"), width(state, "joint_qd"));
        let [q, qd, bq, bqd] = state.cols_mut(["joint_q", "joint_qd", "body_q", "body_qd"]);
        for e in 0..model.num_envs() {
            let m = models.env_of(e, nb);
            let kin = kinematics(&m, &q[e * nq..(e + 1) * nq], &qd[e * nd..(e + 1) * nd]);
            for k in 0..nb {
                let b = e * nb + k;
                let quat = mat_to_quat(&kin.rot[k]);
                bq[7 * b..7 * b + 3].copy_from_slice(&kin.pos[k]);
                bq[7 * b + 3..7 * b + 7].copy_from_slice(&quat);
                bqd[6 * b..6 * b + 6].copy_from_slice(&kin.twist[k]);
            }
        }
    }
    /// By hand through [`kinematics_adjoint`]: ∂L/∂body_q splits into x̄ and quaternion adjoints,
    /// the latter pulled back to R̄ through `mat_to_quat` (`engine::vjp`, branch as in the
    /// forward); ∂L/∂body_qd is the twist adjoint. body_q and body_qd are overwritten, so their
    /// adjoints are consumed (zeroed).
    fn adjoint(
        &self,
        _: &StepCx,
        model: &ModelView,
        _: &View<R>,
        pre: &View<R>,
        adj_state: &mut ViewMut<R>,
        _: &mut ViewMut<R>,
    ) {
        let nb = ArticulationModel::bodies(model);
        let models = ArticulationModel::all(model);
        let envs = pre.num_envs();
        let (pq, pqd) = (pre.col("joint_q"), pre.col("joint_qd"));
        let (nq, nd) = (pq.len() / envs.max(1), pqd.len() / envs.max(1));
        let [aq, aqd, abq, abqd] = adj_state.cols_mut(["joint_q", "joint_qd", "body_q", "body_qd"]);
        let (mut kin, mut bar) = (Kinematics::<f64>::default(), KinematicsBar::default());
        let (mut q_bar, mut qd_bar) = (vec![0.0; nq], vec![0.0; nd]);
        for e in 0..envs {
            let m = models.env_of(e, nb);
            let q: Vec<f64> = pq[e * nq..(e + 1) * nq].iter().map(|x| x.to_f64()).collect();
            let qd: Vec<f64> = pqd[e * nd..(e + 1) * nd].iter().map(|x| x.to_f64()).collect();
            kinematics_into(&m, &q, &qd, &mut kin);
            bar.reset(nb, nd);
            for k in 0..nb {
                let b = e * nb + k;
                let x_bar: [f64; 7] = std::array::from_fn(|i| abq[7 * b + i].to_f64());
                bar.pos[k] = [x_bar[0], x_bar[1], x_bar[2]];
                let quat_bar = [x_bar[3], x_bar[4], x_bar[5], x_bar[6]];
                let rot: [f64; 9] = std::array::from_fn(|i| kin.rot[k][i / 3][i % 3]);
                let g = vjp(rot, quat_bar, |r| {
                    mat_to_quat(&std::array::from_fn(|i| [r[3 * i], r[3 * i + 1], r[3 * i + 2]]))
                });
                bar.rot[k] = std::array::from_fn(|i| [g[3 * i], g[3 * i + 1], g[3 * i + 2]]);
                bar.twist[k] = std::array::from_fn(|i| abqd[6 * b + i].to_f64());
                abq[7 * b..7 * b + 7].fill(R::zero());
                abqd[6 * b..6 * b + 6].fill(R::zero());
            }
            q_bar.fill(0.0);
            qd_bar.fill(0.0);
            kinematics_adjoint(&m, &q, &qd, &kin, &mut bar, &mut q_bar, &mut qd_bar);
            aq[e * nq..(e + 1) * nq].iter_mut().zip(&q_bar).for_each(|(a, &g)| *a += R::from_f64(g));
            aqd[e * nd..(e + 1) * nd].iter_mut().zip(&qd_bar).for_each(|(a, &g)| *a += R::from_f64(g));
        }
    }
    /// The GPU mirror: `articulation::gpu`.
    fn gpu(&self) -> Option<Box<dyn diffsim_engine::gpu_sim::GpuSystem>> {
        Some(Box::new(*self))
    }
}

/// Scalars per env of a `[1, width]` state column.
pub fn width<R: Real>(state: &ViewMut<R>, name: &str) -> usize {
    state.layout().spec(name).map_or(0, |s| s.width)
}
