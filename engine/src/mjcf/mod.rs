//! A loader for a subset of MJCF (MuJoCo's XML model format) that produces a plain description,
//! [`MjcfModel`], and spawns it as `Body`, `Joint` and `Shape` entities of one environment.
//!
//! # Supported
//! - `<mujoco model=>` with, in any order: `<compiler>`, `<option>`, `<default>`, `<worldbody>`
//!   (several are merged), `<actuator>`.
//! - `<compiler angle="degree|radian" coordinate="local" eulerseq= inertiafromgeom="auto|true|false"
//!   autolimits= boundmass= boundinertia=>`.
//! - `<option timestep= gravity= integrator=>` (the integrator name is stored, not applied).
//! - `<default>` classes, nested with inheritance, for `<joint>`, `<geom>` and `<motor>`; `class=`
//!   on elements and `childclass=` on bodies.
//! - `<body name= childclass= pos= quat|euler|axisangle|xyaxes|zaxis=>`, nested.
//! - `<joint type="hinge|slide|ball|free" pos= axis= range= limited= armature= damping=>` and
//!   `<freejoint>`; `stiffness`, `springref`, `ref`, `frictionloss` only when 0. Several joints in one
//!   body are chained through massless intermediate bodies (see [`MjcfModel::spawn`]).
//! - `<geom type="sphere|capsule|box|plane" size= fromto= pos= orientation density= mass= friction=
//!   condim="1|3" contype= conaffinity=>`; `fromto` on capsules; planes only directly in
//!   `<worldbody>` (the ground, which must be y = 0 with normal +y after conversion). Mass from
//!   `mass`, else `density` (default 1000) × volume; capsule, sphere and box inertia are exact for
//!   solids. Contact ke/kd/kf/μ come from [`MjcfOptions::contact`] (MJCF has no such fields);
//!   `friction`'s first value overrides μ (its torsional/rolling values are unused, as in MuJoCo
//!   with condim 3); `condim="1"` means frictionless (μ = 0).
//! - `<inertial pos= mass= diaginertia=|fullinertia= orientation>`; without it the mass properties
//!   come from the geoms (MuJoCo's `inertiafromgeom="auto"`). Any inertia, diagonal or not, is
//!   stored as principal moments plus the rotation of the principal axes.
//! - `<actuator><motor joint= gear= ctrlrange= ctrllimited=>` on hinge and slide joints (gear: the
//!   first value; further components must be 0). The motor's gear becomes `Joint::gear`.
//!
//! # Ignored (documented, not physical)
//! - Attributes `rgba`, `material`, `group` on `<geom>`, `<joint>`, `<freejoint>`, `<motor>` and in
//!   `<default>`; `<compiler>` `meshdir`, `texturedir`, `assetdir`, `discardvisual`, `strippath`.
//! - `<geom>` `contype`/`conaffinity` are stored, not used for filtering: a geom with both 0 (which
//!   never collides in MuJoCo) still adds mass but spawns no `Shape`.
//! - Elements `<site>`, `<camera>`, `<light>` (in bodies, `<worldbody>` and `<default>`),
//!   `<size>`, `<visual>`, `<statistic>`, `<sensor>`, `<custom>`, and `<texture>`, `<material>`
//!   inside `<asset>`.
//!
//! # Rejected with an error (file:line:column, element, message)
//! Everything else, in particular `<tendon>`, `<equality>`, `<contact>`, `<keyframe>`,
//! `<include>`, `<frame>`, `<mesh>`/`<hfield>` assets, actuators other than `<motor>`, geom types
//! `cylinder`/`ellipsoid`/`mesh`/`hfield`, static geoms other than a ground plane, `coordinate="global"`,
//! contact solver attributes (`solref`, `solimp`, `margin`, `gap`, ...), limits on ball joints,
//! zero-mass bodies that have joints, a free joint that is not the only joint of a root body,
//! bodies nested deeper than 128, and any attribute not listed above (e.g. body `mocap`,
//! `gravcomp`, joint `stiffness` ≠ 0, motor `forcerange`). Malformed XML and bad values
//! (`pos="1 2"`) name the attribute, its line and what was expected. The loader never panics.
//!
//! # Coordinates
//! MJCF is z-up, the simulator y-up. With [`MjcfOptions::z_up_to_y_up`] every position, axis and
//! orientation is re-expressed by the rotation C = −90° about x, (x, y, z) → (x, z, −y): positions and
//! axes p → C p, body orientations q → C q C⁻¹, shape and principal-axes rotations R → C R, gravity
//! and the ground plane too. The model is thus the MJCF model rotated by C about the origin, with
//! body frames whose identity orientation is upright in the y-up world.

