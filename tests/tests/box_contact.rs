//! Box contact in `articulation.shape_contact`: the adjoint of the sphere–box, capsule–box (core
//! outside and inside the box) and box–box laws passes the dual-number dot-product test and
//! central finite differences at random non-kink states; a cube dropped on a fixed sphere or
//! capsule does not pass through it; a box on a fixed box comes to rest on it; the pair list of
//! `ShapePairContact::involving_body` holds exactly the pairs with one shape on that body.

use diffsim_engine::components::{Body, Geometry, Gravity, Joint, JointKind, Shape};
use diffsim_engine::{Cpu, Scene, Sim, StepCx};
use diffsim_systems::articulation::shape_contact::{ShapePairContact, WorldShape, pair_contacts};
use diffsim_systems::articulation::{self, Contacts, JointForces, ShapeContact};
use diffsim_tests::{GradReport, Rng, SystemCheck, cases};
use glam::{Quat, Vec3};
use proptest::prelude::*;

/// A shape at its body's origin with the test contact parameters.
macro_rules! shape {
    ($body:expr, $geometry:expr) => {
        Shape {
            body: $body,
            geometry: $geometry,
            pos: Vec3::ZERO,
            rot: Quat::IDENTITY,
            ke: 2.0e3,
            kd: 5.0,
            kf: 10.0,
            mu: 0.5,
        }
    };
}

/// Body A (free, at `pos_a` with rotation `rot_a`, moving) carrying `a` against body B carrying
/// `b`: B is fixed to the world at the origin when `fixed_b`, else free and moving too.
struct Pair {
    a: Geometry,
    b: Geometry,
    pos_a: Vec3,
    rot_a: Quat,
    rot_b: Quat,
    fixed_b: bool,
    gravity: f32,
    vel: Vec3,
    ang_vel: Vec3,
}

impl Pair {
    fn sim(&self, dt: f64) -> Sim<f64> {
        let mut scene = Scene::new();
        scene.spawn_envs(1, |env| {
            env.spawn((Gravity(Vec3::new(0.0, self.gravity, 0.0)),));
            let mut a = Body::at(self.pos_a, 0.5, Vec3::splat(4.0e-4));
            a.rot = self.rot_a;
            a.vel = self.vel;
            a.ang_vel = self.ang_vel;
            let ea = env.spawn((a,));
            env.spawn((Joint::new(None, ea, JointKind::Free, Vec3::ZERO, Vec3::ZERO),));
            let mut b = Body::at(Vec3::ZERO, 2.0, Vec3::splat(4.0e-3));
            b.rot = self.rot_b;
            b.vel = -0.5 * self.vel;
            b.ang_vel = 0.3 * self.ang_vel;
            let eb = env.spawn((b,));
            let kind = if self.fixed_b { JointKind::Fixed } else { JointKind::Free };
            env.spawn((Joint::new(None, eb, kind, Vec3::ZERO, Vec3::ZERO),));
            env.spawn((shape!(ea, self.a),));
            env.spawn((shape!(eb, self.b),));
        });
        let packed = scene.pack().unwrap();
        let forces = JointForces { num_actions: 0, scale: 1.0 };
        let schedule = articulation::schedule::<f64>(dt, 1, Contacts { ground: false, shapes: true }, forces);
        Sim::new(packed.model, packed.state.map(|x| x as f64), packed.control, schedule, Cpu::new(1)).unwrap()
    }
}

fn unit(rng: &mut Rng) -> Vec3 {
    Vec3::new(rng.uniform(-1.0, 1.0) as f32, rng.uniform(-1.0, 1.0) as f32, rng.uniform(-1.0, 1.0) as f32)
}

fn random_rot(rng: &mut Rng) -> Quat {
    Quat::from_axis_angle(unit(rng).normalize_or(Vec3::Y), rng.uniform(-3.0, 3.0) as f32)
}

const CUBE: Geometry = Geometry::Box { half_extents: Vec3::new(0.1, 0.08, 0.12) };

