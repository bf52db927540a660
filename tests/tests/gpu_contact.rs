//! CPU/GPU parity of the articulation contact kernels (`articulation::contact_gpu`) and of the
//! articulated tasks' Post-stage systems, on whatever adapter wgpu finds (lavapipe here and in
//! CI), forward and adjoint, against the CPU systems in f32 with random adjoints (proptest, few
//! cases: lavapipe is slow):
//! - `articulation.ground_contact` and `articulation.shape_contact` on the Ant (a sphere and 12
//!   capsules on 9 bodies), in both scatter modes, and `shape_pair_contact` over a pair list, on
//!   random body poses and twists near the ground and near each other, so that ground and pair
//!   contacts are both on and off; over their cases the CPU systems must have pushed some bodies,
//!   left others free and moved pose adjoints, so a kernel that does nothing cannot pass;
//! - `ant_run.observe`, `ant_run.reward`, `ant_run.terminate`;
//! - `hand_reorient.observe`, `.reward`, `.terminate`, `.resample_goal`;
//! - `shape_pair_contact` with boxes: segment–box (core outside, core entering the box), sphere–box
//!   and box–box, each with the box as shape A and as B, over random poses that meet every branch.
//!
//! Tolerances: 1e-5 relative unless stated at a test (the contacts' and HandReorient's reward
//! are wider, each measured and explained).
//!
//! With no adapter at all, each test prints `SKIPPED: ...` and returns; with
//! `DIFFSIM_REQUIRE_GPU=1` that fails instead. Any other GPU failure fails the test.

use diffsim_engine::gpu_sim::{GpuOptions, Scatter};
use diffsim_engine::{Columns, GpuSim, Schedule, Sim, SimFactory, Stage, StepCx, System};
use diffsim_systems::articulation::contact_gpu::PairTable;
use diffsim_systems::articulation::shape_contact::{ShapePairContact, WorldShape, closest_points};
use diffsim_systems::articulation::{GroundContact, ShapeContact};
use diffsim_tasks::ant_run::{self, Observe, Reward};
use diffsim_tasks::torso::TorsoBelow;
use diffsim_tasks::{AntRun, AntRunConfig};
use diffsim_tests::Rng;
use diffsim_tests::gpu::{self, gpu_or_skip};

/// Tolerance of every column (relative, with values below `FLOOR` × the column's max |value|
/// compared against that scale, `gpu::max_rel_err`).
const TOL: f64 = 1e-5;
/// See `gpu_contact_kernels_match_cpu` for why a floor is needed and what was measured.
const FLOOR: f64 = 1e-2;
/// Tolerance of the contact forwards; see `gpu_contact_kernels_match_cpu`.
const CONTACT_FORWARD_TOL: f64 = 1e-4;
/// Tolerance of the contact adjoints; see `gpu_contact_kernels_match_cpu`.
const CONTACT_ADJOINT_TOL: f64 = 2e-3;
/// Tolerance of `hand_reorient.resample_goal`; see `gpu_hand_reorient_task_systems_match_cpu`.
const RESAMPLE_TOL: f64 = 5e-5;
/// Tolerance of `hand_reorient.reward` elsewhere; see `gpu_hand_reorient_task_systems_match_cpu`.
const HAND_REWARD_TOL: f64 = 5e-4;
/// Tolerance of `hand_reorient.reward` where |rot| is within [`STEEP`]; see
/// `gpu_hand_reorient_task_systems_match_cpu`.
const HAND_STEEP_TOL: f64 = 0.5;
/// The range of |rot| (rad) where the success bonus's sigmoids are not saturated in f32.
const STEEP: (f64, f64) = (0.075, 0.125);
/// Random states are redrawn while two shapes overlap so deeply that their core segments come
/// closer than this (m); see `gpu_contact_kernels_match_cpu`.
const MIN_CORE_DISTANCE: f64 = 0.05;

/// `num_envs` Ants (model and columns) with only the systems `add` puts on an empty schedule of
/// the task's dt and substeps (the articulation substep systems have no GPU mirror on this
/// branch, and `GpuSim::new` needs one for every system).
fn ant_with(num_envs: usize, add: impl FnOnce(&Sim<f32>, Schedule<f32>) -> Schedule<f32>) -> Sim<f32> {
    let mut sim: Sim<f32> =
        AntRun::new(AntRunConfig { num_envs, threads: 1, ..AntRunConfig::default() }).sim().unwrap();
    // Not `validate`d: its reads (body_q, written by fk) have no writer in this partial schedule.
    sim.schedule = add(&sim, Schedule::new(sim.schedule.dt, sim.schedule.substeps));
    sim
}

fn random_columns(rng: &mut Rng, like: &Columns<f32>, lo: f64, hi: f64) -> Columns<f32> {
    let mut c = like.clone();
    for (_, col) in c.columns_mut() {
        col.iter_mut().for_each(|x| *x = rng.uniform(lo, hi) as f32);
    }
    c
}

