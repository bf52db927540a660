//! MLS-MPM deformables with kinematic rigid colliders (DESIGN.md §3 "MPM", rewarped.md §4).
//!
//! Particles are ECS entities (`MpmParticle` on an `EnvId`), packed per env into State columns
//! `mpm_x`, `mpm_v` [P, 3], `mpm_F` (trial), `mpm_Fp` (after plasticity), `mpm_C`, `mpm_stress`
//! [P, 9] and Model columns
//! `mpm_mass_vol` [P, 2], `mpm_material` [P, 5]. The per-env background grid is scratch owned by
//! `mpm.transfer` (never State): only particles cross substeps, so the tape's checkpoints and the
//! backward's recompute buffers hold particles, not grids.
//!
//! A substep runs, in order:
//! 1. `mpm.material`          Fp ← Z(F) (plasticity), τ ← τ(Fp)      (`material.rs`)
//! 2. `mpm.transfer`          P2G, grid update + collider + walls, G2P, F ← (I + Δt C) Fp
//! 3. `mpm.collider_integrate` q ← q + Δt q̇ (when the scene has a collider)
//!
//! and, once per env step before the substeps, `mpm.collider_drive` maps actions to q̇.
//! With a multi-body coupling (`collider::Bodies`, posed by a hinge tree, `kinematic.rs`) the
//! step runs `mpm.joint_drive` and the substep `mpm.kinematic_fk` before the transfer and
//! `mpm.joint_integrate` after it instead.

pub mod collider;
pub mod gpu;
pub mod kinematic;
pub mod kinematic_gpu;
pub mod material;
pub mod sand;
pub mod svd;
pub mod transfer;

pub use collider::{Bodies, BodyShape, Collider, ColliderDrive, ColliderIntegrate, Coupling, Shape};
pub use kinematic::{Hinge, JointDrive, JointIntegrate, KinematicFk, KinematicTree};
pub use material::Material;
pub use transfer::{Floor, Grid, Transfer};

use diffsim_engine::components::EnvId;
use diffsim_engine::{ColumnSpec, EngineError, Packed, Real, Scene, SceneError, Schedule, Stage};
use glam::Vec3;

/// Constitutive model of an MPM particle, with its Lamé parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MpmMaterial {
    /// Fixed-corotated elasticity (Stomakhin et al. 2012).
    Corotated {
        mu: f64,
        lambda: f64,
    },
    /// Von Mises plasticity on the Hencky strain with Hencky elasticity (PlasticineLab).
    Plasticine {
        mu: f64,
        lambda: f64,
        yield_stress: f64,
    },
    NeoHookean {
        mu: f64,
        lambda: f64,
    },
    /// Weakly compressible fluid: F ← J^{1/3} I, τ = λ J (J − 1) I.
    Water {
        lambda: f64,
    },
    /// Drucker–Prager sand with Hencky elasticity (Klár et al. 2016, `sand.rs`): friction angle
    /// in degrees, cohesion as the log-strain trace of the yield cone's tip (0: cohesionless).
    Sand {
        mu: f64,
        lambda: f64,
        friction_angle: f64,
        cohesion: f64,
    },
}

impl MpmMaterial {
    /// Lamé parameters from Young's modulus and Poisson's ratio.
    pub fn lame(youngs: f64, poisson: f64) -> (f64, f64) {
        (youngs / (2.0 * (1.0 + poisson)), youngs * poisson / ((1.0 + poisson) * (1.0 - 2.0 * poisson)))
    }
    fn params(&self) -> [f64; material::PARAMS] {
        match *self {
            MpmMaterial::Corotated { mu, lambda } => [material::COROTATED, mu, lambda, 0.0, 0.0],
            MpmMaterial::Plasticine { mu, lambda, yield_stress } => {
                [material::PLASTICINE, mu, lambda, yield_stress, 0.0]
            }
            MpmMaterial::NeoHookean { mu, lambda } => [material::NEO_HOOKEAN, mu, lambda, 0.0, 0.0],
            MpmMaterial::Water { lambda } => [material::WATER, 0.0, lambda, 0.0, 0.0],
            MpmMaterial::Sand { mu, lambda, friction_angle, cohesion } => {
                [sand::SAND, mu, lambda, sand::alpha(friction_angle), cohesion]
            }
        }
    }
}

/// One MPM particle: initial position and velocity, mass, volume and material. Its row in the
/// mirror is its `Slot` among the MPM particles of its env (spawn order).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MpmParticle {
    pub x: Vec3,
    pub v: Vec3,
    pub mass: f64,
    pub volume: f64,
    pub material: MpmMaterial,
}

/// Row of an MPM particle in its env's columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct MpmSlot(pub u32);

/// The MPM particles of environment `env`, in mirror order (the batch query DESIGN.md §6 asks for).
pub fn particles(scene: &Scene, env: usize) -> Vec<MpmParticle> {
    let mut v: Vec<(MpmSlot, MpmParticle)> = scene
        .world
        .query::<(&EnvId, &MpmSlot, &MpmParticle)>()
        .iter()
        .filter(|(id, _, _)| id.0 as usize == env)
        .map(|(_, s, p)| (*s, *p))
        .collect();
    v.sort_by_key(|x| x.0);
    v.into_iter().map(|x| x.1).collect()
}

