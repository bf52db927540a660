//! MJCF loader: the shipped robot assets load and spawn with the expected counts; coordinate
//! conversion, capsule orientation, defaults, multi-joint bodies; errors name file, line,
//! element and attribute; random edits of a real file never panic.

use std::path::PathBuf;

use diffsim_engine::Scene;
use diffsim_engine::components::{Body, EnvId, Geometry, Gravity, Ground, Joint, JointKind, Shape};
use diffsim_engine::mjcf::{
    MjcfError, MjcfJointKind, MjcfModel, MjcfOptions, PrincipalAxes, load_mjcf, parse_mjcf, parse_mjcf_with,
};
use glam::{Quat, Vec3};
use proptest::prelude::*;

fn asset(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("assets").join(name)
}

fn close(a: Vec3, b: Vec3, tol: f32) -> bool {
    (a - b).abs().max_element() <= tol
}

/// Counts of what one environment holds after spawning `model`.
struct Counts {
    bodies: usize,
    joints: usize,
    shapes: usize,
    dof: usize,
}

fn spawn_counts(model: &MjcfModel, envs: usize) -> (Scene, Counts) {
    let mut scene = Scene::new();
    scene.spawn_envs(envs, |env| {
        let bodies = model.spawn(env, (Vec3::new(env.env().0 as f32, 0.0, 0.0), Quat::IDENTITY));
        assert_eq!(bodies.len(), model.bodies.len());
    });
    let w = &scene.world;
    let in0 = |id: &EnvId| id.0 == 0;
    let bodies = w.query::<(&EnvId, &Body)>().iter().filter(|(id, _)| in0(id)).count();
    let joints: Vec<Joint> = w.query::<(&EnvId, &Joint)>().iter().filter(|(id, _)| in0(id)).map(|(_, j)| *j).collect();
    let shapes = w.query::<(&EnvId, &Shape)>().iter().filter(|(id, _)| in0(id)).count();
    let dof = joints
        .iter()
        .map(|j| match j.kind {
            JointKind::Free => 6,
            JointKind::Ball => 3,
            JointKind::Fixed => 0,
            JointKind::Revolute { .. } | JointKind::Prismatic { .. } => 1,
        })
        .sum();
    // Every body has exactly one joint naming it as child, and parents are bodies.
    for (e, _, _) in w.query::<(hecs::Entity, &EnvId, &Body)>().iter().filter(|(_, id, _)| in0(id)) {
        assert_eq!(joints.iter().filter(|j| j.child == e).count(), 1);
        assert!(joints.iter().all(|j| j.parent.is_none_or(|p| w.get::<&Body>(p).is_ok())));
    }
    (scene, Counts { bodies, joints: joints.len(), shapes, dof })
}

#[test]
fn ant_loads_and_spawns() {
    let m = load_mjcf(&asset("ant.xml")).unwrap();
    assert_eq!(m.name, "ant");
    assert_eq!((m.bodies.len(), m.joints.len(), m.dof(), m.geoms.len(), m.actuators.len()), (9, 9, 14, 13, 8));
    assert_eq!(m.joints[0].kind, MjcfJointKind::Free);
    assert!(m.joints[1..].iter().all(|j| j.kind == MjcfJointKind::Hinge && j.limit.is_some() && j.gear == 1.0));
    assert!(m.bodies.iter().all(|b| b.mass > 0.0 && b.inertia.min_element() > 0.0), "{:?}", m.bodies);
    // Torso: sphere r 0.25 + 4 capsules r 0.08 of length 0.2√2, density 1000.
    let pi = std::f32::consts::PI;
    let cap = |r: f32, len: f32| pi * r * r * len + 4.0 / 3.0 * pi * r * r * r;
    let torso = 1000.0 * (4.0 / 3.0 * pi * 0.25f32.powi(3) + 4.0 * cap(0.08, 0.2 * 2f32.sqrt()));
    assert!((m.bodies[0].mass - torso).abs() < 1e-3 * torso, "{} vs {torso}", m.bodies[0].mass);
    // Symmetric torso: COM at its origin, principal axes = body axes.
    assert!(close(m.bodies[0].com, Vec3::ZERO, 1e-6) && m.bodies[0].inertia_rot == Quat::IDENTITY);
    // y-up: start height 0.75 on y; hip axes vertical; gravity along −y; 1/960 s.
    assert!(close(m.bodies[0].pos, Vec3::new(0.0, 0.75, 0.0), 1e-6));
    assert!(close(m.joints[1].axis, Vec3::Y, 1e-6));
    assert!(close(m.gravity, Vec3::new(0.0, -9.81, 0.0), 1e-6));
    assert!((m.timestep - 1.0 / 960.0).abs() < 1e-7);
    // Ranges in radians: hip ±30°, ankle_1 30..70°.
    let (lo, hi) = m.joints[m.joint("ankle_1").unwrap()].limit.unwrap();
    assert!((lo - 30f32.to_radians()).abs() < 1e-6 && (hi - 70f32.to_radians()).abs() < 1e-6);

    let (scene, c) = spawn_counts(&m, 2);
    assert_eq!((c.bodies, c.joints, c.shapes, c.dof), (9, 9, 13, 14));
    assert_eq!(m.num_links(), 9);
    // Leg bodies hold a diagonal capsule: their principal axes are off the body axes.
    let axes = scene.world.query::<(&EnvId, &PrincipalAxes)>().iter().filter(|(id, _)| id.0 == 0).count();
    assert_eq!(axes, 8);
    assert_eq!(scene.world.query::<&Gravity>().iter().count(), 2);
}

