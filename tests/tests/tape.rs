//! The tape over multi-step rollouts: memory is O(H · state) + O(K · state), resets cut only the
//! reset environment's gradient, and threading does not change a single bit of the result.

use diffsim_engine::schedule::PRE_STATE_BUDGET;
use diffsim_engine::{Columns, Sim, SimFactory, Stage};
use diffsim_tasks::{AntRun, AntRunConfig, ChainReach, ChainReachConfig};
use diffsim_tests::Rng;

/// Records `horizon` steps of random actions (reset of `reset_env` before step `reset_at`), then
/// backpropagates the summed reward of steps `from..horizon`. Returns (∂L/∂s₀, ∂L/∂a_t).
fn grads(
    cfg: ChainReachConfig,
    horizon: usize,
    reset: Option<(usize, usize)>,
    from: usize,
) -> (Columns<f64>, Vec<Columns<f64>>) {
    let mut sim: Sim<f64> = ChainReach::new(cfg).sim().unwrap();
    sim.cpu = sim.cpu.clone().with_split(diffsim_engine::cpu::Split::Always); // split even tiny steps across threads
    let init = sim.state.clone();
    let mut rng = Rng::new(3);
    sim.record();
    for t in 0..horizon {
        if let Some((at, env)) = reset
            && at == t
        {
            sim.reset_envs(&[env], &init).unwrap();
        }
        let a = rng.like(&sim.control);
        sim.control.copy_from(&a);
        sim.step().unwrap();
    }
    let g = sim
        .backward(|t, adj| {
            if t >= from {
                adj.get_mut("reward").unwrap().iter_mut().for_each(|r| *r += 1.0);
            }
        })
        .unwrap();
    (g.initial_state, g.controls)
}

#[test]
fn reset_cuts_only_the_reset_environment() {
    let cfg = ChainReachConfig { num_envs: 2, ..Default::default() };
    // Only rewards after the reset enter the loss, so env 1's earlier path must not matter.
    let (s_plain, a_plain) = grads(cfg.clone(), 8, None, 4);
    let (s_reset, a_reset) = grads(cfg, 8, Some((4, 1)), 4);
    let env0 = |c: &Columns<f64>| c.env("particle_q", 0).unwrap().to_vec();
    let env1 = |c: &Columns<f64>| c.env("particle_qd", 1).unwrap().to_vec();
    // Env 0 is untouched by env 1's reset.
    assert_eq!(env0(&s_plain), env0(&s_reset));
    assert!(env0(&s_reset).iter().any(|&x| x != 0.0));
    // Env 1's initial state no longer influences anything after its reset...
    assert!(env1(&s_plain).iter().any(|&x| x != 0.0));
    assert!(env1(&s_reset).iter().all(|&x| x == 0.0), "{:?}", env1(&s_reset));
    // ...nor do its actions before the reset, while its later actions still do.
    assert!(a_reset[2].env("act", 1).unwrap().iter().all(|&x| x == 0.0));
    assert!(a_reset[6].env("act", 1).unwrap().iter().any(|&x| x != 0.0));
    assert_eq!(a_plain[2].env("act", 0).unwrap(), a_reset[2].env("act", 0).unwrap());
}

#[test]
fn gradients_are_identical_on_one_and_two_threads() {
    let one = grads(ChainReachConfig { num_envs: 5, threads: 1, ..Default::default() }, 6, None, 0);
    let two = grads(ChainReachConfig { num_envs: 5, threads: 2, ..Default::default() }, 6, None, 0);
    assert_eq!(one.0, two.0);
    assert_eq!(one.1, two.1);
}

#[test]
fn tape_memory_is_one_state_per_step_plus_one_step_of_recompute() {
    let measure = |substeps: usize, budget: usize| {
        let mut sim: Sim<f32> =
            ChainReach::new(ChainReachConfig { num_envs: 4, substeps, ..Default::default() }).sim().unwrap();
        sim.schedule.pre_state_budget = budget;
        let state_bytes = sim.state.bytes();
        sim.record();
        for _ in 0..10 {
            sim.step().unwrap();
        }
        (sim.tape_memory().unwrap(), state_bytes, sim.schedule.recompute_states(state_bytes / 4))
    };
    let substep_systems = {
        let sim: Sim<f32> = ChainReach::default().sim().unwrap();
        sim.schedule.systems().filter(|(stage, _)| *stage == Stage::Substep).count()
    };
    // Two-pass recompute (budget 0): K + 2 boundaries + S pre-states; stored pre-states (the
    // default budget, which a 4-link chain fits): every system's pre-state.
    for (budget, per_substep) in [(0, 1), (PRE_STATE_BUDGET, substep_systems)] {
        let (m8, state_bytes, r8) = measure(8, budget);
        let (m32, _, r32) = measure(32, budget);
        assert_eq!(m8.steps, 10);
        assert_eq!(m8.checkpoint_bytes, 10 * state_bytes);
        // Checkpoints do not grow with substeps; only the one-step recompute scratch does.
        assert_eq!(m8.checkpoint_bytes, m32.checkpoint_bytes);
        assert_eq!(m8.recompute_bytes, r8 * state_bytes);
        assert_eq!(m32.recompute_bytes - m8.recompute_bytes, (r32 - r8) * state_bytes);
        assert_eq!(r32 - r8, 24 * per_substep, "budget {budget}");
    }
}

/// AntRun's gradients (initial state and every action) over `horizon` steps with the given
/// pre-state budget.
fn ant_grads(budget: usize, horizon: usize) -> (Columns<f64>, Vec<Columns<f64>>) {
    let mut sim: Sim<f64> = AntRun::new(AntRunConfig { num_envs: 2, threads: 1, ..Default::default() }).sim().unwrap();
    sim.schedule.pre_state_budget = budget;
    let mut rng = Rng::new(11);
    sim.record();
    for _ in 0..horizon {
        let a = rng.like(&sim.control);
        sim.control.copy_from(&a);
        sim.step().unwrap();
    }
    let g = sim.backward(|_, adj| adj.get_mut("reward").unwrap().iter_mut().for_each(|r| *r += 1.0)).unwrap();
    (g.initial_state, g.controls)
}

#[test]
fn stored_and_two_pass_recompute_give_bitwise_equal_gradients() {
    let stored = ant_grads(PRE_STATE_BUDGET, 3);
    let two_pass = ant_grads(0, 3);
    assert_eq!(stored.0, two_pass.0);
    assert_eq!(stored.1, two_pass.1);
    assert!(stored.1[0].get("act").unwrap().iter().any(|&x| x != 0.0));
}

#[test]
fn backward_without_recording_is_an_error() {
    let sim: Sim<f32> = ChainReach::default().sim().unwrap();
    let err = sim.backward(|_, _| {}).unwrap_err();
    assert!(err.to_string().contains("record"), "{err}");
}

#[test]
fn ecs_components_follow_the_mirror_on_demand() {
    let task = ChainReach::default();
    let mut scene = task.scene();
    let mut sim: Sim<f32> = task.sim().unwrap();
    sim.set_control("act", &[1.0, 0.0, 0.0]).unwrap();
    for _ in 0..10 {
        sim.step().unwrap();
    }
    let before = scene.particles(0)[0].1.q;
    scene.sync_particles(&sim.state).unwrap();
    let after = scene.particles(0)[0].1.q;
    assert_ne!(before, after);
    assert_eq!(after.x, sim.state.env("particle_q", 0).unwrap()[0]);
}