/// Random body poses: origins in a 0.5 m cube whose bottom is 0.1 m below the ground (so shapes
/// straddle the ground and overlap each other: the Ant's legs are ~0.6 m capsule chains of radius
/// 0.08), uniformly random unit quaternions, twists of order one, forces of order five.
fn random_state(rng: &mut Rng, like: &Columns<f32>) -> Columns<f32> {
    let mut s = random_columns(rng, like, -1.0, 1.0);
    for b in s.get_mut("body_q").unwrap().chunks_exact_mut(7) {
        b[0] = rng.uniform(-0.25, 0.25) as f32;
        b[1] = rng.uniform(-0.1, 0.4) as f32;
        b[2] = rng.uniform(-0.25, 0.25) as f32;
        let q: [f64; 4] = std::array::from_fn(|_| rng.uniform(-1.0, 1.0));
        let n = q.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-3);
        b[3..7].iter_mut().zip(q).for_each(|(x, q)| *x = (q / n) as f32);
    }
    s.get_mut("body_f").unwrap().iter_mut().for_each(|f| *f = rng.uniform(-5.0, 5.0) as f32);
    s
}

/// The smallest distance between the core segments of two shapes in contact over the pairs
/// `shape_contact` tests (f64), or infinity without any.
fn min_core_distance(sim: &Sim<f32>, state: &Columns<f32>) -> f64 {
    let table = PairTable::new("test", &sim.model, None).unwrap();
    let model = sim.model.view_all();
    let (kind, size, pose) = (model.topo("shape_kind"), model.param("shape_size"), model.param("shape_pose"));
    let bq: Vec<f64> = state.get("body_q").unwrap().iter().map(|&x| f64::from(x)).collect();
    let shape = |s: usize, b: usize| WorldShape::new(&bq, b, kind[s], &size[3 * s..3 * s + 3], &pose[7 * s..7 * s + 7]);
    let mut min = f64::INFINITY;
    for r in table.rows.chunks_exact(4) {
        let [si, sj, ba, bb] = [0, 1, 2, 3].map(|k| r[k] as usize);
        let (Some(WorldShape::Segment { p0, d, radius: ra }), Some(WorldShape::Segment { p0: q0, d: e, radius: rb })) =
            (shape(si, ba), shape(sj, bb))
        else {
            continue;
        };
        let (p, q) = closest_points(p0, d, q0, e);
        let dist = (0..3).map(|k| (p[k] - q[k]).powi(2)).sum::<f64>().sqrt();
        if dist < ra + rb {
            min = min.min(dist);
        }
    }
    min
}

/// The largest `max_rel_err` over the columns restricted to env `e`'s entries (each column's
/// scale for the floor taken over all envs).
fn env_err(gpu: &Columns<f32>, cpu: &Columns<f32>, e: usize) -> f64 {
    gpu.columns()
        .zip(cpu.columns())
        .map(|((spec, g), (_, c))| {
            let w = spec.per_env();
            let scale = c.iter().fold(0.0f64, |m, &x| m.max(f64::from(x).abs()));
            let floor = (FLOOR * scale).max(1e-30);
            g[w * e..w * (e + 1)]
                .iter()
                .zip(&c[w * e..w * (e + 1)])
                .map(|(&x, &y)| (f64::from(x) - f64::from(y)).abs() / f64::from(y).abs().max(floor))
                .fold(0.0, f64::max)
        })
        .fold(0.0, f64::max)
}

/// Bodies whose `body_f` row the CPU forward changed, and those it left alone.
fn pushed_bodies(before: &Columns<f32>, after: &Columns<f32>) -> (usize, usize) {
    let (a, b) = (before.get("body_f").unwrap(), after.get("body_f").unwrap());
    let pushed = a.chunks_exact(6).zip(b.chunks_exact(6)).filter(|(x, y)| x != y).count();
    (pushed, a.len() / 6 - pushed)
}

/// The largest error over the columns of a set, checked against [`TOL`].
fn columns_err(what: &str, gpu: &Columns<f32>, cpu: &Columns<f32>, tol: f64) -> f64 {
    let mut worst = 0.0f64;
    for ((spec, g), (_, c)) in gpu.columns().zip(cpu.columns()) {
        let e = gpu::max_rel_err(g, c, FLOOR);
        assert!(e <= tol, "{what}: column `{}`: max relative error {e:e} > {tol:e}", spec.name);
        worst = worst.max(e);
    }
    worst
}

