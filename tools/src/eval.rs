//! `diffsim eval --checkpoint runs/<name>/checkpoint.safetensors [--episodes N]`: runs the
//! checkpoint's policy for N episodes (one per env of a fresh `VecEnv` of the stored task, the
//! first episode of each after `reset(seed)`) and reports mean ± 95% CI return (Student t), like
//! the paper's tables. The policy is deterministic (tanh μ) unless `--stochastic`; N defaults to
//! twice the training envs (the paper's 2N).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use diffsim_learners::log::mean_ci95;
use diffsim_learners::{Checkpoint, DiffRl, episode_returns_with};
use diffsim_tasks::{Task as VecTask, VecEnv};

use crate::parse;
use crate::task::{Task, TaskOptions};
use crate::train_rl::{WithTask, with_task};

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A checkpoint written by `diffsim train` (runs/<name>/checkpoint.safetensors).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Episodes (default: twice the training envs).
    #[arg(long, value_parser = parse::positive)]
    pub episodes: Option<usize>,
    /// Seed of the evaluation episodes' init noise.
    #[arg(long, default_value_t = 1_000_003)]
    pub seed: u64,
    /// Sample actions instead of the mean action tanh(μ).
    #[arg(long)]
    pub stochastic: bool,
    /// CPU threads of the simulation (default: the training config's).
    #[arg(long, value_parser = parse::positive)]
    pub threads: Option<usize>,
}

pub fn run(args: &EvalArgs) -> anyhow::Result<ExitCode> {
    let ckpt = Checkpoint::read(&args.checkpoint)?;
    let episodes = args.episodes.unwrap_or(2 * ckpt.num_envs);
    let opts =
        TaskOptions { num_envs: episodes, threads: args.threads.unwrap_or(ckpt.config.env.threads), links: None };
    let task = Task::build(&ckpt.task, opts)?;
    with_task(task, Eval { ckpt, seed: args.seed, stochastic: args.stochastic })
}

struct Eval {
    ckpt: Checkpoint,
    seed: u64,
    stochastic: bool,
}

impl WithTask for Eval {
    type Out = ExitCode;
    fn run<T: VecTask>(self, task: T) -> anyhow::Result<ExitCode> {
        let Eval { ckpt, seed, stochastic } = self;
        tch::set_num_threads(1);
        let spec = task.spec();
        let mut env = VecEnv::new(task).with_context(|| format!("building task `{}`", ckpt.task))?;
        ckpt.check(&ckpt.config.run.task, &ckpt.config.run.learner, spec.obs_dim, spec.act_dim)?;
        let mut learner = DiffRl::new(spec.obs_dim, spec.act_dim, spec.num_envs, ckpt.config.diff_rl()?)?;
        ckpt.restore_policy(&mut learner)?;
        let returns = episode_returns_with(&mut env, seed, |o| learner.act(o, !stochastic))?;
        let (mean, ci) = mean_ci95(&returns);
        println!(
            "{} {} at epoch {} ({} env steps): return {mean:.2} ± {ci:.2} (mean ± 95% CI over {} episodes, {} policy, seed {seed})",
            ckpt.task,
            ckpt.learner,
            ckpt.epoch,
            ckpt.env_steps,
            returns.len(),
            if stochastic { "stochastic" } else { "deterministic" }
        );
        Ok(ExitCode::SUCCESS)
    }
}
