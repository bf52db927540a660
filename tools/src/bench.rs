//! `diffsim bench`: CPU throughput of a task's f32 simulation over a grid of env counts and
//! thread counts.
//!
//! Per (envs, threads), after a warm-up, best of 3 repeats:
//! - forward: `steps` plain `sim.step()`s with random actions → envs·steps / s;
//! - forward+backward: ⌈steps / H⌉ rollouts of `record`, H steps, `backward` seeding the reward
//!   column with −1/(H·N) → envs·H·rollouts / s;
//! - the tape of one H-step rollout (`Sim::tape_memory`): MiB and bytes per env per step;
//! - peak RSS (`VmHWM`), reset per row through `/proc/self/clear_refs` where the kernel allows it.
//!
//! `--mode fwd` takes only the forward timing (for profiling), `--mode grad` only the
//! forward+backward one, `--mode record` the forward timing with the tape recording.
//!
//! `--task all` prints one table per task; `--json FILE` writes the rows as a JSON report and
//! `--compare OLD.json` prints new/old ratios for the rows both reports have.
//!
//! Timings only mean something in a release build.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use diffsim_engine::{Columns, NanCheck, Sim, SimFactory, SystemTimes};
use diffsim_tasks::TASKS;
use diffsim_tests::Rng;
use serde::{Deserialize, Serialize};

use crate::bench_gpu::{self, Backend, GpuScatter};
use crate::parse;
use crate::task::{self, Task, TaskOptions};

const REPEATS: usize = 3;
pub(crate) const ACTION_POOL: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum NanMode {
    /// Per env step, replaying the step with per-system checks on a hit (the engine default).
    Step,
    /// After every system.
    System,
    Off,
}

/// Which timings a bench run takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BenchMode {
    /// Forward only (no tape): for profiling the forward path.
    Fwd,
    /// Forward+backward over H-step rollouts only.
    Grad,
    /// The forward timing with the tape recording (checkpoints kept, no backward): what the
    /// first-order learners' rollouts cost before their sweep; `fwd` is the zeroth-order path.
    Record,
    /// Both.
    Both,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Env counts, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 8, 64], value_parser = parse::positive)]
    pub envs: Vec<usize>,
    /// CPU thread counts, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 2], value_parser = parse::positive)]
    pub threads: Vec<usize>,
    /// Env steps per forward timing (and per forward+backward timing, in H-step rollouts).
    #[arg(long, default_value_t = 512, value_parser = parse::positive)]
    pub steps: usize,
    /// Rollout length H of the forward+backward timing.
    #[arg(long, default_value_t = 32, value_parser = parse::positive)]
    pub horizon: usize,
    /// Task to simulate, or `all` for one table per task.
    #[arg(long, default_value = "chain-reach", value_parser = task::parser_or_all())]
    pub task: String,
    /// Also write the rows as JSON to this file (for `--compare` later).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// A JSON report of an earlier run: print new/old ratios of the rows both have.
    #[arg(long)]
    pub compare: Option<PathBuf>,
    /// Particles in the chain (default: the task's).
    #[arg(long, value_parser = parse::links)]
    pub links: Option<usize>,
    /// When to scan written columns for NaN/inf.
    #[arg(long, value_enum, default_value_t = NanMode::Step)]
    pub nan_check: NanMode,
    /// Seed of the random actions.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Which timings to take.
    #[arg(long, value_enum, default_value_t = BenchMode::Both)]
    pub mode: BenchMode,
    /// After each row, a table of where the time went per system: forward while stepping, the
    /// forward recomputed by the backward sweep, and the adjoint (CPU time summed over threads).
    /// CPU backend only.
    #[arg(long)]
    pub profile: bool,
    /// Where to simulate: cpu, gpu (wgpu; errors without an adapter or GPU kernels), or auto.
    /// GPU rows ignore --threads (one row per env count) and --mode.
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    pub backend: Backend,
    /// How the GPU's spring kernels reduce.
    #[arg(long, value_enum, default_value_t = GpuScatter::Deterministic)]
    pub gpu_scatter: GpuScatter,
}

/// One row of the table.
pub(crate) struct Measurement {
    pub fwd: Option<f64>,
    pub fwd_bwd: Option<f64>,
    pub tape_bytes: Option<usize>,
    pub tape_per_env_step: Option<f64>,
    pub peak_rss: Option<u64>,
    /// Per-system times of the timed runs (`--profile`).
    pub profile: Option<Vec<SystemTimes>>,
}