mod inertia;
mod parse;

use std::path::Path;

use glam::{DQuat, DVec3, Quat, Vec3};
use hecs::Entity;
use thiserror::Error;

use crate::components::{Body, Geometry, Ground, Joint, JointKind, Shape};
use crate::scene::EnvBuilder;

/// A loader error: where (file, 1-based line and column), in which element, and what.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{file}:{line}:{column}: <{element}>: {message}")]
pub struct MjcfError {
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub element: String,
    pub message: String,
}

/// Penalty contact parameters given to every spawned shape (MJCF has no such fields).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ContactParams {
    pub ke: f32,
    pub kd: f32,
    pub kf: f32,
    /// Coulomb coefficient; a geom's `friction` attribute (first value) overrides it.
    pub mu: f32,
}

impl Default for ContactParams {
    /// The DFlex/Rewarped Ant values: ke 4e3, kd 1e3, kf 3e2, μ 0.75.
    fn default() -> Self {
        Self { ke: 4.0e3, kd: 1.0e3, kf: 3.0e2, mu: 0.75 }
    }
}

/// Options of the loader.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MjcfOptions {
    /// Rotate the z-up MJCF model into the simulator's y-up convention (see the module docs).
    pub z_up_to_y_up: bool,
    /// Contact parameters of every shape (and of a ground plane).
    pub contact: ContactParams,
    /// Multiplies every joint's `armature` (Rewarped parses its DFlex assets with 5).
    pub armature_scale: f32,
}

impl Default for MjcfOptions {
    fn default() -> Self {
        Self { z_up_to_y_up: true, contact: ContactParams::default(), armature_scale: 1.0 }
    }
}

/// Kind of an MJCF joint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MjcfJointKind {
    Free,
    /// Revolute about `axis`.
    Hinge,
    /// Prismatic along `axis`.
    Slide,
    Ball,
}

impl MjcfJointKind {
    /// Velocity degrees of freedom.
    pub fn dof(self) -> usize {
        match self {
            MjcfJointKind::Free => 6,
            MjcfJointKind::Ball => 3,
            MjcfJointKind::Hinge | MjcfJointKind::Slide => 1,
        }
    }
}

/// A body of the MJCF tree. Positions and rotations are in the (converted) MJCF frames: `pos`,
/// `rot` relative to the parent body (the world for roots); `com`, `inertia_rot` in this body's frame.
#[derive(Clone, Debug, PartialEq)]
pub struct MjcfBody {
    pub name: String,
    pub parent: Option<usize>,
    pub pos: Vec3,
    pub rot: Quat,
    pub mass: f32,
    /// Principal moments about the centre of mass.
    pub inertia: Vec3,
    /// Rotation of the principal axes (principal frame → body frame); the identity when the
    /// tensor is diagonal in the body frame (moments then reordered onto the body axes).
    pub inertia_rot: Quat,
    pub com: Vec3,
    /// Joints of this body, in MJCF order (parent side first).
    pub joints: Vec<usize>,
    pub geoms: Vec<usize>,
    pub line: u32,
}

/// A joint, in its body's frame.
#[derive(Clone, Debug, PartialEq)]
pub struct MjcfJoint {
    pub name: String,
    pub body: usize,
    pub kind: MjcfJointKind,
    /// Pivot in the body frame.
    pub pos: Vec3,
    /// Unit axis in the body frame (hinge, slide).
    pub axis: Vec3,
    /// Limits in rad (hinge) or m (slide).
    pub limit: Option<(f32, f32)>,
    /// `armature` × `MjcfOptions::armature_scale`.
    pub armature: f32,
    pub damping: f32,
    /// Gear of the motor driving this joint; 0 if none.
    pub gear: f32,
    pub line: u32,
}

/// A geom as a collision shape, posed in its body's frame (capsule axis = shape-frame local y).
#[derive(Clone, Debug, PartialEq)]
pub struct MjcfGeom {
    pub name: String,
    pub body: usize,
    pub geometry: Geometry,
    pub pos: Vec3,
    pub rot: Quat,
    pub mass: f32,
    pub contact: ContactParams,
    pub contype: u32,
    pub conaffinity: u32,
    pub line: u32,
}

