//! Checkpoints of a `DiffRl` learner and its `VecEnv` in one safetensors file, written atomically
//! (temp file in the same directory, fsync, rename, fsync of the directory), so a crash leaves
//! either the old checkpoint or the new one.
//!
//! Tensors (all little-endian, f32 unless noted):
//! - `actor/…`, `critic/…`, `target/…` (SHAC), `alpha/log_alpha`: the network variables;
//! - `opt/{actor,critic,alpha}/{m,v}/<variable>` Adam moments, `opt/…/steps` (i64);
//! - `obs_rms/{mean,var,count}` (f64): the observation normalizer;
//! - `learner/ep_return` (f64), `learner/ep_length` (i64): the episodes in progress;
//! - `env/state/<column>`, `env/control/<column>`, `env/episode`, `env/progress` (i64): the
//!   simulation state and episode bookkeeping, so a resumed run continues the same episodes.
//!
//! Metadata (strings): `format`, `task`, `learner`, `obs_dim`, `act_dim`, `num_envs`, `epoch`,
//! `env_steps`, `seed`, `env_seed`, `config` (the effective TOML). The RNG needs no state: tch is
//! re-seeded from (seed, epoch) every epoch (`diff_rl::epoch_seed`) and the env's init noise is a
//! function of (seed, env, episode).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use diffsim_tasks::vec_env::EnvCounters;
use diffsim_tasks::{Task, VecEnv};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use tch::{Kind, Tensor};

use crate::config::{ConfigError, TrainConfig};
use crate::diff_rl::DiffRl;
use crate::optim::Adam;

/// The `format` metadata of files this module writes.
pub const FORMAT: &str = "diffsim-checkpoint-1";

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("{path}: not a readable diffsim checkpoint ({message}); the file may be truncated or corrupt")]
    Corrupt { path: PathBuf, message: String },
    #[error("{path}: missing tensor `{name}`")]
    Missing { path: PathBuf, name: String },
    #[error("{path}: {what} mismatch: the checkpoint has {found}, this run needs {expected}")]
    Mismatch { path: PathBuf, what: String, expected: String, found: String },
    #[error("{path}: the stored config is invalid: {source}")]
    Config { path: PathBuf, source: Box<ConfigError> },
}

/// One stored tensor.
#[derive(Clone, Debug)]
struct Blob {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl Blob {
    fn f32(shape: Vec<usize>, data: &[f32]) -> Self {
        Self { dtype: Dtype::F32, shape, bytes: data.iter().flat_map(|x| x.to_le_bytes()).collect() }
    }
    fn f64(data: &[f64]) -> Self {
        Self { dtype: Dtype::F64, shape: vec![data.len()], bytes: data.iter().flat_map(|x| x.to_le_bytes()).collect() }
    }
    fn i64(data: &[i64]) -> Self {
        Self { dtype: Dtype::I64, shape: vec![data.len()], bytes: data.iter().flat_map(|x| x.to_le_bytes()).collect() }
    }
    fn tensor(t: &Tensor) -> Self {
        let t = t.detach().to_kind(Kind::Float).contiguous();
        let shape = t.size().iter().map(|&d| d as usize).collect();
        let data = Vec::<f32>::try_from(&t.view([-1])).expect("an f32 tensor");
        Self::f32(shape, &data)
    }
}

/// A checkpoint read back from disk.
#[derive(Debug)]
pub struct Checkpoint {
    pub path: PathBuf,
    pub config: TrainConfig,
    pub task: String,
    pub learner: String,
    pub obs_dim: usize,
    pub act_dim: usize,
    pub num_envs: usize,
    pub epoch: usize,
    pub env_steps: u64,
    env_seed: u64,
    tensors: HashMap<String, Blob>,
}

/// Variables of `vs` that the optimizer steps, sorted by name (the optimizer's order).
fn sorted_trainable(vs: &tch::nn::VarStore) -> Vec<String> {
    let mut names: Vec<String> =
        vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).map(|(n, _)| n).collect();
    names.sort();
    names
}

fn put_opt(out: &mut Vec<(String, Blob)>, prefix: &str, opt: &Adam, names: &[String]) {
    for (i, name) in names.iter().enumerate() {
        out.push((format!("opt/{prefix}/m/{name}"), Blob::tensor(&opt.m[i])));
        out.push((format!("opt/{prefix}/v/{name}"), Blob::tensor(&opt.v[i])));
    }
    out.push((format!("opt/{prefix}/steps"), Blob::i64(&[opt.steps as i64])));
}

