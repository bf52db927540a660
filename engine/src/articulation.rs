//! Packing of articulated rigid bodies (hecs `Body`, `Joint`, `Shape` components) into the
//! `[env][entity]` mirrors that the articulation systems step.
//!
//! Bodies are put in topological order (every parent before its children; ties broken by spawn
//! order, so identical templates pack identically in every env). Body k's joint is joint k.
//!
//! Columns written (per env):
//! - state: `joint_q` `[1, Q]`, `joint_qd` `[1, D]`, `joint_tau` `[1, D]`, `body_f` `[B, 6]`,
//!   `body_q` `[B, 7]` (position, quaternion xyzw of the body frame), `body_qd` `[B, 6]`
//!   (spatial twist (ω, v at the world origin));
//! - model params: `joint_axis`, `joint_parent_anchor`, `joint_child_anchor` `[B, 3]`,
//!   `joint_limit` `[B, 3]` (enabled, lower, upper), `joint_armature`, `joint_damping`,
//!   `joint_gear` `[B, 1]`, `body_mass` `[B, 1]`, `body_inertia` `[B, 9]` (the rotational inertia
//!   about the COM in the body frame, row-major: R diag(principal) Rᵀ, with R from a
//!   `PrincipalAxes` component if the body has one), `body_com` `[B, 3]`,
//!   `shape_size` `[S, 3]`, `shape_pose` `[S, 7]`, `shape_contact` `[S, 4]` (ke, kd, kf, mu),
//!   `joint_limit_gains` `[1, 2]` (ke, kd);
//! - topology: `joint_parent` (u32::MAX = world), `joint_kind`, `joint_q_start`, `joint_qd_start`
//!   `[B, 1]`, `shape_body`, `shape_kind` `[S, 1]`.

use glam::{Quat, Vec3};
use hecs::{Entity, World};

use crate::columns::{ColumnSpec, Columns};
use crate::components::{Body, EnvId, Geometry, Joint, JointKind, Shape};
use crate::error::{EngineError, SceneError};
use crate::model::Model;

pub const WORLD: u32 = u32::MAX;
pub const KIND_FREE: u32 = 0;
pub const KIND_FIXED: u32 = 1;
pub const KIND_REVOLUTE: u32 = 2;
pub const KIND_PRISMATIC: u32 = 3;
pub const KIND_BALL: u32 = 4;
pub const SHAPE_SPHERE: u32 = 0;
pub const SHAPE_CAPSULE: u32 = 1;
pub const SHAPE_BOX: u32 = 2;

/// A body's principal axes of inertia, when they are not its frame's axes: the rotation R with
/// I_body = R diag(`Body::inertia`) Rᵀ.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PrincipalAxes(pub Quat);

/// Penalty gains of joint limits for every joint of an environment (one per env, optional).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LimitGains {
    pub ke: f32,
    pub kd: f32,
}

impl Default for LimitGains {
    fn default() -> Self {
        Self { ke: 1.0e3, kd: 10.0 }
    }
}

/// (coordinates, velocities) of a joint kind.
pub fn joint_dims(kind: u32) -> (usize, usize) {
    match kind {
        KIND_FREE => (7, 6),
        KIND_REVOLUTE | KIND_PRISMATIC => (1, 1),
        KIND_BALL => (4, 3),
        _ => (0, 0),
    }
}

/// One environment's articulation, ordered.
struct EnvBodies {
    bodies: Vec<(Entity, Body)>,
    joints: Vec<Joint>,
    shapes: Vec<Shape>,
}

