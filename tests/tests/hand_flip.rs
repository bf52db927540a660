//! HandFlip and the multi-body kinematic MPM coupling: adjoints under proptest (`SystemCheck`:
//! dual dot-product and central differences in f64) of the grid projection against bodies with
//! full poses, the hinge-tree FK / drive / integrate systems and the task's observation and
//! reward; a 32-step rollout of a debug-sized HandFlip through the tape; and physical checks
//! that a rotated capsule and the hand's fingers push material.

use diffsim_engine::{ColumnSpec, Cpu, EngineError, Real, Scene, Schedule, Sim, SimFactory, Stage, StepCx};
use diffsim_systems::mpm::{
    self, Bodies, BodyShape, Coupling, Floor, Grid, Hinge, JointDrive, JointIntegrate, KinematicFk, KinematicTree,
    Material, MpmMaterial, Shape, Transfer,
};
use diffsim_tasks::hand_flip::{ArmD0, Observe, Reward};
use diffsim_tasks::{HandFlip, HandFlipConfig, Task};
use diffsim_tests::mpm_scene::{Jitter, ParticleBlock};
use diffsim_tests::{GradReport, Rng, RolloutCheck, cases, check_at};
use proptest::prelude::*;

const DUAL_TOL: f64 = 1e-10;
const FD_TOL: f64 = 1e-4;

fn unit_quat(rng: &mut Rng) -> [f64; 4] {
    let q: [f64; 4] = std::array::from_fn(|_| rng.uniform(-1.0, 1.0));
    let n = q.iter().map(|x| x * x).sum::<f64>().sqrt();
    q.map(|x| x / n)
}

/// A jittered block of particles under a set of kinematic bodies whose poses are set directly in
/// the state (`body_pose`, `body_pose_next`), or posed by a hinge tree (`tree`) driven by `act`.
#[derive(Clone, Debug)]
struct Slab {
    per_axis: [usize; 3],
    center: [f64; 3],
    size: [f64; 3],
    material: MpmMaterial,
    grid: Grid,
    bodies: Bodies,
    /// Initial start and end pose per body (zeros if empty); FK overwrites them when stepping.
    poses: Vec<([f64; 7], [f64; 7])>,
    /// The hinge tree posing the bodies (the schedule needs a writer of the poses) and its
    /// action scale.
    tree: Option<(KinematicTree, f64)>,
    dt: f64,
    substeps: usize,
    seed: u64,
}

impl Slab {
    fn scene(&self) -> Scene {
        let block = ParticleBlock {
            per_axis: self.per_axis,
            center: self.center,
            size: self.size,
            jitter: Jitter::Metres(0.01),
            density: 1.0,
            v: [0.0; 3],
            material: self.material,
        };
        block.scene(1, &mut Rng::new(self.seed))
    }
}

impl SimFactory for Slab {
    fn sim<R: Real>(&self) -> Result<Sim<R>, EngineError> {
        let scene = self.scene();
        let mut packed = scene.pack()?;
        mpm::pack(&scene, &mut packed)?;
        let nb = self.bodies.bodies;
        let (p0, p1): (Vec<f32>, Vec<f32>) = if self.poses.is_empty() {
            (vec![0.0; 7 * nb], vec![0.0; 7 * nb])
        } else {
            (
                self.poses.iter().flat_map(|p| p.0.map(|x| x as f32)).collect(),
                self.poses.iter().flat_map(|p| p.1.map(|x| x as f32)).collect(),
            )
        };
        packed.state.add_column(ColumnSpec::new("body_pose", nb, 7), p0)?;
        packed.state.add_column(ColumnSpec::new("body_pose_next", nb, 7), p1)?;
        let transfer =
            Transfer { grid: self.grid.clone(), collider: Some(Coupling::Bodies(self.bodies.clone())), threads: 1 };
        let mut s = Schedule::new(self.dt, self.substeps).with(Stage::Substep, Material::default());
        if let Some((tree, scale)) = &self.tree {
            let n = tree.dof();
            packed.add_state(ColumnSpec::new("kin_q", 1, n))?;
            packed.add_state(ColumnSpec::new("kin_qd", 1, n))?;
            packed.add_control(ColumnSpec::new("act", 1, n));
            s = s
                .with(Stage::Step, JointDrive::of(tree, "act", *scale, self.substeps))
                .with(Stage::Substep, KinematicFk { tree: tree.clone() })
                .with(Stage::Substep, transfer)
                .with(Stage::Substep, JointIntegrate { dof: n });
        } else {
            s = s.with(Stage::Substep, transfer);
        }
        let state = packed.state.map(|x| R::from_f64(x as f64));
        Sim::new(packed.model, state, packed.control, s, Cpu::new(1))
    }
}

