//! Articulated rigid bodies in generalized coordinates (Featherstone, world frame).
//!
//! A substep runs, in order:
//! 1. `articulation.clear`          τ ← 0, f_ext ← 0
//! 2. `articulation.fk`             body poses and twists from (q, q̇)
//! 3. `articulation.ground_contact` f_ext += penalty contact of shapes with the ground
//!    (`articulation.shape_contact`, between bodies, is added by tasks that need it)
//! 4. `articulation.joint_forces`   τ += actuation, limits, damping
//! 5. `articulation.integrate`      q̈ by RNEA + CRBA + Cholesky; semi-implicit Euler
//!
//! The Post stage usually runs `articulation.fk` once more so observations see the new poses.

pub mod clear;
pub mod contact;
pub mod contact_gpu;
pub mod fk;
pub mod gpu;
pub mod integrate;
pub mod joint_forces;
pub mod kinematics;
pub mod shape_contact;
pub mod spatial;

pub use clear::ClearForces;
pub use contact::GroundContact;
pub use fk::ForwardKinematics;
pub use integrate::Integrate;
pub use joint_forces::JointForces;
pub use shape_contact::ShapeContact;

use diffsim_engine::{Real, Schedule, Stage};

/// Which contacts a schedule evaluates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Contacts {
    /// Shapes against the ground plane.
    pub ground: bool,
    /// Spheres and capsules of different, non-adjacent bodies against each other.
    pub shapes: bool,
}

/// The substep systems above on a schedule of env step `dt` and `substeps`; `contacts` selects
/// the contact systems, `joint_forces` configures actuation. FK also runs in the Post stage.
pub fn schedule<R: Real>(dt: f64, substeps: usize, contacts: Contacts, joint_forces: JointForces) -> Schedule<R> {
    let mut s = Schedule::new(dt, substeps).with(Stage::Substep, ClearForces);
    if contacts.ground || contacts.shapes {
        s = s.with(Stage::Substep, ForwardKinematics);
    }
    if contacts.ground {
        s = s.with(Stage::Substep, GroundContact);
    }
    if contacts.shapes {
        s = s.with(Stage::Substep, ShapeContact);
    }
    s.with(Stage::Substep, joint_forces).with(Stage::Substep, Integrate).with(Stage::Post, ForwardKinematics)
}
