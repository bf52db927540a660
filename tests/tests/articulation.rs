//! Articulated bodies: physical sanity (energy of a frictionless pendulum, momentum of a free
//! body, a dropped box coming to rest on the ground) and the gradient harness on every
//! articulation system and on rollouts through the tape.

use diffsim_engine::articulation::LimitGains;
use diffsim_engine::components::{Body, Geometry, Gravity, Joint, JointKind, Shape};
use diffsim_engine::{ColumnSpec, Columns, Cpu, EngineError, Real, Scene, Sim, SimFactory, StepCx};
use diffsim_systems::articulation::kinematics::{ArticulationModel, body_inertia, kinematics};
use diffsim_systems::articulation::spatial::{dot6, mat6_vec};
use diffsim_systems::articulation::{
    self, ClearForces, Contacts, ForwardKinematics, GroundContact, Integrate, JointForces, ShapeContact,
};
use diffsim_tests::{Rng, RolloutCheck, SystemCheck, cases};
use glam::{Quat, Vec3};
use proptest::prelude::*;

/// A cart on a rail (prismatic x) carrying a pole (revolute z; with `ball`, a link on a ball joint
/// at its tip and a body welded to that) with an actuated cart, and optionally a box on the pole tip touching the
/// ground; or a single free box.
#[derive(Clone, Debug)]
struct Rig {
    envs: usize,
    free_box: bool,
    ground: bool,
    gravity: f32,
    q0: [f32; 2],
    qd0: [f32; 2],
    damping: f32,
    limit: Option<(f32, f32)>,
    ball: bool,
}

impl Default for Rig {
    fn default() -> Self {
        Self {
            envs: 2,
            free_box: false,
            ground: false,
            gravity: -9.81,
            q0: [0.1, 0.5],
            qd0: [0.0, 0.0],
            damping: 0.0,
            limit: None,
            ball: false,
        }
    }
}

impl Rig {
    fn scene(&self) -> Scene {
        let mut scene = Scene::new();
        scene.spawn_envs(self.envs, |env| {
            env.spawn((Gravity(Vec3::new(0.0, self.gravity, 0.0)),));
            env.spawn((LimitGains { ke: 200.0, kd: 2.0 },));
            let contact = |body| Shape {
                body,
                geometry: Geometry::Box { half_extents: Vec3::new(0.1, 0.05, 0.08) },
                pos: Vec3::ZERO,
                rot: Quat::from_rotation_z(0.3),
                ke: 2.0e3,
                kd: 20.0,
                kf: 50.0,
                mu: 0.6,
            };
            if self.free_box {
                let mut b = Body::at(Vec3::new(0.0, 0.4, 0.0), 1.5, Vec3::new(0.004, 0.007, 0.006));
                b.rot = Quat::from_euler(glam::EulerRot::XYZ, 0.3, 0.2, 0.1);
                b.vel = Vec3::new(0.5, 0.2, -0.3);
                b.ang_vel = Vec3::new(1.0, -2.0, 0.7);
                let e = env.spawn((b,));
                env.spawn((Joint::new(None, e, JointKind::Free, Vec3::ZERO, Vec3::ZERO),));
                if self.ground {
                    env.spawn((contact(e),));
                }
                return;
            }
            let cart = env.spawn((Body::at(Vec3::ZERO, 1.0, Vec3::new(0.01, 0.01, 0.01)),));
            let mut rail =
                Joint::new(None, cart, JointKind::Prismatic { axis: Vec3::X }, Vec3::new(0.0, 0.3, 0.0), Vec3::ZERO);
            rail.q0 = self.q0[0];
            rail.qd0 = self.qd0[0];
            rail.gear = 1.0;
            rail.damping = self.damping;
            rail.limit = self.limit;
            env.spawn((rail,));
            let mut pole_body = Body::at(Vec3::ZERO, 0.5, Vec3::new(0.02, 0.001, 0.02));
            pole_body.com = Vec3::new(0.0, 0.25, 0.0);
            let pole = env.spawn((pole_body,));
            let mut hinge = Joint::new(Some(cart), pole, JointKind::Revolute { axis: Vec3::Z }, Vec3::ZERO, Vec3::ZERO);
            hinge.q0 = self.q0[1];
            hinge.qd0 = self.qd0[1];
            hinge.damping = self.damping;
            hinge.limit = self.limit;
            env.spawn((hinge,));
            if self.ball {
                // A link on a ball joint at the pole's tip (its parent rotates with q), and a body
                // welded to it.
                let mut link_body = Body::at(Vec3::ZERO, 0.3, Vec3::new(0.004, 0.002, 0.003));
                link_body.com = Vec3::new(0.0, 0.1, 0.0);
                let link = env.spawn((link_body,));
                let ball = Joint::new(Some(pole), link, JointKind::Ball, Vec3::new(0.0, 0.5, 0.0), Vec3::ZERO);
                env.spawn((ball,));
                let mut tip_body = Body::at(Vec3::ZERO, 0.2, Vec3::new(0.003, 0.002, 0.004));
                tip_body.com = Vec3::new(0.02, 0.03, -0.01);
                let tip = env.spawn((tip_body,));
                let weld =
                    Joint::new(Some(link), tip, JointKind::Fixed, Vec3::new(0.0, 0.2, 0.0), Vec3::new(0.05, 0.0, 0.0));
                env.spawn((weld,));
            }
            if self.ground {
                let mut s = contact(pole);
                s.pos = Vec3::new(0.0, 0.5, 0.0);
                env.spawn((s,));
            }
        });
        scene
    }
}

