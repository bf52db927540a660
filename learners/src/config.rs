//! The training configuration of `diffsim train`: per-task, per-learner defaults (sapo.md §2, §3),
//! merged with a TOML file, then with `--set key=value` overrides (dotted keys, TOML-typed
//! values). Every layer is checked against the defaults before it is merged, so an unknown key,
//! a value of the wrong type or one out of range is an error naming where it came from (the file
//! or the `--set`), the key and what was expected.
//!
//! The effective configuration serializes back to TOML (`TrainConfig::to_toml`), and is what a
//! run directory's `config.toml` and a checkpoint's metadata hold.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use toml::{Table, Value};

use crate::diff_rl::{Algo, DiffRlConfig};
use crate::encoder::PointCloudLayout;

/// What went wrong while building a configuration. `source` is a file path, `--set …` or
/// `defaults`.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("{origin}: cannot read: {message}")]
    Read { origin: String, message: String },
    #[error("{origin}: not valid TOML: {message}")]
    Parse { origin: String, message: String },
    #[error("{origin}: unknown key `{key}` (valid keys here: {valid})")]
    UnknownKey { origin: String, key: String, valid: String },
    #[error("{origin}: `{key}` must be {expected}, found {found}")]
    WrongType { origin: String, key: String, expected: String, found: String },
    #[error("{origin}: `{key}` must be {expected}, found {found}")]
    OutOfRange { origin: String, key: String, expected: String, found: String },
    #[error("{origin}: `{key}` is chosen on the command line ({flag}), not in a config")]
    Fixed { origin: String, key: String, flag: String },
    #[error("--set `{arg}`: expected key=value, e.g. learner.actor_lr=1e-3")]
    BadSet { arg: String },
    #[error("unknown learner `{0}` (sapo, shac, apg)")]
    UnknownLearner(String),
}

/// `[run]`: what the run is and how long it lasts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Task name (`--task`).
    pub task: String,
    /// `sapo`, `shac` or `apg` (`--learner`).
    pub learner: String,
    /// Seed of the env resets, the network init and the action noise.
    pub seed: u64,
    /// Epochs to train; also the length of the linear LR decay.
    pub epochs: usize,
    /// Write a checkpoint every this many epochs (and always at the end); 1 (the default) loses
    /// at most the running epoch on a crash.
    pub checkpoint_every: usize,
}

/// `[env]`: the vectorized environment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvConfig {
    pub num_envs: usize,
    /// CPU threads of the simulation.
    pub threads: usize,
}

/// `[learner]`: the hyperparameters of `DiffRlConfig` (see there for their meaning).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LearnerConfig {
    pub horizon: usize,
    pub gamma: f64,
    pub lambda: f64,
    pub actor_hidden: Vec<i64>,
    pub critic_hidden: Vec<i64>,
    pub actor_lr: f64,
    pub critic_lr: f64,
    pub lr_end: f64,
    pub alpha_lr: f64,
    pub betas: [f64; 2],
    /// `adamw` (decoupled weight decay) or `adam` (no weight decay).
    pub optimizer: String,
    pub weight_decay: f64,
    pub actor_clip: f64,
    pub critic_clip: f64,
    pub alpha_clip: f64,
    pub critic_iterations: usize,
    pub critic_minibatches: usize,
    pub init_alpha: f64,
    /// SHAC's target-critic Polyak factor a (θ' ← aθ' + (1 − a)θ); unused by SAPO and APG.
    pub target_polyak: f64,
    /// Skip the epoch's update when the actor gradient norm is NaN or above this.
    pub max_grad_norm: f64,
    /// Bootstrap non-terminal values from the pre-step observation, as released mineral does
    /// (sapo.md §1.8); `false` (default) is the paper's V(o_{t+1}).
    #[serde(default)]
    pub mineral_compat_bootstrap: bool,
    /// Points of the observation's point cloud fed to a PointNet encoder (sapo.md §2.2), 0 for a
    /// plain MLP on the flat observation. The point-cloud tasks default to their particle block.
    #[serde(default)]
    pub pointnet_points: usize,
    /// First observation entry of the point cloud (`pointnet_points` xyz triples from here).
    #[serde(default)]
    pub pointnet_offset: usize,
}

/// The whole configuration of a training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub run: RunConfig,
    pub env: EnvConfig,
    pub learner: LearnerConfig,
}

