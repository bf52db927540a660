//! Property tests of every particle system's adjoint and of whole rollouts through the tape:
//! the dual-number dot-product test (1e-10 relative) and central finite differences (1e-4
//! relative, on states away from contact kinks), over random scenes, states and actions.

use diffsim_engine::components::Ground;
use diffsim_engine::{Columns, Cpu, Dual, Real, Sim, SimFactory, StepCx, System};
use diffsim_systems::particles::{Actuation, ClearForces, Gravity, GroundContact, Integrate, Springs};
use diffsim_tasks::chain_reach::{Observe, Reward};
use diffsim_tasks::{ChainReach, ChainReachConfig};
use diffsim_tests::{GradReport, Rng, RolloutCheck, SystemCheck, cases};
use proptest::prelude::*;

const DUAL_TOL: f64 = 1e-10;
const FD_TOL: f64 = 1e-4;

/// A task whose steps are split across two threads however small they are.
struct Threaded(ChainReach);

impl SimFactory for Threaded {
    fn sim<R: Real>(&self) -> Result<Sim<R>, diffsim_engine::EngineError> {
        let mut sim = self.0.sim()?;
        sim.cpu = Cpu::new(2).with_split(diffsim_engine::cpu::Split::Always);
        Ok(sim)
    }
}

/// A random chain_reach configuration.
fn config() -> impl Strategy<Value = ChainReachConfig> {
    (1usize..4, 2usize..6, 50.0f32..500.0, 0.0f32..2.0, 500.0f32..5000.0, 0.0f32..10.0, 0.0f32..10.0, 0.1f32..1.0)
        .prop_map(|(num_envs, links, ke, kd, gke, gkd, gkf, mu)| ChainReachConfig {
            num_envs,
            links,
            spring_ke: ke,
            spring_kd: kd,
            ground: Some(Ground { ke: gke, kd: gkd, kf: gkf, mu }),
            substeps: 4,
            ..ChainReachConfig::default()
        })
}