/// Asks the kernel to reset this process's peak RSS (Linux ≥ 4.0); false if it refused.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// `VmHWM` of this process in bytes, if `/proc` has it.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.trim_start_matches("VmHWM:").trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

fn nan_check(mode: NanMode) -> NanCheck {
    match mode {
        NanMode::Step => NanCheck::EveryStep,
        NanMode::System => NanCheck::EverySystem,
        NanMode::Off => NanCheck::Off,
    }
}

pub(crate) fn best_of<F: FnMut() -> anyhow::Result<()>>(mut f: F) -> anyhow::Result<Duration> {
    let mut best = Duration::MAX;
    for _ in 0..REPEATS {
        let start = Instant::now();
        f()?;
        best = best.min(start.elapsed());
    }
    Ok(best)
}

fn measure(task: &Task, args: &BenchArgs, rng: &mut Rng) -> anyhow::Result<Measurement> {
    let mut sim: Sim<f32> = task.sim()?;
    sim.schedule.nan_check = nan_check(args.nan_check);
    let envs = sim.num_envs();
    sim.state.get("reward").context("the task has no `reward` state column to seed backward with")?;
    let actions: Vec<Columns<f32>> =
        (0..ACTION_POOL).map(|_| rng.like(&sim.control.map(f64::from)).map(|x| x as f32)).collect();
    let init = sim.state.clone();
    let h = args.horizon;

    let run_steps = |sim: &mut Sim<f32>, n: usize| -> anyhow::Result<()> {
        for i in 0..n {
            sim.control.copy_from(&actions[i % ACTION_POOL]);
            sim.step()?;
        }
        Ok(())
    };
    let weight = -1.0 / (h * envs) as f32;
    let rollout = |sim: &mut Sim<f32>| -> anyhow::Result<()> {
        sim.state.copy_from(&init);
        sim.record();
        run_steps(sim, h)?;
        let grads = sim.backward(|_, adj| {
            if let Ok(r) = adj.get_mut("reward") {
                r.iter_mut().for_each(|x| *x += weight);
            }
        })?;
        black_box(&grads);
        Ok(())
    };

    // Warm-up: a short forward run and one rollout.
    let do_fwd = args.mode != BenchMode::Grad;
    let do_grad = matches!(args.mode, BenchMode::Grad | BenchMode::Both);
    sim.state.copy_from(&init);
    run_steps(&mut sim, args.steps.min(32))?;
    if do_grad {
        rollout(&mut sim)?;
    }
    if args.profile {
        sim.schedule.enable_profile();
    }

    let fwd = if do_fwd {
        let t = best_of(|| {
            sim.state.copy_from(&init);
            if args.mode == BenchMode::Record {
                sim.record();
            }
            run_steps(&mut sim, args.steps)
        })?;
        sim.stop_recording();
        Some((envs * args.steps) as f64 / t.as_secs_f64())
    } else {
        None
    };
    let (mut fwd_bwd, mut tape_bytes, mut tape_per_env_step) = (None, None, None);
    if do_grad {
        let rollouts = args.steps.div_ceil(h);
        let t = best_of(|| (0..rollouts).try_for_each(|_| rollout(&mut sim)))?;
        let tape = sim.tape_memory().context("no tape after a recorded rollout")?;
        sim.stop_recording();
        fwd_bwd = Some((envs * h * rollouts) as f64 / t.as_secs_f64());
        tape_bytes = Some(tape.total());
        tape_per_env_step = Some(tape.total() as f64 / (envs * tape.steps.max(1)) as f64);
    }
    let profile = sim.schedule.profile().map(|p| p.totals());
    Ok(Measurement { fwd, fwd_bwd, tape_bytes, tape_per_env_step, peak_rss: peak_rss(), profile })
}

