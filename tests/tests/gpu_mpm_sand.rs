//! CPU/GPU parity of `mpm.material` on sand (Drucker–Prager, `sand.rs`; WGSL `drucker_prager`
//! in `material_common.wgsl` and its closed-form divided differences in
//! `material_adjoint.wgsl`), forward (Fp, τ) and adjoint (F̄), over random trial F = U diag(exp ε)
//! Vᵀ with random rotations and ε drawn in each case of the return mapping: elastic, projected
//! to the tip, returned to the cone, and near rest (deviator 1e-7, all σ equal to f32 precision)
//! on either side of the tip; cohesion 0 and 0.05 mixed over the particles.
//!
//! Tolerance 1e-3 relative, as the material's in `gpu_mpm.rs`, for the same reason: the CPU's
//! f32 path computes its SVD in f64, the GPU's in f32, so σ differs by a few ulps (~5e-7 on
//! σ ≈ 1), and log σ (Hencky, the cone's k = A (c − tr)/‖ε̂‖) carries that absolute error into
//! the stress as (3λ + 2μ)·5e-7 ≈ 0.15 Pa, whatever the entry's size. The cone returns here
//! reach stresses of 3e4 Pa, and entries of tens of Pa (a rotated diagonal that nearly cancels)
//! then differ by ~1.5e-3 of themselves (measured over 24 draws): forward values are compared
//! relative to max(|value|, 1e-2 × the column's largest), which bounds that absolute error by
//! 1e-5 of the column's scale. The adjoint keeps the floor of 1e-3: its divided differences
//! are closed forms (no cancellation at equal σ), so the near-rest cases are held as tightly.
//! Measured over these 24 draws: forward 1.6e-4, adjoint 2.4e-4 (lavapipe).
//!
//! Also a short rollout of a collapsing sand column on the friction floor (`Floor::Friction`),
//! GPU vs CPU: positions after every step and ∂L/∂(initial state) of L = w · x_final (tolerances
//! at `gpu_sand_column_rollout_matches_cpu`).
//!
//! With no adapter at all, the test prints `SKIPPED: ...` and returns, unless
//! `DIFFSIM_REQUIRE_GPU=1`, where it fails.

use diffsim_engine::gpu_sim::{GpuOptions, Scatter};
use diffsim_engine::{Columns, Cpu, GpuSim, Scene, Sim, StepCx};
use diffsim_systems::mpm::{self, Floor, Grid, MpmMaterial, MpmParticle, material, sand};
use diffsim_tests::Rng;
use diffsim_tests::gpu::{self, gpu_or_skip, worst_column as worst};
use diffsim_tests::mpm_scene::{random_rotation, sand_case_strains};
use glam::Vec3;

const PER_ENV: usize = 40;
const CASES: usize = 24;
const TOL: f64 = 1e-3;
const FLOOR: f64 = 1e-3;
/// Floor of the forward comparison (module docs).
const FWD_FLOOR: f64 = 1e-2;
const COHESION: f64 = 0.05;

fn sand_material() -> MpmMaterial {
    let (mu, lambda) = MpmMaterial::lame(1e5, 0.3);
    MpmMaterial::Sand { mu, lambda, friction_angle: 25.0, cohesion: 0.0 }
}

/// Two envs of `PER_ENV` sand particles; every other particle cohesive.
fn sim() -> Sim<f32> {
    let mut scene = Scene::new();
    scene.spawn_envs(2, |env| {
        for slot in 0..PER_ENV {
            let x = Vec3::new(0.4 + 0.005 * slot as f32, 0.5, 0.5);
            let p = MpmParticle { x, v: Vec3::ZERO, mass: 1e-3, volume: 1e-6, material: sand_material() };
            mpm::spawn(env, slot as u32, p);
        }
    });
    let mut packed = scene.pack().unwrap();
    mpm::pack(&scene, &mut packed).unwrap();
    let grid = Grid { res: 8, bound: 2, gravity: [0.0, -9.8, 0.0], floor: Floor::Sticky };
    let schedule = mpm::schedule::<f32>(1e-3, 1, grid, None, 1);
    let mut sim = Sim::new(packed.model, packed.state, packed.control, schedule, Cpu::new(1)).unwrap();
    for (p, row) in sim.model.params.get_mut("mpm_material").unwrap().chunks_exact_mut(material::PARAMS).enumerate() {
        row[4] = if p % 2 == 1 { COHESION } else { 0.0 };
    }
    sim
}