fn plasticine() -> MpmMaterial {
    let (mu, lambda) = MpmMaterial::lame(5000.0, 0.2);
    MpmMaterial::Plasticine { mu, lambda, yield_stress: 50.0 }
}

/// Three bodies (capsule, box, cylinder) at random full poses cutting a small block, each moving
/// by a small random rigid motion over the substep.
fn random_slab(seed: u64) -> Slab {
    let mut rng = Rng::new(seed ^ 77);
    let center = [0.5, 0.45, 0.5];
    let mut poses = Vec::new();
    for b in 0..3 {
        let q = unit_quat(&mut rng);
        // The capsule (body 0) stays near the block's centre, so some node always touches it.
        let reach = if b == 0 { 0.02 } else { 0.08 };
        let x: [f64; 3] = std::array::from_fn(|d| center[d] + rng.uniform(-reach, reach));
        let qn = {
            let p: [f64; 4] = std::array::from_fn(|k| q[k] + rng.uniform(-0.05, 0.05));
            let n = p.iter().map(|v| v * v).sum::<f64>().sqrt();
            p.map(|v| v / n)
        };
        let xn: [f64; 3] = std::array::from_fn(|d| x[d] + rng.uniform(-0.01, 0.01));
        poses.push(([x[0], x[1], x[2], q[0], q[1], q[2], q[3]], [xn[0], xn[1], xn[2], qn[0], qn[1], qn[2], qn[3]]));
    }
    let shapes = vec![
        BodyShape { body: 0, shape: Shape::Capsule { center: [0.0, 0.0, 0.02], radius: 0.05, half_height: 0.08 } },
        BodyShape { body: 1, shape: Shape::Box { center: [0.01, 0.0, 0.0], half_extents: [0.05, 0.03, 0.07] } },
        BodyShape { body: 2, shape: Shape::Cylinder { center: [0.0; 3], radius: 0.04, half_height: 0.06 } },
    ];
    Slab {
        per_axis: [3, 2, 3],
        center,
        size: [0.25, 0.15, 0.25],
        material: plasticine(),
        grid: Grid { res: 12, bound: 2, gravity: [0.0, -9.8, 0.0], floor: Floor::Sticky },
        bodies: Bodies { bodies: 3, shapes, friction: 0.5, softness: 666.0 },
        poses,
        // Only the writer of the poses: the check sets them directly in the state.
        tree: Some((
            KinematicTree {
                base_pos: [0.0; 3],
                base_rot: [0.0, 0.0, 0.0, 1.0],
                joints: (0..3)
                    .map(|_| Hinge {
                        parent: None,
                        offset: [0.0; 3],
                        rotation: [0.0, 0.0, 0.0, 1.0],
                        axis: [1.0, 0.0, 0.0],
                        lo: -1.0,
                        hi: 1.0,
                    })
                    .collect(),
            },
            0.01,
        )),
        dt: 4e-3,
        substeps: 2,
        seed,
    }
}