impl MjcfGeom {
    /// Whether the geom can collide at all (MuJoCo: `contype` or `conaffinity` nonzero).
    pub fn collides(&self) -> bool {
        self.contype != 0 || self.conaffinity != 0
    }
}

/// A `<motor>`: action × `gear` = generalized force on `joint`.
#[derive(Clone, Debug, PartialEq)]
pub struct MjcfActuator {
    pub name: String,
    pub joint: usize,
    pub gear: f32,
    /// Control range if limited.
    pub ctrlrange: Option<(f32, f32)>,
    pub line: u32,
}

/// A ground plane: a `<geom type="plane">` in `<worldbody>`; it must be the plane y = 0 (after
/// the coordinate conversion) with normal +y, which is what the simulator's `Ground` models.
#[derive(Clone, Debug, PartialEq)]
pub struct MjcfGround {
    pub name: String,
    pub contact: ContactParams,
    pub line: u32,
}

/// A plain description of an MJCF model. Bodies are in depth-first pre-order (a parent before its
/// children), as are joints and geoms.
#[derive(Clone, Debug, PartialEq)]
pub struct MjcfModel {
    pub name: String,
    pub file: String,
    pub bodies: Vec<MjcfBody>,
    pub joints: Vec<MjcfJoint>,
    pub geoms: Vec<MjcfGeom>,
    pub actuators: Vec<MjcfActuator>,
    pub ground: Option<MjcfGround>,
    pub gravity: Vec3,
    pub timestep: f32,
    /// `<option integrator=>` if given; stored for the task, not applied by the loader.
    pub integrator: Option<String>,
    pub options: MjcfOptions,
}

/// A body's principal axes when they are not the body frame's axes (`Body` holds only the
/// principal moments): spawned on such bodies next to `Body`, read by the articulation packer.
pub use crate::articulation::PrincipalAxes;

/// The entities created by [`MjcfModel::spawn_detailed`].
#[derive(Clone, Debug, PartialEq)]
pub struct Spawned {
    /// One per MJCF body, index-aligned with `MjcfModel::bodies`.
    pub bodies: Vec<Entity>,
    /// Every spawned body in spawn order (parents first): the MJCF bodies and the massless
    /// intermediate bodies of multi-joint bodies. Link k's joint is `joints[k]`.
    pub links: Vec<Entity>,
    pub joints: Vec<Entity>,
    /// One per colliding geom, in geom order.
    pub shapes: Vec<Entity>,
    pub ground: Option<Entity>,
    pub gravity: Entity,
}

/// Loads an MJCF file with the default [`MjcfOptions`] (z-up → y-up, Ant contact parameters).
pub fn load_mjcf(path: &Path) -> Result<MjcfModel, MjcfError> {
    load_mjcf_with(path, &MjcfOptions::default())
}

/// Loads an MJCF file.
pub fn load_mjcf_with(path: &Path, options: &MjcfOptions) -> Result<MjcfModel, MjcfError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| MjcfError {
        file: file.clone(),
        line: 0,
        column: 0,
        element: "file".into(),
        message: format!("cannot read: {e}"),
    })?;
    parse_mjcf_with(&text, &file, options)
}

/// Parses MJCF text with the default [`MjcfOptions`]; `file` names it in errors.
pub fn parse_mjcf(text: &str, file: &str) -> Result<MjcfModel, MjcfError> {
    parse_mjcf_with(text, file, &MjcfOptions::default())
}

/// Parses MJCF text; `file` names it in errors.
pub fn parse_mjcf_with(text: &str, file: &str, options: &MjcfOptions) -> Result<MjcfModel, MjcfError> {
    parse::parse(text, file, options)
}

impl MjcfModel {
    /// Velocity degrees of freedom of all joints.
    pub fn dof(&self) -> usize {
        self.joints.iter().map(|j| j.kind.dof()).sum()
    }

    /// Number of bodies (and joints) [`MjcfModel::spawn`] creates: one per MJCF body plus one
    /// massless intermediate body per extra joint in a multi-joint body.
    pub fn num_links(&self) -> usize {
        self.bodies.iter().map(|b| b.joints.len().max(1)).sum()
    }