/// The algorithm of a learner name.
pub fn algo_of(learner: &str) -> Result<Algo, ConfigError> {
    match learner {
        "sapo" => Ok(Algo::Sapo),
        "shac" => Ok(Algo::Shac),
        "apg" => Ok(Algo::Apg),
        other => Err(ConfigError::UnknownLearner(other.to_string())),
    }
}

/// The point block of a point-cloud task's observation (points, first entry), as the tasks lay
/// out their observations: RollingFlat, HandFlip and FluidMove start with 250 sampled particles;
/// SoftJumper has 8 phases, the loss, com_q and com_qd (15 entries) before its 195 particle
/// positions. sapo.md §2.2 runs a PointNet on each of them.
fn task_point_cloud(task: &str) -> (usize, usize) {
    match task.replace('_', "-").as_str() {
        "rolling-flat" | "hand-flip" | "fluid-move" => (250, 0),
        "soft-jumper" => (195, 15),
        _ => (0, 0),
    }
}

/// Sizes that differ per task: (num_envs, threads, epochs, actor hidden, critic hidden). AntRun
/// and HandReorient follow sapo.md §2.2; the small tasks are sized to learn in minutes.
fn task_sizes(task: &str) -> (usize, usize, usize, Vec<i64>, Vec<i64>) {
    match task.replace('_', "-").as_str() {
        "cartpole" => (16, 1, 300, vec![64, 64], vec![64, 64]),
        "chain-reach" => (16, 1, 200, vec![32, 32], vec![32, 32]),
        "hand-reorient" => (64, 2, 2000, vec![512, 256], vec![256, 256]),
        "soft-jumper" => (32, 2, 6000, vec![512, 256], vec![256, 256]),
        // sapo.md §2.2: N = 32, 4000 epochs, PointNet + MLP (`task_point_cloud`).
        "rolling-flat" => (32, 2, 4000, vec![512, 256], vec![256, 256]),
        "fluid-move" => (32, 2, 4000, vec![512, 256], vec![256, 256]),
        "hand-flip" => (32, 2, 6000, vec![512, 256], vec![256, 256]),
        // ant-run and any task without its own line: the DFlex/AntRun sizes.
        _ => (64, 2, 2000, vec![128, 64, 32], vec![64, 64]),
    }
}

impl TrainConfig {
    /// The defaults of `learner` on `task`.
    pub fn defaults(task: &str, learner: &str) -> Result<Self, ConfigError> {
        let preset = match algo_of(learner)? {
            Algo::Sapo => DiffRlConfig::sapo(),
            Algo::Shac => DiffRlConfig::shac(),
            Algo::Apg => DiffRlConfig::apg(),
        };
        let (num_envs, threads, epochs, actor_hidden, critic_hidden) = task_sizes(task);
        let (pointnet_points, pointnet_offset) = task_point_cloud(task);
        // SHAC on HandReorient (and the soft tasks): critic lr 5e-4, target Polyak 0.995 (§3.1).
        let preset = match (preset.algo, task.replace('_', "-").as_str()) {
            (Algo::Shac, "hand-reorient" | "soft-jumper" | "rolling-flat" | "fluid-move" | "hand-flip") => {
                DiffRlConfig { critic_lr: 5e-4, target_critic: Some(0.995), ..preset }
            }
            _ => preset,
        };
        Ok(Self {
            run: RunConfig {
                task: task.to_string(),
                learner: learner.to_string(),
                seed: preset.seed as u64,
                epochs,
                checkpoint_every: 1,
            },
            env: EnvConfig { num_envs, threads },
            learner: LearnerConfig {
                horizon: preset.horizon,
                gamma: preset.gamma,
                lambda: preset.lambda,
                actor_hidden,
                critic_hidden,
                actor_lr: preset.actor_lr,
                critic_lr: preset.critic_lr,
                lr_end: preset.lr_end,
                alpha_lr: preset.alpha_lr,
                betas: [preset.betas.0, preset.betas.1],
                optimizer: if preset.weight_decay.is_some() { "adamw" } else { "adam" }.to_string(),
                weight_decay: preset.weight_decay.unwrap_or(0.0),
                actor_clip: preset.actor_clip,
                critic_clip: preset.critic_clip,
                alpha_clip: preset.alpha_clip,
                critic_iterations: preset.critic_iterations,
                critic_minibatches: preset.critic_minibatches,
                init_alpha: preset.init_alpha,
                target_polyak: preset.target_critic.unwrap_or(0.2),
                max_grad_norm: preset.max_grad_norm,
                mineral_compat_bootstrap: preset.mineral_compat_bootstrap,
                pointnet_points,
                pointnet_offset,
            },
        })
    }