/// Writes `bytes` to `path` atomically: a temp file beside it, fsync, rename, fsync the directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Saves `learner`, its optimizers and normalizer, and `env`'s state and episode bookkeeping.
pub fn save<T: Task>(path: &Path, learner: &DiffRl, env: &VecEnv<T>, cfg: &TrainConfig) -> Result<(), CheckpointError> {
    let io = |e: &dyn std::fmt::Display| CheckpointError::Io { path: path.to_path_buf(), message: e.to_string() };
    let mut out: Vec<(String, Blob)> = Vec::new();
    let stores = [
        ("actor", Some(&learner.actor_vs)),
        ("critic", Some(&learner.critic_vs)),
        ("target", learner.target_vs.as_ref()),
        ("alpha", Some(&learner.alpha_vs)),
    ];
    for (prefix, vs) in stores {
        for (name, t) in vs.map(|v| v.variables()).unwrap_or_default() {
            out.push((format!("{prefix}/{name}"), Blob::tensor(&t)));
        }
    }
    put_opt(&mut out, "actor", &learner.opt_actor, &sorted_trainable(&learner.actor_vs));
    if let Some(o) = &learner.opt_critic {
        put_opt(&mut out, "critic", o, &sorted_trainable(&learner.critic_vs));
    }
    if let Some(o) = &learner.opt_alpha {
        put_opt(&mut out, "alpha", o, &sorted_trainable(&learner.alpha_vs));
    }
    let rms = &learner.obs_rms;
    out.push(("obs_rms/mean".into(), Blob::f64(&rms.mean)));
    out.push(("obs_rms/var".into(), Blob::f64(&rms.var)));
    out.push(("obs_rms/count".into(), Blob::f64(&[rms.count])));
    out.push(("learner/ep_return".into(), Blob::f64(&learner.ep_return)));
    out.push(("learner/ep_length".into(), Blob::i64(&learner.ep_length.iter().map(|&l| l as i64).collect::<Vec<_>>())));
    let sim = env.sim();
    for (set, cols) in [("state", &sim.state), ("control", &sim.control)] {
        for (spec, data) in cols.columns() {
            out.push((format!("env/{set}/{}", spec.name), Blob::f32(vec![data.len()], data)));
        }
    }
    let counters = env.counters();
    out.push(("env/episode".into(), Blob::i64(&counters.episode.iter().map(|&e| e as i64).collect::<Vec<_>>())));
    out.push(("env/progress".into(), Blob::i64(&counters.progress.iter().map(|&p| p as i64).collect::<Vec<_>>())));

    let spec = env.spec();
    let meta: HashMap<String, String> = [
        ("format", FORMAT.to_string()),
        ("task", cfg.run.task.clone()),
        ("learner", cfg.run.learner.clone()),
        ("obs_dim", spec.obs_dim.to_string()),
        ("act_dim", spec.act_dim.to_string()),
        ("num_envs", spec.num_envs.to_string()),
        ("epoch", learner.epoch.to_string()),
        ("env_steps", learner.env_steps.to_string()),
        ("seed", cfg.run.seed.to_string()),
        ("env_seed", counters.seed.to_string()),
        ("config", cfg.to_toml()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let views: Vec<(String, TensorView<'_>)> = out
        .iter()
        .map(|(n, b)| Ok((n.clone(), TensorView::new(b.dtype, b.shape.clone(), &b.bytes).map_err(|e| io(&e))?)))
        .collect::<Result<_, CheckpointError>>()?;
    let bytes = safetensors::tensor::serialize(views, &Some(meta)).map_err(|e| io(&e))?;
    write_atomically(path, &bytes).map_err(|e| io(&e))
}

impl Checkpoint {
    /// Reads and parses `path` (header, metadata, every tensor).
    pub fn read(path: &Path) -> Result<Self, CheckpointError> {
        let p = path.to_path_buf();
        let bytes = std::fs::read(path).map_err(|e| CheckpointError::Io { path: p.clone(), message: e.to_string() })?;
        let corrupt = |message: String| CheckpointError::Corrupt { path: p.clone(), message };
        let st = SafeTensors::deserialize(&bytes).map_err(|e| corrupt(format!("{e:?}")))?;
        let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| corrupt(format!("{e:?}")))?;
        let meta = header.metadata().clone().unwrap_or_default();
        let get = |k: &str| meta.get(k).cloned().ok_or_else(|| corrupt(format!("no `{k}` in the metadata")));
        let format = get("format")?;
        if format != FORMAT {
            return Err(CheckpointError::Mismatch {
                path: p.clone(),
                what: "format".into(),
                expected: FORMAT.into(),
                found: format,
            });
        }
        let num = |k: &str| -> Result<u64, CheckpointError> {
            let v = get(k)?;
            v.parse().map_err(|_| corrupt(format!("metadata `{k}` = `{v}` is not a whole number")))
        };
        let config = TrainConfig::from_toml_str(&format!("{} (config)", p.display()), &get("config")?)
            .map_err(|source| CheckpointError::Config { path: p.clone(), source: Box::new(source) })?;
        let mut tensors = HashMap::new();
        for (name, view) in st.tensors() {
            tensors
                .insert(name, Blob { dtype: view.dtype(), shape: view.shape().to_vec(), bytes: view.data().to_vec() });
        }
        Ok(Self {
            task: get("task")?,
            learner: get("learner")?,
            obs_dim: num("obs_dim")? as usize,
            act_dim: num("act_dim")? as usize,
            num_envs: num("num_envs")? as usize,
            epoch: num("epoch")? as usize,
            env_steps: num("env_steps")?,
            env_seed: num("env_seed")?,
            config,
            tensors,
            path: p,
        })
    }

    fn mismatch(&self, what: &str, expected: impl ToString, found: impl ToString) -> CheckpointError {
        CheckpointError::Mismatch {
            path: self.path.clone(),
            what: what.to_string(),
            expected: expected.to_string(),
            found: found.to_string(),
        }
    }

    /// Errors unless the checkpoint was written by `learner` on `task` with these sizes.
    pub fn check(&self, task: &str, learner: &str, obs_dim: usize, act_dim: usize) -> Result<(), CheckpointError> {
        if self.task.replace('_', "-") != task.replace('_', "-") {
            return Err(self.mismatch("task", task, &self.task));
        }
        if self.learner != learner {
            return Err(self.mismatch("learner", learner, &self.learner));
        }
        if self.obs_dim != obs_dim {
            return Err(self.mismatch("observation size", obs_dim, self.obs_dim));
        }
        if self.act_dim != act_dim {
            return Err(self.mismatch("action size", act_dim, self.act_dim));
        }
        Ok(())
    }

    fn blob(&self, name: &str) -> Result<&Blob, CheckpointError> {
        self.tensors
            .get(name)
            .ok_or_else(|| CheckpointError::Missing { path: self.path.clone(), name: name.to_string() })
    }

    fn f32s(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, CheckpointError> {
        let b = self.blob(name)?;
        if b.dtype != Dtype::F32 || b.shape != shape {
            return Err(self.mismatch(
                &format!("tensor `{name}`"),
                format!("F32 {shape:?}"),
                format!("{:?} {:?}", b.dtype, b.shape),
            ));
        }
        Ok(b.bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect())
    }

    fn f64s(&self, name: &str, len: usize) -> Result<Vec<f64>, CheckpointError> {
        let b = self.blob(name)?;
        if b.dtype != Dtype::F64 || b.shape != [len] {
            return Err(self.mismatch(
                &format!("tensor `{name}`"),
                format!("F64 [{len}]"),
                format!("{:?} {:?}", b.dtype, b.shape),
            ));
        }
        Ok(b.bytes.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect())
    }

    fn i64s(&self, name: &str, len: usize) -> Result<Vec<i64>, CheckpointError> {
        let b = self.blob(name)?;
        if b.dtype != Dtype::I64 || b.shape != [len] {
            return Err(self.mismatch(
                &format!("tensor `{name}`"),
                format!("I64 [{len}]"),
                format!("{:?} {:?}", b.dtype, b.shape),
            ));
        }
        Ok(b.bytes.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes"))).collect())
    }

    /// Copies the stored values into `t` (shapes must match).
    fn load_into(&self, name: &str, t: &Tensor) -> Result<(), CheckpointError> {
        let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
        let data = self.f32s(name, &shape)?;
        let src = Tensor::from_slice(&data).view(t.size().as_slice()).to_kind(t.kind());
        tch::no_grad(|| t.shallow_clone().copy_(&src));
        Ok(())
    }

    fn load_store(&self, prefix: &str, vs: &tch::nn::VarStore) -> Result<(), CheckpointError> {
        for (name, t) in vs.variables() {
            self.load_into(&format!("{prefix}/{name}"), &t)?;
        }
        Ok(())
    }

    fn load_opt(&self, prefix: &str, opt: &mut Adam, names: &[String]) -> Result<(), CheckpointError> {
        for (i, name) in names.iter().enumerate() {
            self.load_into(&format!("opt/{prefix}/m/{name}"), &opt.m[i])?;
            self.load_into(&format!("opt/{prefix}/v/{name}"), &opt.v[i])?;
        }
        opt.steps = self.i64s(&format!("opt/{prefix}/steps"), 1)?[0] as u64;
        Ok(())
    }

    /// Restores networks, optimizer moments, normalizer, counters and episodes in progress into a
    /// learner built with the stored config (`DiffRl::new(obs, act, envs, config.diff_rl())`).
    pub fn restore_learner(&self, l: &mut DiffRl) -> Result<(), CheckpointError> {
        self.check(&self.config.run.task, &self.config.run.learner, l.obs_dim, l.act_dim)?;
        self.load_store("actor", &l.actor_vs)?;
        self.load_store("critic", &l.critic_vs)?;
        if let Some(t) = &l.target_vs {
            self.load_store("target", t)?;
        }
        self.load_store("alpha", &l.alpha_vs)?;
        let names = sorted_trainable(&l.actor_vs);
        self.load_opt("actor", &mut l.opt_actor, &names)?;
        if let Some(o) = &mut l.opt_critic {
            self.load_opt("critic", o, &sorted_trainable(&l.critic_vs))?;
        }
        if let Some(o) = &mut l.opt_alpha {
            self.load_opt("alpha", o, &sorted_trainable(&l.alpha_vs))?;
        }
        l.obs_rms.mean = self.f64s("obs_rms/mean", l.obs_dim)?;
        l.obs_rms.var = self.f64s("obs_rms/var", l.obs_dim)?;
        l.obs_rms.count = self.f64s("obs_rms/count", 1)?[0];
        let n = l.ep_return.len();
        if n != self.num_envs {
            return Err(self.mismatch("number of envs", n, self.num_envs));
        }
        l.ep_return = self.f64s("learner/ep_return", n)?;
        l.ep_length = self.i64s("learner/ep_length", n)?.iter().map(|&x| x as usize).collect();
        l.epoch = self.epoch;
        l.env_steps = self.env_steps;
        Ok(())
    }

    /// Restores only what acting needs (actor and observation normalizer) into a learner built
    /// with the stored config and any number of envs: what `diffsim eval` uses.
    pub fn restore_policy(&self, l: &mut DiffRl) -> Result<(), CheckpointError> {
        self.check(&self.config.run.task, &self.config.run.learner, l.obs_dim, l.act_dim)?;
        self.load_store("actor", &l.actor_vs)?;
        l.obs_rms.mean = self.f64s("obs_rms/mean", l.obs_dim)?;
        l.obs_rms.var = self.f64s("obs_rms/var", l.obs_dim)?;
        l.obs_rms.count = self.f64s("obs_rms/count", 1)?[0];
        l.epoch = self.epoch;
        l.env_steps = self.env_steps;
        Ok(())
    }

    /// Restores the simulation state, control and episode bookkeeping of `env`; returns its
    /// current observations.
    pub fn restore_env<T: Task>(&self, env: &mut VecEnv<T>) -> Result<ndarray::Array2<f32>, CheckpointError> {
        let n = env.num_envs();
        if n != self.num_envs {
            return Err(self.mismatch("number of envs", n, self.num_envs));
        }
        let episode = self.i64s("env/episode", n)?.iter().map(|&x| x as u64).collect();
        let progress = self.i64s("env/progress", n)?.iter().map(|&x| x as usize).collect();
        let engine =
            |e: diffsim_engine::EngineError| CheckpointError::Io { path: self.path.clone(), message: e.to_string() };
        env.restore_counters(&EnvCounters { seed: self.env_seed, episode, progress }).map_err(engine)?;
        let sim = env.sim_mut();
        for (set, cols) in [("state", &mut sim.state), ("control", &mut sim.control)] {
            let names: Vec<(String, usize)> = cols.columns().map(|(s, d)| (s.name.clone(), d.len())).collect();
            for (name, len) in names {
                let data = self.f32s(&format!("env/{set}/{name}"), &[len])?;
                cols.set(&name, &data).map_err(engine)?;
            }
        }
        env.obs().map_err(engine)
    }
}
