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

/// A rigid body: mass, principal inertia about its centre of mass (body frame), the centre of
/// mass in the body frame, and the initial pose and velocities (used by a free root joint; the
/// other bodies' poses follow from their joints' coordinates).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Body {
    pub mass: f32,
    pub inertia: Vec3,
    pub com: Vec3,
    pub pos: Vec3,
    pub rot: Quat,
    pub vel: Vec3,
    pub ang_vel: Vec3,
}

impl Body {
    /// A body at rest at `pos` with principal inertia `inertia` about its origin (= its COM).
    pub fn at(pos: Vec3, mass: f32, inertia: Vec3) -> Self {
        Self { mass, inertia, com: Vec3::ZERO, pos, rot: Quat::IDENTITY, vel: Vec3::ZERO, ang_vel: Vec3::ZERO }
    }
}

/// How a joint constrains its child relative to its parent. Axes are unit vectors in the
/// parent's joint frame, which is the parent body frame translated to `parent_anchor`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum JointKind {
    /// 6 dof; only as the root of an articulation (parent = world). Coordinates: position and
    /// rotation of the child body frame; velocities: spatial twist (ω, v at the world origin).
    Free,
    Fixed,
    Revolute {
        axis: Vec3,
    },
    Prismatic {
        axis: Vec3,
    },
    /// 3 dof: rotation of the child relative to the parent (quaternion), angular velocity in the
    /// parent frame.
    Ball,
}

/// A joint of an articulation; `parent = None` attaches the child to the world.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Joint {
    pub parent: Option<Entity>,
    pub child: Entity,
    pub kind: JointKind,
    /// The joint's pivot in the parent body frame and in the child body frame.
    pub parent_anchor: Vec3,
    pub child_anchor: Vec3,
    /// Lower and upper limit of a revolute (rad) or prismatic (m) coordinate, enforced by a
    /// penalty spring-damper (`limit_ke`, `limit_kd` of the articulation).
    pub limit: Option<(f32, f32)>,
    /// Added to the diagonal of the mass matrix (reflected rotor inertia).
    pub armature: f32,
    /// Viscous joint damping, generalized force −damping · qd.
    pub damping: f32,
    /// Initial coordinate and velocity of a revolute or prismatic joint.
    pub q0: f32,
    pub qd0: f32,
    /// Generalized force per unit action; 0 means not actuated.
    pub gear: f32,
}

impl Joint {
    /// An unactuated, undamped, unlimited joint at rest.
    pub fn new(
        parent: Option<Entity>,
        child: Entity,
        kind: JointKind,
        parent_anchor: Vec3,
        child_anchor: Vec3,
    ) -> Self {
        Self {
            parent,
            child,
            kind,
            parent_anchor,
            child_anchor,
            limit: None,
            armature: 0.0,
            damping: 0.0,
            q0: 0.0,
            qd0: 0.0,
            gear: 0.0,
        }
    }
}

/// Collision geometry in its shape frame. A capsule's axis is the frame's local y.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Geometry {
    Sphere { radius: f32 },
    Capsule { radius: f32, half_height: f32 },
    Box { half_extents: Vec3 },
}

/// A collision shape attached to a body, with penalty contact parameters (normal stiffness
/// `ke`, damping `kd`, tangential viscous friction `kf`, Coulomb coefficient `mu`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shape {
    pub body: Entity,
    pub geometry: Geometry,
    /// Pose of the shape frame in the body frame.
    pub pos: Vec3,
    pub rot: Quat,
    pub ke: f32,
    pub kd: f32,
    pub kf: f32,
    pub mu: f32,
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

/// A tetrahedral finite element over four particles of its environment. Its rest shape is the
/// particles' initial positions (vertices 1–3 must lie on the positive side of vertex 0's
/// opposite face: det[x₁−x₀, x₂−x₀, x₃−x₀] > 0); `material` is an entity carrying a
/// `Material::Elastic` (Lamé μ, λ from Young's modulus and Poisson ratio); `damping` is the
/// viscous coefficient k_d of the FEM systems (Pa·s, Rewarped's `k_damp`). Muscle activation is
/// state (`tet_activation`), not a component.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tetrahedron {
    pub vertices: [Entity; 4],
    pub material: Entity,
    pub damping: f32,
}
