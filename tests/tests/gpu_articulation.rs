//! CPU/GPU parity of the articulation kernels (`diffsim_systems::articulation::gpu`), on
//! whatever adapter wgpu finds (lavapipe here and in CI):
//! - `articulation.clear`, `.joint_forces`, `.integrate` and `.fk`, forward and adjoint, against
//!   the CPU systems in f32 on random states and adjoints, on the ant (a free root and 8 hinges)
//!   and on a rig with every other joint kind (a prismatic cart with limits, a revolute pole, a
//!   ball-jointed link and a welded tip);
//! - Cartpole's observe and reward kernels, and a 32-step Cartpole rollout on the GPU pipeline
//!   (2 envs): obs and rewards of every step, ∂L/∂act of a backward over the 32 steps and
//!   ∂L/∂(initial state), against the CPU `Sim` (f32, and f64 as the reference);
//! - rollouts of the ant (free root) and of the rig (ball and fixed joints) through the stepper:
//!   the final state and the gradients of a loss on every step's body poses and the final (q, q̇).
//!
//! With no adapter at all, each test prints `SKIPPED: ...` and returns; with
//! `DIFFSIM_REQUIRE_GPU=1` that fails instead. Any other GPU failure fails the test.

use diffsim_engine::articulation::LimitGains;
use diffsim_engine::components::{Body, Gravity, Joint, JointKind};
use diffsim_engine::gpu_sim::{GpuOptions, Scatter};
use diffsim_engine::{ColumnSpec, Columns, Cpu, GpuSim, Real, Scene, Sim, SimFactory};
use diffsim_systems::articulation::{self, Contacts, JointForces};
use diffsim_tasks::{
    AntRun, AntRunConfig, Cartpole, CartpoleConfig, HandReorient, HandReorientConfig, Humanoid, HumanoidConfig,
};
use diffsim_tests::Rng;
use diffsim_tests::gpu::{self, Cases, gpu_or_skip};
use glam::Vec3;

/// `sim` with its schedule replaced by the articulation substep alone (no contacts: those are
/// `articulation.ground_contact`'s and `.shape_contact`'s own kernels) and FK in the Post stage,
/// actuated with `scale` per unit of its `act` control.
fn dynamics_only<R: Real>(mut sim: Sim<R>, scale: f64) -> Sim<R> {
    let num_actions = sim.control.layout().spec("act").map_or(0, |s| s.width);
    let forces = JointForces { num_actions, scale };
    sim.schedule = articulation::schedule(sim.schedule.dt, sim.schedule.substeps, Contacts::default(), forces);
    sim.schedule.validate(sim.state.layout(), sim.control.layout(), &sim.model).unwrap();
    sim
}

/// The ant (a free root and 8 limited hinges), 2 envs.
fn ant_sim<R: Real>() -> Sim<R> {
    let task = AntRun::new(AntRunConfig { num_envs: 2, threads: 1, ..AntRunConfig::default() });
    dynamics_only(task.sim().unwrap(), task.cfg.action_scale)
}