/// Every system of `sim`'s schedule, forward and adjoint, GPU vs CPU over random states;
/// `active` says which systems must have pushed some bodies and not others in every case.
/// States are redrawn while two touching shapes' cores are closer than `min_core` (m).
fn kernels_match_cpu(
    sim: &Sim<f32>,
    scatter: Scatter,
    cases: u32,
    min_core: f64,
    active: &dyn Fn(&str) -> bool,
    test: &str,
) {
    let Some(gpu) = gpu_or_skip(test) else { return };
    let g = std::cell::RefCell::new(GpuSim::new(gpu, sim, GpuOptions { scatter, readback: Vec::new() }).unwrap());
    let cpu_systems: Vec<&dyn System<f32>> = sim.schedule.systems().map(|(_, s)| s).collect();
    assert_eq!(g.borrow().system_names(), cpu_systems.iter().map(|s| s.name()).collect::<Vec<_>>());
    let cx = StepCx { dt: sim.schedule.substep_dt(), step: 0, substep: 0 };
    let model = sim.model.view_all();
    let worst = std::cell::Cell::new([0.0f64; 2]);
    // Per active system: bodies pushed, bodies free, cases whose adjoint moved a pose adjoint.
    let counts = std::cell::RefCell::new(std::collections::BTreeMap::<String, [usize; 3]>::new());
    let mut runner = gpu::case_runner(cases);
    runner
        .run(&proptest::num::u64::ANY, |seed| {
            let mut rng = Rng::new(seed);
            let mut state = random_state(&mut rng, &sim.state);
            while min_core > 0.0 && min_core_distance(sim, &state) < min_core {
                state = random_state(&mut rng, &sim.state);
            }
            let control = random_columns(&mut rng, &sim.control, -1.0, 1.0);
            let adj = random_columns(&mut rng, &sim.state, -1.0, 1.0);
            let adj_c = random_columns(&mut rng, &sim.control, -1.0, 1.0);
            let mut g = g.borrow_mut();
            g.write_control(&control).unwrap();
            for (i, sys) in cpu_systems.iter().enumerate() {
                let name = sys.name();
                let run = gpu::run_system(&mut g, i, *sys, &cx, &model, &control, &state, &adj, &adj_c).unwrap();
                let [got, cpu] = &run.forward;
                if active(name) {
                    let (pushed, free) = pushed_bodies(&state, cpu);
                    let moved = run.adjoint[1].get("body_q").unwrap() != adj.get("body_q").unwrap();
                    let mut c = counts.borrow_mut();
                    let c = c.entry(name.to_string()).or_insert([0; 3]);
                    *c = [c[0] + pushed, c[1] + free, c[2] + usize::from(moved)];
                }
                let tol = if name.starts_with("articulation.") { CONTACT_FORWARD_TOL } else { TOL };
                let w = columns_err(&format!("{name} forward (seed {seed})"), got, cpu, tol);
                let ([ga, a], [gac, ac]) = (&run.adjoint, &run.adjoint_control);
                let tol = if name.starts_with("articulation.") { CONTACT_ADJOINT_TOL } else { TOL };
                let wa = columns_err(&format!("{name} adjoint state (seed {seed})"), ga, a, tol).max(columns_err(
                    &format!("{name} adjoint control (seed {seed})"),
                    gac,
                    ac,
                    tol,
                ));
                worst.set([worst.get()[0].max(w), worst.get()[1].max(wa)]);
            }
            Ok(())
        })
        .unwrap();
    for (name, [pushed, free, moved]) in counts.into_inner() {
        assert!(
            pushed > 0 && free > 0 && moved > 0,
            "{name}: {pushed} bodies pushed, {free} free, {moved} adjoints moved"
        );
        eprintln!("{test}: {name}: {pushed} bodies pushed, {free} free over the cases");
    }
    let [f, a] = worst.get();
    eprintln!("{test}: {scatter:?}: max relative error over all kernels: forward {f:e}, adjoint {a:e}");
}

fn contacts(_: &Sim<f32>, s: Schedule<f32>) -> Schedule<f32> {
    s.with(Stage::Substep, GroundContact).with(Stage::Substep, ShapeContact)
}

/// Ground and shape–shape contact on 2 Ants.
///
/// Tolerances (relative, values below 1e-2 × the column's max |value| compared against that
/// scale; measured over 900 random cases, 3 runs of 300, on lavapipe):
/// - forward 1e-4 (measured ≤ 1.8e-5): the same f32 arithmetic in the same order as the CPU,
///   except that lavapipe's compiler contracts some products into FMAs; a pair's penetration
///   r_A + r_B − |P − Q| cancels, so a last-bit difference of a position (~3e-8 m) becomes
///   kₑ × 3e-8 ≈ 1e-4 N of a force, and body_f entries where several contacts and the random
///   initial force cancel sit at the 1e-2 floor of a column whose scale is ~1e3 N.
/// - adjoint 2e-3 (measured ≤ 4.6e-4): the CPU adjoints recompute the contacts in f64
///   (`wrench_adjoint`, `vjp`) from the f32 state, the GPU's run in f32, and the pair adjoint is
///   ill-conditioned: the normal n = (P − Q)/d turns at a rate 1/d, the closest-point
///   parameters at 1/(a e − b²), and kₑ = 4e3 multiplies both, so terms of ~1e5 cancel to
///   results of ~1e3. As the core distance d → 0 (two shapes overlapping by nearly their whole
///   radii) the f32 normal itself loses its digits and the difference grows without bound
///   (1e-2 to 1 from pairs at d = 4e-4 and 1.7e-3; ≤ 1.2e-3 once d ≥ 0.03: a difference that
///   shrinks with the conditioning is rounding, a wrong term would not), so random states are redrawn
///   until every touching pair has d ≥ [`MIN_CORE_DISTANCE`] = 0.05 m (a penetration of up to
///   69% of r_A + r_B; the penalty keeps real contacts at a few mm).
///
/// The 1e-5 of the other kernels is not reachable here in f32 with kₑ = 4e3.
#[test]
fn gpu_contact_kernels_match_cpu() {
    let sim = ant_with(2, contacts);
    kernels_match_cpu(&sim, Scatter::Deterministic, 6, MIN_CORE_DISTANCE, &|_| true, "gpu_contact_kernels_match_cpu");
}

