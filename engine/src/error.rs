//! Typed errors of the engine. Every variant names what a user needs to find the fault: the
//! system, the column, the environment, the expected and found shape.

use thiserror::Error;

/// Which column set a system touches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ColumnSet {
    State,
    Control,
    Model,
}

impl std::fmt::Display for ColumnSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ColumnSet::State => "state",
            ColumnSet::Control => "control",
            ColumnSet::Model => "model",
        })
    }
}

#[derive(Debug, Error, Clone, PartialEq)]
pub enum EngineError {
    #[error("unknown column `{column}` (available: {available:?})")]
    UnknownColumn { column: String, available: Vec<String> },

    #[error("column `{column}` already exists")]
    DuplicateColumn { column: String },

    #[error("column `{column}`: expected {expected} scalars, found {found}")]
    ShapeMismatch { column: String, expected: usize, found: usize },

    #[error(transparent)]
    Schedule(#[from] ScheduleError),

    #[error(transparent)]
    Scene(#[from] SceneError),

    #[error(
        "non-finite value {value} in {set} column `{column}` written by system `{system}` \
         (environment {env}, entity {entity}, component {component}, env step {step})"
    )]
    NonFinite {
        system: String,
        set: ColumnSet,
        column: String,
        env: usize,
        entity: usize,
        component: usize,
        step: usize,
        value: f64,
    },

    #[error("asset: {0}")]
    Asset(String),

    #[error("tape: {0}")]
    Tape(String),

    #[error("gpu: {0}")]
    Gpu(String),
}

/// Errors found when a schedule is checked against the layouts it will run on.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum ScheduleError {
    #[error(
        "system `{system}` reads {set} column `{column}` but no system writes it and it is not a control or model input"
    )]
    MissingWriter { system: String, set: ColumnSet, column: String },

    #[error(
        "system `{system}` accumulates into {set} column `{column}` before any system in stage {stage} initializes it"
    )]
    AccumulateBeforeWrite { system: String, set: ColumnSet, column: String, stage: String },

    #[error("systems `{first}` and `{second}` both write {set} column `{column}` in stage {stage}")]
    DoubleWriter { first: String, second: String, set: ColumnSet, column: String, stage: String },

    #[error("system `{system}` uses {set} column `{column}` which the scene does not have (available: {available:?})")]
    UnknownColumn { system: String, set: ColumnSet, column: String, available: Vec<String> },

    #[error("system `{system}` expects {set} column `{column}` with width {expected}, the scene has width {found}")]
    WrongShape { system: String, set: ColumnSet, column: String, expected: usize, found: usize },

    #[error("system `{system}` writes {set} column `{column}`; only state columns may be written")]
    WriteToInput { system: String, set: ColumnSet, column: String },

    #[error("schedule needs substeps >= 1 and dt > 0 (got substeps {substeps}, dt {dt})")]
    BadTiming { substeps: usize, dt: f64 },
}

/// Errors found while packing the ECS world into `[env][entity]` mirrors.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum SceneError {
    #[error(
        "environment {env} has {found} {kind}, environment 0 has {expected}: environments run in lock-step and must have the same entities"
    )]
    EnvMismatch { kind: &'static str, env: usize, expected: usize, found: usize },

    #[error("{kind} in environment {env} references an entity {reason}")]
    BadReference { kind: &'static str, env: usize, reason: String },

    #[error("{kind} in environment {env} has invalid {field} = {value}: {expected}")]
    BadParameter { kind: &'static str, env: usize, field: &'static str, value: f64, expected: &'static str },

    #[error("scene has no environments")]
    Empty,
}
