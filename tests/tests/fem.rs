//! FEM: property tests of every FEM system's adjoint (dual-number dot product 1e-10 and central
//! finite differences 1e-4, on random deformed states including inverted tetrahedra, J < 0),
//! physical sanity of the stable neo-Hookean tetrahedra (rest shape is force free, a block settles
//! on the ground, damping dissipates, an inverted element recovers).

use diffsim_engine::components::{Ground, Material};
use diffsim_engine::scene::TET_PARAMS;
use diffsim_engine::{ColumnSpec, Columns, Cpu, Dual, EngineError, Real, Scene, Sim, SimFactory, StepCx, System};
use diffsim_systems::fem::tetrahedra::tet_energy;
use diffsim_systems::fem::{self, Activation, BoxWithLegs, FiberMuscles, TetMesh, Tetrahedra};
use diffsim_systems::particles::GroundContact;
use diffsim_tests::{GradReport, Rng, SystemCheck, cases};
use glam::Vec3;
use proptest::prelude::*;

const DUAL_TOL: f64 = 1e-10;
const FD_TOL: f64 = 1e-4;
/// SoftJumper's substep (rewarped.md §6.1: 80 substeps per 1/60 s).
const FRAME: f64 = 1.0 / 60.0;
const SUBSTEPS: usize = 80;

/// A FEM scene of `mesh` (Rewarped's SoftJumper material: μ = λ = 1000 Pa, density 1, k_d as
/// given) with an optional ground and gravity, and `actions` actions driving 2 tetrahedra each.
#[derive(Clone)]
struct Block {
    mesh: TetMesh,
    num_envs: usize,
    origin: Vec3,
    ground: Option<Ground>,
    gravity: f32,
    damping: f32,
    actions: usize,
    /// Fiber muscles in the schedule (the `tet_fiber` column is always there).
    fibers: Option<FiberMuscles>,
}

impl Block {
    fn new(mesh: TetMesh) -> Self {
        let actions = mesh.tets.len().div_ceil(2);
        Self { mesh, num_envs: 1, origin: Vec3::ZERO, ground: None, gravity: 0.0, damping: 1.0, actions, fibers: None }
    }
    /// A 2 × 1 × 2-cell box: 18 particles, 20 tetrahedra.
    fn small() -> Self {
        Self::new(BoxWithLegs { slab: [2, 1, 2], leg_height: 0, cell: [0.4, 0.35, 0.4] }.mesh())
    }
}

impl SimFactory for Block {
    fn sim<R: Real>(&self) -> Result<Sim<R>, EngineError> {
        let mut scene = Scene::new();
        scene.spawn_envs(self.num_envs, |env| {
            let material = env.spawn((Material::Elastic { youngs: 2500.0, poisson: 0.25 },));
            self.mesh.spawn(env, self.origin, 1.0, material, self.damping, 0.05);
            if let Some(g) = self.ground {
                env.ground(g);
            }
            env.gravity(Vec3::new(0.0, -self.gravity, 0.0));
        });
        let mut packed = scene.pack()?;
        packed.add_control(ColumnSpec::new("act", 1, self.actions));
        // Fibers for `fem.fiber_muscles`: a different direction per tetrahedron.
        let nt = self.mesh.tets.len();
        let fibers: Vec<[f64; 3]> =
            (0..self.num_envs * nt).map(|t| [1.0, 0.3 * (t % 5) as f64 - 0.6, 0.2 * (t % 3) as f64]).collect();
        fem::add_fibers(&mut packed, &fibers)?;
        let act = Activation { group: 2, scale: 0.3 };
        let schedule = fem::schedule::<R>(FRAME, SUBSTEPS, self.ground.is_some(), Some(act), self.fibers);
        let state = packed.state.map(|x| R::from_f64(x as f64));
        Sim::new(packed.model, state, packed.control, schedule, Cpu::new(1))
    }
}

fn rewarped_ground() -> Ground {
    Ground { ke: 2.0e3, kd: 0.1, kf: 10.0, mu: 0.7 }
}