impl SimFactory for Rig {
    fn sim<R: Real>(&self) -> Result<Sim<R>, EngineError> {
        let mut packed = self.scene().pack()?;
        let actions = if self.free_box { 0 } else { 1 };
        if actions > 0 {
            packed.add_control(ColumnSpec::new("act", 1, actions));
        }
        let forces = JointForces { num_actions: actions, scale: 5.0 };
        let schedule =
            articulation::schedule::<R>(1.0 / 60.0, 4, Contacts { ground: self.ground, shapes: self.ground }, forces);
        let state = packed.state.map(|x| R::from_f64(x as f64));
        Sim::new(packed.model, state, packed.control, schedule, Cpu::new(1))
    }
}

/// Kinetic + potential energy, linear momentum and angular momentum (about the origin) of env 0.
fn energy_momentum(sim: &Sim<f64>) -> (f64, [f64; 3], [f64; 3]) {
    let model = sim.model.view_all();
    let m = ArticulationModel::env(&model, 0);
    let q = sim.state.env("joint_q", 0).unwrap();
    let qd = sim.state.env("joint_qd", 0).unwrap();
    let kin = kinematics(&m, q, qd);
    let g = sim.model.params.env("gravity", 0).unwrap();
    let (mut e, mut p, mut l) = (0.0, [0.0; 3], [0.0; 3]);
    for k in 0..m.len() {
        let inertia = body_inertia(&m, &kin, k);
        let h = mat6_vec(&inertia, kin.twist[k]);
        e += 0.5 * dot6(kin.twist[k], h);
        let com = m.com;
        let c: Vec<f64> =
            (0..3).map(|i| kin.pos[k][i] + (0..3).map(|j| kin.rot[k][i][j] * com[3 * k + j]).sum::<f64>()).collect();
        e -= m.mass[k] * (g[0] * c[0] + g[1] * c[1] + g[2] * c[2]);
        for i in 0..3 {
            l[i] += h[i];
            p[i] += h[3 + i];
        }
    }
    (e, p, l)
}