/// The state with every particle's trial F in the case `p % 5` (asserted with `sand::classify`).
fn state(rng: &mut Rng, sim: &Sim<f32>) -> (Columns<f32>, [usize; 3]) {
    let MpmMaterial::Sand { mu, lambda, friction_angle, .. } = sand_material() else { unreachable!() };
    let al = sand::alpha(friction_angle);
    let a = al * (3.0 * lambda + 2.0 * mu) / (2.0 * mu);
    let mut s = sim.state.clone();
    let mut seen = [0usize; 3];
    for (p, fm) in s.get_mut("mpm_F").unwrap().chunks_exact_mut(9).enumerate() {
        let c = if p % 2 == 1 { COHESION } else { 0.0 };
        let case = (p / 2) % 5;
        let eps = sand_case_strains(case, a, c, rng);
        let (u, v) = (random_rotation(rng), random_rotation(rng));
        let sig = eps.map(f64::exp);
        for i in 0..3 {
            for j in 0..3 {
                fm[3 * i + j] = (0..3).map(|k| u[i][k] * sig[k] * v[j][k]).sum::<f64>() as f32;
            }
        }
        let mut sorted = sig;
        sorted.sort_by(|x, y| y.total_cmp(x));
        let got = sand::classify(sorted, mu, lambda, al, c);
        let want = match case {
            0 | 3 => sand::Case::Elastic,
            1 | 4 => sand::Case::Tip,
            _ => sand::Case::Cone,
        };
        assert_eq!(got, want, "particle {p}, case {case}");
        seen[want as usize] += 1;
    }
    (s, seen)
}

fn random_columns(rng: &mut Rng, like: &Columns<f32>) -> Columns<f32> {
    let mut c = like.clone();
    for (_, col) in c.columns_mut() {
        col.iter_mut().for_each(|x| *x = rng.uniform(-1.0, 1.0) as f32);
    }
    c
}

#[test]
fn gpu_sand_material_matches_cpu() {
    let test = "gpu_sand_material_matches_cpu";
    let Some(gpu) = gpu_or_skip(test) else { return };
    let sim = sim();
    let mut g = GpuSim::new(gpu, &sim, GpuOptions { scatter: Scatter::Atomic, readback: Vec::new() }).unwrap();
    let (i, (_, sys)) = sim.schedule.systems().enumerate().find(|(_, (_, s))| s.name() == "mpm.material").unwrap();
    let cx = StepCx { dt: sim.schedule.substep_dt(), step: 0, substep: 0 };
    let model = sim.model.view_all();
    let (mut wf, mut wa) = ((0.0f64, String::new()), (0.0f64, String::new()));
    for case in 0..CASES {
        let mut rng = Rng::new(101 + case as u64);
        let (s, seen) = state(&mut rng, &sim);
        assert!(seen.iter().all(|&n| n > 0), "cases elastic/tip/cone: {seen:?}");
        let control = random_columns(&mut rng, &sim.control);
        let adj = random_columns(&mut rng, &sim.state);
        let adj_c = random_columns(&mut rng, &sim.control);
        g.write_control(&control).unwrap();
        let run = gpu::run_system(&mut g, i, sys, &cx, &model, &control, &s, &adj, &adj_c).unwrap();
        let e = worst(&run.forward[0], &run.forward[1], FWD_FLOOR);
        assert!(e.0 <= TOL, "forward (case {case}): column `{}`: max relative error {:e}", e.1, e.0);
        if e.0 > wf.0 {
            wf = e;
        }
        for (what, [ga, a]) in [("state", &run.adjoint), ("control", &run.adjoint_control)] {
            let e = worst(ga, a, FLOOR);
            assert!(e.0 <= TOL, "adjoint {what} (case {case}): column `{}`: max relative error {:e}", e.1, e.0);
            if e.0 > wa.0 {
                wa = e;
            }
        }
    }
    eprintln!("{test}: forward max rel err {:e} (`{}`), adjoint {:e} (`{}`)", wf.0, wf.1, wa.0, wa.1);
}