    /// The learner's `DiffRlConfig`: the preset of `run.learner` with these values.
    pub fn diff_rl(&self) -> Result<DiffRlConfig, ConfigError> {
        let algo = algo_of(&self.run.learner)?;
        let preset = match algo {
            Algo::Sapo => DiffRlConfig::sapo(),
            Algo::Shac => DiffRlConfig::shac(),
            Algo::Apg => DiffRlConfig::apg(),
        };
        let l = &self.learner;
        Ok(DiffRlConfig {
            horizon: l.horizon,
            epochs: self.run.epochs,
            gamma: l.gamma,
            lambda: l.lambda,
            actor_hidden: l.actor_hidden.clone(),
            critic_hidden: l.critic_hidden.clone(),
            actor_lr: l.actor_lr,
            critic_lr: l.critic_lr,
            lr_end: l.lr_end,
            alpha_lr: l.alpha_lr,
            betas: (l.betas[0], l.betas[1]),
            weight_decay: (l.optimizer == "adamw").then_some(l.weight_decay),
            actor_clip: l.actor_clip,
            critic_clip: l.critic_clip,
            alpha_clip: l.alpha_clip,
            critic_iterations: l.critic_iterations,
            critic_minibatches: l.critic_minibatches,
            init_alpha: l.init_alpha,
            target_critic: preset.target_critic.map(|_| l.target_polyak),
            max_grad_norm: l.max_grad_norm,
            mineral_compat_bootstrap: l.mineral_compat_bootstrap,
            point_cloud: (l.pointnet_points > 0)
                .then_some(PointCloudLayout { points: l.pointnet_points, offset: l.pointnet_offset }),
            seed: self.run.seed as i64,
            ..preset
        })
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a TrainConfig always serializes")
    }

    /// Parses a whole configuration (a run directory's `config.toml`), with the same checks as
    /// `ConfigBuilder` against the defaults of the task and learner it names.
    pub fn from_toml_file(path: &Path) -> Result<Self, ConfigError> {
        Self::from_table(&path.display().to_string(), read_table(path)?)
    }

    /// As `from_toml_file`, from a string (`source` names it in errors).
    pub fn from_toml_str(source: &str, text: &str) -> Result<Self, ConfigError> {
        let table = text
            .parse::<Table>()
            .map_err(|e| ConfigError::Parse { origin: source.to_string(), message: e.to_string() })?;
        Self::from_table(source, table)
    }

    fn from_table(source: &str, table: Table) -> Result<Self, ConfigError> {
        let source = source.to_string();
        let run = table.get("run").and_then(Value::as_table);
        let name = |k: &str| run.and_then(|r| r.get(k)).and_then(Value::as_str).map(str::to_string);
        let (Some(task), Some(learner)) = (name("task"), name("learner")) else {
            return Err(ConfigError::WrongType {
                origin: source,
                key: "run.task / run.learner".into(),
                expected: "strings naming the task and the learner".into(),
                found: "nothing".into(),
            });
        };
        let mut b = ConfigBuilder::new(&task, &learner)?;
        b.merge_table(&source, table, true)?;
        b.build()
    }
}

/// Merges layers onto the defaults, remembering where each key was last set.
#[derive(Clone, Debug)]
pub struct ConfigBuilder {
    table: Table,
    origin: BTreeMap<String, String>,
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a datetime",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    }
}

fn read_table(path: &Path) -> Result<Table, ConfigError> {
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::Read { origin: source.clone(), message: e.to_string() })?;
    text.parse::<Table>().map_err(|e| ConfigError::Parse { origin: source, message: e.to_string() })
}

