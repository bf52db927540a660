//! diffsim-engine: the ECS model (hecs components), the packed `[env][entity]` mirrors, the
//! `System` contract, the validated `Schedule`, the `Tape` for reverse mode, and the backends
//! (`Cpu` on a persistent thread pool, `Gpu` on wgpu). It holds no physics: systems live in
//! `diffsim-systems`, tasks in `diffsim-tasks`.

pub mod articulation;
pub mod columns;
pub mod components;
pub mod cpu;
pub mod error;
pub mod gpu;
pub mod gpu_mirror;
pub mod gpu_sim;
pub mod mjcf;
pub mod model;
pub mod profile;
pub mod reverse;
pub mod scalar;
pub mod scene;
pub mod schedule;
pub mod sim;
pub mod system;
pub mod tape;

pub use columns::{ColumnSpec, Columns, Layout, View, ViewMut};
pub use cpu::Cpu;
pub use error::{ColumnSet, EngineError, SceneError, ScheduleError};
pub use gpu::Gpu;
pub use gpu_mirror::GpuMirror;
pub use gpu_sim::{GpuSim, GpuSystem};
pub use model::Model;
pub use profile::{Phase, SystemProfile, SystemTimes};
pub use reverse::{Rev, replay_adjoint, vjp};
pub use scalar::{Dual, Real};
pub use scene::{EnvBuilder, Packed, Scene};
pub use schedule::{NanCheck, Schedule, Scratch};
pub use sim::{Gradients, Sim, SimFactory};
pub use system::{ANY_WIDTH, Access, ColumnAccess, ModelView, Stage, StepCx, System};
pub use tape::{Tape, TapeMemory};
