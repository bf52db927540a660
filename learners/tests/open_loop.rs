//! End-to-end: plain gradient descent on an open-loop action sequence, with gradients from the
//! tape through contact and friction, must cut the chain_reach loss by at least 10×.

use diffsim_engine::{Sim, SimFactory};
use diffsim_learners::{Objective, OpenLoop, OpenLoopConfig, Optimizer};
use diffsim_tasks::{ChainReach, ChainReachConfig};

#[test]
fn gradient_descent_on_open_loop_actions_reduces_loss_tenfold() {
    let task = ChainReach::new(ChainReachConfig { num_envs: 2, episode_length: 40, threads: 2, ..Default::default() });
    let mut sim: Sim<f32> = task.sim().unwrap();
    let init = sim.state.clone();
    let cfg = OpenLoopConfig {
        objective: Objective::FinalReward,
        horizon: 40,
        iterations: 60,
        lr: 100.0,
        optimizer: Optimizer::GradientDescent,
        ..Default::default()
    };
    let mut opt = OpenLoop::new(&sim, cfg);
    let report = opt.optimize(&mut sim, &init, |i, l, g| eprintln!("iter {i:3} loss {l:.5} |g| {g:.4}")).unwrap();
    let (first, last) = (report.losses[0], *report.losses.last().unwrap());
    assert!(first > 0.0 && last.is_finite());
    eprintln!("loss {first:.5} -> {last:.6} ({:.0}x)", first / last);
    assert!(last * 10.0 <= first, "loss {first} -> {last}: less than 10x");
}