/// Packs the `MpmParticle`s of every env into the MPM columns (F = I, C = 0, τ = 0). Errors if
/// the envs hold different counts or a mass/volume is not positive and finite.
pub fn pack(scene: &Scene, packed: &mut Packed) -> Result<usize, EngineError> {
    let n = scene.num_envs();
    let per_env: Vec<Vec<MpmParticle>> = (0..n).map(|e| particles(scene, e)).collect();
    let np = per_env.first().map_or(0, Vec::len);
    for (env, ps) in per_env.iter().enumerate() {
        if ps.len() != np {
            return Err(SceneError::EnvMismatch { kind: "mpm particles", env, expected: np, found: ps.len() }.into());
        }
        for p in ps {
            for (field, value) in [("mass", p.mass), ("volume", p.volume)] {
                if !value.is_finite() || value <= 0.0 {
                    return Err(SceneError::BadParameter {
                        kind: "mpm particle",
                        env,
                        field,
                        value,
                        expected: "a finite value > 0",
                    }
                    .into());
                }
            }
        }
    }
    let all = per_env.iter().flatten();
    let x: Vec<f32> = all.clone().flat_map(|p| p.x.to_array()).collect();
    let v: Vec<f32> = all.clone().flat_map(|p| p.v.to_array()).collect();
    let eye: Vec<f32> = all.clone().flat_map(|_| [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]).collect();
    packed.state.add_column(ColumnSpec::new("mpm_x", np, 3), x)?;
    packed.state.add_column(ColumnSpec::new("mpm_v", np, 3), v)?;
    packed.state.add_column(ColumnSpec::new("mpm_F", np, 9), eye.clone())?;
    packed.state.add_column(ColumnSpec::new("mpm_Fp", np, 9), eye)?;
    packed.add_state(ColumnSpec::new("mpm_C", np, 9))?;
    packed.add_state(ColumnSpec::new("mpm_stress", np, 9))?;
    packed.add_param(ColumnSpec::new("mpm_mass_vol", np, 2), all.clone().flat_map(|p| [p.mass, p.volume]).collect())?;
    packed.add_param(
        ColumnSpec::new("mpm_material", np, material::PARAMS),
        all.flat_map(|p| p.material.params()).collect(),
    )?;
    Ok(np)
}

/// Adds `collider_q` (initial pose per env) and `collider_qd` [1, 4] state columns, and the
/// model column `collider_shapes` [S, 8] describing `collider`'s shapes for readers other than
/// its systems (e.g. the renderer): (kind, centre xyz, a, b, c, 0) with kind 0 capsule and
/// 1 cylinder (a = radius, b = half height, axis local z) or 2 box (a, b, c = half extents).
pub fn pack_collider(packed: &mut Packed, collider: &Collider, poses: &[[f64; 4]]) -> Result<(), EngineError> {
    let q: Vec<f32> = poses.iter().flat_map(|p| p.map(|x| x as f32)).collect();
    packed.state.add_column(ColumnSpec::new("collider_q", 1, 4), q)?;
    let row = |s: &collider::Shape| match *s {
        collider::Shape::Capsule { center: c, radius, half_height } => {
            [0.0, c[0], c[1], c[2], radius, half_height, 0.0, 0.0]
        }
        collider::Shape::Cylinder { center: c, radius, half_height } => {
            [1.0, c[0], c[1], c[2], radius, half_height, 0.0, 0.0]
        }
        collider::Shape::Box { center: c, half_extents: h } => [2.0, c[0], c[1], c[2], h[0], h[1], h[2], 0.0],
    };
    let shapes: Vec<f64> = poses.iter().flat_map(|_| collider.shapes.iter().flat_map(row)).collect();
    packed.add_param(ColumnSpec::new("collider_shapes", collider.shapes.len(), 8), shapes)?;
    packed.add_state(ColumnSpec::new("collider_qd", 1, 4))
}

/// Spawns a particle entity in an env (see `MpmParticle`); `slot` is its row.
pub fn spawn(env: &mut diffsim_engine::EnvBuilder, slot: u32, p: MpmParticle) {
    env.spawn((MpmSlot(slot), p));
}

/// The substep systems (module docs) on a schedule of env step `dt` and `substeps`, with an
/// optional collider driven by `drive`; `threads` > 1 lets a lone env use that many threads.
pub fn schedule<R: Real>(
    dt: f64,
    substeps: usize,
    grid: Grid,
    collider: Option<(Collider, ColliderDrive)>,
    threads: usize,
) -> Schedule<R> {
    let mut s = Schedule::new(dt, substeps);
    let (collider, drive) = match collider {
        Some((c, d)) => (Some(c), Some(d)),
        None => (None, None),
    };
    if let Some(d) = drive {
        s = s.with(Stage::Step, d);
    }
    let has_collider = collider.is_some();
    s = s
        .with(Stage::Substep, Material { threads })
        .with(Stage::Substep, Transfer { grid, collider: collider.map(Coupling::Rigid), threads });
    if has_collider {
        s = s.with(Stage::Substep, ColliderIntegrate);
    }
    s
}