#[test]
fn frictionless_pole_on_cart_conserves_energy_within_one_percent() {
    let rig = Rig { envs: 1, q0: [0.0, 1.2], ..Rig::default() };
    let mut sim: Sim<f64> = rig.sim().unwrap();
    sim.schedule.dt = 1e-3;
    sim.schedule.substeps = 1;
    let (e0, _, _) = energy_momentum(&sim);
    let (mut worst, mut swing) = (0.0f64, 0.0f64);
    for _ in 0..1000 {
        sim.step().unwrap();
        let (e, _, _) = energy_momentum(&sim);
        worst = worst.max((e - e0).abs());
        swing = swing.max((sim.state.get("joint_q").unwrap()[1] - 1.2).abs());
    }
    // Relative to the swing's energy scale m g L (0.5 · 9.81 · 0.25).
    let scale = 0.5 * 9.81 * 0.25;
    assert!(worst / scale < 0.01, "energy drift {worst} vs scale {scale}");
    // It really swung (and moved the cart): the pole turned by more than a radian.
    assert!(swing > 1.0, "swing {swing}");
}

#[test]
fn free_body_conserves_momentum_without_gravity() {
    let rig = Rig { envs: 1, free_box: true, gravity: 0.0, ..Rig::default() };
    let mut sim: Sim<f64> = rig.sim().unwrap();
    sim.schedule.dt = 1e-3;
    sim.schedule.substeps = 1;
    let (_, p0, l0) = energy_momentum(&sim);
    for _ in 0..1000 {
        sim.step().unwrap();
    }
    let (_, p, l) = energy_momentum(&sim);
    for i in 0..3 {
        assert!((p[i] - p0[i]).abs() < 1e-9, "linear momentum {p:?} vs {p0:?}");
        assert!((l[i] - l0[i]).abs() < 1e-3 * (1.0 + l0[i].abs()), "angular momentum {l:?} vs {l0:?}");
    }
}

#[test]
fn dropped_box_comes_to_rest_on_the_ground() {
    let rig = Rig { envs: 1, free_box: true, ground: true, ..Rig::default() };
    let mut sim: Sim<f32> = rig.sim().unwrap();
    sim.schedule.substeps = 16;
    for _ in 0..240 {
        sim.step().unwrap();
    }
    let bq = sim.state.get("body_q").unwrap();
    let qd = sim.state.get("joint_qd").unwrap();
    let speed = qd.iter().map(|x| x * x).sum::<f32>().sqrt();
    // Lowest corner: the box is 0.1 × 0.05 × 0.08 half extents; its centre rests between 0.04 and 0.11.
    assert!(bq[1] > 0.03 && bq[1] < 0.12, "height {}", bq[1]);
    assert!(speed < 0.05, "still moving: {speed}");
    let mut scene_min = f32::INFINITY;
    let rot = Quat::from_xyzw(bq[3], bq[4], bq[5], bq[6]) * Quat::from_rotation_z(0.3);
    for c in 0..8 {
        let s = |b: usize| if c >> b & 1 == 1 { 1.0 } else { -1.0 };
        let corner = Vec3::new(bq[0], bq[1], bq[2]) + rot * Vec3::new(0.1 * s(0), 0.05 * s(1), 0.08 * s(2));
        scene_min = scene_min.min(corner.y);
    }
    assert!(scene_min > -0.01, "penetration {scene_min}");
}