/// A random pair of kind `which` (0 sphere–box, 1 capsule–box outside, 2 capsule–box with the
/// core inside, 3 box–box) in contact, stepped once so that FK has posed the bodies.
fn random_contact(which: u32, rng: &mut Rng) -> Sim<f64> {
    let dir = unit(rng).normalize_or(Vec3::X);
    let (a, dist) = match which {
        0 => (Geometry::Sphere { radius: 0.05 }, rng.uniform(0.08, 0.14)),
        1 => (Geometry::Capsule { radius: 0.05, half_height: 0.1 }, rng.uniform(0.12, 0.2)),
        2 => (Geometry::Capsule { radius: 0.03, half_height: 0.15 }, rng.uniform(0.0, 0.06)),
        _ => (Geometry::Box { half_extents: Vec3::new(0.06, 0.05, 0.07) }, rng.uniform(0.1, 0.2)),
    };
    let pair = Pair {
        a,
        b: CUBE,
        pos_a: dir * dist as f32,
        rot_a: random_rot(rng),
        rot_b: random_rot(rng),
        fixed_b: false,
        gravity: 0.0,
        vel: unit(rng),
        ang_vel: unit(rng) * 3.0,
    };
    let mut sim = pair.sim(1e-3);
    sim.step().unwrap();
    sim
}

/// The contact points the forward sees at the current state (to skip states without contact).
fn contacts(sim: &Sim<f64>) -> usize {
    let (bq, model) = (sim.state.get("body_q").unwrap(), sim.model.view_all());
    let (size, pose, kind) = (model.param("shape_size"), model.param("shape_pose"), model.topo("shape_kind"));
    let world = |s: usize| WorldShape::new(bq, s, kind[s], &size[3 * s..3 * s + 3], &pose[7 * s..7 * s + 7]).unwrap();
    let mut out = Vec::new();
    pair_contacts(&world(0), &world(1), &mut out);
    out.len()
}

/// One system's gradient check at a point.
type Check<'a> = dyn Fn(&SystemCheck, &mut Rng) -> Result<GradReport, String> + 'a;

proptest! {
    #![proptest_config(cases(24))]

    #[test]
    fn box_contacts_pass_dot_product_and_fd(seed in any::<u64>(), which in 0u32..4) {
        let mut rng = Rng::new(seed);
        let sim = random_contact(which, &mut rng);
        prop_assume!(contacts(&sim) > 0);
        let (s, c) = (sim.state.clone(), sim.control.clone());
        // A kink (a sample reaching a face, a tie of two faces) closer than h to the state
        // spoils the difference quotient; such a state passes if the quotient at h/10 agrees.
        let report = |sys: &Check<'_>| {
            let mut r = None;
            for h in [1e-7, 1e-8] {
                let check = SystemCheck { model: &sim.model, state: &s, control: &c, cx: StepCx { dt: 1e-3, step: 0, substep: 0 }, h };
                let g = sys(&check, &mut Rng::new(seed ^ 0x5EED))?;
                let done = g.fd_err() < 1e-4;
                r = Some(g);
                if done {
                    break;
                }
            }
            Ok::<_, String>(r.expect("two tries"))
        };
        let r = report(&|check, rng| check.run(&ShapeContact, rng)).map_err(TestCaseError::fail)?;
        prop_assert!(r.adjoint != 0.0, "no force at this state");
        prop_assert!(r.dual_err() < 1e-10, "dual {r:?}");
        prop_assert!(r.fd_err() < 1e-4, "fd {r:?}");
        // The explicit pair list gives the same system.
        let pairs = ShapePairContact { pairs: vec![(0, 1)] };
        let r = report(&|check, rng| check.run(&pairs, rng)).map_err(TestCaseError::fail)?;
        prop_assert!(r.dual_err() < 1e-10 && r.fd_err() < 1e-4, "pairs {r:?}");
    }
}

