//! `diffsim train --learner ppo|sac`: the zeroth-order baselines (`diffsim_learners::{Ppo, Sac}`)
//! on a task's `VecEnv`, stepping forward only (no tape). Hyperparameters are sapo.md §3.3/§3.4;
//! the shortcut flags set the env count, threads, seed, iterations (`--epochs`) and PPO's H
//! (`--horizon`). A run writes `<out>/<name>/log.csv` (one row per iteration) and `returns.png`,
//! then reports the deterministic policy's return over 2N episodes as mean ± 95% CI.
//!
//! Not yet: TOML config/`--set`, checkpoints and `--resume` (those are the first-order learners'
//! `TrainConfig`/`Checkpoint`; extending them to PPO/SAC is the next step of issue 5).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use diffsim_learners::log::{mean_ci95, plot_returns};
use diffsim_learners::tensorboard::EventWriter;
use diffsim_learners::{Ppo, PpoConfig, Sac, SacConfig, ZerothOrder, episode_returns_with};
use diffsim_tasks::{Task as VecTask, VecEnv};

use crate::task::{Task, TaskOptions};
use crate::train::{LearnerArg, TrainArgs};
use crate::train_rl::{WithTask, with_task};

/// CSV header of `log.csv`.
const COLUMNS: &str = "iteration,env_steps,wall_s,mean_return,policy_loss,value_loss,kl_or_alpha,lr,sim_share";

pub fn run(args: &TrainArgs) -> anyhow::Result<ExitCode> {
    let Some(name) = &args.task else { bail!("--task is required") };
    if args.resume.is_some() || args.config.is_some() || !args.set.is_empty() {
        bail!("--learner ppo|sac does not support --resume, --config or --set yet");
    }
    let num_envs = args.envs.unwrap_or(64);
    let opts = TaskOptions { num_envs, threads: args.threads.unwrap_or(2), links: None };
    let task = Task::build(name, opts)?;
    let learner = if args.learner == LearnerArg::Ppo { "ppo" } else { "sac" };
    let seed = args.seed.unwrap_or(0);
    let run_name = args.name.clone().unwrap_or_else(|| format!("{}-{learner}-s{seed}", name.replace('_', "-")));
    let run = ZerothRun {
        learner: args.learner,
        iterations: args.epochs.unwrap_or(200),
        horizon: args.horizon,
        seed,
        dir: args.out.join(run_name),
        quiet: args.quiet,
    };
    with_task(task, run)
}

struct ZerothRun {
    learner: LearnerArg,
    iterations: usize,
    horizon: Option<usize>,
    seed: u64,
    dir: PathBuf,
    quiet: bool,
}

impl WithTask for ZerothRun {
    type Out = ExitCode;
    fn run<T: VecTask>(self, task: T) -> anyhow::Result<ExitCode> {
        tch::set_num_threads(1);
        let spec = task.spec();
        let env = VecEnv::new(task).context("building the task")?;
        let (od, ad, n) = (spec.obs_dim, spec.act_dim, spec.num_envs);
        let seed = self.seed as i64;
        match self.learner {
            LearnerArg::Ppo => {
                let d = PpoConfig::default();
                let cfg = PpoConfig { horizon: self.horizon.unwrap_or(d.horizon), seed, ..d };
                self.train(env, Ppo::new(od, ad, n, cfg)?)
            }
            _ => self.train(env, Sac::new(od, ad, n, SacConfig { seed, ..SacConfig::default() })?),
        }
    }
}

impl ZerothRun {
    fn train<T: VecTask, L: ZerothOrder>(self, mut env: VecEnv<T>, mut learner: L) -> anyhow::Result<ExitCode> {
        std::fs::create_dir_all(&self.dir).with_context(|| format!("creating {}", self.dir.display()))?;
        let csv_path = self.dir.join("log.csv");
        let mut csv = std::fs::File::create(&csv_path).with_context(|| format!("creating {}", csv_path.display()))?;
        writeln!(csv, "{COLUMNS}")?;
        let mut tb = EventWriter::create(&self.dir)
            .with_context(|| format!("creating an event file in {}", self.dir.display()))?;
        let mut obs = env.reset(self.seed)?;
        let (start, mut curve) = (Instant::now(), Vec::new());
        for _ in 0..self.iterations {
            let s = learner.train_iteration(&mut env, &mut obs)?;
            let wall = start.elapsed().as_secs_f64();
            writeln!(
                csv,
                "{},{},{wall:.3},{},{},{},{},{},{:.3}",
                s.iteration,
                s.env_steps,
                s.mean_return,
                s.policy_loss,
                s.value_loss,
                s.extra,
                s.lr,
                s.sim_s / s.wall_s.max(1e-12)
            )?;
            let mut scalars = vec![
                ("train/policy_loss", s.policy_loss),
                ("train/value_loss", s.value_loss),
                ("train/kl_or_alpha", s.extra),
                ("train/lr", s.lr),
                ("train/sim_share", s.sim_s / s.wall_s.max(1e-12)),
                ("train/env_steps_per_s", s.env_steps as f64 / wall.max(1e-9)),
            ];
            if s.mean_return.is_finite() {
                scalars.push(("train/episode_return", s.mean_return));
            }
            tb.scalars(s.env_steps as i64, &scalars)?;
            if s.mean_return.is_finite() {
                curve.push((s.env_steps as f64, s.mean_return));
            }
            if !self.quiet {
                eprintln!(
                    "iter {:>5}  steps {:>9}  return {:>10.2}  {:>8.0} env-steps/s",
                    s.iteration,
                    s.env_steps,
                    s.mean_return,
                    s.env_steps as f64 / wall
                );
            }
        }
        let plot = self.dir.join("returns.png");
        plot_returns(&plot, &format!("{} on the task", self.learner.name()), &curve)?;
        // 2N episodes: the first episode of every env after two fresh resets.
        let mut returns = episode_returns_with(&mut env, self.seed + 1, |o| learner.act(o, true))?;
        returns.extend(episode_returns_with(&mut env, self.seed + 2, |o| learner.act(o, true))?);
        let (mean, ci) = mean_ci95(&returns);
        println!(
            "{}: {} iterations, {:.1} s; deterministic return over {} episodes: {mean:.2} ± {ci:.2} (95% CI); \
             log {}, plot {}",
            self.learner.name(),
            self.iterations,
            start.elapsed().as_secs_f64(),
            returns.len(),
            csv_path.display(),
            plot.display()
        );
        Ok(ExitCode::SUCCESS)
    }
}

impl LearnerArg {
    fn name(self) -> &'static str {
        match self {
            LearnerArg::OpenLoop => "open-loop",
            LearnerArg::Sapo => "SAPO",
            LearnerArg::Shac => "SHAC",
            LearnerArg::Apg => "APG",
            LearnerArg::Ppo => "PPO",
            LearnerArg::Sac => "SAC",
        }
    }
}