/// A sand column (16³ grid, 5 × 4 × 5 particles per env, 2 envs) collapsing for 8 env steps of
/// 10 substeps of 1 ms on the friction floor (gf = 2): the GPU's positions after every step
/// against the CPU's f32 `Sim`, and the backward of L = w · x_final (w random) to the initial
/// state. Plastic flow from the first substep on (the rim yields, the top goes to the tip) carries
/// the f32-SVD and atomic-order differences of the kernels along; tolerances from the measured
/// values (see the asserts) with the CPU's own f32-vs-f64 gradient error printed for scale.
#[test]
fn gpu_sand_column_rollout_matches_cpu() {
    let test = "gpu_sand_column_rollout_matches_cpu";
    let Some(gpu) = gpu_or_skip(test) else { return };
    let build = |dt: f64| {
        let res = 16;
        let dx = 1.0 / res as f64;
        let mut scene = Scene::new();
        let mut rng = Rng::new(3);
        let n = [5, 4, 5];
        let size = [0.2, 0.15, 0.2];
        let vol = size.iter().product::<f64>() / 100.0;
        let pts: Vec<Vec3> = (0..100)
            .map(|k| {
                let idx = [k / 20, (k / 5) % 4, k % 5];
                let c = [0.5, 3.0 * dx + 0.08, 0.5];
                let mut f = |d: usize| {
                    (c[d] + ((idx[d] as f64 + 0.5 + 0.3 * rng.uniform(-1.0, 1.0)) / n[d] as f64 - 0.5) * size[d]) as f32
                };
                Vec3::new(f(0), f(1), f(2))
            })
            .collect();
        scene.spawn_envs(2, |env| {
            for (slot, x) in pts.iter().enumerate() {
                let p =
                    MpmParticle { x: *x, v: Vec3::ZERO, mass: vol * 1000.0, volume: vol, material: sand_material() };
                mpm::spawn(env, slot as u32, p);
            }
        });
        let mut packed = scene.pack().unwrap();
        mpm::pack(&scene, &mut packed).unwrap();
        let grid = Grid { res, bound: 3, gravity: [0.0, -9.8, 0.0], floor: Floor::Friction(2.0) };
        (packed, grid, dt)
    };
    let (packed, grid, dt) = build(1e-3);
    let steps = 8;
    let schedule = mpm::schedule::<f32>(10.0 * dt, 10, grid.clone(), None, 1);
    let mut cpu =
        Sim::new(packed.model.clone(), packed.state.clone(), packed.control.clone(), schedule, Cpu::new(1)).unwrap();
    let mut g = GpuSim::new(gpu, &cpu, GpuOptions { scatter: Scatter::Atomic, readback: Vec::new() }).unwrap();
    let mut rng = Rng::new(9);
    let w: Vec<f32> = (0..cpu.state.get("mpm_x").unwrap().len()).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
    cpu.record();
    g.record();
    let mut worst_x = 0.0f64;
    for _ in 0..steps {
        cpu.step().unwrap();
        g.step().unwrap();
        let got = g.read_state().unwrap();
        worst_x = worst_x.max(gpu::max_rel_err(got.get("mpm_x").unwrap(), cpu.state.get("mpm_x").unwrap(), 1e-3));
    }
    let x0 = packed.state.get("mpm_x").unwrap();
    let x1 = cpu.state.get("mpm_x").unwrap();
    let moved = x0.iter().zip(x1).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    let cg = cpu
        .backward(|t, adj| {
            if t == steps - 1 {
                adj.get_mut("mpm_x").unwrap().iter_mut().zip(&w).for_each(|(a, s)| *a += s);
            }
        })
        .unwrap();
    let gg = g
        .backward(|t, seeds| {
            if t == steps - 1 {
                seeds.add("mpm_x", w.clone());
            }
        })
        .unwrap();
    let (grad, col) = worst(&gg.initial_state, &cg.initial_state, 0.1);
    // For scale: the CPU in f64 against its own f32 run.
    let schedule64 = mpm::schedule::<f64>(10.0 * dt, 10, grid, None, 1);
    let mut c64 = Sim::new(packed.model, packed.state.map(f64::from), packed.control, schedule64, Cpu::new(1)).unwrap();
    c64.record();
    for _ in 0..steps {
        c64.step().unwrap();
    }
    let g64 = c64
        .backward(|t, adj| {
            if t == steps - 1 {
                adj.get_mut("mpm_x").unwrap().iter_mut().zip(&w).for_each(|(a, s)| *a += f64::from(*s));
            }
        })
        .unwrap();
    let (f32_err, fcol) = worst(&cg.initial_state, &g64.initial_state.map(|x| x as f32), 0.1);
    // ∂L/∂(initial state) is limited by f32 itself: the CPU's f32 run is O(1) off its f64 run in
    // F̄. The column starts stress-free, F = I, at the apex of the cone (tr = 0, ‖ε̂‖ = 0) where
    // the return mapping switches between elastic, tip and cone; over the first substeps f32
    // rounding puts many particles in another case than f64 does, and the cases' Jacobians
    // differ (the tip's is 0). The GPU is held to the CPU's f32 accuracy per column: its error
    // against f64 at most 4× the CPU f32's (measured up to 2.8×) + 1e-3.
    let n64 = g64.initial_state.map(|x| x as f32);
    let mut ratios = Vec::new();
    for (spec, r) in n64.columns() {
        let c = spec.name.as_str();
        let (a, b) = (gg.initial_state.get(c).unwrap(), cg.initial_state.get(c).unwrap());
        let (eg, ec) = (gpu::max_rel_err(a, r, 0.1), gpu::max_rel_err(b, r, 0.1));
        ratios.push(format!("{c} {eg:.1e}/{ec:.1e}"));
        assert!(eg <= 4.0 * ec + 1e-3, "∂L/∂{c}: GPU vs f64 {eg:e}, CPU f32 vs f64 {ec:e}");
    }
    eprintln!(
        "{test}: moved up to {moved:.3}; GPU vs CPU: x {worst_x:e}, ∂L/∂(initial state) {grad:e} (`{col}`); CPU f32 vs f64: \
         {f32_err:e} (`{fcol}`); per column GPU/CPU-f32 vs f64: {}",
        ratios.join(", ")
    );
    assert!(moved > 0.01, "the column did not move: {moved}");
    assert!(worst_x <= 1e-4, "positions: {worst_x:e}");
}
