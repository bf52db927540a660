//! diffsim-tasks: one module per task. A task is a scene builder (entities with components), its
//! observation and reward systems (forward + adjoint), and a default config.

pub mod ant_run;
pub mod ant_run_gpu;
pub mod cartpole;
pub mod chain_reach;
pub mod fluid_move;
pub mod hand_flip;
pub mod hand_reorient;
pub mod hand_reorient_gpu;
pub mod hopper;
pub mod hopper_gpu;
pub mod humanoid;
pub mod humanoid_gpu;
pub mod mpm_setup;
pub mod rolling_flat;
pub mod soft_jumper;
pub mod torso;
pub mod vec_env;

pub use ant_run::{AntRun, AntRunConfig};
pub use cartpole::{Cartpole, CartpoleConfig};
pub use chain_reach::{ChainReach, ChainReachConfig};
pub use fluid_move::{FluidMove, FluidMoveConfig};
pub use hand_flip::{HandFlip, HandFlipConfig};
pub use hand_reorient::{HandReorient, HandReorientConfig};
pub use hopper::{Hopper, HopperConfig};
pub use humanoid::{Humanoid, HumanoidConfig};
pub use rolling_flat::{RollingFlat, RollingFlatConfig};
pub use soft_jumper::{SoftJumper, SoftJumperConfig};
pub use vec_env::{NanEvent, StepResult, StepSeeds, Task, TaskRng, TaskSpec, VecEnv};

/// The path of a bundled asset (`assets/<name>`, an MJCF model): under `$DIFFSIM_ASSETS` when it
/// is set, for a binary run away from the source tree it was built in (a copied `diffsim` or
/// test binary on another machine); else in this repository's `assets/`.
pub fn asset(name: &str) -> std::path::PathBuf {
    match std::env::var_os("DIFFSIM_ASSETS") {
        Some(dir) => std::path::PathBuf::from(dir).join(name),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets").join(name),
    }
}

/// Task names the CLI accepts (it also accepts them with `_` for `-`).
pub const TASKS: &[&str] = &[
    "chain-reach",
    "cartpole",
    "ant-run",
    "hopper",
    "humanoid",
    "hand-reorient",
    "soft-jumper",
    "rolling-flat",
    "fluid-move",
    "hand-flip",
];