/// A cart on a rail (prismatic x, limited, damped, actuated) carrying a pole (revolute z,
/// limited), a link on a ball joint at the pole's tip and a body welded to that link, 2 envs.
/// The rig of tests/articulation.rs with the link's and tip's inertias 10× larger: the f32
/// Cholesky's error grows with κ(H) ε, and with the original (thin-rod) inertias the GPU's
/// integrate differs from the CPU's f32 path by up to 1.3e-5 forward and by 1.4e-5 of the
/// column scale in ∂L/∂q (measured), the conditioning and not the kernels (with these inertias
/// both drop 10–100×).
fn rig_sim<R: Real>() -> Sim<R> {
    let mut scene = Scene::new();
    scene.spawn_envs(2, |env| {
        env.spawn((Gravity(Vec3::new(0.0, -9.81, 0.0)),));
        env.spawn((LimitGains { ke: 200.0, kd: 2.0 },));
        let cart = env.spawn((Body::at(Vec3::ZERO, 1.0, Vec3::new(0.01, 0.01, 0.01)),));
        let mut rail =
            Joint::new(None, cart, JointKind::Prismatic { axis: Vec3::X }, Vec3::new(0.0, 0.3, 0.0), Vec3::ZERO);
        rail.gear = 1.0;
        rail.damping = 0.3;
        rail.limit = Some((-0.2, 0.3));
        env.spawn((rail,));
        let mut pole_body = Body::at(Vec3::ZERO, 0.5, Vec3::new(0.02, 0.01, 0.02));
        pole_body.com = Vec3::new(0.0, 0.25, 0.0);
        let pole = env.spawn((pole_body,));
        let mut hinge = Joint::new(Some(cart), pole, JointKind::Revolute { axis: Vec3::Z }, Vec3::ZERO, Vec3::ZERO);
        hinge.q0 = 0.4;
        hinge.damping = 0.1;
        hinge.limit = Some((-0.5, 0.6));
        hinge.armature = 0.01;
        env.spawn((hinge,));
        let mut link_body = Body::at(Vec3::ZERO, 0.3, Vec3::new(0.04, 0.03, 0.035));
        link_body.com = Vec3::new(0.0, 0.1, 0.0);
        let link = env.spawn((link_body,));
        env.spawn((Joint::new(Some(pole), link, JointKind::Ball, Vec3::new(0.0, 0.5, 0.0), Vec3::ZERO),));
        let mut tip_body = Body::at(Vec3::ZERO, 0.2, Vec3::new(0.03, 0.03, 0.04));
        tip_body.com = Vec3::new(0.02, 0.03, -0.01);
        let tip = env.spawn((tip_body,));
        let weld = Joint::new(Some(link), tip, JointKind::Fixed, Vec3::new(0.0, 0.2, 0.0), Vec3::new(0.05, 0.0, 0.0));
        env.spawn((weld,));
    });
    let mut packed = scene.pack().unwrap();
    packed.add_control(ColumnSpec::new("act", 1, 1));
    let forces = JointForces { num_actions: 1, scale: 5.0 };
    let schedule = articulation::schedule::<R>(1.0 / 60.0, 4, Contacts::default(), forces);
    let state = packed.state.map(|x| R::from_f64(f64::from(x)));
    Sim::new(packed.model, state, packed.control, schedule, Cpu::new(1)).unwrap()
}

/// A random state around `rest`: joint coordinates moved by up to ±0.4 (the rig's limits at
/// −0.2/0.3 and −0.5/0.6 are crossed in about half the draws), the quaternions of every free
/// and ball joint turned by a random rotation of up to ~0.5 rad and renormalized, velocities
/// ±1.5, joint forces and external body forces ±5.
fn random_state(rng: &mut Rng, sim: &Sim<f32>) -> Columns<f32> {
    use diffsim_engine::articulation::{KIND_BALL, KIND_FREE};
    let mut s = gpu::random_columns(rng, &sim.state, -1.5, 1.5);
    let q0 = sim.state.get("joint_q").unwrap().to_vec();
    let q = s.get_mut("joint_q").unwrap();
    for (x, &r) in q.iter_mut().zip(&q0) {
        *x = r + rng.uniform(-0.4, 0.4) as f32;
    }
    let kind = sim.model.topology.get("joint_kind").unwrap();
    let q_start = sim.model.topology.get("joint_q_start").unwrap();
    let nq = q0.len() / sim.num_envs();
    let nb = kind.len() / sim.num_envs();
    for (b, &k) in kind.iter().enumerate() {
        let at = match k {
            KIND_FREE => 3,
            KIND_BALL => 0,
            _ => continue,
        };
        let i = (b / nb) * nq + q_start[b] as usize + at;
        let quat = &mut q[i..i + 4];
        for (c, x) in quat.iter_mut().enumerate() {
            *x = q0[i + c] + rng.uniform(-0.25, 0.25) as f32;
        }
        let n = quat.iter().map(|x| x * x).sum::<f32>().sqrt();
        quat.iter_mut().for_each(|x| *x /= n);
    }
    for name in ["joint_tau", "body_f"] {
        s.get_mut(name).unwrap().iter_mut().for_each(|x| *x = rng.uniform(-5.0, 5.0) as f32);
    }
    s
}

/// Tolerances: forward outputs within 1e-5 of max(|value|, 1e-3 × the column's max |value|);
/// adjoints within `adjoint_tol` of max(|value|, 1e-2 × the column's max |value|). The CPU
/// computes its adjoints in f64 from the f32 state and the GPU in f32, and an adjoint entry is
/// a sum of terms that largely cancel (∂L/∂q through every body's pose, inertia and RNEA force),
/// so an ulp of the terms, not of the result, is the unit; the floor is 1e-2 for that reason.
/// integrate's adjoint is also λ = H⁻¹ ā by an f32 Cholesky (the CPU's in f64): 3e-5.
/// Measured (lavapipe, these seeds): forward ≤ 8.7e-7 (fk) and ≤ 4.4e-7 (integrate);
/// adjoints ≤ 3.9e-6 (fk) and ≤ 1.2e-5 (integrate); clear and joint_forces ≤ 1e-7.
const FORWARD_TOL: f64 = 1e-5;
const FORWARD_FLOOR: f64 = 1e-3;
const ADJOINT_FLOOR: f64 = 1e-2;