/// The central difference agrees with the adjoint to 1e-4, or to rounding: the state holds
/// thousands of O(1) scalars the system passes through, whose x ± h ẋ round at ~ε|x|, so the
/// difference carries ~ε · scale / h ≈ 1e-10 · scale at h = 1e-6 (allowed: 1e-8 · scale) when
/// the terms cancel to a small sum.
fn fd_ok(r: &GradReport) -> bool {
    r.fd_err() < FD_TOL || (r.fd - r.adjoint).abs() < 1e-8 * r.scale
}

/// A debug-sized HandFlip: 16³ grid, 2 × 60 particles, 4 substeps of 5e-4 s, the disc starting
/// just above the palm and fingers (so the hand touches it from the first steps).
fn small_hand_flip(num_envs: usize) -> HandFlip {
    HandFlip::new(HandFlipConfig {
        num_envs,
        threads: 1,
        grid_res: 16,
        half_particles: 60,
        substeps: 4,
        substep_dt: 5e-4,
        disc_center: [0.5, 0.345, 0.6],
        ..Default::default()
    })
}

proptest! {
    #![proptest_config(cases(48))]

    /// P2G + grid update (three bodies with full poses: capsule, box, cylinder) + G2P. As in
    /// tests/tests/mpm.rs: the dual test always holds; a central difference off by more than
    /// 1e-4 at h = 1e-6 must pass at h = 1e-7 (truncation of the stiff exp(−666 d)) unless it
    /// moved ≥ 3× (a jump of the forward within h: influence crossing 0.1, nearest-shape or
    /// box-face switch), which is rejected.
    #[test]
    fn bodies_transfer_adjoint(seed in any::<u64>()) {
        let slab = random_slab(seed);
        let sim: Sim<f64> = slab.sim().unwrap();
        let mut rng = Rng::new(seed);
        let mut s = sim.state.clone();
        for x in s.get_mut("mpm_v").unwrap() {
            *x = rng.uniform(-1.0, 1.0);
        }
        for x in s.get_mut("mpm_C").unwrap() {
            *x = rng.uniform(-1.0, 1.0);
        }
        for x in s.get_mut("mpm_stress").unwrap() {
            *x = 100.0 * rng.uniform(-1.0, 1.0);
        }
        let sys = Transfer { grid: slab.grid.clone(), collider: Some(slab.bodies.clone().into()), threads: 1 };
        // The bodies do reach this block's nodes (the check is not of the free transfer alone):
        // on the material at rest they change the grid velocities. (Not on the random state:
        // nodes whose relative velocity separates from the body are left as they are.)
        let free = Transfer { grid: slab.grid.clone(), collider: None, threads: 1 };
        let cx = StepCx { dt: sim.schedule.substep_dt(), step: 0, substep: 0 };
        let step = |t: &Transfer| {
            let mut o = sim.state.clone();
            diffsim_engine::System::<f64>::forward(t, &cx, &sim.model.view_all(), &sim.control.view_all(), &mut o.view_all_mut());
            o.get("mpm_v").unwrap().to_vec()
        };
        let moved = step(&sys).iter().zip(step(&free)).map(|(a, b)| (a - b).abs()).sum::<f64>();
        // A body moving away from every node it reaches leaves them as they are (separating
        // relative velocity), e.g. seed 1342251616742899169: no coupling to check there. Were the
        // coupling broken, every case would be rejected and proptest fails on the rejects.
        prop_assume!(moved > 1e-3, "the bodies separate from every node: {}", moved);
        let start = rng.clone();
        let r = check_at(&sim, &sys, &s, &mut rng, 1e-6);
        prop_assert!(r.dual_err() < DUAL_TOL, "{r:?}");
        if r.fd_err() >= FD_TOL {
            let small = check_at(&sim, &sys, &s, &mut start.clone(), 1e-7);
            let jump = (small.fd - r.adjoint).abs() > 3.0 * (r.fd - r.adjoint).abs();
            prop_assume!(!jump, "jump within h");
            prop_assert!(small.fd_err() < FD_TOL, "{r:?} / h = 1e-7: {small:?}");
        }
    }

    /// FK of the 24-hinge hand (poses at the substep's start and end), the clipped drive and
    /// the joint integration, at random joint angles inside the limits and random rates.
    #[test]
    fn hand_kinematics_adjoints(seed in any::<u64>()) {
        let task = small_hand_flip(2);
        let sim: Sim<f64> = task.sim().unwrap();
        let tree = task.tree();
        let mut rng = Rng::new(seed);
        let mut s = sim.state.clone();
        let n = tree.dof();
        for (i, x) in s.get_mut("kin_q").unwrap().iter_mut().enumerate() {
            let j = &tree.joints[i % n];
            *x = rng.uniform(j.lo, j.hi);
        }
        for x in s.get_mut("kin_qd").unwrap() {
            *x = rng.uniform(-5.0, 5.0);
        }
        let drive = JointDrive::of(&tree, "act", 0.0264, task.cfg.substeps);
        let fk = KinematicFk { tree: tree.clone() };
        let integrate = JointIntegrate { dof: n };
        let reports = [
            check_at(&sim, &fk, &s, &mut rng, 1e-6),
            check_at(&sim, &drive, &s, &mut rng, 1e-6),
            check_at(&sim, &integrate, &s, &mut rng, 1e-6),
        ];
        for r in reports {
            prop_assert!(r.dual_err() < DUAL_TOL, "{r:?}");
            prop_assert!(fd_ok(&r), "{r:?}");
        }
    }

    /// Observation, reward and d0 arming, with d0 unset (reset refresh: r = 0), armed (recorded
    /// from this step's dist) and recorded (clamp active or not).
    #[test]
    fn observe_and_reward_adjoints(seed in any::<u64>(), which in 0usize..3) {
        let task = small_hand_flip(2);
        let sim: Sim<f64> = task.sim().unwrap();
        let mut rng = Rng::new(seed);
        let mut s = sim.state.clone();
        for x in s.get_mut("mpm_x").unwrap() {
            *x += rng.uniform(-0.02, 0.02);
        }
        for x in s.get_mut("flip_d0").unwrap() {
            *x = [0.0, -1.0, rng.uniform(0.03, 0.2)][which];
        }
        let pairs = task.obs_pairs();
        let half = task.cfg.half_particles;
        let observe = Observe { pairs, half, dof: task.tree().dof() };
        let reward = Reward { pairs, half };
        let reports = [
            check_at(&sim, &observe, &s, &mut rng, 1e-6),
            check_at(&sim, &reward, &s, &mut rng, 1e-6),
            check_at(&sim, &ArmD0, &s, &mut rng, 1e-6),
        ];
        for r in reports {
            prop_assert!(r.dual_err() < DUAL_TOL, "{r:?}");
            prop_assert!(fd_ok(&r), "{r:?}");
        }
    }
}