fn random_point(rig: &Rig, rng: &mut Rng) -> (Sim<f64>, Columns<f64>, Columns<f64>) {
    let mut sim: Sim<f64> = rig.sim().unwrap();
    sim.control.fill(0.3);
    for _ in 0..3 {
        sim.step().unwrap();
    }
    let mut s = sim.state.clone();
    for (spec, col) in s.columns_mut() {
        let amp = if spec.name == "joint_q" { 0.05 } else { 0.2 };
        col.iter_mut().for_each(|x| *x += rng.uniform(-amp, amp));
    }
    let c = rng.like(&sim.control);
    (sim, s, c)
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn articulation_systems_pass_dot_product_and_fd(seed in any::<u64>(), free in any::<bool>(), limits in any::<bool>(), ball in any::<bool>()) {
        let rig = Rig {
            free_box: free,
            ball,
            damping: 0.3,
            limit: limits.then_some((-0.2, 0.3)),
            ..Rig::default()
        };
        let mut rng = Rng::new(seed);
        let (sim, s, c) = random_point(&rig, &mut rng);
        let check = SystemCheck { model: &sim.model, state: &s, control: &c, cx: StepCx { dt: 1.0 / 240.0, step: 0, substep: 0 }, h: 1e-6 };
        let forces = JointForces { num_actions: if free { 0 } else { 1 }, scale: 5.0 };
        let reports = [
            ("clear", check.run(&ClearForces, &mut rng)),
            ("fk", check.run(&ForwardKinematics, &mut rng)),
            ("joint_forces", check.run(&forces, &mut rng)),
            ("integrate", check.run(&Integrate, &mut rng)),
        ];
        for (name, r) in reports {
            let r = r.map_err(TestCaseError::fail)?;
            prop_assert!(r.dual_err() < 1e-10, "{name}: dual {r:?}");
            // Limits switch on kinks; FD only where the state is smooth for this system.
            if !(limits && name == "joint_forces") {
                prop_assert!(r.fd_err() < 1e-4, "{name}: fd {r:?}");
            }
        }
    }

    #[test]
    fn ground_contact_passes_dot_product(seed in any::<u64>()) {
        let rig = Rig { ground: true, q0: [0.0, 2.0], ..Rig::default() };
        let mut rng = Rng::new(seed);
        let (sim, s, c) = random_point(&rig, &mut rng);
        let check = SystemCheck { model: &sim.model, state: &s, control: &c, cx: StepCx { dt: 1.0 / 240.0, step: 0, substep: 0 }, h: 1e-6 };
        let r = check.run(&GroundContact, &mut rng).map_err(TestCaseError::fail)?;
        prop_assert!(r.dual_err() < 1e-10, "dual {r:?}");
    }

    #[test]
    fn articulation_rollouts_through_the_tape(seed in any::<u64>(), horizon in 1usize..5, free in any::<bool>()) {
        let smooth = Rig { free_box: free, damping: 0.2, ..Rig::default() };
        let r = RolloutCheck { horizon, h: 1e-6, state_dir_scale: 0.1 }.run(&smooth, &mut Rng::new(seed)).unwrap();
        prop_assert!(r.dual_err() < 1e-10, "dual {r:?}");
        prop_assert!(r.fd_err() < 1e-4, "fd {r:?}");
        let contact = Rig { ground: true, q0: [0.0, 2.0], ..Rig::default() };
        let r = RolloutCheck { horizon, h: 1e-6, state_dir_scale: 0.1 }.run(&contact, &mut Rng::new(seed)).unwrap();
        prop_assert!(r.dual_err() < 1e-10, "dual with contact {r:?}");
    }
}

/// Two free capsules approaching each other without gravity (shape–shape contact only).
fn two_capsules(gap: f32, speed: f32, rng: Option<&mut Rng>) -> Sim<f64> {
    let jitter: Vec<f32> = match rng {
        Some(r) => (0..6).map(|_| r.uniform(-0.02, 0.02) as f32).collect(),
        None => vec![0.0; 6],
    };
    let mut scene = Scene::new();
    scene.spawn_envs(1, |env| {
        env.spawn((Gravity(Vec3::ZERO),));
        for (k, side) in [-1.0f32, 1.0].into_iter().enumerate() {
            let mut b =
                Body::at(Vec3::new(side * gap * 0.5, 0.0, jitter[3 * k]), 1.0 + k as f32, Vec3::new(0.01, 0.002, 0.01));
            b.rot = Quat::from_rotation_x(0.4 * side + jitter[3 * k + 1]);
            b.vel = Vec3::new(-side * speed, 0.1 * side, 0.0);
            b.ang_vel = Vec3::new(0.0, jitter[3 * k + 2], 0.3 * side);
            let e = env.spawn((b,));
            env.spawn((Joint::new(None, e, JointKind::Free, Vec3::ZERO, Vec3::ZERO),));
            env.spawn((Shape {
                body: e,
                geometry: Geometry::Capsule { radius: 0.1, half_height: 0.2 },
                pos: Vec3::ZERO,
                rot: Quat::IDENTITY,
                ke: 2.0e3,
                kd: 5.0,
                kf: 10.0,
                mu: 0.5,
            },));
        }
    });
    let packed = scene.pack().unwrap();
    let forces = JointForces { num_actions: 0, scale: 1.0 };
    let schedule = articulation::schedule::<f64>(1e-3, 1, Contacts { ground: false, shapes: true }, forces);
    Sim::new(packed.model, packed.state.map(|x| x as f64), packed.control, schedule, Cpu::new(1)).unwrap()
}

