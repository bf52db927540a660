//! `diffsim train --learner sapo|shac|apg`: a first-order policy learner (`diffsim_learners::DiffRl`)
//! on a task's `VecEnv`; prints every 10th epoch (return of the episodes that ended, actor loss,
//! gradient norm, temperature, env-steps/s) and the deterministic evaluation return before and
//! after training.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use diffsim_learners::diff_rl::{DiffRl, DiffRlConfig};
use diffsim_tasks::{Task as VecTask, VecEnv};

use crate::task::{Task, TaskOptions};
use crate::train::{LearnerArg, TrainArgs};

pub fn run(args: &TrainArgs) -> anyhow::Result<ExitCode> {
    let opts = TaskOptions { num_envs: args.envs, threads: args.threads, links: None };
    match Task::build(&args.task, opts)? {
        Task::ChainReach(t) => train(t, args),
        Task::Cartpole(t) => train(t, args),
        Task::AntRun(t) => train(t, args),
        Task::HandReorient(t) => train(t, args),
    }
}

fn train<T: VecTask>(task: T, args: &TrainArgs) -> anyhow::Result<ExitCode> {
    tch::set_num_threads(1);
    let spec = task.spec();
    let mut env = VecEnv::new(task).with_context(|| format!("building task `{}`", args.task))?;
    let mut cfg = match args.learner {
        LearnerArg::Sapo => DiffRlConfig::sapo(),
        LearnerArg::Shac => DiffRlConfig::shac(),
        _ => DiffRlConfig::apg(),
    };
    cfg.horizon = args.horizon;
    cfg.epochs = args.epochs;
    cfg.seed = args.seed as i64;
    let mut learner = DiffRl::new(spec.obs_dim, spec.act_dim, spec.num_envs, cfg)?;
    let before = learner.evaluate(&mut env, args.seed + 1, true)?;
    println!(
        "train `{}` with {:?}: {} envs, H = {}, {} epochs ({} env steps), seed {}",
        args.task,
        args.learner,
        spec.num_envs,
        args.horizon,
        args.epochs,
        args.epochs * args.horizon * spec.num_envs,
        args.seed
    );
    println!("evaluation return before training: {before:.2}");
    println!();
    println!("| epoch | episode return | actor loss | grad norm | alpha | env-steps/s |");
    println!("|---|---|---|---|---|---|");
    let start = Instant::now();
    let steps_per_epoch = (args.horizon * spec.num_envs) as f64;
    let mut last_return = None;
    learner.train(&mut env, args.seed, args.epochs, |s| {
        last_return = s.episode_return.or(last_return);
        if s.epoch % 10 == 0 || s.epoch + 1 == args.epochs {
            let fps = steps_per_epoch * (s.epoch + 1) as f64 / start.elapsed().as_secs_f64();
            let ret = last_return.map_or("-".to_string(), |r| format!("{r:.2}"));
            println!(
                "| {} | {ret} | {:.4e} | {:.3e}{} | {:.3} | {fps:.0} |",
                s.epoch,
                s.actor_loss,
                s.grad_norm,
                if s.skipped { " (skipped)" } else { "" },
                s.alpha
            );
        }
    })?;
    let after = learner.evaluate(&mut env, args.seed + 1, true)?;
    println!();
    println!(
        "evaluation return: {before:.2} -> {after:.2} in {:.1} s; NaN/inf envs isolated: {}",
        start.elapsed().as_secs_f64(),
        env.nan_events()
    );
    Ok(ExitCode::SUCCESS)
}