/// 32 env steps of the debug HandFlip (drive, FK, plasticine, hand coupling, observation,
/// reward with its d0) through the tape against duals and central differences.
#[test]
fn hand_flip_rollout_gradient() {
    let task = small_hand_flip(1);
    let r = RolloutCheck { horizon: 32, h: 1e-6, state_dir_scale: 1e-3 }.run(&task, &mut Rng::new(5)).unwrap();
    assert!(r.dual_err() < DUAL_TOL, "{r:?}");
    assert!(r.fd_err() < FD_TOL, "{r:?}");
}

/// A capsule whose axis (local z) is turned 90° to the world's vertical by its base rotation,
/// on an arm swung about the vertical by one hinge, sweeps sideways through a plasticine block
/// and drags it along: the material moves with the post, not merely under gravity.
#[test]
fn rotated_capsule_on_a_hinge_pushes_material_sideways() {
    // R_x(−π/2): local z → world +y.
    let s = std::f64::consts::FRAC_1_SQRT_2;
    let tree = KinematicTree {
        base_pos: [0.2, 0.16, 0.5],
        base_rot: [-s, 0.0, 0.0, s],
        joints: vec![Hinge {
            parent: None,
            offset: [0.0; 3],
            rotation: [0.0, 0.0, 0.0, 1.0],
            axis: [0.0, 0.0, 1.0],
            lo: -0.6,
            hi: 0.6,
        }],
    };
    // The post stands 0.3 from the pivot along x (world x as well: R_x keeps x).
    let post = Shape::Capsule { center: [0.3, 0.0, 0.0], radius: 0.03, half_height: 0.1 };
    let slab = Slab {
        per_axis: [8, 4, 8],
        center: [0.5, 0.14, 0.5],
        size: [0.2, 0.1, 0.2],
        material: plasticine(),
        grid: Grid { res: 24, bound: 3, gravity: [0.0, -90.0, 0.0], floor: Floor::Sticky },
        bodies: Bodies { bodies: 1, shapes: vec![BodyShape { body: 0, shape: post }], friction: 0.5, softness: 666.0 },
        poses: Vec::new(),
        tree: Some((tree, 0.12)),
        dt: 1e-2,
        substeps: 20,
        seed: 3,
    };
    let run = |slab: &Slab, act: f32| {
        let mut sim: Sim<f32> = slab.sim().unwrap();
        sim.state.get_mut("kin_q").unwrap()[0] = -0.6;
        for _ in 0..10 {
            sim.set_control("act", &[act]).unwrap();
            sim.step().unwrap();
        }
        let p: Vec<f64> = sim.state.get("body_pose").unwrap().iter().map(|&x| x as f64).collect();
        let (qx, qy, qz, qw) = (p[3], p[4], p[5], p[6]);
        // The post's centre R (0.3, 0, 0) + x (first column of R) and its axis R e_z (third).
        let post_z = p[2] + 0.3 * 2.0 * (qx * qz - qy * qw);
        let vertical = 2.0 * (qy * qz - qx * qw);
        let x = sim.state.env("mpm_x", 0).unwrap();
        let mean_z = x.chunks_exact(3).map(|p| p[2] as f64).sum::<f64>() / (x.len() / 3) as f64;
        (post_z, mean_z, vertical, sim.state.get("kin_q").unwrap()[0])
    };
    let (z_still, mean_still, _, _) = run(&slab, 0.0);
    let (z_swept, mean_swept, vertical, q_end) = run(&slab, 1.0);
    eprintln!("post z {z_still} -> {z_swept}, block mean z {mean_still} -> {mean_swept}, axis·y {vertical}, q {q_end}");
    assert!((q_end - 0.6).abs() < 1e-4, "the hinge did not reach its upper limit: {q_end}");
    assert!(vertical > 0.999, "the post's axis is not vertical: {vertical}");
    let dir = (z_swept - z_still).signum();
    assert!((z_swept - z_still).abs() > 0.3, "the post did not sweep across the block: {z_still} -> {z_swept}");
    assert!(dir * (mean_swept - mean_still) > 0.01, "block mean z {mean_still} -> {mean_swept}: not pushed along");
}