/// det F of every tetrahedron at positions `q` (one env).
fn jacobians(sim: &Sim<f64>, q: &[f64]) -> Vec<f64> {
    let idx = sim.model.topology.get("tet_indices").unwrap();
    let prm = sim.model.params.get("tet_params").unwrap();
    (0..idx.len() / 4)
        .map(|t| {
            let x = [0, 1, 2, 3].map(|k| {
                let i = idx[4 * t + k] as usize;
                [q[3 * i], q[3 * i + 1], q[3 * i + 2]]
            });
            let vol = fem::mesh::signed_volume(x);
            vol / prm[TET_PARAMS * t + 9]
        })
        .collect()
}

/// A random point: positions jittered by `jitter` × cell size, velocities and activations random.
fn random_point(block: &Block, jitter: f64, rng: &mut Rng) -> (Sim<f64>, Columns<f64>, Columns<f64>) {
    let sim: Sim<f64> = block.sim().expect("block builds");
    let mut state = sim.state.clone();
    for (spec, col) in state.columns_mut() {
        match spec.name.as_str() {
            "particle_q" => col.iter_mut().for_each(|x| *x += rng.uniform(-jitter, jitter) * 0.4),
            "tet_activation" => col.iter_mut().for_each(|x| *x = rng.uniform(-0.3, 0.3)),
            _ => col.iter_mut().for_each(|x| *x = rng.uniform(-1.0, 1.0)),
        }
    }
    let control = rng.like(&sim.control);
    (sim, state, control)
}

fn check<S: System<f64> + System<Dual>>(
    sys: &S,
    sim: &Sim<f64>,
    s: &Columns<f64>,
    c: &Columns<f64>,
    rng: &mut Rng,
) -> GradReport {
    SystemCheck::on(sim, s, c, 1e-6).run(sys, rng).unwrap_or_else(|e| panic!("{e}"))
}

proptest! {
    #![proptest_config(cases(64))]

    /// Moderate deformations (jitter 0.2 of a cell) and large ones (1.0, which inverts elements).
    #[test]
    fn fem_systems_pass_dot_product_and_fd(seed in any::<u64>(), large in any::<bool>(), damping in 0.0f32..5.0) {
        let block = Block { damping, ..Block::small() };
        let mut rng = Rng::new(seed);
        let (sim, s, c) = random_point(&block, if large { 1.0 } else { 0.2 }, &mut rng);
        for (name, r) in [
            ("fem.tetrahedra (activated)", check(&Tetrahedra { activated: true }, &sim, &s, &c, &mut rng)),
            ("fem.tetrahedra (passive)", check(&Tetrahedra { activated: false }, &sim, &s, &c, &mut rng)),
            ("fem.activation", check(&Activation { group: 2, scale: 0.3 }, &sim, &s, &c, &mut rng)),
            ("fem.activation (group 3)", check(&Activation { group: 3, scale: 1.7 }, &sim, &s, &c, &mut rng)),
            ("fem.fiber_muscles", check(&FiberMuscles { stiffness: 800.0 }, &sim, &s, &c, &mut rng)),
        ] {
            prop_assert!(r.dual_err() < DUAL_TOL, "{name}: dual {r:?}");
            prop_assert!(r.fd_err() < FD_TOL, "{name}: fd {r:?}");
        }
    }

    /// Inverted elements (J < 0) give finite forces and exact gradients: the stable energy has no
    /// log J and no division by J.
    #[test]
    fn inverted_tetrahedra_have_finite_forces_and_exact_gradients(seed in any::<u64>()) {
        let block = Block::small();
        let mut rng = Rng::new(seed);
        let (sim, mut s, c) = random_point(&block, 0.05, &mut rng);
        // Mirror the block through y = 0.2: every element inverts (J ≈ −1), plus jitter.
        for (k, x) in s.get_mut("particle_q").unwrap().iter_mut().enumerate() {
            if k % 3 == 1 {
                *x = 0.4 - *x;
            }
        }
        let q = s.get("particle_q").unwrap().to_vec();
        prop_assert!(jacobians(&sim, &q).iter().all(|&j| j < 0.0));
        let mut out = s.clone();
        System::<f64>::forward(&Tetrahedra { activated: true }, &StepCx { dt: 1e-4, step: 0, substep: 0 },
            &sim.model.view_all(), &c.view_all(), &mut out.view_all_mut());
        prop_assert!(out.get("particle_f").unwrap().iter().all(|f| f.is_finite()));
        let r = check(&Tetrahedra { activated: true }, &sim, &s, &c, &mut rng);
        prop_assert!(r.dual_err() < DUAL_TOL, "dual {r:?}");
        prop_assert!(r.fd_err() < FD_TOL, "fd {r:?}");
    }
}

