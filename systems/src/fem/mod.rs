//! FEM systems: linear tetrahedra with the stable neo-Hookean energy, per-tetrahedron damping and
//! muscle activation (Rewarped's SoftJumper, rewarped.md §5), and the meshes they run on.
//!
//! Tetrahedra are ECS entities (`components::Tetrahedron`) referencing four particle entities and
//! a material entity; `Scene::pack` turns their rest shapes into the `tet_params` model column.
//! The dynamics reuse the particle systems: a substep runs, in order,
//! 1. `particles.clear_forces`   f ← 0
//! 2. `particles.gravity`        f += m g
//! 3. `fem.tetrahedra`           f += elastic + damping + muscle forces (volumetric activation)
//!    `fem.fiber_muscles`        f += contraction along per-tet fibers (optional, `tet_fiber`)
//! 4. `particles.ground_contact` f += penalty normal + capped friction (when the scene has ground)
//! 5. `particles.integrate`      semi-implicit Euler
//!
//! and, once per env step before the substeps, `fem.activation` maps actions to activations.
//!
//! Every FEM system has GPU kernels (forward and adjoint, `gpu.rs` and `wgsl/`).

pub mod activation;
pub mod fiber;
pub mod gpu;
pub mod mesh;
pub mod tetrahedra;

pub use activation::Activation;
pub use fiber::FiberMuscles;
pub use mesh::{BoxWithLegs, MeshError, TetMesh};
pub use tetrahedra::Tetrahedra;

use diffsim_engine::{ColumnSpec, EngineError, Packed, Real, SceneError, Schedule, Stage};

use crate::particles::{ClearForces, Gravity, GroundContact, Integrate};

/// Adds the model column `tet_fiber` `[T, 3]`: one fiber direction per tetrahedron (rest frame,
/// normalized here), `fibers` holding every env's tetrahedra in order. A zero direction is an
/// error naming the tetrahedron.
pub fn add_fibers(packed: &mut Packed, fibers: &[[f64; 3]]) -> Result<(), EngineError> {
    let envs = packed.model.topology.num_envs().max(1);
    let per_env = fibers.len() / envs;
    let mut data = Vec::with_capacity(3 * fibers.len());
    for (t, d) in fibers.iter().enumerate() {
        let n = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
        if !(n.is_finite() && n > 0.0) {
            let (kind, field, expected) = ("tetrahedron fiber", "length", "a finite direction of length > 0");
            return Err(SceneError::BadParameter { kind, env: t / per_env.max(1), field, value: n, expected }.into());
        }
        data.extend(d.map(|x| x / n));
    }
    packed.add_param(ColumnSpec::new("tet_fiber", per_env, 3), data)
}

/// The substep systems above on a schedule of env step `dt` and `substeps`; with `activation`
/// the tetrahedra read `tet_activation`, written once per step from the `act` control, and with
/// `fibers` that activation also contracts the fibers of `tet_fiber` (see `add_fibers`).
pub fn schedule<R: Real>(
    dt: f64,
    substeps: usize,
    ground: bool,
    activation: Option<Activation>,
    fibers: Option<FiberMuscles>,
) -> Schedule<R> {
    let mut s = Schedule::new(dt, substeps);
    if let Some(a) = activation {
        s = s.with(Stage::Step, a);
    }
    s = s
        .with(Stage::Substep, ClearForces)
        .with(Stage::Substep, Gravity)
        .with(Stage::Substep, Tetrahedra { activated: activation.is_some() });
    if let Some(f) = fibers {
        s = s.with(Stage::Substep, f);
    }
    if ground {
        s = s.with(Stage::Substep, GroundContact);
    }
    s.with(Stage::Substep, Integrate)
}