/// A random point (state, control) of the task's simulation, in f64.
fn random_point(task: &ChainReach, rng: &mut Rng) -> (Sim<f64>, Columns<f64>, Columns<f64>) {
    let sim: Sim<f64> = task.sim().expect("task builds");
    let mut state = sim.state.clone();
    for (spec, col) in state.columns_mut() {
        match spec.name.as_str() {
            "particle_q" => {
                for (k, x) in col.iter_mut().enumerate() {
                    // y straddles the ground contact (radius 0.02); x, z jitter around the chain.
                    *x += if k % 3 == 1 { rng.uniform(-0.03, 0.04) } else { rng.uniform(-0.05, 0.05) };
                }
            }
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

/// Distance of a particle state from the ground-contact switching surfaces (relative).
fn contact_margin(sim: &Sim<f64>, s: &Columns<f64>) -> f64 {
    let (q, qd) = (s.get("particle_q").unwrap(), s.get("particle_qd").unwrap());
    let r = sim.model.params.get("particle_radius").unwrap();
    let g = sim.model.params.get("ground").unwrap();
    let np = r.len() / sim.num_envs();
    let mut m = f64::INFINITY;
    for k in 0..r.len() {
        let g = &g[4 * (k / np)..][..4];
        let pen = r[k] - q[3 * k + 1];
        m = m.min(pen.abs() / r[k]);
        if pen > 0.0 {
            let n = g[0] * pen - g[1] * qd[3 * k + 1];
            m = m.min(n.abs() / (g[0] * r[k]));
            let s = (qd[3 * k].powi(2) + qd[3 * k + 2].powi(2)).sqrt();
            m = m.min(((g[2] * s) - g[3] * n).abs() / (g[2] * s + g[3] * n.abs() + 1e-12));
        }
    }
    m
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn particle_systems_pass_dot_product_and_fd(cfg in config(), seed in any::<u64>()) {
        let task = ChainReach::new(cfg.clone());
        let mut rng = Rng::new(seed);
        let (sim, s, c) = random_point(&task, &mut rng);
        let act = Actuation { particles: vec![0], scale: cfg.action_scale };
        let reports = [
            ("particles.clear_forces", check(&ClearForces, &sim, &s, &c, &mut rng)),
            ("particles.gravity", check(&Gravity, &sim, &s, &c, &mut rng)),
            ("particles.springs", check(&Springs, &sim, &s, &c, &mut rng)),
            ("particles.actuation", check(&act, &sim, &s, &c, &mut rng)),
            ("particles.integrate", check(&Integrate, &sim, &s, &c, &mut rng)),
            ("chain_reach.observe", check(&Observe { links: cfg.links }, &sim, &s, &c, &mut rng)),
            ("chain_reach.reward", check(&Reward { tail: cfg.links - 1, action_cost: cfg.action_cost }, &sim, &s, &c, &mut rng)),
        ];
        for (name, r) in reports {
            prop_assert!(r.dual_err() < DUAL_TOL, "{name}: dual {r:?}");
            prop_assert!(r.fd_err() < FD_TOL, "{name}: fd {r:?}");
        }
        let r = check(&GroundContact, &sim, &s, &c, &mut rng);
        prop_assert!(r.dual_err() < DUAL_TOL, "ground dual {r:?}");
        if contact_margin(&sim, &s) > 1e-3 {
            prop_assert!(r.fd_err() < FD_TOL, "ground fd {r:?}");
        }
    }

    #[test]
    fn rollout_through_tape_matches_duals_with_contact(cfg in config(), seed in any::<u64>(), horizon in 1usize..6) {
        let task = Threaded(ChainReach::new(cfg));
        let r = RolloutCheck { horizon, h: 1e-6, state_dir_scale: 1.0 }.run(&task, &mut Rng::new(seed)).unwrap();
        prop_assert!(r.dual_err() < DUAL_TOL, "{r:?}");
    }

    #[test]
    fn rollout_through_tape_matches_fd_without_contact(cfg in config(), seed in any::<u64>(), horizon in 1usize..6) {
        let task = ChainReach::new(ChainReachConfig { ground: None, ..cfg });
        let r = RolloutCheck { horizon, h: 1e-6, state_dir_scale: 1.0 }.run(&task, &mut Rng::new(seed)).unwrap();
        prop_assert!(r.dual_err() < DUAL_TOL, "dual {r:?}");
        prop_assert!(r.fd_err() < FD_TOL, "fd {r:?}");
    }
}

/// A case where FD across contact is smooth enough at the default config: guards the fd helper itself.
#[test]
fn fd_detects_a_wrong_adjoint() {
    /// Integrate with a deliberately wrong adjoint (drops the dt·q̄' term).
    struct Broken;
    impl<R: Real> System<R> for Broken {
        fn name(&self) -> &str {
            "broken"
        }
        fn access(&self) -> Vec<diffsim_engine::ColumnAccess> {
            <Integrate as System<R>>::access(&Integrate)
        }
        fn forward(
            &self,
            cx: &StepCx,
            m: &diffsim_engine::ModelView,
            c: &diffsim_engine::View<R>,
            s: &mut diffsim_engine::ViewMut<R>,
        ) {
            Integrate.forward(cx, m, c, s)
        }
        fn adjoint(
            &self,
            cx: &StepCx,
            m: &diffsim_engine::ModelView,
            _: &diffsim_engine::View<R>,
            _: &diffsim_engine::View<R>,
            adj: &mut diffsim_engine::ViewMut<R>,
            _: &mut diffsim_engine::ViewMut<R>,
        ) {
            let dt = R::from_f64(cx.dt);
            let mass = m.param("particle_mass");
            let [_, aqd, af] = adj.cols_mut(["particle_q", "particle_qd", "particle_f"]);
            for (k, &mm) in mass.iter().enumerate() {
                for c in 0..3 {
                    af[3 * k + c] += dt * R::from_f64(1.0 / mm) * aqd[3 * k + c];
                }
            }
        }
    }
    let task = ChainReach::default();
    let mut rng = Rng::new(7);
    let (sim, s, c) = random_point(&task, &mut rng);
    let r = check(&Broken, &sim, &s, &c, &mut rng);
    assert!(r.dual_err() > 1e-6 && r.fd_err() > 1e-6, "{r:?}");
}

/// Hand-written adjoint and recorded-replay adjoint (`replay_adjoint`) of one system at a point,
/// as (adj_state, adj_control) pairs.
fn both_adjoints<S: System<f64> + System<diffsim_engine::Rev>>(
    sys: &S,
    sim: &Sim<f64>,
    s: &Columns<f64>,
    c: &Columns<f64>,
    rng: &mut Rng,
) -> [(Columns<f64>, Columns<f64>); 2] {
    let cx = StepCx { dt: sim.schedule.substep_dt(), step: 0, substep: 0 };
    let ybar = rng.like(s);
    let run = |replay: bool| {
        let (mut a, mut ac) = (ybar.clone(), c.zeros_like::<f64>());
        let (m, cv, pv) = (sim.model.view_all(), c.view_all(), s.view_all());
        if replay {
            diffsim_engine::replay_adjoint(sys, &cx, &m, &cv, &pv, &mut a.view_all_mut(), &mut ac.view_all_mut());
        } else {
            System::<f64>::adjoint(sys, &cx, &m, &cv, &pv, &mut a.view_all_mut(), &mut ac.view_all_mut());
        }
        (a, ac)
    };
    [run(false), run(true)]
}

fn assert_same(name: &str, [hand, replay]: [(Columns<f64>, Columns<f64>); 2]) {
    for (x, y) in [(&hand.0, &replay.0), (&hand.1, &replay.1)] {
        for ((spec, a), (_, b)) in x.columns().zip(y.columns()) {
            for (k, (u, v)) in a.iter().zip(b).enumerate() {
                assert!(
                    (u - v).abs() <= 1e-11 * (1.0 + u.abs()),
                    "{name} `{}`[{k}]: hand {u} vs replay {v}",
                    spec.name
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(cases(64))]

    /// The recorded-replay adjoint agrees with every hand-written one: it is a valid oracle and
    /// a valid adjoint for systems that do not have a hand-written one yet.
    #[test]
    fn replay_adjoint_matches_hand_written_adjoints(cfg in config(), seed in any::<u64>()) {
        let task = ChainReach::new(cfg.clone());
        let mut rng = Rng::new(seed);
        let (sim, s, c) = random_point(&task, &mut rng);
        let act = Actuation { particles: vec![0], scale: cfg.action_scale };
        assert_same("clear_forces", both_adjoints(&ClearForces, &sim, &s, &c, &mut rng));
        assert_same("gravity", both_adjoints(&Gravity, &sim, &s, &c, &mut rng));
        assert_same("springs", both_adjoints(&Springs, &sim, &s, &c, &mut rng));
        assert_same("ground", both_adjoints(&GroundContact, &sim, &s, &c, &mut rng));
        assert_same("actuation", both_adjoints(&act, &sim, &s, &c, &mut rng));
        assert_same("integrate", both_adjoints(&Integrate, &sim, &s, &c, &mut rng));
        assert_same("observe", both_adjoints(&Observe { links: cfg.links }, &sim, &s, &c, &mut rng));
        let reward = Reward { tail: cfg.links - 1, action_cost: cfg.action_cost };
        assert_same("reward", both_adjoints(&reward, &sim, &s, &c, &mut rng));
    }
}
