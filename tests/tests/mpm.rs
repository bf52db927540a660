//! MPM: adjoints of every kernel under proptest (`SystemCheck`: dual dot-product and central
//! differences in f64 on a 12³ grid with a few dozen particles), a short rollout through the tape,
//! and physical sanity (an elastic cube bounces and keeps its volume; pressed plasticine stays
//! deformed).

use diffsim_engine::{Cpu, EngineError, Real, Scene, Sim, SimFactory};
use diffsim_systems::mpm::{
    self, Collider, ColliderDrive, ColliderIntegrate, Floor, Grid, Material, MpmMaterial, Shape, Transfer,
};
use diffsim_tests::mpm_scene::{Jitter, ParticleBlock};
use diffsim_tests::{GradReport, Rng, RolloutCheck, cases, check_at};
use proptest::prelude::*;

const DUAL_TOL: f64 = 1e-10;
const FD_TOL: f64 = 1e-4;

/// A block of MPM particles (lattice with jitter) in each env, optionally with a roller.
#[derive(Clone, Debug)]
struct Block {
    num_envs: usize,
    per_axis: [usize; 3],
    center: [f32; 3],
    size: [f32; 3],
    material: MpmMaterial,
    v0: [f32; 3],
    grid: Grid,
    collider: Option<(Collider, [f64; 4])>,
    density: f64,
    dt: f64,
    substeps: usize,
    jitter_seed: u64,
    /// Threads within one env (`Transfer::threads`).
    threads: usize,
}

impl Block {
    fn small(material: MpmMaterial, seed: u64) -> Self {
        Self {
            num_envs: 2,
            per_axis: [3, 2, 3],
            center: [0.5, 0.45, 0.5],
            size: [0.25, 0.15, 0.25],
            material,
            v0: [0.3, -0.5, 0.1],
            grid: Grid { res: 12, bound: 2, gravity: [0.0, -9.8, 0.0], floor: Floor::Sticky },
            collider: None,
            density: 1.0e3,
            dt: 4e-3,
            substeps: 2,
            jitter_seed: seed,
            threads: 1,
        }
    }
    fn roller() -> Collider {
        Collider {
            shapes: vec![
                Shape::Capsule { center: [0.0; 3], radius: 0.06, half_height: 0.15 },
                Shape::Box { center: [0.0, 0.12, 0.0], half_extents: [0.02, 0.04, 0.1] },
                Shape::Cylinder { center: [0.08, 0.0, 0.0], radius: 0.04, half_height: 0.08 },
            ],
            friction: 0.9,
            softness: 666.0,
        }
    }
    fn drive(&self) -> ColliderDrive {
        ColliderDrive {
            act: "act".into(),
            axes: vec![0, 1, 3],
            scale: vec![0.01, 0.01, std::f64::consts::PI / 60.0],
            lo: [0.1, 0.1, 0.0, -2.0],
            hi: [0.9, 0.9, 1.0, 2.0],
            substeps: self.substeps,
        }
    }
    fn scene(&self) -> Scene {
        let block = ParticleBlock {
            per_axis: self.per_axis,
            center: self.center.map(f64::from),
            size: self.size.map(f64::from),
            jitter: Jitter::Metres(0.02),
            density: self.density,
            v: self.v0,
            material: self.material,
        };
        block.scene(self.num_envs, &mut Rng::new(self.jitter_seed))
    }
}

impl SimFactory for Block {
    fn sim<R: Real>(&self) -> Result<Sim<R>, EngineError> {
        let scene = self.scene();
        let mut packed = scene.pack()?;
        mpm::pack(&scene, &mut packed)?;
        let collider = match &self.collider {
            Some((c, pose)) => {
                mpm::pack_collider(&mut packed, c, &vec![*pose; self.num_envs])?;
                packed.add_control(diffsim_engine::ColumnSpec::new("act", 1, 3));
                Some((c.clone(), self.drive()))
            }
            None => None,
        };
        let schedule = mpm::schedule::<R>(self.dt, self.substeps, self.grid.clone(), collider, self.threads);
        let state = packed.state.map(|x| R::from_f64(x as f64));
        Sim::new(packed.model, state, packed.control, schedule, Cpu::new(1))
    }
}