/// Flexing every joint of the debug hand (palm up under the disc: fingers and wrist curl up)
/// lifts the disc and pushes it back toward the palm, compared with a still hand.
#[test]
fn flexing_fingers_lift_the_disc() {
    let task = small_hand_flip(1);
    let dof = task.tree().dof();
    let run = |act: f32| {
        let mut sim: Sim<f32> = task.sim().unwrap();
        for _ in 0..25 {
            sim.set_control("act", &vec![act; dof]).unwrap();
            sim.step().unwrap();
        }
        let x = sim.state.env("mpm_x", 0).unwrap();
        let n = (x.len() / 3) as f64;
        [1, 2].map(|d| x.chunks_exact(3).map(|p| p[d] as f64).sum::<f64>() / n)
    };
    let [y0, z0] = run(0.0);
    let [y1, z1] = run(1.0);
    eprintln!("disc mean (y, z): still ({y0}, {z0}), flexed ({y1}, {z1})");
    assert!(y1 - y0 > 0.05, "flexing did not lift the disc: mean y {y0} -> {y1}");
    assert!(z0 - z1 > 0.02, "flexing did not push the disc toward the palm: mean z {z0} -> {z1}");
}

/// The VecEnv runs the debug task: obs shape, finite rewards in [−1, 1], the first reward is 0
/// (d0 recorded at progress 1), the joints stay inside their limits.
#[test]
fn hand_flip_runs_in_a_vec_env() {
    use diffsim_tasks::VecEnv;
    let task = small_hand_flip(2);
    let spec = task.spec();
    let tree = task.tree();
    let mut env = VecEnv::new(task).unwrap();
    let obs = env.reset(3).unwrap();
    assert_eq!(obs.shape(), &[2, spec.obs_dim]);
    let mut rng = Rng::new(1);
    for t in 0..6 {
        let a = ndarray::Array2::from_shape_fn((2, spec.act_dim), |_| rng.uniform(-1.0, 1.0) as f32);
        let r = env.step(a.view()).unwrap();
        assert!(r.reward.iter().all(|x| x.is_finite() && x.abs() <= 1.0), "{:?}", r.reward);
        if t == 0 {
            assert!(r.reward.iter().all(|x| *x == 0.0), "first reward {:?}", r.reward);
        }
        let q0 = spec.obs_dim - spec.act_dim;
        for e in 0..2 {
            for (k, j) in tree.joints.iter().enumerate() {
                let q = r.obs[[e, q0 + k]] as f64;
                assert!(q >= j.lo - 1e-5 && q <= j.hi + 1e-5, "joint {k}: {q} outside [{}, {}]", j.lo, j.hi);
            }
        }
    }
}

