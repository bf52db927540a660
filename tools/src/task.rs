//! Task selection: the one place that maps a `--task` name to a task type, so every subcommand
//! accepts exactly `diffsim_tasks::TASKS`.

use anyhow::bail;
use clap::builder::{PossibleValue, PossibleValuesParser};
use diffsim_engine::{EngineError, Real, Sim, SimFactory};
use diffsim_tasks::{AntRun, AntRunConfig, Cartpole, CartpoleConfig, ChainReach, ChainReachConfig, TASKS};
use diffsim_tasks::{FluidMove, FluidMoveConfig, RollingFlat, RollingFlatConfig};
use diffsim_tasks::{HandFlip, HandFlipConfig};
use diffsim_tasks::{HandReorient, HandReorientConfig, Hopper, HopperConfig, Humanoid, HumanoidConfig};
use diffsim_tasks::{SoftJumper, SoftJumperConfig};

/// Underscore spellings the `--task` parser also accepts.
const ALIASES: &[(&str, &str)] = &[
    ("chain-reach", "chain_reach"),
    ("ant-run", "ant_run"),
    ("hand-reorient", "hand_reorient"),
    ("soft-jumper", "soft_jumper"),
    ("rolling-flat", "rolling_flat"),
    ("fluid-move", "fluid_move"),
    ("hand-flip", "hand_flip"),
];

/// Every task name; `ant-run` is also accepted as `ant_run` (and likewise for every hyphenated name).
fn task_values() -> impl Iterator<Item = PossibleValue> {
    TASKS.iter().map(|t| {
        let alias = ALIASES.iter().find(|(name, _)| name == t).map(|(_, a)| *a);
        PossibleValue::new(*t).aliases(alias)
    })
}

/// The `--task` parser: clap rejects any other name and lists the valid ones.
pub fn parser() -> PossibleValuesParser {
    PossibleValuesParser::new(task_values())
}

/// `parser()` plus the name `all` (every task), for `diffsim bench`.
pub fn parser_or_all() -> PossibleValuesParser {
    PossibleValuesParser::new(task_values().chain([PossibleValue::new("all")]))
}

/// What the tools may override in a task's default configuration.
#[derive(Clone, Copy, Debug)]
pub struct TaskOptions {
    pub num_envs: usize,
    pub threads: usize,
    /// Chain length (chain_reach only, ignored by other tasks); `None` keeps the task default.
    pub links: Option<usize>,
}

/// A task chosen by name; builds its `Sim` in any scalar.
#[derive(Clone, Debug)]
pub enum Task {
    ChainReach(ChainReach),
    Cartpole(Cartpole),
    AntRun(AntRun),
    Hopper(Hopper),
    Humanoid(Humanoid),
    HandReorient(HandReorient),
    SoftJumper(SoftJumper),
    RollingFlat(RollingFlat),
    FluidMove(FluidMove),
    HandFlip(HandFlip),
}

impl Task {
    pub fn build(name: &str, opts: TaskOptions) -> anyhow::Result<Task> {
        match name.replace('_', "-").as_str() {
            "chain-reach" => {
                let d = ChainReachConfig::default();
                Ok(Task::ChainReach(ChainReach::new(ChainReachConfig {
                    num_envs: opts.num_envs,
                    threads: opts.threads,
                    links: opts.links.unwrap_or(d.links),
                    ..d
                })))
            }
            "cartpole" => Ok(Task::Cartpole(Cartpole::new(CartpoleConfig {
                num_envs: opts.num_envs,
                threads: opts.threads,
                ..CartpoleConfig::default()
            }))),
            "ant-run" => Ok(Task::AntRun(AntRun::new(AntRunConfig {
                num_envs: opts.num_envs,
                threads: opts.threads,
                ..AntRunConfig::default()
            }))),
            "hopper" => Ok(Task::Hopper(Hopper::new(HopperConfig {
                num_envs: opts.num_envs,
                threads: opts.threads,
                ..HopperConfig::default()
            }))),
            "humanoid" => Ok(Task::Humanoid(Humanoid::new(HumanoidConfig {
                num_envs: opts.num_envs,
                threads: opts.threads,
                ..HumanoidConfig::default()
            }))),
            "hand-reorient" => Ok(Task::HandReorient(HandReorient::new(HandReorientConfig {
                num_envs: opts.num_envs,
                threads: opts.threads,
                ..HandReorientConfig::default()
            }))),
            "soft-jumper" => Ok(Task::SoftJumper(SoftJumper::new(SoftJumperConfig {
                num_envs: opts.num_envs,
                threads: opts.threads,
                ..SoftJumperConfig::default()
            })?)),
            "rolling-flat" => Ok(Task::RollingFlat(RollingFlat::new(RollingFlatConfig {
                num_envs: opts.num_envs,
                threads: opts.threads,
                ..RollingFlatConfig::default()
            }))),
            "fluid-move" => Ok(Task::FluidMove(FluidMove::new(FluidMoveConfig {
                num_envs: opts.num_envs,
                threads: opts.threads,
                ..FluidMoveConfig::default()
            }))),
            "hand-flip" => Ok(Task::HandFlip(HandFlip::new(HandFlipConfig {
                num_envs: opts.num_envs,
                threads: opts.threads,
                ..HandFlipConfig::default()
            }))),
            _ => bail!("unknown task `{name}` (available tasks: {})", TASKS.join(", ")),
        }
    }
}

impl SimFactory for Task {
    fn sim<R: Real>(&self) -> Result<Sim<R>, EngineError> {
        match self {
            Task::ChainReach(t) => t.sim(),
            Task::Cartpole(t) => t.sim(),
            Task::AntRun(t) => t.sim(),
            Task::Hopper(t) => t.sim(),
            Task::Humanoid(t) => t.sim(),
            Task::HandReorient(t) => t.sim(),
            Task::SoftJumper(t) => t.sim(),
            Task::RollingFlat(t) => t.sim(),
            Task::FluidMove(t) => t.sim(),
            Task::HandFlip(t) => t.sim(),
        }
    }
}