fn lame(e: f64, nu: f64) -> (f64, f64) {
    MpmMaterial::lame(e, nu)
}

fn materials() -> Vec<MpmMaterial> {
    let (mu, lambda) = lame(5000.0, 0.2);
    vec![
        MpmMaterial::Corotated { mu, lambda },
        MpmMaterial::Plasticine { mu, lambda, yield_stress: 50.0 },
        MpmMaterial::NeoHookean { mu, lambda },
        MpmMaterial::Water { lambda: lame(1e5, 0.3).1 / 100.0 },
    ]
}

/// A random state of `sim`: positions kept, velocities, C and F perturbed by `amp`.
fn random_state(sim: &Sim<f64>, rng: &mut Rng, amp: f64) -> diffsim_engine::Columns<f64> {
    let mut s = sim.state.clone();
    for x in s.get_mut("mpm_v").unwrap() {
        *x += rng.uniform(-1.0, 1.0);
    }
    for x in s.get_mut("mpm_C").unwrap() {
        *x = rng.uniform(-1.0, 1.0);
    }
    for col in ["mpm_F", "mpm_Fp"] {
        for x in s.get_mut(col).unwrap() {
            *x += amp * rng.uniform(-1.0, 1.0);
        }
    }
    for x in s.get_mut("mpm_stress").unwrap() {
        *x = 100.0 * rng.uniform(-1.0, 1.0);
    }
    s
}

fn check(
    sim: &Sim<f64>,
    sys: &(impl diffsim_engine::System<f64> + diffsim_engine::System<diffsim_engine::Dual>),
    s: &diffsim_engine::Columns<f64>,
    rng: &mut Rng,
) -> GradReport {
    check_at(sim, sys, s, rng, 1e-6)
}

/// What a central difference that disagrees with the adjoint at h = 1e-6 shows at h = 1e-7, then
/// 1e-8: `Some(true)` when it then agrees (truncation error: the influence exp(−666 d) is stiff,
/// its third derivative ~3e8 makes h² f‴ ~ 1e-4, and up to ~1e-2 near the surface, e.g. seed
/// 15630571764220892657 with a collider: 3.5e-2, 3.7e-4, 3.7e-6 at h = 1e-6, 1e-7, 1e-8, the
/// h² of a truncation error), `Some(false)` when it moved by ≥ 3× as it does
/// straddling a jump of the forward J within h (≈ J/2h; the grid-collider coupling jumps where
/// the influence crosses 0.1 and where the nearest shape or box/cylinder face switches, as in
/// Rewarped), `None` otherwise: a wrong derivative, which does not depend on h.
fn smaller_step(
    sim: &Sim<f64>,
    sys: &(impl diffsim_engine::System<f64> + diffsim_engine::System<diffsim_engine::Dual>),
    s: &diffsim_engine::Columns<f64>,
    rng: &Rng,
    r: &GradReport,
) -> Option<bool> {
    for h in [1e-7, 1e-8] {
        let small = check_at(sim, sys, s, &mut rng.clone(), h);
        if small.fd_err() < FD_TOL {
            return Some(true);
        } else if (small.fd - r.adjoint).abs() > 3.0 * (r.fd - r.adjoint).abs() {
            return Some(false);
        }
    }
    None
}