/// The full-size hand at its initial qpos lies flat with the palm up under the disc: wrist at
/// the base, fingertips past the disc's far edge along +z, every shape within a capsule radius
/// of the base height, and no disc particle inside or within the coupling's reach (d > 0.01) of
/// a shape.
#[test]
fn hand_starts_flat_under_the_disc() {
    use diffsim_systems::articulation::spatial::{mat_vec, quat_to_mat, transpose};
    let task = HandFlip::new(HandFlipConfig { num_envs: 1, half_particles: 200, ..Default::default() });
    let tree = task.tree();
    let bodies = task.bodies();
    assert_eq!((tree.dof(), bodies.shapes.len()), (24, 19));
    let caps = bodies.shapes.iter().filter(|s| matches!(s.shape, Shape::Capsule { .. })).count();
    assert_eq!(caps, 16);
    let mut pose = vec![0.0; 7 * tree.dof()];
    tree.poses(&task.initial_qpos(), &mut pose);
    let sim: Sim<f64> = task.sim().unwrap();
    let x = sim.state.env("mpm_x", 0).unwrap();
    let mut min_d = f64::INFINITY;
    let mut max_tip_z = f64::NEG_INFINITY;
    for bs in &bodies.shapes {
        let p = &pose[7 * bs.body..7 * bs.body + 7];
        let rot = quat_to_mat([p[3], p[4], p[5], p[6]]);
        let (c, r) = bs.shape.bounding_sphere();
        let cw = mat_vec(&rot, c);
        assert!((p[1] + cw[1] - 0.30).abs() < 0.03, "shape on body {} centred at y {}", bs.body, p[1] + cw[1]);
        max_tip_z = max_tip_z.max(p[2] + cw[2] + r);
        for q in x.chunks_exact(3) {
            let l = mat_vec(&transpose(&rot), [q[0] - p[0], q[1] - p[1], q[2] - p[2]]);
            min_d = min_d.min(bs.shape.sdf(l).0);
        }
    }
    eprintln!("fingertips reach z {max_tip_z}; nearest disc particle {min_d} from the hand");
    assert!(max_tip_z > 0.75, "fingers end at z {max_tip_z}");
    assert!(min_d > 0.01, "disc particle at distance {min_d} from the hand at start");
}
