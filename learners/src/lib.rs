//! diffsim-learners: optimizers that consume simulator gradients. `open_loop` optimizes an action
//! sequence directly through the tape; `bridge` moves mirrors in and out of libtorch and pulls
//! cotangents through a network; `sweep` is the exact per-step reverse sweep that chains a
//! `VecEnv` tape with a tch policy; `nets` holds the networks and the observation normalizer; `encoder` the
//! observation encoders (flat or PointNet) in front of them;
//! `optim` Adam/AdamW with inspectable moments; `diff_rl` the first-order learners SAPO, SHAC and
//! APG; `ppo` and `sac` the zeroth-order baselines (forward stepping only), sharing `zeroth`;
//! `config` the TOML training configuration; `checkpoint` safetensors checkpoints of a learner and
//! its env; `log` the per-epoch CSV, the training-curve plot and return statistics; `tensorboard`
//! the same columns as TensorBoard scalars.

pub mod bridge;
pub mod checkpoint;
pub mod config;
pub mod diff_rl;
pub mod encoder;
pub mod log;
pub mod nets;
pub mod open_loop;
pub mod optim;
pub mod ppo;
pub mod sac;
pub mod sweep;
pub mod tensorboard;
pub mod zeroth;

pub use checkpoint::{Checkpoint, CheckpointError};
pub use config::{ConfigBuilder, ConfigError, TrainConfig};
pub use diff_rl::{
    Algo, DiffRl, DiffRlConfig, EpochStats, LearnError, episode_returns_with, evaluate_with, td_lambda_targets,
};
pub use open_loop::{Objective, OpenLoop, OpenLoopConfig, OpenLoopReport, Optimizer};
pub use ppo::{Ppo, PpoConfig};
pub use sac::{Sac, SacConfig};
pub use sweep::{RolloutTape, StepSeed, SweepHooks};
pub use zeroth::{IterationStats, ZerothOrder};