fn adjoint_tol(name: &str) -> f64 {
    if name == "articulation.integrate" { 3e-5 } else { 1e-5 }
}

/// Every system of `sim`'s schedule, forward and adjoint, GPU vs CPU, over `cases` random
/// states, controls and adjoints (seeds 1000, 1001, …: the tolerances were measured on them).
/// `conditioning` scales integrate's tolerances (forward and adjoint) for models whose mass
/// matrix is ill-conditioned: the f32 Cholesky's error grows with κ(H) ε (see `rig_sim`).
fn kernels_match_cpu(sim: &Sim<f32>, cases: u64, conditioning: f64, test: &str) {
    let Some(gpu) = gpu_or_skip(test) else { return };
    let tol = |name: &str| {
        let scale = if name == "articulation.integrate" { conditioning } else { 1.0 };
        [(FORWARD_TOL * scale, FORWARD_FLOOR), (adjoint_tol(name) * scale, ADJOINT_FLOOR)]
    };
    let (seeds, state) = (Cases::Seeds(1000..1000 + cases), |rng: &mut Rng| random_state(rng, sim));
    gpu::for_each_system(test, gpu, sim, Scatter::Deterministic, seeds, &|_| true, state, tol, |_| {});
}

#[test]
fn gpu_ant_articulation_kernels_match_cpu() {
    kernels_match_cpu(&ant_sim(), 4, 1.0, "gpu_ant_articulation_kernels_match_cpu");
}

/// The humanoid (21 hinges, several through massless links), 2 envs. Its mass matrix, like the
/// hand's, is ill-conditioned (light distal links next to the free torso; fingertips of grams
/// next to a fixed base), so integrate is held to 100× the tolerances of the ant. Measured
/// (lavapipe, these seeds): humanoid forward 9.1e-6, adjoint 3.2e-4; hand forward 1.6e-5,
/// adjoint 9.5e-4; fk of both ≤ 3.3e-6 forward and ≤ 5.1e-6 adjoint at the ant's tolerances.
#[test]
fn gpu_humanoid_articulation_kernels_match_cpu() {
    let task = Humanoid::new(HumanoidConfig { num_envs: 2, threads: 1, ..HumanoidConfig::default() });
    let sim = dynamics_only(task.sim().unwrap(), task.cfg.action_scale);
    kernels_match_cpu(&sim, 2, 100.0, "gpu_humanoid_articulation_kernels_match_cpu");
}

/// The Allegro hand on its fixed base and the free cube (two trees in one env), 2 envs.
#[test]
fn gpu_hand_articulation_kernels_match_cpu() {
    let task = HandReorient::new(HandReorientConfig { num_envs: 2, threads: 1, ..HandReorientConfig::default() });
    let sim = dynamics_only(task.sim().unwrap(), task.cfg.action_scale);
    kernels_match_cpu(&sim, 2, 100.0, "gpu_hand_articulation_kernels_match_cpu");
}

#[test]
fn gpu_rig_articulation_kernels_match_cpu() {
    kernels_match_cpu(&rig_sim(), 6, 1.0, "gpu_rig_articulation_kernels_match_cpu");
}

fn cartpole(num_envs: usize) -> Cartpole {
    Cartpole::new(CartpoleConfig { num_envs, threads: 1, ..CartpoleConfig::default() })
}

/// Cartpole's whole schedule (articulation substep, FK, observe, reward).
#[test]
fn gpu_cartpole_kernels_match_cpu() {
    kernels_match_cpu(&cartpole(2).sim().unwrap(), 3, 1.0, "gpu_cartpole_kernels_match_cpu");
}