#[test]
fn ant_spawn_places_bodies_and_shapes() {
    let m = load_mjcf(&asset("ant.xml")).unwrap();
    let mut scene = Scene::new();
    let mut sp = None;
    let root = Vec3::new(1.0, 0.0, 2.0);
    scene.spawn_envs(1, |env| sp = Some(m.spawn_detailed(env, (root, Quat::IDENTITY))));
    let sp = sp.unwrap();
    let w = &scene.world;
    let body = |name: &str| *w.get::<&Body>(sp.bodies[m.body(name).unwrap()]).unwrap();
    let torso = body("torso");
    assert!(close(torso.pos, root + Vec3::new(0.0, 0.75, 0.0), 1e-6));
    // MJCF (0.2, 0.2, 0) → y-up (0.2, 0, −0.2); the foot 0.2 further along the diagonal.
    assert!(close(body("front_left_leg").pos, torso.pos + Vec3::new(0.2, 0.0, -0.2), 1e-6));
    assert!(close(body("front_left_foot").pos, torso.pos + Vec3::new(0.4, 0.0, -0.4), 1e-6));
    let j = *w.get::<&Joint>(sp.joints[m.body("front_left_foot").unwrap()]).unwrap();
    assert_eq!(j.parent, Some(sp.bodies[m.body("front_left_leg").unwrap()]));
    assert!(close(j.parent_anchor, Vec3::new(0.2, 0.0, -0.2), 1e-6) && close(j.child_anchor, Vec3::ZERO, 1e-6));
    let JointKind::Revolute { axis } = j.kind else { panic!("{j:?}") };
    // Ankle axis MJCF (−1, 1, 0)/√2 → (−1, 0, −1)/√2.
    assert!(close(axis, Vec3::new(-1.0, 0.0, -1.0).normalize(), 1e-6));
    // The foot capsule: centre at (0.2, 0, −0.2) in the foot frame, axis (local y) along the leg.
    let gi = m.geoms.iter().position(|g| g.name == "left_ankle_geom").unwrap();
    let s = *w.get::<&Shape>(sp.shapes[gi]).unwrap();
    assert_eq!(s.body, sp.bodies[m.body("front_left_foot").unwrap()]);
    assert!(close(s.pos, Vec3::new(0.2, 0.0, -0.2), 1e-6));
    assert!(close(s.rot * Vec3::Y, Vec3::new(1.0, 0.0, -1.0).normalize(), 1e-6));
    assert!(matches!(s.geometry, Geometry::Capsule { radius, half_height }
        if (radius - 0.08).abs() < 1e-7 && (half_height - 0.2 * 2f32.sqrt()).abs() < 1e-6));
    assert_eq!((s.ke, s.kd, s.kf, s.mu), (4.0e3, 1.0e3, 3.0e2, 0.75));
    // The principal axes of a leg, rotated back, give the capsule's axial moment along the leg.
    let leg = sp.bodies[m.body("front_left_foot").unwrap()];
    let b = *w.get::<&Body>(leg).unwrap();
    let r = w.get::<&PrincipalAxes>(leg).unwrap().0;
    let dir = Vec3::new(1.0, 0.0, -1.0).normalize();
    let local = r.inverse() * dir; // the leg direction in the principal frame
    let i_dir = (local * local * b.inertia).element_sum();
    assert!(i_dir < b.inertia.max_element() * 0.99, "axial moment {i_dir} should be the smallest: {:?}", b.inertia);
    assert!(close(b.com, Vec3::new(0.2, 0.0, -0.2), 1e-6));
}

