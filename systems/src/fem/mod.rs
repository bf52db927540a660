//! FEM systems: linear tetrahedra with the stable neo-Hookean energy, per-tetrahedron damping and
//! muscle activation (Rewarped's SoftJumper, rewarped.md §5), and the meshes they run on.
//!
//! Tetrahedra are ECS entities (`components::Tetrahedron`) referencing four particle entities and
//! a material entity; `Scene::pack` turns their rest shapes into the `tet_params` model column.
//! The dynamics reuse the particle systems: a substep runs, in order,
//! 1. `particles.clear_forces`   f ← 0
//! 2. `particles.gravity`        f += m g
//! 3. `fem.tetrahedra`           f += elastic + damping + muscle forces
//! 4. `particles.ground_contact` f += penalty normal + capped friction (when the scene has ground)
//! 5. `particles.integrate`      semi-implicit Euler
//!
//! and, once per env step before the substeps, `fem.activation` maps actions to activations.

pub mod activation;
pub mod mesh;
pub mod tetrahedra;

pub use activation::Activation;
pub use mesh::{BoxWithLegs, MeshError, TetMesh};
pub use tetrahedra::Tetrahedra;

use diffsim_engine::{Real, Schedule, Stage};

use crate::particles::{ClearForces, Gravity, GroundContact, Integrate};

/// The substep systems above on a schedule of env step `dt` and `substeps`; with `activation`
/// the tetrahedra read `tet_activation`, written once per step from the `act` control.
pub fn schedule<R: Real>(dt: f64, substeps: usize, ground: bool, activation: Option<Activation>) -> Schedule<R> {
    let mut s = Schedule::new(dt, substeps);
    if let Some(a) = activation {
        s = s.with(Stage::Step, a);
    }
    s = s
        .with(Stage::Substep, ClearForces)
        .with(Stage::Substep, Gravity)
        .with(Stage::Substep, Tetrahedra { activated: activation.is_some() });
    if ground {
        s = s.with(Stage::Substep, GroundContact);
    }
    s.with(Stage::Substep, Integrate)
}