/// The per-system table of `--profile`, with shares of the total CPU time of the row.
fn print_profile(times: &[SystemTimes]) {
    let total: f64 = times.iter().map(|t| (t.forward + t.recompute + t.adjoint).as_secs_f64()).sum();
    let share = |d: Duration| format!("{:.1}%", 100.0 * d.as_secs_f64() / total.max(1e-12));
    println!();
    println!("| system | forward | recompute | adjoint | forward ms | adjoint ms |");
    println!("|---|---|---|---|---|---|");
    for t in times {
        println!(
            "| {} | {} | {} | {} | {:.1} | {:.1} |",
            t.name,
            share(t.forward),
            share(t.recompute),
            share(t.adjoint),
            t.forward.as_secs_f64() * 1e3,
            t.adjoint.as_secs_f64() * 1e3
        );
    }
    println!();
}

/// A table cell: the value with `digits` decimals, or "–" when not measured.
fn cell(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".to_string(), |v| format!("{v:.digits$}"))
}

/// An env-steps/s cell: whole numbers from 10 up, two decimals below, so the slow MPM rows
/// (under 1 env-step/s on a software GPU) do not print as "0".
fn rate_cell(v: Option<f64>) -> String {
    cell(v, if v.is_some_and(|v| v < 10.0) { 2 } else { 0 })
}

/// One row of a report: a (task, envs, threads) point.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchRow {
    pub task: String,
    pub envs: usize,
    pub threads: usize,
    /// Env-steps/s forward, and forward+backward over H-step rollouts (None: not measured).
    pub fwd: Option<f64>,
    pub fwd_bwd: Option<f64>,
    pub tape_bytes: Option<usize>,
    pub tape_bytes_per_env_step: Option<f64>,
    pub peak_rss_mib: Option<f64>,
    /// `cpu` or `gpu` (reports written before the GPU backend have none: cpu).
    #[serde(default = "cpu_backend")]
    pub backend: String,
}

fn cpu_backend() -> String {
    "cpu".to_string()
}

/// What `--json` writes and `--compare` reads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    pub cores: usize,
    pub steps: usize,
    pub horizon: usize,
    pub nan_check: String,
    pub rows: Vec<BenchRow>,
}

