//! CPU/GPU parity of `mpm.transfer` with the friction floor (`Floor::Friction`, the WGSL
//! `floor_friction` and `floor_friction_adjoint` of `transfer_common.wgsl`), forward and adjoint,
//! on states whose floor nodes take both branches of the law (as in `mpm_floor.rs`: a cluster
//! moving steeply down is clamped to zero, a cluster sliding along the floor keeps a scaled
//! tangential velocity), with a random cloud of particles above them.
//!
//! Tolerance 1e-3 relative (floor 1e-3 of the column's scale), as for the transfer in
//! `gpu_mpm.rs`: P2G and the G2P adjoint scatter with atomics, so node sums are added in a
//! varying order and differ from the CPU's f32 sums in the last bits; the law itself is a few
//! f32 operations on the node velocity (relative error ~1e-7).
//!
//! With no adapter at all, the test prints `SKIPPED: ...` and returns, unless
//! `DIFFSIM_REQUIRE_GPU=1`, where it fails.

use diffsim_engine::gpu_sim::{GpuOptions, Scatter};
use diffsim_engine::{Columns, Cpu, GpuSim, Scene, Sim, StepCx};
use diffsim_systems::mpm::{self, Floor, Grid, MpmMaterial, MpmParticle, Transfer};
use diffsim_tests::Rng;
use diffsim_tests::gpu::{self, gpu_or_skip, worst_column as worst};
use glam::Vec3;

const RES: usize = 16;
const BOUND: usize = 3;
const DT: f64 = 1e-3;
const GRAVITY: f64 = -9.8;
const GF: f64 = 2.0;
/// Particles per cluster, and in the cloud above.
const CLUSTER: usize = 4;
const CLOUD: usize = 12;
const TOL: f64 = 1e-3;
const FLOOR: f64 = 1e-3;
const CASES: usize = 3;

fn sim() -> Sim<f32> {
    let mut scene = Scene::new();
    scene.spawn_envs(2, |env| {
        for slot in 0..2 * CLUSTER + CLOUD {
            let p = MpmParticle {
                x: Vec3::splat(0.5),
                v: Vec3::ZERO,
                mass: 1e-3,
                volume: 1e-6,
                material: MpmMaterial::Corotated { mu: 1e3, lambda: 1e3 },
            };
            mpm::spawn(env, slot as u32, p);
        }
    });
    let mut packed = scene.pack().unwrap();
    mpm::pack(&scene, &mut packed).unwrap();
    let grid = Grid { res: RES, bound: BOUND, gravity: [0.0, GRAVITY, 0.0], floor: Floor::Friction(GF) };
    let schedule = mpm::schedule::<f32>(DT, 1, grid, None, 1);
    Sim::new(packed.model, packed.state, packed.control, schedule, Cpu::new(1)).unwrap()
}