proptest! {
    #![proptest_config(cases(48))]

    /// Return mapping + stress of every material, at large and near-rest deformations (the
    /// latter has nearly equal singular values: the divided-difference limit of svd.rs).
    #[test]
    fn material_adjoint(seed in any::<u64>(), which in 0usize..4, amp in prop_oneof![Just(1e-7), 0.05f64..0.4]) {
        let block = Block::small(materials()[which], seed);
        let sim: Sim<f64> = block.sim().unwrap();
        let mut rng = Rng::new(seed);
        let s = random_state(&sim, &mut rng, amp);
        let r = check(&sim, &Material::default(), &s, &mut rng);
        prop_assert!(r.dual_err() < DUAL_TOL, "{r:?}");
        prop_assert!(r.fd_err() < FD_TOL, "{r:?}");
    }

    /// P2G + grid update + G2P, without and with a roller (capsule + box + cylinder) cutting
    /// the block.
    #[test]
    fn transfer_adjoint(seed in any::<u64>(), with_collider in any::<bool>(), slip in any::<bool>()) {
        let mut block = Block::small(materials()[0], seed);
        let mut rng = Rng::new(seed ^ 5);
        if slip {
            block.grid.floor = Floor::Slip;
            block.center[1] = 0.3;
        }
        if with_collider {
            let pose = [0.5 + rng.uniform(-0.05, 0.05), block.center[1] as f64 + 0.05, 0.5, rng.uniform(-0.5, 0.5)];
            block.collider = Some((Block::roller(), pose));
        }
        let sim: Sim<f64> = block.sim().unwrap();
        let mut s = random_state(&sim, &mut rng, 0.2);
        if with_collider {
            for x in s.get_mut("collider_qd").unwrap() {
                *x = rng.uniform(-1.0, 1.0);
            }
        }
        let sys = Transfer { grid: block.grid.clone(), collider: block.collider.as_ref().map(|c| c.0.clone().into()), threads: 1 };
        let start = rng.clone();
        let r = check(&sim, &sys, &s, &mut rng);
        prop_assert!(r.dual_err() < DUAL_TOL, "{r:?}");
        if r.fd_err() >= FD_TOL {
            let small = smaller_step(&sim, &sys, &s, &start, &r);
            prop_assume!(small != Some(false), "jump within h");
            prop_assert!(small == Some(true), "{r:?}");
        }
    }

    #[test]
    fn collider_drive_and_integrate_adjoints(seed in any::<u64>()) {
        let mut block = Block::small(materials()[0], seed);
        block.collider = Some((Block::roller(), [0.5, 0.6, 0.5, 0.1]));
        let sim: Sim<f64> = block.sim().unwrap();
        let mut rng = Rng::new(seed);
        let s = random_state(&sim, &mut rng, 0.1);
        for r in [check(&sim, &block.drive(), &s, &mut rng), check(&sim, &ColliderIntegrate, &s, &mut rng)] {
            prop_assert!(r.dual_err() < DUAL_TOL, "{r:?}");
            prop_assert!(r.fd_err() < FD_TOL, "{r:?}");
        }
    }
}

proptest! {
    #![proptest_config(cases(6))]

    /// Three env steps of plasticine under a moving roller, through the tape (recompute +
    /// adjoints of every system), against duals and central differences.
    #[test]
    fn rollout_through_tape(seed in any::<u64>()) {
        let mut block = Block::small(materials()[1], seed);
        block.collider = Some((Block::roller(), [0.5, 0.55, 0.5, 0.2]));
        let run = |h| RolloutCheck { horizon: 3, h, state_dir_scale: 1e-3 }.run(&block, &mut Rng::new(seed)).unwrap();
        let r = run(1e-6);
        prop_assert!(r.dual_err() < DUAL_TOL, "{r:?}");
        if r.fd_err() >= FD_TOL {
            // As in `smaller_step`: truncation of the stiff coupling passes at h = 1e-7, a jump
            // of the forward within h moves the difference ≥ 3× (rejected), else it fails.
            let small = run(1e-7);
            let (e1, e2) = (r.fd - r.adjoint, small.fd - r.adjoint);
            prop_assume!(e2.abs() <= 3.0 * e1.abs(), "jump within h");
            // Noise of the forward within h (the SVD's Jacobi sweeps switch count) scatters the two
            // differences on both sides of the derivative without converging; a wrong adjoint leaves
            // both on one side (e.g. seed 2911253879554178131: adjoint = dual to 1e-14, differences
            // at h = 1e-6 and 1e-7 on either side of it).
            prop_assume!(e1 * e2 > 0.0 || e2.abs() < 0.5 * e1.abs(), "differences scatter around the adjoint");
            prop_assert!(small.fd_err() < FD_TOL, "{r:?} / h = 1e-7: {small:?}");
        }
    }
}

/// Mean of det F over env 0's particles.
fn mean_det_f(sim: &Sim<f32>) -> f64 {
    let f = sim.state.env("mpm_F", 0).unwrap();
    let dets: Vec<f64> = f
        .chunks_exact(9)
        .map(|m| {
            let m: Vec<f64> = m.iter().map(|&x| x as f64).collect();
            m[0] * (m[4] * m[8] - m[5] * m[7]) - m[1] * (m[3] * m[8] - m[5] * m[6]) + m[2] * (m[3] * m[7] - m[4] * m[6])
        })
        .collect();
    dets.iter().sum::<f64>() / dets.len() as f64
}

