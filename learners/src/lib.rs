//! diffsim-learners: optimizers that consume simulator gradients. `open_loop` optimizes an action
//! sequence directly through the tape; `bridge` moves mirrors in and out of libtorch and pulls
//! cotangents through a network (the building block of the SAPO/SHAC/APG gradient bridge).

pub mod bridge;
pub mod open_loop;

pub use open_loop::{Objective, OpenLoop, OpenLoopConfig, OpenLoopReport, Optimizer};