/// Atomic mode builds the same two-pass kernels (each contact is evaluated once, atomics would
/// save nothing); this checks that the pipeline builds and agrees in that mode too.
#[test]
fn gpu_contact_kernels_match_cpu_atomic_mode() {
    let sim = ant_with(1, contacts);
    kernels_match_cpu(
        &sim,
        Scatter::Atomic,
        2,
        MIN_CORE_DISTANCE,
        &|_| true,
        "gpu_contact_kernels_match_cpu_atomic_mode",
    );
}

/// `shape_pair_contact` over an explicit list: the torso's shapes against the four feet.
#[test]
fn gpu_shape_pair_contact_matches_cpu() {
    let sim = ant_with(1, |sim, s| {
        let model = sim.model.view_all();
        let body = model.topo("shape_body");
        let shapes = 0..body.len() as u32;
        let feet: Vec<u32> = shapes.clone().filter(|&s| body[s as usize] != 0 && body[s as usize] % 2 == 0).collect();
        let pairs: Vec<(u32, u32)> =
            shapes.filter(|&s| body[s as usize] == 0).flat_map(|t| feet.iter().map(move |&f| (t, f))).collect();
        assert!(!pairs.is_empty());
        s.with(Stage::Substep, ShapePairContact { pairs })
    });
    kernels_match_cpu(
        &sim,
        Scatter::Deterministic,
        3,
        MIN_CORE_DISTANCE,
        &|_| false,
        "gpu_shape_pair_contact_matches_cpu",
    );
}

/// AntRun's Post-stage task systems (observe, reward, terminate) on 4 Ants, whose torsos
/// straddle the termination height. Their CPU adjoints are recorded replays (f64 tape from the
/// f32 state), the GPU's hand-written in f32; held to 1e-5 like the forwards.
#[test]
fn gpu_ant_run_task_systems_match_cpu() {
    let sim = ant_with(4, |_, s| {
        s.with(Stage::Post, Observe)
            .with(Stage::Post, Reward)
            .with(Stage::Post, TorsoBelow { name: "ant_run.terminate", height: ant_run::TERMINATION_HEIGHT })
    });
    kernels_match_cpu(&sim, Scatter::Deterministic, 6, 0.0, &|_| false, "gpu_ant_run_task_systems_match_cpu");
}

