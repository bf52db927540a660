//! Particle systems: force accumulation (gravity, springs, ground contact, actuation) and the
//! semi-implicit Euler integrator, each forward + adjoint in its own file.
//!
//! A substep runs, in order:
//! 1. `particles.clear_forces`  f ← 0
//! 2. `particles.gravity`       f += m g
//! 3. `particles.springs`       f += spring-damper forces
//! 4. `particles.ground_contact` f += penalty normal + capped friction
//! 5. `particles.actuation`     f += scale · act   (only when the scene has actuated particles)
//! 6. `particles.integrate`     qd += dt f / m ; q += dt qd

pub mod actuation;
pub mod clear_forces;
pub mod gpu;
pub mod gravity;
pub mod ground;
pub mod integrate;
pub mod integrate_gpu;
pub mod springs;

pub use actuation::Actuation;
pub use clear_forces::ClearForces;
pub use gravity::Gravity;
pub use ground::GroundContact;
pub use integrate::Integrate;
pub use springs::Springs;

use diffsim_engine::{Real, Schedule, Stage};

/// The substep systems above, in order, on a schedule of env step `dt` and `substeps`.
/// `actuation` is inserted before integration when given; `ground` toggles contact.
pub fn schedule<R: Real>(dt: f64, substeps: usize, ground: bool, actuation: Option<Actuation>) -> Schedule<R> {
    let mut s = Schedule::new(dt, substeps).with(Stage::Substep, ClearForces).with(Stage::Substep, Gravity);
    s = s.with(Stage::Substep, Springs);
    if ground {
        s = s.with(Stage::Substep, GroundContact);
    }
    if let Some(a) = actuation {
        s = s.with(Stage::Substep, a);
    }
    s.with(Stage::Substep, Integrate)
}