/// s = 1 + gf v_y/|v| of a node of velocity v + g Δt.
fn scale(v: [f64; 3]) -> f64 {
    let v = [v[0], v[1] + GRAVITY * DT, v[2]];
    1.0 + GF * v[1] / (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt()
}

/// Cluster A (clamped, x ≈ 0.3) and B (friction branch, x ≈ 0.65) in the floor layer (y below
/// `BOUND` cells: their stencils reach nodes with g_y < 3), C = 0 and τ = 0 there so that their
/// nodes carry the cluster's velocity + g Δt; the cloud (y ∈ [0.35, 0.7]) has random v, C, τ.
fn state(rng: &mut Rng, like: &Columns<f32>) -> Columns<f32> {
    let mut s = like.clone();
    let envs = 2;
    let per = 2 * CLUSTER + CLOUD;
    let mut x = vec![0.0f32; 3 * per * envs];
    let mut v = vec![0.0f32; 3 * per * envs];
    let mut c = vec![0.0f32; 9 * per * envs];
    let mut tau = vec![0.0f32; 9 * per * envs];
    for e in 0..envs {
        let va = [rng.uniform(-0.2, 0.2), rng.uniform(-2.0, -1.0), rng.uniform(-0.2, 0.2)];
        let (t, a) = (rng.uniform(1.0, 2.0), rng.uniform(0.0, std::f64::consts::TAU));
        let vb = [t * a.cos(), -rng.uniform(0.0, 0.04), t * a.sin()];
        assert!(scale(va) < -0.1 && scale(vb) > 0.1, "branches: {} {}", scale(va), scale(vb));
        for i in 0..per {
            let p = e * per + i;
            let (xp, vp) = if i < 2 * CLUSTER {
                let (x0, vc) = if i < CLUSTER { (0.3, va) } else { (0.65, vb) };
                ([x0 + rng.uniform(-0.01, 0.01), rng.uniform(0.1, 0.16), 0.5 + rng.uniform(-0.05, 0.05)], vc)
            } else {
                for k in 0..9 {
                    c[9 * p + k] = rng.uniform(-5.0, 5.0) as f32;
                    tau[9 * p + k] = rng.uniform(-100.0, 100.0) as f32;
                }
                let xp = [rng.uniform(0.3, 0.7), rng.uniform(0.35, 0.7), rng.uniform(0.3, 0.7)];
                (xp, [rng.uniform(-1.0, 1.0), rng.uniform(-1.0, 1.0), rng.uniform(-1.0, 1.0)])
            };
            for d in 0..3 {
                x[3 * p + d] = xp[d] as f32;
                v[3 * p + d] = vp[d] as f32;
            }
        }
    }
    s.get_mut("mpm_x").unwrap().copy_from_slice(&x);
    s.get_mut("mpm_v").unwrap().copy_from_slice(&v);
    s.get_mut("mpm_C").unwrap().copy_from_slice(&c);
    s.get_mut("mpm_stress").unwrap().copy_from_slice(&tau);
    for col in ["mpm_F", "mpm_Fp"] {
        for (i, f) in s.get_mut(col).unwrap().iter_mut().enumerate() {
            *f = if (i % 9) % 4 == 0 { 1.0 } else { 0.0 } + rng.uniform(-0.1, 0.1) as f32;
        }
    }
    s
}

fn random_columns(rng: &mut Rng, like: &Columns<f32>) -> Columns<f32> {
    let mut c = like.clone();
    for (_, col) in c.columns_mut() {
        col.iter_mut().for_each(|x| *x = rng.uniform(-1.0, 1.0) as f32);
    }
    c
}

/// `mpm.transfer` with the friction floor, GPU vs CPU, forward and adjoint; the CPU forward also
/// differs from the slip and the sticky floor's (the law acted).
#[test]
fn gpu_friction_floor_matches_cpu() {
    let test = "gpu_friction_floor_matches_cpu";
    let Some(gpu) = gpu_or_skip(test) else { return };
    let sim = sim();
    let mut g = GpuSim::new(gpu, &sim, GpuOptions { scatter: Scatter::Atomic, readback: Vec::new() }).unwrap();
    let (i, sys) = sim.schedule.systems().enumerate().find(|(_, (_, s))| s.name() == "mpm.transfer").unwrap();
    let sys = sys.1;
    let cx = StepCx { dt: sim.schedule.substep_dt(), step: 0, substep: 0 };
    let model = sim.model.view_all();
    let (mut wf, mut wa) = ((0.0f64, String::new()), (0.0f64, String::new()));
    for case in 0..CASES {
        let mut rng = Rng::new(17 + case as u64);
        let s = state(&mut rng, &sim.state);
        let control = random_columns(&mut rng, &sim.control);
        let adj = random_columns(&mut rng, &sim.state);
        let adj_c = random_columns(&mut rng, &sim.control);
        g.write_control(&control).unwrap();
        let run = gpu::run_system(&mut g, i, sys, &cx, &model, &control, &s, &adj, &adj_c).unwrap();
        let [got, cpu] = &run.forward;
        let other = |floor: Floor| {
            let t = Transfer {
                grid: Grid { res: RES, bound: BOUND, gravity: [0.0, GRAVITY, 0.0], floor },
                collider: None,
                threads: 1,
            };
            let mut out = s.clone();
            diffsim_engine::System::<f32>::forward(&t, &cx, &model, &control.view_all(), &mut out.view_all_mut());
            out
        };
        for floor in [Floor::Slip, Floor::Sticky] {
            assert_ne!(other(floor).get("mpm_v").unwrap(), cpu.get("mpm_v").unwrap(), "friction floor = {floor:?}");
        }
        let e = worst(got, cpu, FLOOR);
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