#[test]
fn root_pose_rotates_free_root() {
    let m = load_mjcf(&asset("ant.xml")).unwrap();
    let mut scene = Scene::new();
    let rot = Quat::from_rotation_y(0.7);
    let mut sp = None;
    scene.spawn_envs(1, |env| sp = Some(m.spawn_detailed(env, (Vec3::ZERO, rot))));
    let sp = sp.unwrap();
    let torso = *scene.world.get::<&Body>(sp.bodies[0]).unwrap();
    assert!(torso.rot.abs_diff_eq(rot, 1e-6));
    let leg = *scene.world.get::<&Body>(sp.bodies[m.body("front_left_leg").unwrap()]).unwrap();
    // Same frame orientation as the root; world position rotated.
    assert!(leg.rot.abs_diff_eq(rot, 1e-6));
    assert!(close(leg.pos, torso.pos + rot * Vec3::new(0.2, 0.0, -0.2), 1e-6));
}

#[test]
fn hopper_loads_and_spawns() {
    let m = load_mjcf(&asset("hopper.xml")).unwrap();
    assert_eq!((m.bodies.len(), m.joints.len(), m.dof(), m.geoms.len(), m.actuators.len()), (4, 6, 6, 4, 3));
    assert_eq!(m.num_links(), 6);
    assert!(m.bodies.iter().all(|b| b.mass > 0.0));
    let (scene, c) = spawn_counts(&m, 1);
    assert_eq!((c.bodies, c.joints, c.shapes, c.dof), (6, 6, 4, 6));
    // Two massless intermediate bodies for the planar root (slide x → slide z → hinge y).
    let massless = scene.world.query::<&Body>().iter().filter(|b| b.mass == 0.0).count();
    assert_eq!(massless, 2);
    let roots: Vec<Joint> = scene.world.query::<&Joint>().iter().filter(|j| j.parent.is_none()).copied().collect();
    assert_eq!(roots.len(), 1);
    assert!(matches!(roots[0].kind, JointKind::Prismatic { axis } if close(axis, Vec3::X, 1e-6)));
    assert!(close(roots[0].parent_anchor, Vec3::new(0.0, 1.25, 0.0), 1e-6));
    // The thigh joint sits at the torso's bottom (MJCF height 1.05), axis −y → (0, 0, 1).
    let thigh = m.joint("thigh_joint").unwrap();
    assert!(close(m.joints[thigh].axis, Vec3::Z, 1e-6));
}