    /// Number of `Shape`s spawned (colliding geoms).
    pub fn num_shapes(&self) -> usize {
        self.geoms.iter().filter(|g| g.collides()).count()
    }

    pub fn body(&self, name: &str) -> Option<usize> {
        self.bodies.iter().position(|b| b.name == name)
    }

    pub fn joint(&self, name: &str) -> Option<usize> {
        self.joints.iter().position(|j| j.name == name)
    }

    /// Spawns the model into one environment and returns the MJCF bodies' entities
    /// (index-aligned with `self.bodies`). See [`MjcfModel::spawn_detailed`].
    pub fn spawn(&self, env: &mut EnvBuilder, root_pose: (Vec3, Quat)) -> Vec<Entity> {
        self.spawn_detailed(env, root_pose).bodies
    }

    /// Spawns `Body`, `Joint` and `Shape` entities (bodies first, parents before children, then
    /// joints, then shapes), a `Gravity`, and a `Ground` if the model has a ground plane.
    ///
    /// `root_pose` (position, rotation) places every root body: its world pose is
    /// `root_pose ∘ (pos, rot)` of the MJCF root.
    ///
    /// Frames: the simulator's joints carry no rotation between parent and child frames, so all
    /// bodies of one tree share one frame orientation at the zero configuration: the root's
    /// world orientation when the root has a free joint (it is then the free joint's initial
    /// rotation), else the world's. Each MJCF body's own rotation is folded into its geoms'
    /// poses, joint axes, centre of mass and inertia; when that leaves the principal axes off the
    /// body axes, the body also gets a [`PrincipalAxes`] component.
    ///
    /// Joints: a body without an MJCF joint is welded to its parent (`JointKind::Fixed`; a root
    /// then is fixed to the world). A body with n > 1 joints becomes a chain of n − 1
    /// intermediate bodies of zero mass and zero inertia at the body's origin, followed by the
    /// body itself, linked by the n joints in MJCF order. Zero-mass links keep the composite
    /// mass matrix positive definite because each is followed by a massive body on the same
    /// chain. Joint gear is the motor's gear; initial coordinates are 0.
    pub fn spawn_detailed(&self, env: &mut EnvBuilder, root_pose: (Vec3, Quat)) -> Spawned {
        let (root_pos, root_rot) = (root_pose.0, root_pose.1.normalize());
        let n = self.bodies.len();
        // Per body: tree frame orientation (world), rotation body frame → tree frame, offset of
        // its origin from the parent's origin in the tree frame (world position for roots).
        let mut frame = vec![Quat::IDENTITY; n];
        let mut to_frame = vec![Quat::IDENTITY; n];
        let mut offset = vec![Vec3::ZERO; n];
        let mut world_pos = vec![Vec3::ZERO; n];
        for (i, b) in self.bodies.iter().enumerate() {
            match b.parent {
                None => {
                    let w = (root_rot * b.rot).normalize();
                    let free = b.joints.first().is_some_and(|&j| self.joints[j].kind == MjcfJointKind::Free);
                    (frame[i], to_frame[i]) = if free { (w, Quat::IDENTITY) } else { (Quat::IDENTITY, w) };
                    offset[i] = root_pos + root_rot * b.pos;
                    world_pos[i] = offset[i];
                }
                Some(p) => {
                    frame[i] = frame[p];
                    to_frame[i] = if b.rot == Quat::IDENTITY { to_frame[p] } else { (to_frame[p] * b.rot).normalize() };
                    offset[i] = to_frame[p] * b.pos;
                    world_pos[i] = world_pos[p] + frame[p] * offset[i];
                }
            }
        }
        // Bodies.
        let mut bodies = Vec::with_capacity(n);
        let mut links = Vec::with_capacity(self.num_links());
        let mut chain: Vec<Vec<Entity>> = Vec::with_capacity(n);
        for (i, b) in self.bodies.iter().enumerate() {
            let mut c = Vec::new();
            for _ in 1..b.joints.len() {
                let link = Body { rot: frame[i], ..Body::at(world_pos[i], 0.0, Vec3::ZERO) };
                c.push(env.spawn((link,)));
            }
            let (inertia, axes) = rotate_inertia(b.inertia, to_frame[i] * b.inertia_rot);
            let body = Body {
                mass: b.mass,
                inertia,
                com: to_frame[i] * b.com,
                pos: world_pos[i],
                rot: frame[i],
                vel: Vec3::ZERO,
                ang_vel: Vec3::ZERO,
            };
            let e = match axes {
                Some(q) => env.spawn((body, PrincipalAxes(q))),
                None => env.spawn((body,)),
            };
            c.push(e);
            links.extend(&c);
            bodies.push(e);
            chain.push(c);
        }
        // Joints, in link order.
        let mut joints = Vec::with_capacity(links.len());
        for (i, b) in self.bodies.iter().enumerate() {
            let mut parent = b.parent.map(|p| bodies[p]);
            let r = to_frame[i];
            if b.joints.is_empty() {
                joints.push(env.spawn((Joint::new(parent, chain[i][0], JointKind::Fixed, offset[i], Vec3::ZERO),)));
                continue;
            }
            for (k, &ji) in b.joints.iter().enumerate() {
                let j = &self.joints[ji];
                let child = chain[i][k];
                let base = if k == 0 { offset[i] } else { Vec3::ZERO };
                let (kind, anchor) = match j.kind {
                    MjcfJointKind::Free => (JointKind::Free, None),
                    MjcfJointKind::Hinge => (JointKind::Revolute { axis: (r * j.axis).normalize() }, Some(r * j.pos)),
                    MjcfJointKind::Slide => (JointKind::Prismatic { axis: (r * j.axis).normalize() }, Some(r * j.pos)),
                    MjcfJointKind::Ball => (JointKind::Ball, Some(r * j.pos)),
                };
                let mut joint = match anchor {
                    Some(a) => Joint::new(parent, child, kind, base + a, a),
                    None => Joint::new(parent, child, kind, Vec3::ZERO, Vec3::ZERO),
                };
                joint.limit = j.limit;
                joint.armature = j.armature;
                joint.damping = j.damping;
                joint.gear = j.gear;
                joints.push(env.spawn((joint,)));
                parent = Some(child);
            }
        }
        // Shapes.
        let mut shapes = Vec::new();
        for g in self.geoms.iter().filter(|g| g.collides()) {
            let r = to_frame[g.body];
            let c = g.contact;
            shapes.push(env.spawn((Shape {
                body: bodies[g.body],
                geometry: g.geometry,
                pos: r * g.pos,
                rot: (r * g.rot).normalize(),
                ke: c.ke,
                kd: c.kd,
                kf: c.kf,
                mu: c.mu,
            },)));
        }
        let ground = self.ground.as_ref().map(|g| {
            let c = g.contact;
            env.ground(Ground { ke: c.ke, kd: c.kd, kf: c.kf, mu: c.mu })
        });
        let gravity = env.gravity(self.gravity);
        Spawned { bodies, links, joints, shapes, ground, gravity }
    }
}