/// Rollout tolerances: obs, reward and state of every step within `OBS_TOL` × the column's scale
/// (max |value|), ∂L/∂act of every step and ∂L/∂(initial state) within `GRAD_TOL` normwise, and
/// the GPU's ∂L/∂act no farther from the f64 CPU rollout than 2 × the CPU f32 path's plus 1e-5.
/// The kernels agree to ~1e-6 per substep (above), the CPU's adjoints run in f64 and the GPU's in
/// f32, and over many substeps last-bit differences grow. Measured (lavapipe): Cartpole (32 × 4
/// substeps) obs 6.0e-8, ∂L/∂act 6.7e-7, ∂L/∂s0 2.8e-7; ant (8 × 16) state 1.8e-7, ∂L/∂act
/// 8.5e-7, ∂L/∂s0 9.1e-7; rig (16 × 4) state 7.1e-7, ∂L/∂act 1.2e-6, ∂L/∂s0 1.6e-6; the GPU's
/// ∂L/∂act within 1.2e-6 of the f64 rollout's (the CPU f32 path's: 5.0e-7).
const OBS_TOL: f64 = 1e-5;
const GRAD_TOL: f64 = 1e-4;

#[test]
fn gpu_cartpole_rollout_matches_cpu() {
    let test = "gpu_cartpole_rollout_matches_cpu";
    let Some(gpu) = gpu_or_skip(test) else { return };
    let (n, h) = (2, 32);
    let task = cartpole(n);
    let mut cpu: Sim<f32> = task.sim().unwrap();
    let mut exact: Sim<f64> = task.sim().unwrap();
    // Start off the hanging equilibrium so the pole swings: θ = π − 0.3 (env 0), π + 0.3 (env 1).
    let q = cpu.state.get_mut("joint_q").unwrap();
    q[1] -= 0.3;
    q[3] += 0.3;
    let q0: Vec<f64> = q.iter().map(|&x| f64::from(x)).collect();
    exact.state.get_mut("joint_q").unwrap().copy_from_slice(&q0);
    let readback = vec!["obs".to_string(), "reward".to_string()];
    let mut g = GpuSim::new(gpu, &cpu, GpuOptions { scatter: Scatter::Deterministic, readback }).unwrap();
    let mut rng = Rng::new(5);
    let actions = gpu::random_actions(&mut rng, h, n);
    let obs_seed: Vec<f32> = (0..5 * n).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
    let run = gpu::rollout(&mut g, &mut cpu, Some(&mut exact), &actions, &obs_seed).unwrap();
    // The pole swung: θ moved by more than 0.2 rad in some env.
    let th: Vec<f32> = cpu.state.get("joint_q").unwrap().iter().skip(1).step_by(2).copied().collect();
    assert!(th.iter().any(|&x| (x - (std::f32::consts::PI - 0.3)).abs() > 0.2), "θ {th:?}: the pole barely moved");
    let m = gpu::normwise_check(&run, OBS_TOL, GRAD_TOL);
    eprintln!("{test}: ({h} steps × {} substeps, {n} envs) {m:?}", task.cfg.substeps);
}

