//! The MPM floor's friction law (`Floor::Friction`, Rewarped's 0 < ground_friction < 99): the
//! adjoint of the whole `mpm.transfer` (P2G, grid update, G2P) under proptest with `SystemCheck`
//! (dual dot-product and central differences in f64), on states built so that the floor layer's
//! nodes take both branches of the law: the friction branch (v scaled by s = 1 + gf v_y/|v| > 0)
//! and the clamp to zero (s ≤ 0); and the law's effect on a block sliding along the floor.

use diffsim_engine::{Cpu, Real, Scene, Sim, StepCx};
use diffsim_systems::mpm::{self, Floor, Grid, MpmMaterial, MpmParticle, Transfer};
use diffsim_tests::{Rng, SystemCheck, cases};
use glam::Vec3;
use proptest::prelude::*;

const DUAL_TOL: f64 = 1e-10;
const FD_TOL: f64 = 1e-4;
const RES: usize = 12;
const BOUND: usize = 2;
const DT: f64 = 1e-3;
const GRAVITY: f64 = -9.8;

/// Two clusters of particles per env, both with their stencils in the floor layer (y < `BOUND`
/// cells), 3.6 cells apart so that no node sees both: cluster A moves steeply down (its floor
/// nodes are clamped to zero), cluster B nearly along the floor (its floor nodes keep a scaled
/// tangential velocity). With C = 0 and τ = 0 a node's velocity is the common velocity of the
/// particles it sees plus g Δt, so the branch of every floor node is known: `branch` checks it.
fn scene(rng: &mut Rng, va: [f64; 3], vb: [f64; 3]) -> Scene {
    let mut scene = Scene::new();
    let (mass, volume) = (1e-3, 1e-6);
    let material = MpmMaterial::Corotated { mu: 1e3, lambda: 1e3 };
    let mut draws: Vec<(Vec3, [f64; 3])> = Vec::new();
    for (x0, v) in [(0.3, va), (0.6, vb)] {
        for _ in 0..3 {
            let x = Vec3::new(
                (x0 + rng.uniform(-0.01, 0.01)) as f32,
                rng.uniform(0.1, 0.16) as f32,
                (0.5 + rng.uniform(-0.05, 0.05)) as f32,
            );
            draws.push((x, v));
        }
    }
    scene.spawn_envs(2, |env| {
        for (slot, (x, v)) in draws.iter().enumerate() {
            let v = Vec3::new(v[0] as f32, v[1] as f32, v[2] as f32);
            mpm::spawn(env, slot as u32, MpmParticle { x: *x, v, mass, volume, material });
        }
    });
    scene
}