/// `value` checked against the default `want` (same kind; an integer is accepted for a float;
/// counts must not be negative), converted to the default's kind.
fn conform(source: &str, key: &str, want: &Value, value: Value) -> Result<Value, ConfigError> {
    let wrong = |value: &Value| ConfigError::WrongType {
        origin: source.to_string(),
        key: key.to_string(),
        expected: match want {
            Value::Array(a) => match a.first() {
                Some(Value::Integer(_)) => "an array of integers".to_string(),
                Some(Value::Float(_)) => "an array of numbers".to_string(),
                _ => "an array".to_string(),
            },
            other => kind_name(other).to_string(),
        },
        found: format!("{} ({value})", kind_name(value)),
    };
    match (want, value) {
        (Value::Float(_), Value::Integer(i)) => Ok(Value::Float(i as f64)),
        (Value::Integer(_), Value::Integer(i)) if i < 0 => Err(ConfigError::OutOfRange {
            origin: source.to_string(),
            key: key.to_string(),
            expected: "a whole number ≥ 0".into(),
            found: i.to_string(),
        }),
        (Value::Array(w), Value::Array(items)) => {
            let Some(elem) = w.first() else { return Ok(Value::Array(items)) };
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                out.push(conform(source, &format!("{key}[{i}]"), elem, item)?);
            }
            Ok(Value::Array(out))
        }
        (w, v) if std::mem::discriminant(w) == std::mem::discriminant(&v) => Ok(v),
        (_, v) => Err(wrong(&v)),
    }
}

/// The keys `--task` and `--learner` choose.
const FIXED: &[(&str, &str)] = &[("run.task", "--task"), ("run.learner", "--learner")];

impl ConfigBuilder {
    pub fn new(task: &str, learner: &str) -> Result<Self, ConfigError> {
        let defaults = TrainConfig::defaults(task, learner)?;
        let table = Table::try_from(&defaults).expect("a TrainConfig always serializes");
        let mut origin = BTreeMap::new();
        for (section, t) in &table {
            for key in t.as_table().into_iter().flat_map(|t| t.keys()) {
                origin.insert(format!("{section}.{key}"), format!("defaults for {task}/{learner}"));
            }
        }
        Ok(Self { table, origin })
    }

    /// Merges a TOML file.
    pub fn merge_file(&mut self, path: &Path) -> Result<&mut Self, ConfigError> {
        let table = read_table(path)?;
        self.merge_table(&path.display().to_string(), table, false)?;
        Ok(self)
    }

    /// Merges a TOML string (`source` names it in errors).
    pub fn merge_str(&mut self, source: &str, text: &str) -> Result<&mut Self, ConfigError> {
        let table = text
            .parse::<Table>()
            .map_err(|e| ConfigError::Parse { origin: source.to_string(), message: e.to_string() })?;
        self.merge_table(source, table, false)?;
        Ok(self)
    }

    /// Applies one `--set key=value`: a dotted key, a TOML value (a bare word is a string).
    pub fn set(&mut self, arg: &str) -> Result<&mut Self, ConfigError> {
        let Some((key, raw)) = arg.split_once('=') else { return Err(ConfigError::BadSet { arg: arg.to_string() }) };
        let (key, raw) = (key.trim(), raw.trim());
        if key.is_empty() {
            return Err(ConfigError::BadSet { arg: arg.to_string() });
        }
        let value = match format!("v = {raw}").parse::<Table>() {
            Ok(mut t) => t.remove("v").expect("parsed one key"),
            Err(_) => Value::String(raw.to_string()),
        };
        let source = format!("--set {arg}");
        let mut table = Table::new();
        let mut parts = key.split('.').rev();
        let mut node = Value::Table({
            let mut t = Table::new();
            t.insert(parts.next().expect("split yields one part").to_string(), value);
            t
        });
        for part in parts {
            let mut t = Table::new();
            t.insert(part.to_string(), node);
            node = Value::Table(t);
        }
        if let Value::Table(t) = node {
            table = t;
        }
        self.merge_table(&source, table, false)?;
        Ok(self)
    }

    /// Merges `layer` key by key, checking each against the defaults. `allow_fixed`: the layer
    /// may name `run.task`/`run.learner` if they equal the current ones (a saved config).
    fn merge_table(&mut self, source: &str, layer: Table, allow_fixed: bool) -> Result<(), ConfigError> {
        for (section, value) in layer {
            let Some(Value::Table(current)) = self.table.get_mut(&section) else {
                return Err(ConfigError::UnknownKey {
                    origin: source.to_string(),
                    key: section,
                    valid: "[run], [env], [learner]".into(),
                });
            };
            let Value::Table(entries) = value else {
                return Err(ConfigError::WrongType {
                    origin: source.to_string(),
                    key: section.clone(),
                    expected: "a table".into(),
                    found: kind_name(&value).to_string(),
                });
            };
            for (key, value) in entries {
                let dotted = format!("{section}.{key}");
                let Some(want) = current.get(&key) else {
                    return Err(ConfigError::UnknownKey {
                        origin: source.to_string(),
                        key: dotted,
                        valid: current.keys().map(|k| format!("{section}.{k}")).collect::<Vec<_>>().join(", "),
                    });
                };
                let value = conform(source, &dotted, want, value)?;
                if let Some((_, flag)) = FIXED.iter().find(|(k, _)| *k == dotted)
                    && !(allow_fixed && &value == want)
                {
                    return Err(ConfigError::Fixed { origin: source.to_string(), key: dotted, flag: flag.to_string() });
                }
                current.insert(key, value);
                self.origin.insert(dotted, source.to_string());
            }
        }
        Ok(())
    }