/// Drops body A (a box) from 0.3 m onto a fixed shape at the origin for `seconds`; returns the
/// lowest height of A's centre and its final speed.
fn drop_on(b: Geometry, a: Geometry, rot_a: Quat, seconds: f64) -> (f64, f64) {
    let pair = Pair {
        a,
        b,
        pos_a: Vec3::new(0.01, 0.3, -0.005),
        rot_a,
        rot_b: Quat::IDENTITY,
        fixed_b: true,
        gravity: -9.81,
        vel: Vec3::ZERO,
        ang_vel: Vec3::ZERO,
    };
    let mut sim = pair.sim(5e-4);
    let mut lowest = f64::INFINITY;
    for _ in 0..(seconds / 5e-4) as usize {
        sim.step().unwrap();
        lowest = lowest.min(sim.state.get("body_q").unwrap()[1]);
    }
    let (bq, qd) = (sim.state.get("body_q").unwrap(), sim.state.get("joint_qd").unwrap());
    let p = [bq[0], bq[1], bq[2]];
    let v =
        [qd[3] + qd[1] * p[2] - qd[2] * p[1], qd[4] + qd[2] * p[0] - qd[0] * p[2], qd[5] + qd[0] * p[1] - qd[1] * p[0]];
    (lowest, (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt())
}

#[test]
fn cube_dropped_on_a_sphere_or_a_capsule_does_not_pass_through() {
    let cube = Geometry::Box { half_extents: Vec3::splat(0.05) };
    // Rest height of the cube centre: sphere top (0.05) + half extent 0.05, minus the static
    // penetration m g / ke = 0.5 · 9.81 / 2e3 ≈ 2.5 mm (a little more as it rocks).
    for (b, top) in
        [(Geometry::Sphere { radius: 0.05 }, 0.05), (Geometry::Capsule { radius: 0.04, half_height: 0.1 }, 0.04)]
    {
        let tilted = Quat::from_rotation_z(0.2) * Quat::from_rotation_x(0.1);
        let (lowest, _) = drop_on(b, cube, tilted, 0.4);
        assert!(lowest > top, "{b:?}: the cube centre went down to {lowest}, below the top {top}");
    }
}

#[test]
fn box_dropped_on_a_box_comes_to_rest_on_it() {
    let table = Geometry::Box { half_extents: Vec3::new(0.3, 0.05, 0.3) };
    let block = Geometry::Box { half_extents: Vec3::new(0.06, 0.04, 0.05) };
    let (lowest, speed) = drop_on(table, block, Quat::from_rotation_y(0.4), 2.0);
    // Table top 0.05 + half height 0.04; static sink ≈ m g / (4 ke) per corner ≈ 0.6 mm.
    assert!(lowest > 0.08, "the block sank to {lowest}");
    assert!(speed < 1e-2, "still moving at {speed} m/s");
}

#[test]
fn pair_list_of_a_body_holds_exactly_its_pairs() {
    let mut scene = Scene::new();
    scene.spawn_envs(2, |env| {
        let bodies: Vec<_> = (0..3)
            .map(|k| {
                let e = env.spawn((Body::at(Vec3::new(k as f32, 0.0, 0.0), 1.0, Vec3::splat(0.01)),));
                env.spawn((Joint::new(None, e, JointKind::Free, Vec3::ZERO, Vec3::ZERO),));
                e
            })
            .collect();
        // Shapes 0, 1 on body 0; 2 on body 1; 3, 4 on body 2.
        for b in [0, 0, 1, 2, 2] {
            env.spawn((shape!(bodies[b], Geometry::Sphere { radius: 0.1 }),));
        }
    });
    let packed = scene.pack().unwrap();
    let pairs = ShapePairContact::involving_body(&packed.model, 1).pairs;
    assert_eq!(pairs, vec![(0, 2), (1, 2), (2, 3), (2, 4)]);
}

/// A capsule core through a box with both ends outside is "entering" (the sphere law at its
/// ends, beyond reach here, and at its midpoint, deep inside) in f32 as in f64. Each interval of f with no coordinate outside its slab has f ≡ 0, but at its
/// ends, face crossings, f32 leaves |x| − h at ±1 ulp, whose square (~1e-16) exceeded the 1e-18
/// threshold: evaluating those intervals at their ends made f32 call such a core "outside", with
/// one contact of penetration r at a face.
#[test]
fn core_through_a_box_enters_it_in_f32_as_in_f64() {
    use diffsim_systems::articulation::shape_contact::segment_box;
    let mut rng = Rng::new(7);
    let half = [0.1, 0.08, 0.12];
    let rot64: [[f64; 3]; 3] = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    let rot32 = rot64.map(|r| r.map(|x| x as f32));
    for _ in 0..200 {
        let dir = unit(&mut rng).normalize_or(Vec3::X);
        let mid = unit(&mut rng) * 0.05;
        let (p0, d) = (mid - dir * 0.4, dir * 0.8);
        let mut out32 = Vec::new();
        segment_box(p0.to_array(), d.to_array(), 0.02, [0.0f32; 3], &rot32, half, &mut out32);
        let mut out64 = Vec::new();
        let (p0, d) = (p0.as_dvec3().to_array(), d.as_dvec3().to_array());
        segment_box(p0, d, 0.02, [0.0f64; 3], &rot64, half, &mut out64);
        // The ends are outside, beyond the radius; the midpoint is inside at depth ≥ 0.03.
        assert_eq!(out64.len(), 1, "{out64:?}");
        assert!(out64[0].pen > 0.05, "{out64:?}");
        assert_eq!(out32.len(), 1, "f32 gave {out32:?}");
        assert!((f64::from(out32[0].pen) - out64[0].pen).abs() < 1e-6, "f32 gave {out32:?}, f64 {out64:?}");
    }
}