/// Principal moments re-expressed for principal axes rotated by `rot` into the body frame:
/// the moments reordered onto the body axes when `rot` is a signed axis permutation, else the
/// moments and `Some(rot)`.
fn rotate_inertia(moments: Vec3, rot: Quat) -> (Vec3, Option<Quat>) {
    if rot == Quat::IDENTITY {
        return (moments, None);
    }
    let t = inertia::tensor(moments.as_dvec3(), rot.as_dquat().normalize());
    let (d, q) = inertia::principal(&t);
    let q = if q.abs_diff_eq(DQuat::IDENTITY, 1e-9) { None } else { Some(q.as_quat()) };
    (d.as_vec3(), q)
}

/// The z-up → y-up rotation C = −90° about x applied to a vector: (x, y, z) → (x, z, −y).
pub(crate) fn z_to_y(v: DVec3) -> DVec3 {
    // `+ 0.0` turns the −0.0 of a negated zero into 0.0.
    DVec3::new(v.x, v.z, -v.y + 0.0)
}

/// C as a quaternion.
pub(crate) fn z_to_y_quat() -> DQuat {
    DQuat::from_rotation_x(-std::f64::consts::FRAC_PI_2)
}

/// C q C⁻¹ (exact: the rotation axis is mapped by C, the angle kept).
pub(crate) fn z_to_y_conj(q: DQuat) -> DQuat {
    let v = z_to_y(DVec3::new(q.x, q.y, q.z));
    DQuat::from_xyzw(v.x, v.y, v.z, q.w)
}