fn mean_col(sim: &Sim<f32>, col: &str, d: usize) -> f64 {
    let x = sim.state.env(col, 0).unwrap();
    x.chunks_exact(3).map(|p| p[d] as f64).sum::<f64>() / (x.len() / 3) as f64
}

/// A stiff elastic cube dropped on a slip floor comes back up, and its mean det F stays within 2%
/// (impact at ~1.5 m/s against a wave speed of ~80 m/s).
#[test]
fn elastic_cube_bounces_and_keeps_volume() {
    let (mu, lambda) = lame(5.0e6, 0.3);
    let block = Block {
        num_envs: 1,
        per_axis: [6, 6, 6],
        center: [0.5, 0.3, 0.5],
        size: [0.2, 0.2, 0.2],
        material: MpmMaterial::Corotated { mu, lambda },
        v0: [0.0, -1.0, 0.0],
        grid: Grid { res: 32, bound: 3, gravity: [0.0, -9.8, 0.0], floor: Floor::Slip },
        collider: None,
        density: 1.0e3,
        dt: 2e-3,
        substeps: 20,
        jitter_seed: 1,
        threads: 1,
    };
    let mut sim: Sim<f32> = block.sim().unwrap();
    let mut min_vy = f64::INFINITY;
    let mut max_vy_after_min = f64::NEG_INFINITY;
    let mut max_dev: f64 = 0.0;
    let mut lowest = f64::INFINITY;
    for _ in 0..80 {
        sim.step().unwrap();
        let vy = mean_col(&sim, "mpm_v", 1);
        if vy < min_vy {
            min_vy = vy;
            max_vy_after_min = f64::NEG_INFINITY;
        } else {
            max_vy_after_min = max_vy_after_min.max(vy);
        }
        lowest = lowest.min(mean_col(&sim, "mpm_x", 1));
        max_dev = max_dev.max((mean_det_f(&sim) - 1.0).abs());
    }
    assert!(lowest < 0.25, "the cube never reached the floor (lowest mean y {lowest})");
    assert!(max_vy_after_min > 0.5, "no bounce: mean v_y after the impact peaks at {max_vy_after_min}");
    assert!(max_dev < 0.02, "mean det F left 1 ± 2%: {max_dev}");
}

/// A plasticine block pressed by a roller moving down stays flattened after the roller leaves,
/// while an elastic block under the same press recovers.
#[test]
fn plasticine_keeps_its_deformation() {
    let (mu, lambda) = lame(5000.0, 0.2);
    let height = |material: MpmMaterial| {
        let mut block = Block {
            num_envs: 1,
            per_axis: [8, 4, 8],
            center: [0.5, 0.125, 0.5],
            size: [0.3, 0.125, 0.3],
            material,
            v0: [0.0; 3],
            grid: Grid { res: 32, bound: 3, gravity: [0.0, -90.0, 0.0], floor: Floor::Sticky },
            collider: Some((
                Collider {
                    shapes: vec![Shape::Capsule { center: [0.0; 3], radius: 0.05, half_height: 0.3 }],
                    friction: 0.9,
                    softness: 666.0,
                },
                [0.5, 0.25, 0.5, 0.0],
            )),
            density: 1.0,
            dt: 1e-3,
            substeps: 10,
            jitter_seed: 3,
            threads: 1,
        };
        block.collider.as_mut().unwrap().1[1] = 0.25;
        let mut sim: Sim<f32> = block.sim().unwrap();
        // Depth of the dent: mean height away from the roller's path minus mean height under it.
        let top = |sim: &Sim<f32>| {
            let x = sim.state.env("mpm_x", 0).unwrap();
            let mean = |keep: &dyn Fn(f32) -> bool| {
                let ys: Vec<f64> = x.chunks_exact(3).filter(|p| keep(p[0])).map(|p| p[1] as f64).collect();
                ys.iter().sum::<f64>() / ys.len() as f64
            };
            mean(&|x| (x - 0.5).abs() > 0.1) - mean(&|x| (x - 0.5).abs() < 0.04)
        };
        for _ in 0..10 {
            sim.step().unwrap(); // settle
        }
        let before = top(&sim);
        // Press 0.0375 into the block (act y = −1 → −0.01 per step), then lift away and wait.
        for a in [-1.0f32; 5].into_iter().chain([1.0; 10]).chain([0.0; 40]) {
            sim.set_control("act", &[0.0, a, 0.0]).unwrap();
            sim.step().unwrap();
        }
        (before, top(&sim))
    };
    let (p0, p1) = height(MpmMaterial::Plasticine { mu, lambda, yield_stress: 50.0 });
    let (e0, e1) = height(MpmMaterial::Corotated { mu, lambda });
    eprintln!("dent: plasticine {p0} -> {p1}, elastic {e0} -> {e1}");
    assert!(p1 - p0 > 0.01, "plasticine dent {p0} -> {p1}: not kept");
    assert!((e1 - e0).abs() < 0.5 * (p1 - p0), "elastic dent {e0} -> {e1} vs plasticine {p0} -> {p1}");
}