/// HandReorient's observe, reward, terminate and resample_goal on 4 hands: random hand angles and rates, goals,
/// cubes within 0.35 m of the goal (the termination distance is 0.24) and rotated from the goal's
/// orientation by 0.03 to 0.3 rad (the success tolerance is 0.1), so that the reward's smooth
/// success bonus is met on its slopes as well as on its plateaus, and some goals are reached
/// (resampled from their env's stream [key, successes], random). In every case one env is
/// terminated and one resampled: drawn at random, all 24 envs of a run were near their goal
/// about once in 200 runs (P(far) = 0.2 each), which failed the coverage assertion.
///
/// Tolerances (per env; measured over 600 cases, 3 runs of 200, on lavapipe): 1e-5 for observe
/// (measured ≤ 5.1e-6) and terminate (exact); 5e-5 for resample_goal (measured ≤ 1.2e-5 over 600
/// cases): the GPU rounds its goal angle π/2 · u to f32 from the emulated u64 stream in f32
/// steps, sometimes an ulp (1.2e-7 at π/2) from the CPU's f64-then-f32 rounding, and a goal
/// component near zero is compared against the 1e-2 floor. The reward: the CPU adjoint is an f64 replay from
/// the f32 state, the GPU's is f32, and
/// - the rotation distance 2 asin |(q ⊗ q_goal⁻¹).xyz| comes from a difference of unit
///   quaternions whose xyz part cancels to ~rot/2, so its direction keeps ~eps/rot of relative
///   precision (2.3e-4 at rot = 0.009, hence rot ≥ 0.03 here): 5e-4 (measured ≤ 1.9e-4 with
///   lavapipe's builtin asin; ≤ 2.1e-5 over 6 cases since the kernel refines it, `asin_precise`);
/// - on the slopes of the success bonus 250 σ(−|σ((0.1 − rot)/ε) − 1|/ε), ε = 1e-3, i.e. for
///   |rot| in [`STEEP`], two sigmoids of slope 1/ε each magnify a last-bit difference of rot by
///   ~1e6 in value and more in the adjoint: 0.5 (measured ≤ 0.27), a check of the formulas'
///   structure there rather than of their digits.
#[test]
fn gpu_hand_reorient_task_systems_match_cpu() {
    use diffsim_tasks::hand_reorient::{Observe as HandObserve, ResampleGoal, Reward as HandReward, Terminate};
    use diffsim_tasks::{HandReorient, HandReorientConfig};
    use glam::{Quat, Vec3};
    let test = "gpu_hand_reorient_task_systems_match_cpu";
    let Some(gpu) = gpu_or_skip(test) else { return };
    let task = HandReorient::new(HandReorientConfig { num_envs: 4, threads: 1, ..HandReorientConfig::default() });
    let layout = task.layout().unwrap().clone();
    let mut sim: Sim<f32> = task.sim().unwrap();
    sim.schedule = Schedule::new(sim.schedule.dt, sim.schedule.substeps)
        .with(Stage::Post, HandObserve { layout: layout.clone() })
        .with(Stage::Post, HandReward { layout: layout.clone() })
        .with(Stage::Post, Terminate { layout: layout.clone() })
        .with(Stage::Post, ResampleGoal { layout: layout.clone() });
    let g = std::cell::RefCell::new(GpuSim::new(gpu, &sim, GpuOptions::default()).unwrap());
    let systems: Vec<&dyn System<f32>> = sim.schedule.systems().map(|(_, s)| s).collect();
    let cx = StepCx { dt: sim.schedule.substep_dt(), step: 0, substep: 0 };
    let model = sim.model.view_all();
    let (worst, flags) = (std::cell::Cell::new([0.0f64; 5]), std::cell::Cell::new([0usize; 2]));
    let resampled = std::cell::Cell::new(0usize);
    let mut runner = gpu::case_runner(6);
    runner
        .run(&proptest::num::u64::ANY, |seed| {
            let mut rng = Rng::new(seed);
            let mut state = random_columns(&mut rng, &sim.state, -1.0, 1.0);
            let mut v = || rng.uniform(-1.0, 1.0) as f32;
            let (nq, cq) = (layout.nq, layout.cube_q);
            let mut goals = Vec::new();
            for e in 0..4 {
                let axis = Vec3::new(v(), v(), v()).normalize_or(Vec3::Y);
                let goal_rot = Quat::from_axis_angle(axis, 3.0 * v()).normalize();
                let goal_p = Vec3::new(v(), v(), v());
                let axis = Vec3::new(v(), v(), v()).normalize_or(Vec3::X);
                // Env 1 of every case has reached its goal (angle ≤ 0.08 < 0.1), env 0 is past
                // the termination distance (0.26 to 0.34 > 0.24), so both branches are met
                // whatever the draw; the rest are random around those thresholds.
                let angle = if e == 1 { 0.03 + 0.025 * (1.0 + v()) } else { 0.03 + 0.135 * (1.0 + v()) };
                let cube_rot = (Quat::from_axis_angle(axis, angle) * goal_rot).normalize();
                let offset = Vec3::new(v(), v(), v()) * 0.2;
                let offset = if e == 0 { offset.normalize_or(Vec3::X) * (0.3 + 0.04 * v()) } else { offset };
                let cube_p = goal_p + offset;
                goals.push((goal_p, goal_rot));
                let q = &mut state.get_mut("joint_q").unwrap()[e * nq + cq..e * nq + cq + 7];
                q[..3].copy_from_slice(&cube_p.to_array());
                q[3..].copy_from_slice(&cube_rot.to_array());
            }
            for k in state.get_mut("goal_rng").unwrap().chunks_exact_mut(2) {
                k[0] = (rng.uniform(0.0, 1.0) * 16_777_216.0).floor() as f32;
                k[1] = (rng.uniform(0.0, 50.0)).floor() as f32;
            }
            for (e, (p, r)) in goals.into_iter().enumerate() {
                let goal = &mut state.get_mut("goal").unwrap()[7 * e..7 * e + 7];
                goal[..3].copy_from_slice(&p.to_array());
                goal[3..].copy_from_slice(&r.to_array());
            }
            let control = random_columns(&mut rng, &sim.control, -1.0, 1.0);
            let adj = random_columns(&mut rng, &sim.state, -1.0, 1.0);
            let adj_c = random_columns(&mut rng, &sim.control, -1.0, 1.0);
            let mut g = g.borrow_mut();
            g.write_control(&control).unwrap();
            // Each env's |rot| (f64), to tell the bonus's slopes from its plateaus.
            let rot: Vec<f64> = (0..4)
                .map(|e| {
                    let q = &state.get("joint_q").unwrap()[e * nq + cq + 3..e * nq + cq + 7];
                    let gq = &state.get("goal").unwrap()[7 * e + 3..7 * e + 7];
                    let d = Quat::from_slice(q).as_dquat() * Quat::from_slice(gq).as_dquat().conjugate();
                    2.0 * Vec3::new(d.x as f32, d.y as f32, d.z as f32).as_dvec3().length().min(1.0 - 1e-3).asin()
                })
                .collect();
            for (i, sys) in systems.iter().enumerate() {
                let name = sys.name();
                let run = gpu::run_system(&mut g, i, *sys, &cx, &model, &control, &state, &adj, &adj_c).unwrap();
                let [got, cpu] = &run.forward;
                if name == "hand_reorient.terminate" {
                    let t = cpu.get("terminated").unwrap();
                    let [far, near] = flags.get();
                    let count = |v: f32| t.iter().filter(|&&x| x == v).count();
                    flags.set([far + count(1.0), near + count(0.0)]);
                }
                if name == "hand_reorient.resample_goal" {
                    let (before, after) = (state.get("goal_rng").unwrap(), cpu.get("goal_rng").unwrap());
                    let n = before.chunks_exact(2).zip(after.chunks_exact(2)).filter(|(b, a)| b != a).count();
                    resampled.set(resampled.get() + n);
                }
                let ([ga, a], [gac, ac]) = (&run.adjoint, &run.adjoint_control);
                let mut all = worst.get();
                for (e, &rot) in rot.iter().enumerate() {
                    let steep = name == "hand_reorient.reward" && (STEEP.0..STEEP.1).contains(&rot);
                    let tol = match name {
                        _ if steep => HAND_STEEP_TOL,
                        "hand_reorient.reward" => HAND_REWARD_TOL,
                        "hand_reorient.resample_goal" => RESAMPLE_TOL,
                        _ => TOL,
                    };
                    let err = env_err(got, cpu, e).max(env_err(ga, a, e)).max(env_err(gac, ac, e));
                    assert!(
                        err <= tol,
                        "{name} (seed {seed}) env {e} (|rot| {rot:.4}): max relative error {err:e} > {tol:e}"
                    );
                    let k = if steep { 4 } else { i };
                    all[k] = all[k].max(err);
                }
                worst.set(all);
            }
            Ok(())
        })
        .unwrap();
    let (flags, worst, resampled) = (flags.get(), worst.get(), resampled.get());
    assert!(resampled > 0, "resample_goal: no env reached its goal over the cases");
    assert!(flags[0] > 0 && flags[1] > 0, "terminate: {} envs far, {} near over the cases", flags[0], flags[1]);
    eprintln!(
        "{test}: max relative error: observe {:e}, reward {:e} (on the bonus's slopes {:e}), terminate {:e}, \
         resample_goal {:e} ({resampled} goals resampled)",
        worst[0], worst[1], worst[4], worst[2], worst[3]
    );
}

