//! `diffsim train --learner sapo|shac|apg`: a first-order policy learner (`diffsim_learners::DiffRl`)
//! on a task's `VecEnv`, configured by `TrainConfig` (task defaults < `--config` file < shortcut
//! flags < `--set`), with everything a run writes in `<out>/<name>/`:
//! - `config.toml`: the effective configuration (what `--resume` reads back);
//! - `log.csv`: one row per epoch (`diffsim_learners::log::COLUMNS`);
//! - `nan_events.csv`: one row per env isolated after a NaN/inf (epoch, step, env, system, column);
//! - `checkpoint.safetensors`: every `run.checkpoint_every` epochs and at the end, atomically;
//! - `returns.png`: episode return vs env steps, redrawn at each checkpoint.
//!
//! A progress bar shows the latest return and env-steps/s; NaN events and skipped updates are
//! printed above it (on stderr when it is hidden) with the system and env that produced them.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use diffsim_learners::checkpoint::{self, Checkpoint};
use diffsim_learners::log::{CsvLog, NanLog, mean_ci95, plot_returns};
use diffsim_learners::{ConfigBuilder, DiffRl, TrainConfig, episode_returns_with};
use diffsim_tasks::{Task as VecTask, VecEnv};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::bench_gpu::{self, Backend, GpuScatter};
use crate::parse;
use crate::task::{Task, TaskOptions};
use crate::train::{LearnerArg, TrainArgs};

/// Something to run on a task's concrete type (the one `match` over `Task` the policy tools
/// need: a new task adds one arm in `with_task`).
pub trait WithTask {
    type Out;
    fn run<T: VecTask>(self, task: T) -> anyhow::Result<Self::Out>;
}

pub fn with_task<W: WithTask>(task: Task, w: W) -> anyhow::Result<W::Out> {
    match task {
        Task::ChainReach(t) => w.run(t),
        Task::Cartpole(t) => w.run(t),
        Task::AntRun(t) => w.run(t),
        Task::Hopper(t) => w.run(t),
        Task::Humanoid(t) => w.run(t),
        Task::HandReorient(t) => w.run(t),
        Task::SoftJumper(t) => w.run(t),
        Task::RollingFlat(t) => w.run(t),
        Task::FluidMove(t) => w.run(t),
        Task::HandFlip(t) => w.run(t),
    }
}

/// The files of a run directory.
pub fn config_path(dir: &Path) -> PathBuf {
    dir.join("config.toml")
}
pub fn checkpoint_path(dir: &Path) -> PathBuf {
    dir.join("checkpoint.safetensors")
}

/// The effective configuration and run directory of `args`.
fn configure(args: &TrainArgs) -> anyhow::Result<(TrainConfig, PathBuf, bool)> {
    let shortcuts = [
        args.epochs.map(|v| format!("run.epochs={v}")),
        args.seed.map(|v| format!("run.seed={v}")),
        args.envs.map(|v| format!("env.num_envs={v}")),
        args.threads.map(|v| format!("env.threads={v}")),
        args.horizon.map(|v| format!("learner.horizon={v}")),
    ];
    if let Some(dir) = &args.resume {
        let path = config_path(dir);
        let saved = TrainConfig::from_toml_file(&path)?;
        let mut b = ConfigBuilder::new(&saved.run.task, &saved.run.learner)?;
        b.merge_str(&path.display().to_string(), &strip_fixed(&saved.to_toml()))?;
        for s in shortcuts.iter().flatten().chain(&args.set) {
            b.set(s)?;
        }
        let cfg = b.build()?;
        for (what, was, now) in [
            ("env.num_envs", saved.env.num_envs, cfg.env.num_envs),
            ("learner.horizon", saved.learner.horizon, cfg.learner.horizon),
        ] {
            if was != now {
                bail!("--resume {}: {what} cannot change within a run ({was} -> {now})", dir.display());
            }
        }
        return Ok((cfg, dir.clone(), true));
    }
    let Some(task) = &args.task else { bail!("--task is required (or --resume RUN_DIR)") };
    let learner = parse::flag_name(&args.learner);
    let mut b = ConfigBuilder::new(&task.replace('_', "-"), &learner)?;
    if let Some(file) = &args.config {
        b.merge_file(file)?;
    }
    for s in shortcuts.iter().flatten().chain(&args.set) {
        b.set(s)?;
    }
    let cfg = b.build()?;
    let name = args.name.clone().unwrap_or_else(|| format!("{}-{}-s{}", cfg.run.task, learner, cfg.run.seed));
    Ok((cfg, args.out.join(name), false))
}