fn read_report(path: &Path) -> anyhow::Result<BenchReport> {
    let text = std::fs::read_to_string(path).with_context(|| format!("--compare: reading {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("--compare: {} is not a `diffsim bench --json` report", path.display()))
}

/// Writes `report` to `path` through a temporary file and a rename (no half-written report).
fn write_report(path: &Path, report: &BenchReport) -> anyhow::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(report).context("serializing the bench report")?;
    std::fs::write(&tmp, text).with_context(|| format!("--json: writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("--json: renaming {} to {}", tmp.display(), path.display()))
}

/// new/old of two optional rates, as a table cell.
fn ratio(new: Option<f64>, old: Option<f64>) -> String {
    match (new, old) {
        (Some(n), Some(o)) if o > 0.0 => format!("{:.2}×", n / o),
        _ => "–".to_string(),
    }
}

pub fn run(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    if cfg!(debug_assertions) {
        eprintln!("warning: debug build: timings are not meaningful; run `cargo run --release -p diffsim-tools`");
    }
    if args.envs.is_empty() || args.threads.is_empty() {
        bail!("--envs and --threads need at least one value each");
    }
    // Read the baseline first: a bad --compare file should fail before minutes of timing.
    let baseline = args.compare.as_deref().map(read_report).transpose()?;
    let per_row = reset_peak_rss();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if let Some(&t) = args.threads.iter().find(|&&t| t > cores) {
        eprintln!("warning: --threads {t} exceeds the {cores} available core(s); those rows measure oversubscription");
    }
    let tasks: Vec<String> = if args.task == "all" {
        TASKS.iter().map(|t| t.to_string()).collect()
    } else {
        vec![args.task.replace('_', "-")]
    };
    let mut rng = Rng::new(args.seed);
    let mut rows = Vec::new();
    let device = bench_gpu::open(args.backend)?;
    for name in &tasks {
        println!(
            "bench `{name}` on {cores} core(s): f32, {} steps forward, H = {} forward+backward, nan-check {}, \
             best of {REPEATS}; peak RSS {}",
            args.steps,
            args.horizon,
            parse::flag_name(&args.nan_check),
            if per_row { "reset per row" } else { "is the process-wide running peak" },
        );
        println!();
        println!(
            "| envs | threads | fwd env-steps/s | fwd+bwd env-steps/s | tape MiB | tape B/env/step | peak RSS MiB |"
        );
        println!("|---|---|---|---|---|---|---|");
        for &envs in &args.envs {
            for &threads in &args.threads {
                let opts = TaskOptions { num_envs: envs, threads, links: args.links };
                let task = Task::build(name, opts)?;
                if per_row {
                    reset_peak_rss();
                }
                let gpu = bench_gpu::choose(&device, args.backend, &task.sim()?, name)?;
                if gpu.is_some() && threads != args.threads[0] {
                    continue;
                }
                let mut backend = if gpu.is_some() { "gpu" } else { "cpu" };
                let on_gpu = gpu.map(|g| -> anyhow::Result<Measurement> {
                    let mut sim = task.sim()?;
                    sim.schedule.nan_check = nan_check(args.nan_check);
                    bench_gpu::measure(g, &sim, args.gpu_scatter, args.steps, args.horizon, &mut rng)
                });
                let m = match on_gpu {
                    // auto: a task the GPU refuses (a scene its kernels lack, a device limit)
                    // is timed on the CPU instead, saying why.
                    Some(Err(e)) if args.backend == Backend::Auto => {
                        eprintln!("note: --backend auto: `{name}` on the CPU: the GPU run failed: {e:#}");
                        backend = "cpu";
                        measure(&task, args, &mut rng)
                    }
                    Some(m) => m,
                    None => measure(&task, args, &mut rng),
                }
                .with_context(|| format!("bench `{name}` with --envs {envs} --threads {threads} on the {backend}"))?;
                let threads_cell = if backend == "gpu" { "gpu".to_string() } else { threads.to_string() };
                let rss = m.peak_rss.map(|b| b as f64 / MIB);
                println!(
                    "| {envs} | {threads_cell} | {} | {} | {} | {} | {} |",
                    rate_cell(m.fwd),
                    rate_cell(m.fwd_bwd),
                    cell(m.tape_bytes.map(|b| b as f64 / MIB), 3),
                    cell(m.tape_per_env_step, 0),
                    cell(rss, 1)
                );
                if let Some(p) = &m.profile {
                    print_profile(p);
                }
                rows.push(BenchRow {
                    task: name.clone(),
                    envs,
                    threads,
                    fwd: m.fwd,
                    fwd_bwd: m.fwd_bwd,
                    tape_bytes: m.tape_bytes,
                    tape_bytes_per_env_step: m.tape_per_env_step,
                    peak_rss_mib: rss,
                    backend: backend.to_string(),
                });
            }
        }
        println!();
    }
    if let (Some(old), Some(path)) = (&baseline, &args.compare) {
        println!("compared with {} (new/old; above 1× is faster):", path.display());
        println!();
        println!("| task | envs | threads | fwd | fwd+bwd |");
        println!("|---|---|---|---|---|");
        for r in &rows {
            let o = old
                .rows
                .iter()
                .find(|o| o.task == r.task && o.envs == r.envs && o.threads == r.threads && o.backend == r.backend);
            match o {
                Some(o) => println!(
                    "| {} | {} | {} | {} | {} |",
                    r.task,
                    r.envs,
                    r.threads,
                    ratio(r.fwd, o.fwd),
                    ratio(r.fwd_bwd, o.fwd_bwd)
                ),
                None => println!("| {} | {} | {} | not in the old report | – |", r.task, r.envs, r.threads),
            }
        }
        if old.steps != args.steps || old.horizon != args.horizon {
            println!();
            println!(
                "note: the old report used --steps {} --horizon {}, this run --steps {} --horizon {}",
                old.steps, old.horizon, args.steps, args.horizon
            );
        }
    }
    if let Some(path) = &args.json {
        let report = BenchReport {
            cores,
            steps: args.steps,
            horizon: args.horizon,
            nan_check: parse::flag_name(&args.nan_check),
            rows,
        };
        write_report(path, &report)?;
        println!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

const MIB: f64 = 1024.0 * 1024.0;

#[cfg(test)]
mod tests {
    use super::rate_cell;

    #[test]
    fn rates_below_ten_keep_two_decimals() {
        assert_eq!(rate_cell(Some(0.673)), "0.67");
        assert_eq!(rate_cell(Some(9.994)), "9.99");
        assert_eq!(rate_cell(Some(64.6)), "65");
        assert_eq!(rate_cell(None), "–");
    }
}