fn collect(world: &World, num_envs: usize) -> Result<Vec<EnvBodies>, SceneError> {
    let mut out: Vec<EnvBodies> =
        (0..num_envs).map(|_| EnvBodies { bodies: Vec::new(), joints: Vec::new(), shapes: Vec::new() }).collect();
    let mut bodies: Vec<Vec<(Entity, Body)>> = vec![Vec::new(); num_envs];
    for (e, id, b) in world.query::<(Entity, &EnvId, &Body)>().iter() {
        bodies[id.0 as usize].push((e, *b));
    }
    let mut joints: Vec<Vec<(Entity, Joint)>> = vec![Vec::new(); num_envs];
    for (e, id, j) in world.query::<(Entity, &EnvId, &Joint)>().iter() {
        joints[id.0 as usize].push((e, *j));
    }
    let mut shapes: Vec<Vec<(Entity, Shape)>> = vec![Vec::new(); num_envs];
    for (e, id, s) in world.query::<(Entity, &EnvId, &Shape)>().iter() {
        shapes[id.0 as usize].push((e, *s));
    }
    for env in 0..num_envs {
        bodies[env].sort_by_key(|(e, _)| e.id());
        joints[env].sort_by_key(|(e, _)| e.id());
        shapes[env].sort_by_key(|(e, _)| e.id());
        let bad = |reason: String| SceneError::BadReference { kind: "joint", env, reason };
        // Each body has exactly one joint (its joint to its parent).
        let mut joint_of: Vec<Option<Joint>> = vec![None; bodies[env].len()];
        for (_, j) in &joints[env] {
            let k = bodies[env]
                .iter()
                .position(|(e, _)| *e == j.child)
                .ok_or_else(|| bad(format!("child {:?} that is not a body of this environment", j.child)))?;
            if joint_of[k].replace(*j).is_some() {
                return Err(bad(format!("body {:?} that already has a joint", j.child)));
            }
            if let Some(p) = j.parent
                && !bodies[env].iter().any(|(e, _)| *e == p)
            {
                return Err(bad(format!("parent {p:?} that is not a body of this environment")));
            }
            if j.kind == JointKind::Free && j.parent.is_some() {
                return Err(bad(format!("free joint of {:?} with a parent: free joints are roots only", j.child)));
            }
        }
        // Topological order: repeatedly take bodies whose parent is placed.
        let mut placed: Vec<Entity> = Vec::new();
        let mut order: Vec<usize> = Vec::new();
        while order.len() < bodies[env].len() {
            let before = order.len();
            for (k, (e, _)) in bodies[env].iter().enumerate() {
                if order.contains(&k) {
                    continue;
                }
                let j = joint_of[k]
                    .ok_or_else(|| bad(format!("body {e:?} has no joint (give roots a Free or Fixed joint)")))?;
                if j.parent.is_none_or(|p| placed.contains(&p)) {
                    order.push(k);
                    placed.push(*e);
                }
            }
            if order.len() == before {
                return Err(bad("cycle in the body tree".into()));
            }
        }
        out[env].bodies = order.iter().map(|&k| bodies[env][k]).collect();
        out[env].joints = order.iter().map(|&k| joint_of[k].expect("checked")).collect();
        for (_, s) in &shapes[env] {
            if !out[env].bodies.iter().any(|(e, _)| *e == s.body) {
                return Err(SceneError::BadReference {
                    kind: "shape",
                    env,
                    reason: format!("body {:?} that is not a body of this environment", s.body),
                });
            }
        }
        out[env].shapes = shapes[env].iter().map(|(_, s)| *s).collect();
    }
    Ok(out)
}

fn kind_code(k: &JointKind) -> (u32, Vec3) {
    match *k {
        JointKind::Free => (KIND_FREE, Vec3::ZERO),
        JointKind::Fixed => (KIND_FIXED, Vec3::ZERO),
        JointKind::Revolute { axis } => (KIND_REVOLUTE, axis.normalize_or_zero()),
        JointKind::Prismatic { axis } => (KIND_PRISMATIC, axis.normalize_or_zero()),
        JointKind::Ball => (KIND_BALL, Vec3::ZERO),
    }
}