/// A saved config without `run.task`/`run.learner` (the builder's defaults already hold them).
fn strip_fixed(toml_text: &str) -> String {
    toml_text
        .lines()
        .filter(|l| !(l.starts_with("task =") || l.starts_with("learner =")))
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn run(args: &TrainArgs) -> anyhow::Result<ExitCode> {
    if args.learner == LearnerArg::OpenLoop && args.resume.is_none() {
        bail!("open-loop training has no config, checkpoints or --resume; use --learner sapo|shac|apg");
    }
    let (cfg, dir, resume) = configure(args)?;
    let opts = TaskOptions { num_envs: cfg.env.num_envs, threads: cfg.env.threads, links: None };
    let task = Task::build(&cfg.run.task, opts)?;
    let backend = (args.backend, args.gpu_scatter);
    with_task(task, Train { cfg, dir, resume, quiet: args.quiet, backend })
}

struct Train {
    cfg: TrainConfig,
    dir: PathBuf,
    resume: bool,
    quiet: bool,
    backend: (Backend, GpuScatter),
}

impl WithTask for Train {
    type Out = ExitCode;
    fn run<T: VecTask>(self, task: T) -> anyhow::Result<ExitCode> {
        let Train { cfg, dir, resume, quiet, backend } = self;
        let device = bench_gpu::open(backend.0)?;
        tch::set_num_threads(1);
        let spec = task.spec();
        let name = cfg.run.task.clone();
        let mut env = VecEnv::new(task).with_context(|| format!("building task `{name}`"))?;
        let mut learner = DiffRl::new(spec.obs_dim, spec.act_dim, spec.num_envs, cfg.diff_rl()?)?;
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let ckpt_path = checkpoint_path(&dir);
        if !resume && ckpt_path.exists() {
            println!("note: starting over in {} (--resume {0} continues the run there)", dir.display());
        }
        let mut obs = if resume {
            let ckpt = Checkpoint::read(&ckpt_path)?;
            ckpt.check(&cfg.run.task, &cfg.run.learner, spec.obs_dim, spec.act_dim)?;
            ckpt.restore_learner(&mut learner)?;
            ckpt.restore_env(&mut env)?
        } else {
            env.reset(cfg.run.seed)?
        };
        // After the restore: `on_gpu` mirrors the CPU state it finds, resumed or fresh.
        bench_gpu::place(&mut env, &device, backend.0, backend.1, &name)?;
        checkpoint::write_atomically(&config_path(&dir), cfg.to_toml().as_bytes())
            .with_context(|| format!("writing {}", config_path(&dir).display()))?;
        let start = learner.epoch;
        let epochs = cfg.run.epochs;
        let mut csv = CsvLog::open(&dir.join("log.csv"), resume.then_some(start))
            .and_then(|c| c.with_tensorboard(&dir))
            .with_context(|| format!("opening {} and a TensorBoard event file there", dir.join("log.csv").display()))?;
        let mut nan_log = NanLog::open(&dir.join("nan_events.csv"), resume.then_some(start))
            .with_context(|| format!("opening {}", dir.join("nan_events.csv").display()))?;
        let steps_per_epoch = (cfg.learner.horizon * spec.num_envs) as u64;
        println!(
            "train `{name}` with {} on the {}: {} envs, H = {}, epochs {start}..{epochs} ({} env steps), seed {}; \
             outputs in {}",
            cfg.run.learner,
            if env.is_on_gpu() { "GPU" } else { "CPU" },
            spec.num_envs,
            cfg.learner.horizon,
            (epochs.saturating_sub(start)) as u64 * steps_per_epoch,
            cfg.run.seed,
            dir.display()
        );
        let bar = if quiet { ProgressBar::hidden() } else { ProgressBar::new(epochs.saturating_sub(start) as u64) };
        if !quiet {
            bar.set_draw_target(ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{bar:30} {pos}/{len} epochs [{elapsed_precise}<{eta_precise}] {msg}")
                    .expect("a valid template"),
            );
        }
        let t0 = Instant::now();
        let mut last_return = None;
        for _ in start..epochs {
            let s = learner.train_epoch(&mut env, &mut obs)?;
            last_return = s.episode_return.or(last_return);
            let wall = t0.elapsed().as_secs_f64();
            let fps = (learner.env_steps - start as u64 * steps_per_epoch) as f64 / wall.max(1e-9);
            // Above the bar, or on stderr when the bar is hidden (--quiet, or stderr not a
            // terminal), where `println` would drop them.
            let note = |msg: String| if bar.is_hidden() { eprintln!("{msg}") } else { bar.println(msg) };
            for ev in &s.nan_events {
                note(format!(
                    "epoch {}: env {} diverged at step {} (non-finite `{}` from system `{}`); it was reset",
                    s.epoch, ev.env, ev.step, ev.column, ev.system
                ));
            }
            nan_log.write(&s)?;
            if s.skipped {
                note(format!(
                    "epoch {}: update skipped (actor gradient norm {:.3e}{})",
                    s.epoch,
                    s.grad_norm,
                    if s.nan_events.is_empty() {
                        String::new()
                    } else {
                        format!(", {} NaN events", s.nan_events.len())
                    }
                ));
            }
            csv.write(&s, learner.env_steps, wall, fps)?;
            let ret = last_return.map_or("-".to_string(), |r| format!("{r:.2}"));
            bar.set_message(format!("return {ret} | {fps:.0} env-steps/s"));
            bar.inc(1);
            let done = s.epoch + 1;
            if done % cfg.run.checkpoint_every == 0 || done == epochs {
                checkpoint::save(&ckpt_path, &learner, &env, &cfg)?;
                plot_returns(&dir.join("returns.png"), &format!("{name} {}", cfg.run.learner), &csv.curve)?;
            }
        }
        bar.finish_and_clear();
        if start >= epochs {
            println!("nothing to do: the checkpoint is at epoch {start} of {epochs} (raise --epochs to continue)");
            return Ok(ExitCode::SUCCESS);
        }
        let wall = t0.elapsed().as_secs_f64();
        let returns = episode_returns_with(&mut env, cfg.run.seed + 1, |o| learner.act(o, true))?;
        let (mean, ci) = mean_ci95(&returns);
        println!(
            "done: {} epochs, {} env steps in {wall:.1} s ({:.0} env-steps/s); last training return {}; \
             skipped updates {}, NaN events {}",
            epochs - start,
            learner.env_steps,
            ((epochs - start) as u64 * steps_per_epoch) as f64 / wall.max(1e-9),
            last_return.map_or("-".to_string(), |r| format!("{r:.2}")),
            csv.skipped_total,
            csv.nan_events_total
        );
        println!("deterministic evaluation: {mean:.2} ± {ci:.2} (95% CI, {} episodes)", returns.len());
        println!(
            "wrote {}, {}, {}, {}, {}",
            config_path(&dir).display(),
            csv.path().display(),
            csv.tensorboard_path().map_or_else(|| "-".into(), |p| p.display().to_string()),
            ckpt_path.display(),
            dir.join("returns.png").display()
        );
        Ok(ExitCode::SUCCESS)
    }
}
