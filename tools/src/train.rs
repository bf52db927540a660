//! `diffsim train`: the flags of both kinds of training, and open-loop trajectory optimization
//! (`diffsim_learners::OpenLoop`) of a task's action sequence through the tape, which prints the
//! loss every 10th iteration and the final loss reduction factor. The open-loop defaults
//! (final-reward objective, gradient descent, lr 100, H = 40, 60 iterations, 2 envs) are the
//! configuration tested on chain_reach. The policy learners (`--learner sapo|shac|apg`) are in
//! `train_rl`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use diffsim_engine::{Sim, SimFactory};
use diffsim_learners::{Objective, OpenLoop, OpenLoopConfig, Optimizer};

use crate::bench_gpu::{Backend, GpuScatter};
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
    /// Proximal Policy Optimization (zeroth-order baseline, forward stepping only).
    Ppo,
    /// Soft Actor-Critic (zeroth-order baseline, forward stepping only).
    Sac,
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Learner: open-loop trajectory optimization or a first-order policy learner.
    #[arg(long, value_enum, default_value_t = LearnerArg::OpenLoop)]
    pub learner: LearnerArg,
    /// Task to train on (not needed with --resume).
    #[arg(long, value_parser = task::parser(), required_unless_present = "resume")]
    pub task: Option<String>,
    /// Policy learners: a TOML file merged over the task's defaults (keys as in
    /// runs/<name>/config.toml: [run], [env], [learner]).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Policy learners: override one config key, e.g. --set learner.actor_lr=1e-3 (repeatable;
    /// applied after --config and the shortcut flags).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Policy learners: continue the run in this directory from its last checkpoint.
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["task", "config"])]
    pub resume: Option<PathBuf>,
    /// Policy learners: run name; outputs go to <out>/<name>/ (default <task>-<learner>-s<seed>).
    #[arg(long)]
    pub name: Option<String>,
    /// Policy learners: directory of the run directories.
    #[arg(long, default_value = "runs")]
    pub out: PathBuf,
    /// Policy learners: epochs (run.epochs; one actor and one critic update each, envs × H env steps).
    #[arg(long, value_parser = parse::positive)]
    pub epochs: Option<usize>,
    /// Policy learners: seed of the env resets, the networks and the noise (run.seed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Gradient steps (open-loop).
    #[arg(long, default_value_t = 60, value_parser = parse::positive)]
    pub iterations: usize,
    /// Learning rate (open-loop).
    #[arg(long, default_value_t = 100.0, value_parser = parse::positive_f64, allow_negative_numbers = true)]
    pub lr: f64,
    /// Update rule (open-loop).
    #[arg(long, value_enum, default_value_t = OptimizerArg::Gd)]
    pub optimizer: OptimizerArg,
    /// Environments (env.num_envs; open-loop default 2).
    #[arg(long, value_parser = parse::positive)]
    pub envs: Option<usize>,
    /// Env steps per rollout H (learner.horizon; open-loop default 40).
    #[arg(long, value_parser = parse::positive)]
    pub horizon: Option<usize>,
    /// Which rewards the loss sums (open-loop).
    #[arg(long, value_enum, default_value_t = ObjectiveArg::Final)]
    pub objective: ObjectiveArg,
    /// CPU threads of the simulation (env.threads; open-loop default 1).
    #[arg(long, value_parser = parse::positive)]
    pub threads: Option<usize>,
    /// Policy learners: no progress bar (the CSV log is still written).
    #[arg(long)]
    pub quiet: bool,
    /// Policy learners: where the physics runs. `gpu` is an error naming the missing adapter or
    /// the first system without GPU kernels; `auto` falls back to the CPU and says why.
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    pub backend: Backend,
    /// Policy learners on the GPU: fixed-order (bitwise reproducible) or atomic scatters.
    #[arg(long, value_enum, default_value_t = GpuScatter::Deterministic)]
    pub gpu_scatter: GpuScatter,
}

pub fn run(args: &TrainArgs) -> anyhow::Result<ExitCode> {
    if args.backend != Backend::Cpu && matches!(args.learner, LearnerArg::Ppo | LearnerArg::Sac | LearnerArg::OpenLoop)
    {
        bail!("--backend gpu|auto is for the first-order learners (--learner sapo|shac|apg)");
    }
    if matches!(args.learner, LearnerArg::Ppo | LearnerArg::Sac) {
        return crate::train_zo::run(args);
    }
    if args.learner != LearnerArg::OpenLoop || args.resume.is_some() {
        return crate::train_rl::run(args);
    }
    let Some(name) = &args.task else { bail!("--task is required") };
    let (envs, horizon, threads) = (args.envs.unwrap_or(2), args.horizon.unwrap_or(40), args.threads.unwrap_or(1));
    let task = Task::build(name, TaskOptions { num_envs: envs, threads, links: None })?;
    let mut sim: Sim<f32> = task.sim().with_context(|| format!("building task `{name}`"))?;
    let init = sim.state.clone();
    let cfg = OpenLoopConfig {
        objective: match args.objective {
            ObjectiveArg::Final => Objective::FinalReward,
            ObjectiveArg::Mean => Objective::MeanReward,
        },
        horizon,
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
        horizon,
        envs,
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