/// Adds the articulation columns of every env to `state` and `model` (nothing if no bodies).
pub fn pack(world: &World, num_envs: usize, state: &mut Columns<f32>, model: &mut Model) -> Result<(), EngineError> {
    let envs = collect(world, num_envs)?;
    let nb = envs[0].bodies.len();
    let ns = envs[0].shapes.len();
    for (env, e) in envs.iter().enumerate() {
        if e.bodies.len() != nb {
            return Err(SceneError::EnvMismatch { kind: "bodies", env, expected: nb, found: e.bodies.len() }.into());
        }
        if e.shapes.len() != ns {
            return Err(SceneError::EnvMismatch { kind: "shapes", env, expected: ns, found: e.shapes.len() }.into());
        }
    }
    if nb == 0 {
        return Ok(());
    }
    let (q_len, qd_len) = envs[0].joints.iter().fold((0, 0), |(q, d), j| {
        let (a, b) = joint_dims(kind_code(&j.kind).0);
        (q + a, d + b)
    });
    let mut joint_q = Vec::new();
    let mut joint_qd = Vec::new();
    let mut params: [Vec<f64>; 13] = Default::default();
    let mut tops: [Vec<u32>; 6] = Default::default();
    let mut limit_gains = Vec::new();
    for (env, e) in envs.iter().enumerate() {
        let index_of = |ent: Entity| e.bodies.iter().position(|(b, _)| *b == ent).map_or(WORLD, |k| k as u32);
        let (mut qs, mut ds) = (0u32, 0u32);
        for (k, j) in e.joints.iter().enumerate() {
            let (kind, axis) = kind_code(&j.kind);
            let (body_e, body) = e.bodies[k];
            debug_assert_eq!(body_e, j.child);
            let (nq, nd) = joint_dims(kind);
            tops[0].push(j.parent.map_or(WORLD, index_of));
            tops[1].push(kind);
            tops[2].push(qs);
            tops[3].push(ds);
            qs += nq as u32;
            ds += nd as u32;
            match kind {
                KIND_FREE => {
                    joint_q.extend(body.pos.to_array().map(f64::from));
                    joint_q.extend(body.rot.normalize().to_array().map(f64::from));
                    // Spatial twist at the origin: v_O = v_frame − ω × p.
                    let v_o = body.vel - body.ang_vel.cross(body.pos);
                    joint_qd.extend(body.ang_vel.to_array().map(f64::from));
                    joint_qd.extend(v_o.to_array().map(f64::from));
                }
                KIND_REVOLUTE | KIND_PRISMATIC => {
                    joint_q.push(j.q0 as f64);
                    joint_qd.push(j.qd0 as f64);
                }
                KIND_BALL => {
                    joint_q.extend(Quat::IDENTITY.to_array().map(f64::from));
                    joint_qd.extend([0.0; 3]);
                }
                _ => {}
            }
            for (i, v) in [axis, j.parent_anchor, j.child_anchor].iter().enumerate() {
                params[i].extend(v.to_array().map(f64::from));
            }
            let (en, lo, hi) = j.limit.map_or((0.0, 0.0, 0.0), |(l, h)| (1.0, l as f64, h as f64));
            params[3].extend([en, lo, hi]);
            params[4].push(j.armature as f64);
            params[5].push(j.damping as f64);
            params[6].push(j.gear as f64);
            if !body.mass.is_finite() || body.mass < 0.0 {
                return Err(SceneError::BadParameter {
                    kind: "body",
                    env,
                    field: "mass",
                    value: body.mass as f64,
                    expected: "a finite mass >= 0",
                }
                .into());
            }
            params[7].push(body.mass as f64);
            let axes = world.get::<&PrincipalAxes>(body_e).map_or(Quat::IDENTITY, |a| a.0);
            let r = glam::DMat3::from_quat(axes.as_dquat().normalize());
            let tensor = r * glam::DMat3::from_diagonal(body.inertia.as_dvec3()) * r.transpose();
            params[8].extend((0..3).flat_map(|i| (0..3).map(move |j| tensor.col(j)[i])));
            params[9].extend(body.com.to_array().map(f64::from));
        }
        for s in &e.shapes {
            let (kind, size) = match s.geometry {
                Geometry::Sphere { radius } => (SHAPE_SPHERE, [radius, 0.0, 0.0]),
                Geometry::Capsule { radius, half_height } => (SHAPE_CAPSULE, [radius, half_height, 0.0]),
                Geometry::Box { half_extents } => (SHAPE_BOX, half_extents.to_array()),
            };
            tops[4].push(index_of(s.body));
            tops[5].push(kind);
            params[10].extend(size.map(f64::from));
            params[11].extend(s.pos.to_array().into_iter().chain(s.rot.normalize().to_array()).map(f64::from));
            params[12].extend([s.ke, s.kd, s.kf, s.mu].map(f64::from));
        }
        let g = world
            .query::<(&EnvId, &LimitGains)>()
            .iter()
            .find(|(id, _)| id.0 as usize == env)
            .map_or(LimitGains::default(), |(_, g)| *g);
        limit_gains.extend([g.ke as f64, g.kd as f64]);
    }
    let n = num_envs;
    state.add_column(ColumnSpec::new("joint_q", 1, q_len), joint_q.iter().map(|&x| x as f32).collect())?;
    state.add_column(ColumnSpec::new("joint_qd", 1, qd_len), joint_qd.iter().map(|&x| x as f32).collect())?;
    state.add_column(ColumnSpec::new("joint_tau", 1, qd_len), vec![0.0; n * qd_len])?;
    state.add_column(ColumnSpec::new("body_f", nb, 6), vec![0.0; n * nb * 6])?;
    state.add_column(ColumnSpec::new("body_q", nb, 7), vec![0.0; n * nb * 7])?;
    state.add_column(ColumnSpec::new("body_qd", nb, 6), vec![0.0; n * nb * 6])?;
    let names = [
        ("joint_axis", 3),
        ("joint_parent_anchor", 3),
        ("joint_child_anchor", 3),
        ("joint_limit", 3),
        ("joint_armature", 1),
        ("joint_damping", 1),
        ("joint_gear", 1),
        ("body_mass", 1),
        ("body_inertia", 9),
        ("body_com", 3),
        ("shape_size", 3),
        ("shape_pose", 7),
        ("shape_contact", 4),
    ];
    for ((name, width), data) in names.into_iter().zip(params) {
        let count = if name.starts_with("shape") { ns } else { nb };
        model.params.add_column(ColumnSpec::new(name, count, width), data)?;
    }
    model.params.add_column(ColumnSpec::new("joint_limit_gains", 1, 2), limit_gains)?;
    let tnames = ["joint_parent", "joint_kind", "joint_q_start", "joint_qd_start", "shape_body", "shape_kind"];
    for (name, data) in tnames.into_iter().zip(tops) {
        let count = if name.starts_with("shape") { ns } else { nb };
        model.topology.add_column(ColumnSpec::new(name, count, 1), data)?;
    }
    Ok(())
}
