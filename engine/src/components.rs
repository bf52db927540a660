//! ECS components of the Model: small plain structs spawned on hecs entities, one entity per
//! particle, spring, body, joint, shape, tetrahedron or material, each tagged with its `EnvId`.
//!
//! Components hold the *initial* state and the constant parameters; the packed mirrors hold the
//! evolving state, and flow back here only when asked (`Scene::sync_particles`). Conventions: SI
//! units, y is up (as in Warp/Rewarped).

use glam::{Quat, Vec3};
use hecs::Entity;

/// Which environment an entity belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EnvId(pub u32);

/// Order of an entity among entities of its kind within its environment (its row in the mirror).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Slot(pub u32);

/// A point mass. `q`, `qd` are its initial position and velocity.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Particle {
    pub q: Vec3,
    pub qd: Vec3,
    pub mass: f32,
    pub radius: f32,
}

/// A damped spring between two particles of the same environment (Hooke + dashpot along the axis).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spring {
    pub a: Entity,
    pub b: Entity,
    pub rest_length: f32,
    pub ke: f32,
    pub kd: f32,
}

/// The ground plane y = 0 with penalty contact: normal stiffness `ke`, normal damping `kd`,
/// tangential viscous friction `kf` capped by Coulomb `mu` · normal force.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ground {
    pub ke: f32,
    pub kd: f32,
    pub kf: f32,
    pub mu: f32,
}

impl Default for Ground {
    fn default() -> Self {
        Self { ke: 1.0e4, kd: 10.0, kf: 10.0, mu: 0.5 }
    }
}

/// Gravity of an environment, m/s².
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gravity(pub Vec3);

impl Default for Gravity {
    fn default() -> Self {
        Self(Vec3::new(0.0, -9.81, 0.0))
    }
}

/// A rigid body: mass, diagonal inertia in the body frame, initial pose and velocities.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Body {
    pub mass: f32,
    pub inertia: Vec3,
    pub pos: Vec3,
    pub rot: Quat,
    pub vel: Vec3,
    pub ang_vel: Vec3,
}

/// How a joint constrains its child relative to its parent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum JointKind {
    Free,
    Fixed,
    Revolute { axis: Vec3 },
    Prismatic { axis: Vec3 },
    Ball,
}

/// A joint of an articulation; `parent = None` attaches the child to the world.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Joint {
    pub parent: Option<Entity>,
    pub child: Entity,
    pub kind: JointKind,
    /// Joint frame in parent and child body frames.
    pub parent_anchor: Vec3,
    pub child_anchor: Vec3,
    pub limit: Option<(f32, f32)>,
    /// Actuator gear (torque per unit action).
    pub gear: f32,
}

/// Collision geometry in a body's frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Geometry {
    Sphere { radius: f32 },
    Capsule { radius: f32, half_height: f32 },
    Box { half_extents: Vec3 },
}

/// A collision shape attached to a body.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shape {
    pub body: Entity,
    pub geometry: Geometry,
    pub offset: Vec3,
    pub friction: f32,
}

/// Constitutive model of a continuum material (MPM particles or FEM tetrahedra).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Material {
    /// Young's modulus, Poisson ratio.
    Elastic { youngs: f32, poisson: f32 },
    /// Elastic + von Mises plasticity with yield stress.
    Plasticine { youngs: f32, poisson: f32, yield_stress: f32 },
    /// Weakly compressible fluid with bulk modulus.
    Water { bulk: f32 },
    /// Drucker-Prager sand with friction angle in degrees.
    Sand { youngs: f32, poisson: f32, friction_angle: f32 },
}

/// A tetrahedral finite element over four particles, with a material entity and muscle activation index.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tetrahedron {
    pub vertices: [Entity; 4],
    pub material: Entity,
}