/// The shapes of the box checks, one free body each: a box A (shape 0), a capsule (1), a sphere
/// (2) and a box B (3); HandReorient's contact parameters scaled up to the Ant's stiffness.
const BOX_A: [f32; 3] = [0.1, 0.08, 0.12];
const BOX_B: [f32; 3] = [0.06, 0.05, 0.07];
const CAPSULE: (f32, f32) = (0.03, 0.1);
const SPHERE: f32 = 0.05;
/// Every pair with a box, in both orders (box as shape A: normals flipped), and one
/// capsule–sphere pair among them.
const BOX_PAIRS: [(u32, u32); 6] = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)];

/// `num_envs` envs of the four shapes with only `shape_pair_contact` over [`BOX_PAIRS`].
fn box_sim(num_envs: usize, pairs: &[(u32, u32)]) -> Sim<f32> {
    use diffsim_engine::components::{Body, Geometry, Joint, JointKind, Shape};
    use diffsim_engine::{Cpu, Scene};
    use glam::{Quat, Vec3};
    let geometry = [
        Geometry::Box { half_extents: Vec3::from_array(BOX_A) },
        Geometry::Capsule { radius: CAPSULE.0, half_height: CAPSULE.1 },
        Geometry::Sphere { radius: SPHERE },
        Geometry::Box { half_extents: Vec3::from_array(BOX_B) },
    ];
    let mut scene = Scene::new();
    scene.spawn_envs(num_envs, |env| {
        for (k, g) in geometry.into_iter().enumerate() {
            let b = env.spawn((Body::at(Vec3::new(k as f32, 0.0, 0.0), 0.5, Vec3::splat(4e-4)),));
            env.spawn((Joint::new(None, b, JointKind::Free, Vec3::ZERO, Vec3::ZERO),));
            let (ke, kd, kf, mu) = (4.0e3, 10.0, 10.0, 0.5);
            env.spawn((Shape { body: b, geometry: g, pos: Vec3::ZERO, rot: Quat::IDENTITY, ke, kd, kf, mu },));
        }
    });
    let packed = scene.pack().unwrap();
    let empty = Schedule::new(1e-3, 1);
    let mut sim = Sim::new(packed.model, packed.state, packed.control, empty, Cpu::new(1)).unwrap();
    let pairs = pairs.to_vec();
    // Not `validate`d: body_q has no writer in this one-system schedule.
    sim.schedule = Schedule::new(1e-3, 1).with(Stage::Substep, ShapePairContact { pairs });
    sim
}

/// Random poses: box A near the origin, the other bodies at 0 to 0.3 m from it in random
/// directions (so pairs are apart, touching, and overlapping: capsule cores inside the boxes,
/// box corners and edge midpoints inside each other), uniformly random rotations; twists of
/// order one, forces of order five.
fn random_box_state(rng: &mut Rng, like: &Columns<f32>) -> Columns<f32> {
    let mut s = random_columns(rng, like, -1.0, 1.0);
    for (k, b) in s.get_mut("body_q").unwrap().chunks_exact_mut(7).enumerate() {
        let dir: [f64; 3] = std::array::from_fn(|_| rng.uniform(-1.0, 1.0));
        let norm = dir.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-3);
        let r = if k % 4 == 0 { rng.uniform(0.0, 0.02) } else { rng.uniform(0.0, 0.3) };
        (0..3).for_each(|i| b[i] = (dir[i] / norm * r) as f32);
        let q: [f64; 4] = std::array::from_fn(|_| rng.uniform(-1.0, 1.0));
        let n = q.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-3);
        b[3..7].iter_mut().zip(q).for_each(|(x, q)| *x = (q / n) as f32);
    }
    s.get_mut("body_f").unwrap().iter_mut().for_each(|f| *f = rng.uniform(-5.0, 5.0) as f32);
    s
}