#[test]
fn humanoid_loads_and_spawns() {
    let m = load_mjcf(&asset("humanoid.xml")).unwrap();
    assert_eq!((m.bodies.len(), m.joints.len(), m.dof(), m.geoms.len(), m.actuators.len()), (13, 22, 27, 19, 21));
    assert!(m.bodies.iter().all(|b| b.mass > 0.0));
    let total: f32 = m.bodies.iter().map(|b| b.mass).sum();
    assert!(total > 30.0 && total < 80.0, "total mass {total}");
    let (_, c) = spawn_counts(&m, 1);
    assert_eq!((c.bodies, c.joints, c.shapes, c.dof), (22, 22, 19, 27));
    // Actuators in joint order.
    let order: Vec<usize> = m.actuators.iter().map(|a| a.joint).collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn cartpole_loads_and_spawns() {
    let m = load_mjcf(&asset("cartpole.xml")).unwrap();
    assert_eq!((m.bodies.len(), m.joints.len(), m.dof(), m.geoms.len(), m.actuators.len()), (2, 2, 2, 2, 1));
    assert!((m.bodies[0].mass - 1.0).abs() < 1e-6 && (m.bodies[1].mass - 0.1).abs() < 1e-6);
    assert_eq!(m.joints[0].kind, MjcfJointKind::Slide);
    assert_eq!(m.joints[0].limit, Some((-4.0, 4.0)));
    // Pole COM half-way up the pole (y-up).
    assert!(close(m.bodies[1].com, Vec3::new(0.0, 0.5, 0.0), 1e-6));
    let (_, c) = spawn_counts(&m, 3);
    assert_eq!((c.bodies, c.joints, c.shapes, c.dof), (2, 2, 2, 2));
}

fn wrap(body: &str) -> String {
    format!("<mujoco>\n<worldbody>\n{body}\n</worldbody>\n</mujoco>\n")
}

fn no_conv() -> MjcfOptions {
    MjcfOptions { z_up_to_y_up: false, ..Default::default() }
}

#[test]
fn fromto_capsule_maps_local_y_onto_its_direction() {
    let xml = wrap(r#"<body><freejoint/><geom type="capsule" fromto="-0.5 0 0 0.5 0 0" size="0.1"/></body>"#);
    for opts in [no_conv(), MjcfOptions::default()] {
        let m = parse_mjcf_with(&xml, "t.xml", &opts).unwrap();
        let g = &m.geoms[0];
        assert!(close(g.rot * Vec3::Y, Vec3::X, 1e-6), "{:?}", g.rot);
        assert_eq!(g.geometry, Geometry::Capsule { radius: 0.1, half_height: 0.5 });
        assert!(close(g.pos, Vec3::ZERO, 1e-7));
    }
    // A capsule without fromto lies along the geom's z: after z-up → y-up it is vertical (y).
    let m = parse_mjcf(&wrap(r#"<body><freejoint/><geom type="capsule" size="0.1 0.3"/></body>"#), "t").unwrap();
    assert!(close(m.geoms[0].rot * Vec3::Y, Vec3::Y, 1e-6));
    let m =
        parse_mjcf_with(&wrap(r#"<body><freejoint/><geom type="capsule" size="0.1 0.3"/></body>"#), "t", &no_conv());
    assert!(close(m.unwrap().geoms[0].rot * Vec3::Y, Vec3::Z, 1e-6));
}

#[test]
fn z_up_to_y_up_converts_positions_axes_orientations() {
    let xml = wrap(
        r#"<body pos="1 2 3" euler="0 0 90">
             <joint type="hinge" axis="0 0 1" pos="0 1 0"/>
             <geom type="box" size="0.1 0.2 0.3" pos="0 0 1"/>
           </body>"#,
    );
    let raw = parse_mjcf_with(&xml, "t", &no_conv()).unwrap();
    let m = parse_mjcf(&xml, "t").unwrap();
    assert!(close(raw.bodies[0].pos, Vec3::new(1.0, 2.0, 3.0), 1e-6));
    assert!(close(m.bodies[0].pos, Vec3::new(1.0, 3.0, -2.0), 1e-6));
    // 90° about MJCF z = 90° about y-up y.
    assert!(m.bodies[0].rot.abs_diff_eq(Quat::from_rotation_y(std::f32::consts::FRAC_PI_2), 1e-6));
    assert!(close(m.joints[0].axis, Vec3::Y, 1e-6) && close(m.joints[0].pos, Vec3::new(0.0, 0.0, -1.0), 1e-6));
    assert!(close(m.geoms[0].pos, Vec3::new(0.0, 1.0, 0.0), 1e-6));
    // Box half extents stay in the shape frame; the shape frame maps them onto the converted axes.
    let Geometry::Box { half_extents } = m.geoms[0].geometry else { panic!() };
    assert_eq!(half_extents, Vec3::new(0.1, 0.2, 0.3));
    assert!(close((m.geoms[0].rot * Vec3::Z).abs(), Vec3::Y, 1e-6));
    // Principal moments follow the axes: MJCF (Ixx, Iyy, Izz) → (Ixx, Izz, Iyy).
    assert!(close(
        m.bodies[0].inertia,
        Vec3::new(raw.bodies[0].inertia.x, raw.bodies[0].inertia.z, raw.bodies[0].inertia.y),
        1e-7
    ));
    assert!(close(m.gravity, Vec3::new(0.0, -9.81, 0.0), 1e-6) && close(raw.gravity, Vec3::new(0.0, 0.0, -9.81), 1e-6));
    // World positions of a point agree: convert(MJCF world) == y-up world.
    let p_raw = raw.bodies[0].pos + raw.bodies[0].rot * raw.geoms[0].pos;
    let p = m.bodies[0].pos + m.bodies[0].rot * m.geoms[0].pos;
    assert!(close(p, Vec3::new(p_raw.x, p_raw.z, -p_raw.y), 1e-6));
}

#[test]
fn defaults_inherit_and_childclass_applies() {
    let xml = r#"<mujoco>
  <default>
    <geom type="sphere" size="0.1" density="500"/>
    <joint damping="2"/>
    <default class="leg">
      <geom type="capsule" size="0.05 0.2"/>
      <joint armature="0.5" range="-10 10"/>
      <default class="foot">
        <geom type="box" size="0.1 0.1 0.1"/>
      </default>
    </default>
  </default>
  <worldbody>
    <body name="a">
      <freejoint/>
      <geom name="g0"/>
      <body name="b" childclass="leg">
        <joint name="j1"/>
        <geom name="g1"/>
        <geom name="g2" class="foot"/>
        <geom name="g3" class="main" size="0.3"/>
      </body>
    </body>
  </worldbody>
</mujoco>"#;
    let m = parse_mjcf(xml, "d.xml").unwrap();
    assert_eq!(m.geoms[0].geometry, Geometry::Sphere { radius: 0.1 });
    assert_eq!(m.geoms[1].geometry, Geometry::Capsule { radius: 0.05, half_height: 0.2 });
    assert_eq!(m.geoms[2].geometry, Geometry::Box { half_extents: Vec3::splat(0.1) });
    assert_eq!(m.geoms[3].geometry, Geometry::Sphere { radius: 0.3 });
    let v = 4.0 / 3.0 * std::f32::consts::PI * 0.001;
    assert!((m.geoms[0].mass - 500.0 * v).abs() < 1e-4, "density inherited from main");
    let j = &m.joints[1];
    assert_eq!((j.damping, j.armature), (2.0, 0.5));
    let (lo, hi) = j.limit.unwrap();
    assert!((hi - 10f32.to_radians()).abs() < 1e-6 && (lo + hi).abs() < 1e-7);
}

#[test]
fn multiple_joints_chain_through_massless_bodies() {
    let xml = wrap(
        r#"<body name="base"><geom type="box" size="0.1 0.1 0.1"/>
             <body name="arm" pos="0 0 0.5">
               <joint name="a" axis="1 0 0" pos="0 0 0.1"/>
               <joint name="b" axis="0 1 0"/>
               <joint name="c" type="slide" axis="0 0 1"/>
               <geom type="sphere" size="0.1"/>
             </body>
           </body>"#,
    );
    let m = parse_mjcf_with(&xml, "t", &no_conv()).unwrap();
    assert_eq!((m.bodies.len(), m.num_links(), m.dof()), (2, 4, 3));
    let mut scene = Scene::new();
    let mut sp = None;
    scene.spawn_envs(1, |env| sp = Some(m.spawn_detailed(env, (Vec3::ZERO, Quat::IDENTITY))));
    let sp = sp.unwrap();
    let w = &scene.world;
    let joints: Vec<Joint> = sp.joints.iter().map(|e| *w.get::<&Joint>(*e).unwrap()).collect();
    // base is welded to the world.
    assert_eq!((joints[0].kind, joints[0].parent), (JointKind::Fixed, None));
    // base → link1 (a) → link2 (b) → arm (c).
    assert_eq!(joints[1].parent, Some(sp.links[0]));
    assert_eq!(joints[1].child, sp.links[1]);
    assert_eq!(joints[2].parent, Some(sp.links[1]));
    assert_eq!(joints[3].child, sp.bodies[1]);
    assert!(close(joints[1].parent_anchor, Vec3::new(0.0, 0.0, 0.6), 1e-6));
    assert!(close(joints[1].child_anchor, Vec3::new(0.0, 0.0, 0.1), 1e-6));
    assert!(close(joints[2].parent_anchor, Vec3::ZERO, 1e-6));
    assert!(matches!(joints[3].kind, JointKind::Prismatic { axis } if axis == Vec3::Z));
    for k in [1, 2] {
        let b = *w.get::<&Body>(sp.links[k]).unwrap();
        assert_eq!((b.mass, b.inertia), (0.0, Vec3::ZERO));
        assert!(close(b.pos, Vec3::new(0.0, 0.0, 0.5), 1e-6));
    }
    assert!(w.get::<&Body>(sp.bodies[1]).unwrap().mass > 0.0);
}

#[test]
fn inertial_and_ground_plane() {
    let xml = r#"<mujoco>
  <option gravity="0 0 -3"/>
  <worldbody>
    <geom name="floor" type="plane" size="10 10 0.1" friction="0.4"/>
    <body pos="0 0 1">
      <joint type="ball"/>
      <inertial pos="0 0 0.1" mass="2" diaginertia="1 2 3"/>
      <geom type="sphere" size="0.1" contype="0" conaffinity="0"/>
    </body>
  </worldbody>
</mujoco>"#;
    let m = parse_mjcf(xml, "g.xml").unwrap();
    assert_eq!(m.bodies[0].mass, 2.0);
    assert!(close(m.bodies[0].inertia, Vec3::new(1.0, 3.0, 2.0), 1e-6));
    assert!(close(m.bodies[0].com, Vec3::new(0.0, 0.1, 0.0), 1e-6));
    assert_eq!(m.ground.as_ref().unwrap().contact.mu, 0.4);
    assert_eq!(m.num_shapes(), 0, "contype = conaffinity = 0 spawns no shape");
    let mut scene = Scene::new();
    scene.spawn_envs(1, |env| {
        m.spawn(env, (Vec3::ZERO, Quat::IDENTITY));
    });
    let g = *scene.world.query::<&Ground>().iter().next().unwrap();
    assert_eq!((g.ke, g.mu), (4.0e3, 0.4));
    let grav = scene.world.query::<&Gravity>().iter().next().unwrap().0;
    assert!(close(grav, Vec3::new(0.0, -3.0, 0.0), 1e-6));
    // A ball root is attached to the world at its pivot.
    let j = *scene.world.query::<&Joint>().iter().next().unwrap();
    assert_eq!((j.kind, j.parent), (JointKind::Ball, None));
    assert!(close(j.parent_anchor, Vec3::new(0.0, 1.0, 0.0), 1e-6));
}

#[test]
fn full_inertia_gets_principal_axes() {
    let xml = wrap(r#"<body><freejoint/><inertial pos="0 0 0" mass="1" fullinertia="2 2 3 0.5 0 0"/></body>"#);
    let m = parse_mjcf_with(&xml, "t", &no_conv()).unwrap();
    let b = &m.bodies[0];
    let mut d = b.inertia.to_array();
    d.sort_by(f32::total_cmp);
    assert!(close(Vec3::from_array(d), Vec3::new(1.5, 2.5, 3.0), 1e-5), "{:?}", b.inertia);
    assert!(!b.inertia_rot.abs_diff_eq(Quat::IDENTITY, 1e-3));
}

fn err(xml: &str) -> MjcfError {
    parse_mjcf(xml, "bad.xml").expect_err("should fail")
}

#[test]
fn malformed_xml_reports_line() {
    let e = err("<mujoco>\n  <worldbody>\n    <body>\n  </worldbody>\n</mujoco>\n");
    assert_eq!((e.file.as_str(), e.line, e.element.as_str()), ("bad.xml", 4, "xml"));
    assert!(e.to_string().starts_with("bad.xml:4:"), "{e}");
    let e = err("<mujoco>\n<worldbody>\n<body pos=\"0 0 0\" pos=\"1 1 1\"/>\n</worldbody>\n</mujoco>");
    assert_eq!(e.line, 3, "{e}");
    let e = err("");
    assert_eq!(e.element, "xml", "{e}");
}

#[test]
fn unknown_element_is_named_with_its_line() {
    let e = err("<mujoco>\n  <worldbody/>\n  <tendon>\n  </tendon>\n</mujoco>");
    assert_eq!((e.line, e.element.as_str()), (3, "tendon"), "{e}");
    assert!(e.message.contains("<tendon>") && e.message.contains("not modelled"), "{e}");
    let e = err(&wrap("<body>\n<freejoint/>\n<wobble/>\n</body>"));
    assert_eq!((e.line, e.element.as_str()), (5, "wobble"), "{e}");
    let e = err("<mujoco>\n<equality/>\n</mujoco>");
    assert_eq!((e.line, e.element.as_str()), (2, "equality"), "{e}");
    let e = err("<mujoco><actuator><position joint=\"x\"/></actuator></mujoco>");
    assert!(e.message.contains("only <motor>"), "{e}");
}

#[test]
fn bad_attribute_value_names_attribute_line_and_expectation() {
    let e = err(&wrap("<body pos=\"1 2\">\n<freejoint/><geom size=\"1\"/></body>"));
    assert_eq!((e.line, e.element.as_str()), (3, "body"), "{e}");
    assert!(e.message.contains("`pos`") && e.message.contains("expected 3 numbers, found 2"), "{e}");
    let e = err(&wrap("<body>\n<freejoint/>\n<geom size=\"abc\"/></body>"));
    assert!(e.line == 5 && e.message.contains("`size`") && e.message.contains("not a finite number"), "{e}");
    let e = err(&wrap("<body><joint type=\"screw\"/><geom size=\"1\"/></body>"));
    assert!(e.message.contains("`type`") && e.message.contains("hinge, slide, ball, free"), "{e}");
    // Values from a default class point at the default.
    let e = err(
        "<mujoco>\n<default>\n<geom size=\"1 x\"/>\n</default>\n<worldbody><body><freejoint/><geom/></body></worldbody></mujoco>",
    );
    assert!(e.line == 3 && e.message.contains("default class `main`"), "{e}");
}

#[test]
fn unsupported_attributes_and_semantics_are_errors() {
    let cases: &[(&str, &str)] = &[
        (r#"<body><freejoint/><geom size="1" margin="0.1"/></body>"#, "`margin`"),
        (r#"<body><freejoint/><geom type="cylinder" size="1 1"/></body>"#, "`cylinder` is not supported"),
        (r#"<body><joint stiffness="3"/><geom size="1"/></body>"#, "springs"),
        (r#"<body><joint/></body>"#, "no mass"),
        (r#"<body><geom size="1"/><body><freejoint/><geom size="1"/></body></body>"#, "free joint"),
        (r#"<body><joint type="ball" range="0 10"/><geom size="1"/></body>"#, "ball"),
        (r#"<geom type="sphere" size="1"/>"#, "only a ground plane"),
        (r#"<geom type="plane" size="1 1 1" pos="0 0 1"/>"#, "y = 0"),
        (r#"<body mocap="true"/>"#, "`mocap`"),
        (r#"<body><freejoint/><geom size="1" condim="6"/></body>"#, "torsional"),
        (r#"<body><freejoint/><geom class="nope" size="1"/></body>"#, "no such default class"),
        (r#"<body name="a"><freejoint/><geom size="1"/></body><body name="a"/>"#, "duplicate body name"),
    ];
    for (body, needle) in cases {
        let e = err(&wrap(body));
        assert!(e.to_string().contains(needle), "{body}: {e}");
        assert!(e.line >= 3, "{e}");
    }
    let e = err("<mujoco><compiler coordinate=\"global\"/></mujoco>");
    assert!(e.message.contains("`coordinate`"), "{e}");
    let e = err(
        "<mujoco><worldbody><body><joint name=\"j\"/><geom size=\"1\"/></body></worldbody><actuator><motor joint=\"k\"/></actuator></mujoco>",
    );
    assert!(e.message.contains("`joint` = \"k\""), "{e}");
    let e = err("<robot/>");
    assert!(e.message.contains("<mujoco>"), "{e}");
    let missing = load_mjcf(&asset("no_such_file.xml")).unwrap_err();
    assert!(missing.message.contains("cannot read"), "{missing}");
}

#[test]
fn radians_and_orientation_forms_agree() {
    let q = |attr: &str, compiler: &str| {
        let xml = format!(
            "<mujoco><compiler {compiler}/><worldbody><body {attr}><freejoint/><geom size=\"1\"/></body></worldbody></mujoco>"
        );
        parse_mjcf_with(&xml, "t", &no_conv()).unwrap().bodies[0].rot
    };
    let want = Quat::from_rotation_z(std::f32::consts::FRAC_PI_2);
    for r in [
        q(r#"euler="0 0 90""#, ""),
        q(r#"euler="0 0 1.5707963""#, r#"angle="radian""#),
        q(r#"axisangle="0 0 1 90""#, ""),
        q(r#"quat="0.70710678 0 0 0.70710678""#, ""),
        q(r#"xyaxes="0 1 0 -1 0 0""#, ""),
    ] {
        assert!(r.abs_diff_eq(want, 1e-6), "{r:?}");
    }
    let z = q(r#"zaxis="1 0 0""#, "");
    assert!(close(z * Vec3::Z, Vec3::X, 1e-6));
}

#[test]
fn deep_nesting_and_overflow_are_errors_not_crashes() {
    // Bodies deeper than the loader's limit (128), XML deeper than the parser's guard (144),
    // and unbalanced deep XML: errors with a line, never a stack overflow.
    for (depth, close) in [(130, true), (142, true), (143, true), (150, true), (5000, true), (100_000, false)] {
        let open = "<body><joint/><geom size=\"0.1\"/>\n".repeat(depth);
        let xml = wrap(&format!("{open}{}", if close { "</body>".repeat(depth) } else { String::new() }));
        let e = err(&xml);
        assert!(e.message.contains("nested deeper") && e.line > 100, "{depth}: {e}");
    }
    let e = err(&wrap(r#"<body><freejoint/><geom type="box" size="1e200 1e200 1e200"/></body>"#));
    assert!(e.message.contains("overflow"), "{e}");
    let e = err(&wrap(r#"<body><freejoint/><geom size="nan"/></body>"#));
    assert!(e.message.contains("not a finite number"), "{e}");
}

const ANT: &str = include_str!("../../assets/ant.xml");

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Random deletions, insertions and replacements in ant.xml: the loader returns Ok or Err
    /// (never panics), and a model that loads also spawns.
    #[test]
    fn mutated_ant_never_panics(edits in prop::collection::vec((0usize..3, any::<prop::sample::Index>(), 0usize..40), 1..12)) {
        const ALPHABET: &[char] = &['<', '>', '/', '"', '=', ' ', '\n', '-', '.', '0', '1', '9', 'e', 'x', 'a', 'b',
            'g', 'm', 'j', '&', ';', '!', '?', '\'', '#', 'é', '\u{0}', 'z', 'y', 'p', 'o', 's', 'n', 't', 'q', 'c', 'l', 'r', 'i', 'u'];
        let mut text: Vec<char> = ANT.chars().collect();
        for (op, at, ch) in edits {
            let i = at.index(text.len().max(1));
            match op {
                0 if !text.is_empty() => { text.remove(i); }
                1 => text.insert(i, ALPHABET[ch]),
                _ if !text.is_empty() => text[i] = ALPHABET[ch],
                _ => {}
            }
        }
        let text: String = text.into_iter().collect();
        if let Ok(m) = parse_mjcf(&text, "mutated.xml") {
            let mut scene = Scene::new();
            scene.spawn_envs(1, |env| { m.spawn(env, (Vec3::ZERO, Quat::IDENTITY)); });
        }
    }

    /// Random numeric attribute values never panic either.
    #[test]
    fn random_numbers_never_panic(pos in "[-0-9.e ]{0,20}", size in "[-0-9.e ]{0,12}", axis in "[-0-9. ]{0,12}") {
        let xml = wrap(&format!(
            r#"<body pos="{pos}"><joint axis="{axis}"/><geom type="capsule" size="{size}" fromto="0 0 0 {pos}"/></body>"#
        ));
        let _ = parse_mjcf(&xml, "r.xml");
    }
}