/// RollingFlat on a 16³ grid with 108 particles and 8 substeps (debug-build sized; the task's
/// own numbers are 48³, 2592, 40).
fn small_rolling_flat(num_envs: usize) -> diffsim_tasks::RollingFlat {
    diffsim_tasks::RollingFlat::new(diffsim_tasks::RollingFlatConfig {
        num_envs,
        threads: 1,
        grid_res: 16,
        particles: [6, 3, 6],
        substeps: 8,
        substep_dt: 1e-4,
        ..Default::default()
    })
}

/// 32 env steps of RollingFlat (roller, plasticine, observation, reward) through the tape
/// against duals and central differences.
#[test]
fn rolling_flat_rollout_gradient() {
    let task = small_rolling_flat(2);
    let r = RolloutCheck { horizon: 32, h: 1e-6, state_dir_scale: 1e-3 }.run(&task, &mut Rng::new(11)).unwrap();
    assert!(r.dual_err() < DUAL_TOL, "{r:?}");
    assert!(r.fd_err() < FD_TOL, "{r:?}");
}

/// The VecEnv runs the task: obs shape, finite rewards, the roller moves with the action and
/// stays inside its joint limits.
#[test]
fn rolling_flat_runs_in_a_vec_env() {
    use diffsim_tasks::{Task, VecEnv};
    let task = small_rolling_flat(3);
    let spec = task.spec();
    let mut env = VecEnv::new(task).unwrap();
    let obs = env.reset(7).unwrap();
    assert_eq!(obs.shape(), &[3, spec.obs_dim]);
    let k = spec.obs_dim - 6;
    let y0 = obs[[0, k + 4]];
    let mut last = obs;
    for _ in 0..20 {
        let a = ndarray::Array2::from_shape_fn((3, 3), |(_, j)| if j == 1 { -1.0 } else { 0.3 });
        let r = env.step(a.view()).unwrap();
        assert!(r.reward.iter().all(|x| x.is_finite()), "{:?}", r.reward);
        last = r.obs;
    }
    let y1 = last[[0, k + 4]];
    assert!((y1 - 0.1225).abs() < 1e-4 && y0 > 0.25, "roller y {y0} -> {y1}: not driven to its lower limit");
}

/// A lone env split over particle blocks (per-block sub-grids summed, G2P and the material on
/// particle blocks) steps like the serial path, up to the order of the grid sums.
#[test]
fn intra_env_threads_match_serial() {
    let run = |threads: usize| {
        let mut block = Block::small(materials()[1], 9);
        block.num_envs = 1;
        block.per_axis = [5, 4, 5];
        block.threads = threads;
        block.collider = Some((Block::roller(), [0.5, 0.5, 0.5, 0.3]));
        let mut sim: Sim<f64> = block.sim().unwrap();
        for _ in 0..5 {
            sim.set_control("act", &[0.5, -1.0, 0.2]).unwrap();
            sim.step().unwrap();
        }
        sim.state
    };
    let (a, b) = (run(1), run(3));
    for ((spec, x), (_, y)) in a.columns().zip(b.columns()) {
        for (u, v) in x.iter().zip(y) {
            assert!((u - v).abs() <= 1e-9 * (1.0 + u.abs()), "{}: {u} vs {v}", spec.name);
        }
    }
}