proptest! {
    #![proptest_config(cases(16))]

    /// The hand-written adjoint equals the recorded-replay (`Rev` tape) adjoint of the same forward.
    #[test]
    fn tetrahedra_adjoint_matches_the_replay_adjoint(seed in any::<u64>(), large in any::<bool>()) {
        let mut rng = Rng::new(seed);
        let (sim, s, c) = random_point(&Block::small(), if large { 1.0 } else { 0.2 }, &mut rng);
        let cx = StepCx { dt: sim.schedule.substep_dt(), step: 0, substep: 0 };
        let ybar = rng.like(&s);
        let sys = Tetrahedra { activated: true };
        let run = |replay: bool| {
            let (mut a, mut ac) = (ybar.clone(), c.zeros_like::<f64>());
            let (m, cv, pv) = (sim.model.view_all(), c.view_all(), s.view_all());
            if replay {
                diffsim_engine::replay_adjoint(&sys, &cx, &m, &cv, &pv, &mut a.view_all_mut(), &mut ac.view_all_mut());
            } else {
                System::<f64>::adjoint(&sys, &cx, &m, &cv, &pv, &mut a.view_all_mut(), &mut ac.view_all_mut());
            }
            a
        };
        let (hand, replay) = (run(false), run(true));
        for ((spec, a), (_, b)) in hand.columns().zip(replay.columns()) {
            for (k, (u, v)) in a.iter().zip(b).enumerate() {
                prop_assert!((u - v).abs() <= 1e-10 * (1.0 + u.abs()), "`{}`[{k}]: hand {u} vs replay {v}", spec.name);
            }
        }
    }
}

/// Forces at the rest shape with zero activation, for the small block and the jumper body.
#[test]
fn rest_shape_without_activation_is_force_free() {
    for block in [Block::small(), Block::new(BoxWithLegs::default().mesh())] {
        let sim: Sim<f64> = block.sim().unwrap();
        let mut s = sim.state.clone();
        s.get_mut("particle_qd").unwrap().fill(0.0);
        let c = sim.control.clone();
        System::<f64>::forward(
            &Tetrahedra { activated: true },
            &StepCx { dt: 1e-4, step: 0, substep: 0 },
            &sim.model.view_all(),
            &c.view_all(),
            &mut s.view_all_mut(),
        );
        let fmax = s.get("particle_f").unwrap().iter().fold(0.0f64, |m, f| m.max(f.abs()));
        assert!(fmax < 1e-10, "rest force {fmax}");
        // And stepping it (no gravity, no ground) leaves it where it is.
        let mut sim = sim;
        let q0 = sim.state.get("particle_q").unwrap().to_vec();
        for _ in 0..5 {
            sim.step().unwrap();
        }
        let q = sim.state.get("particle_q").unwrap();
        let drift = q.iter().zip(&q0).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
        assert!(drift < 1e-12, "drift {drift}");
    }
}

/// Activation changes the rest volume: a > 0 shrinks, a < 0 inflates (J → α − a).
#[test]
fn activation_contracts_and_inflates() {
    let block = Block::small();
    let volume = |a: f32| {
        let mut sim: Sim<f64> = block.sim().unwrap();
        sim.control.get_mut("act").unwrap().fill(f64::from(a));
        for _ in 0..60 {
            sim.step().unwrap();
        }
        let q = sim.state.get("particle_q").unwrap().to_vec();
        jacobians(&sim, &q).iter().sum::<f64>() / 20.0
    };
    let (shrunk, rest, inflated) = (volume(1.0), volume(0.0), volume(-1.0));
    assert!((rest - 1.0).abs() < 1e-9, "{rest}");
    assert!(shrunk < 0.9 && inflated > 1.1, "mean J: shrunk {shrunk}, inflated {inflated}");
}