#[test]
fn colliding_capsules_conserve_linear_momentum_and_bounce() {
    let mut sim = two_capsules(0.5, 1.0, None);
    let (_, p0, _) = energy_momentum(&sim);
    for _ in 0..400 {
        sim.step().unwrap();
    }
    let (_, p, _) = energy_momentum(&sim);
    for i in 0..3 {
        assert!((p[i] - p0[i]).abs() < 1e-9 * (1.0 + p0[i].abs()), "momentum {p:?} vs {p0:?}");
    }
    // They met and bounced: the left body now moves left.
    let qd = sim.state.get("joint_qd").unwrap();
    let bq = sim.state.get("body_q").unwrap();
    let v_left = qd[3] + (qd[1] * bq[2] - qd[2] * bq[1]);
    assert!(v_left < 0.0, "left capsule still moving right at {v_left}");
}

proptest! {
    #![proptest_config(cases(64))]

    #[test]
    fn shape_contact_passes_dot_product_and_fd(seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let mut sim = two_capsules(0.17, 0.5, Some(&mut rng));
        sim.step().unwrap();
        let (s, c) = (sim.state.clone(), sim.control.clone());
        let check = SystemCheck { model: &sim.model, state: &s, control: &c, cx: StepCx { dt: 1e-3, step: 0, substep: 0 }, h: 1e-7 };
        let r = check.run(&ShapeContact, &mut rng).map_err(TestCaseError::fail)?;
        prop_assert!(r.adjoint != 0.0, "no contact at this state");
        prop_assert!(r.dual_err() < 1e-10, "dual {r:?}");
        prop_assert!(r.fd_err() < 1e-4, "fd {r:?}");
    }
}

/// A seed proptest once shrank to (before the multi-free-body fix); kept as a fixed case.
#[test]
fn shape_contact_regression_seed() {
    let mut rng = Rng::new(9521552658388388552);
    let mut sim = two_capsules(0.17, 0.5, Some(&mut rng));
    sim.step().unwrap();
    let (s, c) = (sim.state.clone(), sim.control.clone());
    let check = SystemCheck {
        model: &sim.model,
        state: &s,
        control: &c,
        cx: StepCx { dt: 1e-3, step: 0, substep: 0 },
        h: 1e-7,
    };
    let r = check.run(&ShapeContact, &mut rng).unwrap();
    assert!(r.dual_err() < 1e-10 && r.fd_err() < 1e-4, "{r:?}");
}

/// A point where fk's dot product cancels to 3e-7 of its terms (the free box's twist against a
/// random direction): the adjoint still matches the duals to 1e-10 and the central difference
/// to its rounding (6e-10 absolute), which `fd_err` floors at the terms' scale.
#[test]
fn fk_check_at_a_cancelling_point() {
    let rig = Rig { free_box: true, damping: 0.3, ..Rig::default() };
    let mut rng = Rng::new(4249170408354749916);
    let (sim, s, c) = random_point(&rig, &mut rng);
    let check = SystemCheck {
        model: &sim.model,
        state: &s,
        control: &c,
        cx: StepCx { dt: 1.0 / 240.0, step: 0, substep: 0 },
        h: 1e-6,
    };
    check.run(&ClearForces, &mut rng).unwrap();
    let r = check.run(&ForwardKinematics, &mut rng).unwrap();
    assert!(r.adjoint.abs() < 1e-5 * r.scale, "not a cancelling point: {r:?}");
    assert!(r.dual_err() < 1e-10 && r.fd_err() < 1e-4, "{r:?}");
}