/// Which branches of the box narrow phases a state exercises (f64, from the CPU's geometry):
/// [segment–box with the core outside and touching, core entering the box, box–box samples of A
/// inside B, of B inside A], and the nearest-face axes (bit i: axis i, in the box's frame) of the
/// sphere-law points of cores inside a box. Also the smallest core–box distance of an outside
/// contact and the smallest gap between the two least face depths of an inside point (the
/// normal's conditioning, see `gpu_box_contact_kernels_match_cpu`).
struct Branches {
    hits: [usize; 4],
    axes: u32,
    min_dist: f64,
    min_tie: f64,
}

fn box_branches(sim: &Sim<f32>, state: &Columns<f32>) -> Branches {
    let model = sim.model.view_all();
    let (kind, size, pose) = (model.topo("shape_kind"), model.param("shape_size"), model.param("shape_pose"));
    let bq: Vec<f64> = state.get("body_q").unwrap().iter().map(|&x| f64::from(x)).collect();
    let mut out = Branches { hits: [0; 4], axes: 0, min_dist: f64::INFINITY, min_tie: f64::INFINITY };
    // A box-frame point's face depths, sorted ascending with their axes.
    let depths = |p: [f64; 3], h: &[f64]| {
        let mut d: Vec<(f64, usize)> = (0..3).map(|i| (h[i] - p[i].abs(), i)).collect();
        d.sort_by(|a, b| a.0.total_cmp(&b.0));
        d
    };
    let local = |p: [f64; 3], c: [f64; 3], r: &[[f64; 3]; 3]| -> [f64; 3] {
        std::array::from_fn(|j| (0..3).map(|i| r[i][j] * (p[i] - c[i])).sum())
    };
    for e in 0..state.num_envs() {
        let shape = |i: usize| {
            let s = 4 * e + i;
            WorldShape::new(&bq, s, kind[s], &size[3 * s..3 * s + 3], &pose[7 * s..7 * s + 7]).unwrap()
        };
        for (i, j) in BOX_PAIRS {
            match (shape(i as usize), shape(j as usize)) {
                (WorldShape::Box { centre, rot, half }, WorldShape::Segment { p0, d, radius })
                | (WorldShape::Segment { p0, d, radius }, WorldShape::Box { centre, rot, half }) => {
                    // f(s) on a fine grid: its minimum says outside or entering.
                    let at = |s: f64| -> [f64; 3] { local(std::array::from_fn(|k| p0[k] + s * d[k]), centre, &rot) };
                    let f = |s: f64| (0..3).map(|k| (at(s)[k].abs() - half[k]).max(0.0).powi(2)).sum::<f64>();
                    let fmin = (0..=400).map(|k| f(k as f64 / 400.0)).fold(f64::INFINITY, f64::min);
                    if fmin == 0.0 {
                        out.hits[1] += 1;
                        let samples: &[f64] = if d == [0.0; 3] { &[0.0] } else { &[0.0, 0.5, 1.0] };
                        for &s in samples {
                            let dp = depths(at(s), &half);
                            if dp[0].0 >= 0.0 {
                                out.axes |= 1 << dp[0].1;
                                out.min_tie = out.min_tie.min(dp[1].0 - dp[0].0);
                            }
                        }
                    } else if fmin.sqrt() < radius {
                        out.hits[0] += 1;
                        out.min_dist = out.min_dist.min(fmin.sqrt());
                    }
                }
                (
                    WorldShape::Box { centre: c1, rot: r1, half: h1 },
                    WorldShape::Box { centre: c2, rot: r2, half: h2 },
                ) => {
                    for (k, (ca, ra, ha, cb, rb, hb)) in
                        [(c1, r1, h1, c2, r2, h2), (c2, r2, h2, c1, r1, h1)].into_iter().enumerate()
                    {
                        for v in 0..27i32 {
                            let c = [v % 3 - 1, v / 3 % 3 - 1, v / 9 - 1];
                            if c.iter().filter(|&&x| x == 0).count() > 1 {
                                continue;
                            }
                            let w: [f64; 3] = std::array::from_fn(|r| {
                                ca[r] + (0..3).map(|m| ra[r][m] * c[m] as f64 * ha[m]).sum::<f64>()
                            });
                            let dp = depths(local(w, cb, &rb), &hb);
                            if dp[0].0 > 0.0 {
                                out.hits[2 + k] += 1;
                                out.min_tie = out.min_tie.min(dp[1].0 - dp[0].0);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// `shape_pair_contact` with boxes (segment–box with the core outside and entering, sphere–box,
/// box–box, each with the box as shape A and as shape B) on 2 envs of random poses: GPU vs CPU,
/// forward and adjoint, in both scatter modes. Over the cases every branch must have been met
/// (core outside and touching, core entering, nearest faces along every axis, samples of each
/// box inside the other), the CPU must have pushed some bodies and left others free, and the
/// adjoint must have moved pose adjoints, so a kernel that does nothing, or drops a branch,
/// cannot pass.
///
/// Tolerances: those of `gpu_contact_kernels_match_cpu` (1e-4 forward, 2e-3 adjoint, same kₑ
/// = 4e3, same reasons: the same f32 operations in the same order up to lavapipe's FMA
/// contraction, a penetration that cancels, an adjoint recomputed in f64 on the CPU). As there,
/// the adjoint is ill-conditioned where the normal turns fast, here a closest-point normal
/// (P − Q)/|P − Q| of a core point close to the box (rate 1/|P − Q|) and the nearest face where
/// two face depths nearly tie (a last-bit difference picks the other face): states are redrawn
/// while an outside contact is closer than [`MIN_BOX_DISTANCE`] or an inside point's two least
/// depths are within [`MIN_FACE_GAP`]. Measured on lavapipe over 400 cases (~5000 box
/// contacts of every branch): forward ≤ 3.1e-6, adjoint ≤ 3.1e-4; without the redraws the
/// adjoint reached 1.1e-2 (a face tie) and 5.1e-2 (a core point closer than 5 mm to the box), with the
/// forward still ≤ 1e-5 (rounding, not a wrong term).
const MIN_BOX_DISTANCE: f64 = 0.005;
const MIN_FACE_GAP: f64 = 1e-3;

fn box_kernels_match_cpu(scatter: Scatter, cases: u32, test: &str) {
    let Some(gpu) = gpu_or_skip(test) else { return };
    let sim = box_sim(2, &BOX_PAIRS);
    let mut g = GpuSim::new(gpu, &sim, GpuOptions { scatter, readback: Vec::new() }).unwrap();
    let sys: &dyn System<f32> = sim.schedule.systems().next().unwrap().1;
    let cx = StepCx { dt: sim.schedule.substep_dt(), step: 0, substep: 0 };
    let model = sim.model.view_all();
    let mut rng = Rng::new(u64::from(cases) ^ 0xB0C5);
    let (mut hits, mut axes, mut worst) = ([0usize; 4], 0u32, [0.0f64; 2]);
    let (mut pushed, mut free, mut moved) = (0, 0, 0);
    for case in 0..cases {
        let mut state = random_box_state(&mut rng, &sim.state);
        let mut b = box_branches(&sim, &state);
        while b.min_dist < MIN_BOX_DISTANCE || b.min_tie < MIN_FACE_GAP {
            state = random_box_state(&mut rng, &sim.state);
            b = box_branches(&sim, &state);
        }
        (0..4).for_each(|k| hits[k] += b.hits[k]);
        axes |= b.axes;
        let control = random_columns(&mut rng, &sim.control, -1.0, 1.0);
        let adj = random_columns(&mut rng, &sim.state, -1.0, 1.0);
        let adj_c = random_columns(&mut rng, &sim.control, -1.0, 1.0);
        g.write_control(&control).unwrap();
        let run = gpu::run_system(&mut g, 0, sys, &cx, &model, &control, &state, &adj, &adj_c).unwrap();
        let [got, cpu] = &run.forward;
        let (p, f) = pushed_bodies(&state, cpu);
        (pushed, free) = (pushed + p, free + f);
        moved += usize::from(run.adjoint[1].get("body_q").unwrap() != adj.get("body_q").unwrap());
        let w = columns_err(&format!("{test} forward (case {case})"), got, cpu, CONTACT_FORWARD_TOL);
        let ([ga, a], [gac, ac]) = (&run.adjoint, &run.adjoint_control);
        let wa = columns_err(&format!("{test} adjoint (case {case})"), ga, a, CONTACT_ADJOINT_TOL).max(columns_err(
            &format!("{test} adjoint control (case {case})"),
            gac,
            ac,
            CONTACT_ADJOINT_TOL,
        ));
        worst = [worst[0].max(w), worst[1].max(wa)];
    }
    eprintln!(
        "{test}: {scatter:?}: branches [outside, entering, A in B, B in A] {hits:?}, face axes {axes:#b}, \
         {pushed} bodies pushed, {free} free, {moved} adjoints moved; max relative error forward {:e}, adjoint {:e}",
        worst[0], worst[1]
    );
    assert!(hits.iter().all(|&h| h > 0) && axes == 0b111, "branches not all met: {hits:?}, axes {axes:#b}");
    assert!(pushed > 0 && free > 0 && moved > 0, "{pushed} pushed, {free} free, {moved} moved");
}

#[test]
fn gpu_box_contact_kernels_match_cpu() {
    box_kernels_match_cpu(Scatter::Deterministic, 12, "gpu_box_contact_kernels_match_cpu");
}

#[test]
fn gpu_box_contact_kernels_match_cpu_atomic_mode() {
    box_kernels_match_cpu(Scatter::Atomic, 3, "gpu_box_contact_kernels_match_cpu_atomic_mode");
}