/// s = 1 + gf v_y/|v| of a floor node of velocity `v` (the particles' velocity + g Δt).
fn scale(gf: f64, v: [f64; 3]) -> f64 {
    let v = [v[0], v[1] + GRAVITY * DT, v[2]];
    1.0 + gf * v[1] / (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt()
}

proptest! {
    #![proptest_config(cases(24))]

    /// `mpm.transfer` with a friction floor: both branches occur (asserted on the node velocities
    /// the clusters give, ≥ 0.1 away from the switch s = 0 so that no step of the check crosses
    /// it), the adjoint matches duals and central differences.
    #[test]
    fn friction_floor_transfer_adjoint(seed in any::<u64>(), gf in 1.5f64..10.0) {
        let mut rng = Rng::new(seed);
        // A: steeply down, −v_y/|v| ≥ 0.9 > 1/gf + 0.1 (gf ≥ 1.5: 1/gf ≤ 0.67).
        let va = [rng.uniform(-0.2, 0.2), rng.uniform(-2.0, -1.0), rng.uniform(-0.2, 0.2)];
        // B: along the floor, −v_y/|v| ≤ 0.05: s ≥ 1 − 0.05 gf ≥ 0.5.
        let t = rng.uniform(1.0, 2.0);
        let a = rng.uniform(0.0, std::f64::consts::TAU);
        let vb = [t * a.cos(), -rng.uniform(0.0, 0.04), t * a.sin()];
        prop_assert!(scale(gf, va) < -0.1, "A not clamped: s = {}", scale(gf, va));
        prop_assert!(scale(gf, vb) > 0.1, "B not in the friction branch: s = {}", scale(gf, vb));
        let scene = scene(&mut rng, va, vb);
        let mut packed = scene.pack().unwrap();
        mpm::pack(&scene, &mut packed).unwrap();
        let grid = Grid { res: RES, bound: BOUND, gravity: [0.0, GRAVITY, 0.0], floor: Floor::Friction(gf) };
        let schedule = mpm::schedule::<f64>(DT, 1, grid.clone(), None, 1);
        let state = packed.state.map(f64::from);
        let sim = Sim::new(packed.model, state, packed.control, schedule, Cpu::new(1)).unwrap();
        let sys = Transfer { grid, collider: None, threads: 1 };
        let check = SystemCheck {
            model: &sim.model,
            state: &sim.state,
            control: &sim.control,
            cx: StepCx { dt: DT, step: 0, substep: 0 },
            h: 1e-6,
        };
        let r = check.run(&sys, &mut rng).unwrap_or_else(|e| panic!("{e}"));
        prop_assert!(r.dual_err() < DUAL_TOL, "{r:?}");
        prop_assert!(r.fd_err() < FD_TOL, "{r:?}");
    }
}

/// A block sliding along the floor (v = (1, −0.05, 0) m/s, no gravity, so −v_y/|v| stays small
/// and the law acts in its friction branch): the slip floor keeps its speed, the sticky floor
/// stops the bottom layer, and the friction floor slows it in between, more for a larger gf.
#[test]
fn friction_floor_slows_a_sliding_block() {
    let speed = |floor: Floor| -> f64 {
        let mut scene = Scene::new();
        scene.spawn_envs(1, |env| {
            let mut slot = 0;
            for i in 0..4 {
                for k in 0..4 {
                    let x = Vec3::new(0.4 + 0.03 * i as f32, 0.12, 0.45 + 0.03 * k as f32);
                    let p = MpmParticle {
                        x,
                        v: Vec3::new(1.0, -0.05, 0.0),
                        mass: 1e-3,
                        volume: 1e-6,
                        material: MpmMaterial::Corotated { mu: 0.0, lambda: 0.0 },
                    };
                    mpm::spawn(env, slot, p);
                    slot += 1;
                }
            }
        });
        let mut packed = scene.pack().unwrap();
        mpm::pack(&scene, &mut packed).unwrap();
        let grid = Grid { res: RES, bound: BOUND, gravity: [0.0; 3], floor };
        let schedule = mpm::schedule::<f64>(DT, 1, grid, None, 1);
        let state = packed.state.map(f64::from);
        let mut sim = Sim::new(packed.model, state, packed.control, schedule, Cpu::new(1)).unwrap();
        sim.step().unwrap();
        let v = sim.state.get("mpm_v").unwrap();
        v.chunks_exact(3).map(|p| p[0].to_f64()).sum::<f64>() / (v.len() / 3) as f64
    };
    let (slip, sticky) = (speed(Floor::Slip), speed(Floor::Sticky));
    let (low, high) = (speed(Floor::Friction(1.0)), speed(Floor::Friction(5.0)));
    eprintln!("mean x speed after one substep: slip {slip:.4}, gf 1 {low:.4}, gf 5 {high:.4}, sticky {sticky:.4}");
    assert!((slip - 1.0).abs() < 1e-9, "slip floor changed the tangential speed: {slip}");
    assert!(sticky < high && high < low && low < slip, "{sticky} < {high} < {low} < {slip} fails");
    // The friction branch: every floor node of the block has v = (1, −0.05, 0) so
    // s = 1 − gf · 0.05/|v|; the particles average floor and interior nodes.
    let s1 = 1.0 - 0.05 / (1.0f64 + 0.05 * 0.05).sqrt();
    assert!(low >= s1 - 1e-9, "gf 1: mean speed {low} below the floor nodes' {s1}");
}

/// A task's `ground_friction` picks its floor; a negative or NaN value is an error naming the
/// field and the task.
#[test]
fn task_configs_set_the_floor() {
    use diffsim_engine::SimFactory;
    use diffsim_tasks::{FluidMove, FluidMoveConfig, RollingFlat, RollingFlatConfig};
    let fm = |gf| FluidMove::new(FluidMoveConfig { ground_friction: gf, ..Default::default() });
    assert_eq!(fm(0.0).grid().unwrap().floor, Floor::Slip);
    assert_eq!(fm(0.3).grid().unwrap().floor, Floor::Friction(0.3));
    assert_eq!(RollingFlat::new(RollingFlatConfig::default()).grid().unwrap().floor, Floor::Sticky);
    for bad in [-1.0, f64::NAN] {
        let Err(e) = fm(bad).sim::<f32>() else { panic!("ground_friction {bad} accepted") };
        let msg = e.to_string();
        assert!(msg.contains("fluid_move") && msg.contains("ground_friction"), "{msg}");
    }
}