/// `h` recorded steps of `cpu` (f32), `exact` (the same in f64) and the GPU with random actions,
/// then a backward of L = Σ_t w·body_q_t / h + a random linear function of the final (q, q̇):
/// the final state, ∂L/∂act of every step and ∂L/∂(initial state) against the CPU, with the
/// tolerances of the Cartpole rollout.
fn rollout_matches_cpu(mut cpu: Sim<f32>, mut exact: Sim<f64>, h: usize, test: &str) {
    use diffsim_engine::gpu_sim::Seeds;
    let Some(gpu) = gpu_or_skip(test) else { return };
    let mut g = GpuSim::new(gpu, &cpu, GpuOptions::default()).unwrap();
    let mut rng = Rng::new(7);
    let na = cpu.control.get("act").unwrap().len();
    let actions: Vec<Vec<f32>> = (0..h).map(|_| (0..na).map(|_| rng.uniform(-1.0, 1.0) as f32).collect()).collect();
    let seed_of = |rng: &mut Rng, name: &str, scale: f64| -> Vec<f32> {
        (0..cpu.state.get(name).unwrap().len()).map(|_| (scale * rng.uniform(-1.0, 1.0)) as f32).collect()
    };
    let w_body = seed_of(&mut rng, "body_q", 1.0 / h as f64);
    let (w_q, w_qd) = (seed_of(&mut rng, "joint_q", 1.0), seed_of(&mut rng, "joint_qd", 1.0));
    cpu.record();
    g.record();
    exact.record();
    for a in &actions {
        cpu.set_control("act", a).unwrap();
        cpu.step().unwrap();
        g.set_control("act", a).unwrap();
        g.step().unwrap();
        exact.set_control("act", &a.iter().map(|&x| f64::from(x)).collect::<Vec<_>>()).unwrap();
        exact.step().unwrap();
    }
    let got = g.read_state().unwrap();
    let mut worst_state = 0.0f64;
    for name in ["joint_q", "joint_qd", "body_q", "body_qd"] {
        let e = gpu::scaled_err(got.get(name).unwrap(), cpu.state.get(name).unwrap());
        assert!(e <= OBS_TOL, "final `{name}`: error {e:e} of the scale");
        worst_state = worst_state.max(e);
    }
    // L's seed into ∂L/∂(state after step t), in either precision.
    fn seed<R: Real>(adj: &mut Columns<R>, last: bool, [w_body, w_q, w_qd]: [&[f32]; 3]) {
        let mut add = |name: &str, w: &[f32]| {
            adj.get_mut(name).unwrap().iter_mut().zip(w).for_each(|(x, s)| *x += R::from_f64(f64::from(*s)));
        };
        add("body_q", w_body);
        if last {
            add("joint_q", w_q);
            add("joint_qd", w_qd);
        }
    }
    let w = [&w_body[..], &w_q[..], &w_qd[..]];
    let cpu_grads = cpu.backward(|t, adj| seed(adj, t == h - 1, w)).unwrap();
    let exact_grads = exact.backward(|t, adj| seed(adj, t == h - 1, w)).unwrap();
    let gpu_grads = g
        .backward(|t, seeds: &mut Seeds| {
            seeds.add("body_q", w_body.clone());
            if t == h - 1 {
                seeds.add("joint_q", w_q.clone());
                seeds.add("joint_qd", w_qd.clone());
            }
        })
        .unwrap();
    let (mut worst_grad, mut gpu_f64, mut cpu_f64) = (0.0f64, 0.0f64, 0.0f64);
    for t in 0..h {
        let (ga, ca) = (gpu_grads.controls[t].get("act").unwrap(), cpu_grads.controls[t].get("act").unwrap());
        let xa: Vec<f32> = exact_grads.controls[t].get("act").unwrap().iter().map(|&x| x as f32).collect();
        let e = gpu::norm_rel_err(ga, ca);
        assert!(e <= GRAD_TOL, "∂L/∂act of step {t}: normwise relative error {e:e}");
        let (eg, ec) = (gpu::norm_rel_err(ga, &xa), gpu::norm_rel_err(ca, &xa));
        assert!(eg <= 2.0 * ec + 1e-5, "∂L/∂act of step {t}: GPU {eg:e} from f64, CPU f32 {ec:e}");
        worst_grad = worst_grad.max(e);
        gpu_f64 = gpu_f64.max(eg);
        cpu_f64 = cpu_f64.max(ec);
    }
    let mut worst_s0 = 0.0f64;
    for name in ["joint_q", "joint_qd", "joint_tau", "body_f"] {
        let (ga, ca) = (gpu_grads.initial_state.get(name).unwrap(), cpu_grads.initial_state.get(name).unwrap());
        let e = if ca.iter().any(|&x| x != 0.0) { gpu::norm_rel_err(ga, ca) } else { gpu::scaled_err(ga, ca) };
        assert!(e <= GRAD_TOL, "∂L/∂(initial state) `{name}`: normwise relative error {e:e}");
        worst_s0 = worst_s0.max(e);
    }
    assert!(cpu_grads.controls[0].get("act").unwrap().iter().any(|x| x.abs() > 1e-6), "a nonzero gradient");
    eprintln!(
        "{test}: ({h} steps) final state {worst_state:e} of the scale; ∂L/∂act {worst_grad:e}, ∂L/∂s0 {worst_s0:e} \
         normwise; ∂L/∂act from f64: GPU {gpu_f64:e}, CPU f32 {cpu_f64:e}"
    );
}

/// The ant (free root, 8 hinges with limits) flailing in the air: 8 steps × 16 substeps.
#[test]
fn gpu_ant_rollout_matches_cpu() {
    rollout_matches_cpu(ant_sim(), ant_sim(), 8, "gpu_ant_rollout_matches_cpu");
}

/// The rig (prismatic with limits, revolute, ball, fixed): 16 steps × 4 substeps.
#[test]
fn gpu_rig_rollout_matches_cpu() {
    rollout_matches_cpu(rig_sim(), rig_sim(), 16, "gpu_rig_rollout_matches_cpu");
}