/// The jumper body dropped from 0.2 m comes to rest on the ground: speeds go to ~0, it stays finite
/// and above the ground by about the contact radius.
/// Fibers along x with a positive activation shorten the block along x, and a zero
/// direction is refused with the tetrahedron's env named.
#[test]
fn fiber_muscles_contract_along_their_fibers() {
    let block = Block { fibers: Some(FiberMuscles { stiffness: 3000.0 }), damping: 5.0, ..Block::small() };
    let mut sim: Sim<f64> = block.sim().unwrap();
    let nt = block.mesh.tets.len();
    // Replace the test fibers by x-aligned ones (same column, same shape).
    sim.model.params.set("tet_fiber", &(0..nt).flat_map(|_| [1.0, 0.0, 0.0]).collect::<Vec<_>>()).unwrap();
    let extent = |sim: &Sim<f64>, c: usize| {
        let q = sim.state.get("particle_q").unwrap();
        let xs: Vec<f64> = q.chunks_exact(3).map(|p| p[c]).collect();
        xs.iter().cloned().fold(f64::MIN, f64::max) - xs.iter().cloned().fold(f64::MAX, f64::min)
    };
    let (x0, z0) = (extent(&sim, 0), extent(&sim, 2));
    // The actions reach every tetrahedron (2 per action): full positive activation.
    sim.control.fill(1.0);
    for _ in 0..20 {
        sim.step().unwrap();
    }
    let (x1, z1) = (extent(&sim, 0), extent(&sim, 2));
    assert!(x1 < 0.97 * x0, "no contraction along the fibers: {x0} -> {x1}");
    assert!((x1 / x0) < (z1 / z0) - 0.02, "contraction not along x: x {x0}->{x1}, z {z0}->{z1}");

    let mut packed = Scene::new();
    packed.spawn_envs(1, |env| {
        let material = env.spawn((Material::Elastic { youngs: 2500.0, poisson: 0.25 },));
        block.mesh.spawn(env, Vec3::ZERO, 1.0, material, 1.0, 0.05);
    });
    let mut packed = packed.pack().unwrap();
    let mut fibers = vec![[1.0, 0.0, 0.0]; nt];
    fibers[3] = [0.0; 3];
    let err = fem::add_fibers(&mut packed, &fibers).unwrap_err().to_string();
    assert!(err.contains("fiber") && err.contains("length"), "{err}");
}

