//! Learning tests of the zeroth-order baselines (PPO, SAC) on the cartpole swing-up: with a fixed
//! seed and a small budget, each must beat uniform random actions by a stated margin.
//! They only step forward: the test also checks that nothing was recorded on the tape.

use diffsim_learners::{Ppo, PpoConfig, Sac, SacConfig, ZerothOrder, evaluate_with};
use diffsim_tasks::{Cartpole, CartpoleConfig, TaskRng, VecEnv};
use ndarray::Array2;

const ENVS: usize = 32;
const EVAL_SEED: u64 = 1000;

fn env() -> VecEnv<Cartpole> {
    // Any start angle, as in the first-order learning tests (hanging still is a flat optimum).
    let task = Cartpole::new(CartpoleConfig {
        num_envs: ENVS,
        episode_length: 240,
        init_noise: [0.1, std::f64::consts::PI, 0.1, 0.1],
        ..Default::default()
    });
    VecEnv::new(task).unwrap()
}

/// Mean first-episode return under uniform random actions.
fn random_return(env: &mut VecEnv<Cartpole>) -> f64 {
    let mut rng = TaskRng::new(EVAL_SEED);
    evaluate_with(env, EVAL_SEED, |o| Array2::from_shape_fn((o.nrows(), 1), |_| rng.uniform(-1.0, 1.0) as f32)).unwrap()
}

fn assert_learned(name: &str, random: f64, trained: f64, margin: f64) {
    eprintln!("{name}: random {random:.1}, trained {trained:.1}");
    assert!(trained > random + margin * random.abs(), "{name}: trained {trained:.1} vs random {random:.1}");
}

#[test]
fn ppo_beats_random_actions_on_cartpole() {
    let mut env = env();
    let random = random_return(&mut env);
    let cfg =
        PpoConfig { actor_hidden: vec![64, 64], critic_hidden: vec![64, 64], minibatch: 256, ..Default::default() };
    let mut ppo = Ppo::new(5, 1, ENVS, cfg).unwrap();
    ppo.train(&mut env, 1, ITERATIONS_PPO, |s| eprintln!("ppo {s:?}")).unwrap();
    assert!(!env.is_recording() && env.sim().tape_memory().is_none(), "PPO must not record a tape");
    let trained = evaluate_with(&mut env, EVAL_SEED, |o| ppo.act(o, true)).unwrap();
    assert_learned("PPO", random, trained, MARGIN_PPO);
}

#[test]
fn sac_beats_random_actions_on_cartpole() {
    let mut env = env();
    let random = random_return(&mut env);
    let cfg = SacConfig {
        actor_hidden: vec![64, 64],
        critic_hidden: vec![64, 64],
        batch: 256,
        updates_per_iteration: 32,
        ..Default::default()
    };
    let mut sac = Sac::new(5, 1, ENVS, cfg).unwrap();
    sac.train(&mut env, 1, ITERATIONS_SAC, |s| eprintln!("sac {s:?}")).unwrap();
    assert!(!env.is_recording() && env.sim().tape_memory().is_none(), "SAC must not record a tape");
    let trained = evaluate_with(&mut env, EVAL_SEED, |o| sac.act(o, true)).unwrap();
    assert_learned("SAC", random, trained, MARGIN_SAC);
}

const ITERATIONS_PPO: usize = 300;
const ITERATIONS_SAC: usize = 150;
const MARGIN_PPO: f64 = 0.25;
const MARGIN_SAC: f64 = 0.4;
