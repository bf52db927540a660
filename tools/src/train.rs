//! `diffsim train`: open-loop trajectory optimization (`diffsim_learners::OpenLoop`) of a task's
//! action sequence through the tape; prints the loss every 10th iteration and the final loss
//! reduction factor. The defaults (final-reward objective, gradient descent, lr 100, H = 40,
//! 60 iterations, 2 envs) are the configuration tested on chain_reach.

use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use diffsim_engine::{Sim, SimFactory};
use diffsim_learners::{Objective, OpenLoop, OpenLoopConfig, Optimizer};

use crate::parse;
use crate::task::{self, Task, TaskOptions};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OptimizerArg {
    /// Plain gradient descent.
    Gd,
    /// Adam (β₁ 0.9, β₂ 0.999).
    Adam,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ObjectiveArg {
    /// Negative reward of the last step.
    Final,
    /// Negative mean reward over the horizon.
    Mean,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LearnerArg {
    /// Optimize the action sequence itself through the tape.
    OpenLoop,
    /// Soft Analytic Policy Optimization (sapo.md).
    Sapo,
    /// Short-Horizon Actor-Critic.
    Shac,
    /// Analytic policy gradient (BPTT over the horizon).
    Apg,
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Learner: open-loop trajectory optimization or a first-order policy learner.
    #[arg(long, value_enum, default_value_t = LearnerArg::OpenLoop)]
    pub learner: LearnerArg,
    /// Policy learners: epochs (one actor and one critic update each, envs × H env steps).
    #[arg(long, default_value_t = 300, value_parser = parse::positive)]
    pub epochs: usize,
    /// Policy learners: seed of the env resets and of the networks.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Task whose action sequence is optimized.
    #[arg(long, value_parser = task::parser())]
    pub task: String,
    /// Gradient steps.
    #[arg(long, default_value_t = 60, value_parser = parse::positive)]
    pub iterations: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 100.0, value_parser = parse::positive_f64, allow_negative_numbers = true)]
    pub lr: f64,
    /// Update rule.
    #[arg(long, value_enum, default_value_t = OptimizerArg::Gd)]
    pub optimizer: OptimizerArg,
    /// Environments (each optimizes its own action sequence).
    #[arg(long, default_value_t = 2, value_parser = parse::positive)]
    pub envs: usize,
    /// Env steps per rollout H (the length of the action sequence).
    #[arg(long, default_value_t = 40, value_parser = parse::positive)]
    pub horizon: usize,
    /// Which rewards the loss sums.
    #[arg(long, value_enum, default_value_t = ObjectiveArg::Final)]
    pub objective: ObjectiveArg,
    /// CPU threads of the simulation.
    #[arg(long, default_value_t = 1, value_parser = parse::positive)]
    pub threads: usize,
}

pub fn run(args: &TrainArgs) -> anyhow::Result<ExitCode> {
    if args.learner != LearnerArg::OpenLoop {
        return crate::train_rl::run(args);
    }
    let name = &args.task;
    let task = Task::build(name, TaskOptions { num_envs: args.envs, threads: args.threads, links: None })?;
    let mut sim: Sim<f32> = task.sim().with_context(|| format!("building task `{name}`"))?;
    let init = sim.state.clone();
    let cfg = OpenLoopConfig {
        objective: match args.objective {
            ObjectiveArg::Final => Objective::FinalReward,
            ObjectiveArg::Mean => Objective::MeanReward,
        },
        horizon: args.horizon,
        iterations: args.iterations,
        lr: args.lr,
        optimizer: match args.optimizer {
            OptimizerArg::Gd => Optimizer::GradientDescent,
            OptimizerArg::Adam => Optimizer::Adam,
        },
        ..Default::default()
    };
    println!(
        "train `{name}`: open-loop, objective {}, optimizer {}, lr {}, H = {}, {} envs, {} iterations",
        parse::flag_name(&args.objective),
        parse::flag_name(&args.optimizer),
        args.lr,
        args.horizon,
        args.envs,
        args.iterations
    );
    println!();
    println!("| iter | loss | grad norm |");
    println!("|---|---|---|");
    let last = args.iterations - 1;
    let mut opt = OpenLoop::new(&sim, cfg);
    let report = opt
        .optimize(&mut sim, &init, |i, loss, norm| {
            if i % 10 == 0 || i == last {
                println!("| {i} | {loss:.6e} | {norm:.4e} |");
            }
        })
        .with_context(|| format!("open-loop optimization of task `{name}`"))?;
    let (first, fin) = match (report.losses.first(), report.losses.last()) {
        (Some(&a), Some(&b)) => (a, b),
        _ => bail!("the optimizer reported no losses"),
    };
    if !fin.is_finite() {
        bail!("task `{name}`: the final loss is {fin}; try a smaller --lr");
    }
    println!();
    println!("loss {first:.6e} -> {fin:.6e}: reduced {:.1}x", first / fin);
    Ok(ExitCode::SUCCESS)
}