    /// The merged configuration, range-checked.
    pub fn build(&self) -> Result<TrainConfig, ConfigError> {
        let cfg: TrainConfig = self.table.clone().try_into().map_err(|e: toml::de::Error| ConfigError::Parse {
            origin: "merged configuration".into(),
            message: e.to_string(),
        })?;
        self.validate(&cfg)?;
        Ok(cfg)
    }

    fn validate(&self, c: &TrainConfig) -> Result<(), ConfigError> {
        let out = |key: &str, expected: &str, found: String| ConfigError::OutOfRange {
            origin: self.origin.get(key).cloned().unwrap_or_else(|| "defaults".into()),
            key: key.to_string(),
            expected: expected.to_string(),
            found,
        };
        let at_least_1 = [
            ("run.epochs", c.run.epochs),
            ("run.checkpoint_every", c.run.checkpoint_every),
            ("env.num_envs", c.env.num_envs),
            ("env.threads", c.env.threads),
            ("learner.horizon", c.learner.horizon),
            ("learner.critic_iterations", c.learner.critic_iterations),
            ("learner.critic_minibatches", c.learner.critic_minibatches),
        ];
        for (key, v) in at_least_1 {
            if v < 1 {
                return Err(out(key, "a whole number ≥ 1", v.to_string()));
            }
        }
        let l = &c.learner;
        let in_unit = |key: &str, v: f64, closed_top: bool| {
            let ok = v.is_finite() && v >= 0.0 && (if closed_top { v <= 1.0 } else { v < 1.0 });
            if ok { Ok(()) } else { Err(out(key, if closed_top { "in [0, 1]" } else { "in [0, 1)" }, v.to_string())) }
        };
        in_unit("learner.gamma", l.gamma, true)?;
        in_unit("learner.lambda", l.lambda, false)?;
        in_unit("learner.betas[0]", l.betas[0], false)?;
        in_unit("learner.betas[1]", l.betas[1], false)?;
        in_unit("learner.target_polyak", l.target_polyak, true)?;
        for (key, v) in [
            ("learner.actor_lr", l.actor_lr),
            ("learner.critic_lr", l.critic_lr),
            ("learner.alpha_lr", l.alpha_lr),
            ("learner.actor_clip", l.actor_clip),
            ("learner.critic_clip", l.critic_clip),
            ("learner.alpha_clip", l.alpha_clip),
            ("learner.init_alpha", l.init_alpha),
            ("learner.max_grad_norm", l.max_grad_norm),
        ] {
            if v.is_nan() || v <= 0.0 || (v.is_infinite() && key != "learner.max_grad_norm") {
                return Err(out(key, "a finite number > 0", v.to_string()));
            }
        }
        for (key, v) in [("learner.lr_end", l.lr_end), ("learner.weight_decay", l.weight_decay)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(out(key, "a finite number ≥ 0", v.to_string()));
            }
        }
        for (key, h) in [("learner.actor_hidden", &l.actor_hidden), ("learner.critic_hidden", &l.critic_hidden)] {
            if h.is_empty() || h.iter().any(|&w| w < 1) {
                return Err(out(key, "a non-empty array of widths ≥ 1", format!("{h:?}")));
            }
        }
        if !matches!(l.optimizer.as_str(), "adam" | "adamw") {
            return Err(out("learner.optimizer", "\"adam\" or \"adamw\"", format!("{:?}", l.optimizer)));
        }
        let samples = l.horizon * c.env.num_envs;
        if l.critic_minibatches > samples {
            return Err(out(
                "learner.critic_minibatches",
                &format!("at most horizon × num_envs = {samples}"),
                l.critic_minibatches.to_string(),
            ));
        }
        Ok(())
    }
}