#[test]
fn block_settles_on_the_ground() {
    let block =
        Block { origin: Vec3::new(0.0, 0.2, 0.0), ground: Some(rewarped_ground()), gravity: 9.81, ..Block::small() };
    let mut sim: Sim<f64> = block.sim().unwrap();
    for _ in 0..180 {
        sim.step().unwrap();
    }
    let (q, qd) = (sim.state.get("particle_q").unwrap(), sim.state.get("particle_qd").unwrap());
    assert!(q.iter().chain(qd).all(|x| x.is_finite()));
    let vmax = qd.chunks(3).map(|v| (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt()).fold(0.0, f64::max);
    assert!(vmax < 1e-2, "still moving at {vmax} m/s after 3 s");
    let ymin = q.chunks(3).map(|p| p[1]).fold(f64::INFINITY, f64::min);
    assert!(ymin > 0.04 && ymin < 0.05, "lowest particle at y = {ymin} (contact radius 0.05)");
    // Static equilibrium: the ground carries the weight.
    let mut s = sim.state.clone();
    s.get_mut("particle_f").unwrap().fill(0.0);
    System::<f64>::forward(
        &GroundContact,
        &StepCx { dt: 1e-4, step: 0, substep: 0 },
        &sim.model.view_all(),
        &sim.control.view_all(),
        &mut s.view_all_mut(),
    );
    let lift: f64 = s.get("particle_f").unwrap().chunks(3).map(|f| f[1]).sum();
    let weight: f64 = sim.model.params.get("particle_mass").unwrap().iter().sum::<f64>() * 9.81;
    assert!((lift - weight).abs() < 1e-2 * weight, "ground force {lift} vs weight {weight}");
}

/// Kinetic + elastic + gravitational energy of a free (no ground) vibrating block: with damping it
/// decays; without, symplectic Euler keeps it within a few percent.
#[test]
fn damping_dissipates_energy_of_a_free_vibration() {
    let run = |damping: f32| {
        let block = Block { damping, gravity: 9.81, ..Block::small() };
        let mut sim: Sim<f64> = block.sim().unwrap();
        // Stretch by 10% in x and squash 10% in y.
        for (k, x) in sim.state.get_mut("particle_q").unwrap().iter_mut().enumerate() {
            *x *= [1.1, 0.9, 1.0][k % 3];
        }
        let energy = |sim: &Sim<f64>| {
            let (q, qd) = (sim.state.get("particle_q").unwrap(), sim.state.get("particle_qd").unwrap());
            let m = sim.model.params.get("particle_mass").unwrap();
            let idx = sim.model.topology.get("tet_indices").unwrap();
            let prm = sim.model.params.get("tet_params").unwrap();
            let mut e = 0.0;
            for (i, &mi) in m.iter().enumerate() {
                let v2 = qd[3 * i].powi(2) + qd[3 * i + 1].powi(2) + qd[3 * i + 2].powi(2);
                e += 0.5 * mi * v2 + mi * 9.81 * q[3 * i + 1];
            }
            for t in 0..idx.len() / 4 {
                let x = [0, 1, 2, 3].map(|k| {
                    let i = idx[4 * t + k] as usize;
                    [q[3 * i], q[3 * i + 1], q[3 * i + 2]]
                });
                e += tet_energy(x, 0.0, &prm[TET_PARAMS * t..TET_PARAMS * (t + 1)]);
            }
            e
        };
        let rest = {
            let s: Sim<f64> = block.sim().unwrap();
            energy(&s)
        };
        let mut trace = vec![energy(&sim) - rest];
        for _ in 0..60 {
            sim.step().unwrap();
            trace.push(energy(&sim) - rest);
        }
        trace
    };
    let damped = run(1.0);
    let e0 = damped[0];
    assert!(e0 > 0.0);
    assert!(damped.windows(2).all(|w| w[1] <= w[0] + 1e-3 * e0), "energy rose: {damped:?}");
    assert!(*damped.last().unwrap() < 0.5 * e0, "damped energy {:?} of {e0}", damped.last());
    let free = run(0.0);
    assert!(free.iter().all(|&e| (e - free[0]).abs() < 0.05 * free[0]), "undamped energy drifted: {free:?}");
}

/// A single tetrahedron with its apex mirrored through its base (J = −1) recovers to J > 0.
#[test]
fn inverted_element_recovers() {
    let mesh = TetMesh {
        vertices: vec![[0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [0.0, 0.0, -0.5], [0.0, 0.5, 0.0]],
        tets: vec![[0, 1, 2, 3]],
    };
    assert!(mesh.volumes()[0] > 0.0);
    let block = Block::new(mesh);
    let mut sim: Sim<f64> = block.sim().unwrap();
    sim.state.get_mut("particle_q").unwrap()[10] = -0.5;
    let j0 = jacobians(&sim, sim.state.get("particle_q").unwrap())[0];
    assert!((j0 + 1.0).abs() < 1e-12, "{j0}");
    let mut js = vec![j0];
    for _ in 0..30 {
        sim.step().unwrap();
        let q = sim.state.get("particle_q").unwrap();
        assert!(q.iter().all(|x| x.is_finite()));
        js.push(jacobians(&sim, q)[0]);
    }
    let last = *js.last().unwrap();
    assert!((last - 1.0).abs() < 0.1, "J over time {js:?}");
}

// ---------------------------------------------------------------------------------------------
// SoftJumper: its observation, reward and clock systems, a 32-step rollout through the tape, and
// the task in a VecEnv.

use diffsim_tasks::soft_jumper::{self, JumperMesh};
use diffsim_tasks::{SoftJumper, SoftJumperConfig, Task, VecEnv};
use diffsim_tests::RolloutCheck;

/// A jumper on a small mesh (2 × 1 × 2 slab on 1-cell legs: 30 tetrahedra) for property tests.
fn small_jumper(num_envs: usize) -> SoftJumper {
    let mesh = BoxWithLegs { slab: [2, 1, 2], leg_height: 1, cell: [0.4, 0.35, 0.4] };
    SoftJumper::new(SoftJumperConfig {
        num_envs,
        threads: 1,
        mesh: JumperMesh::Procedural(mesh),
        ..SoftJumperConfig::default()
    })
    .unwrap()
}

proptest! {
    #![proptest_config(cases(64))]

    #[test]
    fn soft_jumper_systems_pass_dot_product_and_fd(seed in any::<u64>(), num_envs in 1usize..3) {
        let task = small_jumper(num_envs);
        let sizes = task.sizes();
        let sim: Sim<f64> = task.sim().unwrap();
        let mut rng = Rng::new(seed);
        let mut s = sim.state.clone();
        for (spec, col) in s.columns_mut() {
            match spec.name.as_str() {
                "particle_q" => col.iter_mut().for_each(|x| *x += rng.uniform(-0.1, 0.1)),
                "time" => col.iter_mut().for_each(|x| *x = rng.uniform(0.0, 5.0)),
                _ => col.iter_mut().for_each(|x| *x = rng.uniform(-1.0, 1.0)),
            }
        }
        let c = rng.like(&sim.control);
        let observe = soft_jumper::Observe { sizes };
        let reward = soft_jumper::Reward { actions: sizes.actions, start_height: task.start_height() };
        for (name, r) in [
            ("soft_jumper.observe", check(&observe, &sim, &s, &c, &mut rng)),
            ("soft_jumper.reward", check(&reward, &sim, &s, &c, &mut rng)),
            ("soft_jumper.clock", check(&soft_jumper::Clock { dt: 1.0 / 60.0 }, &sim, &s, &c, &mut rng)),
        ] {
            prop_assert!(r.dual_err() < DUAL_TOL, "{name}: dual {r:?}");
            // |v̄_y| and |v̄_z| in the loss are kinks only at 0, which random states miss.
            prop_assert!(r.fd_err() < FD_TOL, "{name}: fd {r:?}");
        }
    }
}

#[test]
fn soft_jumper_rollout_of_32_steps_passes_the_dot_product_test() {
    let task = SoftJumper::new(SoftJumperConfig { num_envs: 1, threads: 1, ..SoftJumperConfig::default() }).unwrap();
    assert_eq!((task.sizes().particles, task.sizes().tets, task.sizes().actions), (195, 420, 210));
    let r = RolloutCheck { horizon: 32, h: 1e-6, state_dir_scale: 0.0 }.run(&task, &mut Rng::new(3)).unwrap();
    assert!(r.dual_err() < 1e-10, "{r:?}");
    assert!(r.adjoint.abs() > 0.0);
}

#[test]
fn soft_jumper_runs_in_the_vec_env() {
    let task = small_jumper(2);
    let spec = task.spec();
    let sizes = task.sizes();
    assert_eq!(spec.obs_dim, 8 + 1 + 3 + 3 + 6 * sizes.particles + sizes.actions);
    let start = task.start_height();
    let mut env = VecEnv::new(task).unwrap();
    let obs = env.reset(4).unwrap();
    assert_eq!(obs.dim(), (2, spec.obs_dim));
    // Phase at t = 0: sin(k π/4); the init noise lifts the body (and scales it by ±10%).
    for k in 0..8 {
        assert!((obs[[0, k]] - (k as f32 * std::f32::consts::FRAC_PI_4).sin()).abs() < 1e-6);
    }
    assert!(
        obs[[0, 10]] as f64 > 0.9 * start && obs[[0, 10]] != obs[[1, 10]],
        "com_y {} {}",
        obs[[0, 10]],
        obs[[1, 10]]
    );
    let mut t = 0.0f32;
    for step in 0..40 {
        let a = ndarray::Array2::from_shape_fn((2, spec.act_dim), |(_, k)| ((step + k) as f32 * 0.7).sin());
        let out = env.step(a.view()).unwrap();
        t += 1.0 / 60.0;
        assert!(out.reward.iter().all(|r| r.is_finite()) && out.obs.iter().all(|o| o.is_finite()));
        assert!(out.terminated.iter().all(|&d| !d) && out.truncated.iter().all(|&d| !d));
        assert!((out.obs[[0, 0]] - (5.0 * t).sin()).abs() < 1e-4, "phase at step {step}");
        let na = spec.act_dim;
        assert_eq!(out.obs.row(1).as_slice().unwrap()[spec.obs_dim - na..], *a.row(1).as_slice().unwrap());
    }
}
