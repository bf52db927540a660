//! `diffsim`: command-line tools for the simulator.
//!
//! - `check-grad`: per-system and whole-rollout gradient errors of a task (duals and FD);
//! - `bench`: forward and forward+backward throughput, tape memory and peak RSS on the CPU;
//! - `train`: open-loop trajectory optimization of a task's actions, or SAPO/SHAC/APG with a TOML
//!   config, logs and checkpoints;
//! - `eval`: mean ± 95% CI return of a checkpoint's policy;
//! - `render`: a rollout (random, zero or a checkpoint's policy) drawn headless with wgpu into a
//!   GIF or PNG frames;
//! - `gpu-info`: the wgpu adapter and its limits.
//!
//! `train`, `eval` and `render` need the `learn` feature (default; libtorch).
//!
//! Exit codes: 0 success, 1 an error or a failed gradient check, 2 bad flags (clap) or no GPU.

mod bench;
mod bench_gpu;
mod check_grad;
#[cfg(feature = "learn")]
mod eval;
mod gpu_info;
mod parse;
#[cfg(feature = "learn")]
mod render;
mod task;
#[cfg(feature = "learn")]
mod train;
#[cfg(feature = "learn")]
mod train_rl;
#[cfg(feature = "learn")]
mod train_zo;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "diffsim", version, about = "diffsim: gradient checks, benchmarks and training from the command line")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Per-system gradient errors (adjoint vs duals and finite differences) of a task's schedule.
    CheckGrad(check_grad::CheckGradArgs),
    /// Forward and forward+backward env-steps/s, tape memory and peak RSS (build with --release).
    Bench(bench::BenchArgs),
    /// Open-loop trajectory optimization, or SAPO/SHAC/APG policy training (--learner).
    #[cfg(feature = "learn")]
    Train(train::TrainArgs),
    /// Mean ± 95% CI episode return of a checkpoint's policy.
    #[cfg(feature = "learn")]
    Eval(eval::EvalArgs),
    /// Render a rollout headless (wgpu) into an animated GIF or a directory of PNG frames.
    #[cfg(feature = "learn")]
    Render(render::RenderArgs),
    /// The wgpu adapter the GPU backend would use, and its limits.
    GpuInfo,
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::CheckGrad(a) => check_grad::run(&a),
        Command::Bench(a) => bench::run(&a),
        #[cfg(feature = "learn")]
        Command::Train(a) => train::run(&a),
        #[cfg(feature = "learn")]
        Command::Eval(a) => eval::run(&a),
        #[cfg(feature = "learn")]
        Command::Render(a) => render::run(&a),
        Command::GpuInfo => Ok(gpu_info::run()),
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("diffsim").chain(args.iter().copied())).map(|c| c.command)
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bench_parses_backend_and_scatter() {
        let Ok(Command::Bench(b)) = parse(&["bench", "--backend", "gpu", "--gpu-scatter", "atomic"]) else {
            panic!("bench did not parse");
        };
        assert_eq!(b.backend, bench_gpu::Backend::Gpu);
        assert_eq!(b.gpu_scatter, bench_gpu::GpuScatter::Atomic);
        assert!(parse(&["bench", "--backend", "tpu"]).is_err());
        let Ok(Command::Bench(b)) = parse(&["bench"]) else { panic!("bench did not parse") };
        assert_eq!(b.backend, bench_gpu::Backend::Cpu);
    }

    #[test]
    fn bench_parses_comma_separated_lists() {
        let Ok(Command::Bench(b)) = parse(&["bench", "--envs", "1,8,64", "--threads", "2"]) else {
            panic!("bench did not parse");
        };
        assert_eq!(b.envs, [1, 8, 64]);
        assert_eq!(b.threads, [2]);
    }

    #[test]
    fn bench_defaults_are_the_documented_grid() {
        let Ok(Command::Bench(b)) = parse(&["bench"]) else { panic!("bench did not parse") };
        assert_eq!((b.envs, b.threads, b.task.as_str()), (vec![1, 8, 64], vec![1, 2], "chain-reach"));
    }

    #[test]
    #[cfg(feature = "learn")]
    fn bad_lists_and_values_are_rejected_with_the_flag_named() {
        for bad in [
            &["bench", "--envs", "1,x,64"][..],
            &["bench", "--envs", "0"],
            &["bench", "--envs", "1,,2"],
            &["bench", "--links", "1"],
            &["bench", "--nan-check", "maybe"],
            &["train", "--task", "chain_reach", "--lr", "-1"],
            &["train", "--task", "chain_reach", "--lr", "0"],
            &["train", "--task", "chain_reach", "--optimizer", "sgd"],
        ] {
            let err = parse(bad).expect_err(&format!("{bad:?} parsed"));
            let flag = bad.iter().rev().nth(1).expect("flag before value");
            assert!(err.to_string().contains(flag), "{bad:?}: {err}");
        }
    }

    #[test]
    fn unknown_task_lists_the_tasks() {
        let err = parse(&["check-grad", "--task", "nope"]).expect_err("unknown task parsed");
        for t in diffsim_tasks::TASKS {
            assert!(err.to_string().contains(t), "{err}");
        }
    }

    #[test]
    #[cfg(feature = "learn")]
    fn train_defaults_are_the_tested_configuration() {
        let Ok(Command::Train(t)) = parse(&["train", "--task", "chain_reach"]) else { panic!("train did not parse") };
        assert_eq!((t.iterations, t.lr, t.horizon, t.envs), (60, 100.0, None, None));
        assert_eq!((t.optimizer, t.objective), (train::OptimizerArg::Gd, train::ObjectiveArg::Final));
    }
}
