//! `VecEnv`: a batched, Gymnasium-style vector environment over one `Sim<R>` (f32 to train, f64 to
//! check gradients), and the `Task` trait a task implements to run in it.
//!
//! This module owns the RL conventions layered on a task's simulation; physics, observations and
//! rewards stay in the task's systems. It owns:
//! - the `[N, dim]` array interface (obs, reward, terminated, truncated) over the task's columns;
//! - actions: shape and finiteness checks, then clip to [-1, 1] and × `TaskSpec::action_scale`
//!   (Rewarped §6);
//! - episodes: per-env progress counters, `truncated = progress > episode_length − 1`,
//!   `terminated` from the task's optional column, and autoreset inside `step` (the returned obs of
//!   an env that ended is its new episode's first obs; the terminal obs is in `final_obs`);
//! - reproducible init noise: env `e`'s episode `k` after `reset(seed)` draws from
//!   `TaskRng::for_episode(seed, e, k)`, independent of thread count and of the other envs;
//! - the differentiable path for first-order learners: `record` / `backward` take ∂L/∂obs_t and
//!   ∂L/∂reward_t and return ∂L/∂action_t.
//!
//! Gradients at resets are per environment: an autoreset of env `e` after step t cuts only `e`'s
//! path on the tape (`Sim::reset_envs`), the other envs keep theirs. (Rewarped rebuilds the whole
//! state on any reset, which cuts every env's state gradient, §2.2.)
//!
//! Precision: a task draws its init noise in f32 (`Task::reset_env`), and a `VecEnv<T, f64>` widens
//! the drawn rows exactly; everything after that (physics, obs, rewards, adjoints) runs in `R`.

use diffsim_engine::{ColumnSet, ColumnSpec, Columns, EngineError, NanCheck, Packed, Real, Sim, SimFactory, Stage};
use ndarray::{Array1, Array2, ArrayView1, ArrayView2};

mod gpu;

/// What a learner feeds the reverse sweep at step t (see `VecEnv::backward_sweep`).
#[derive(Clone, Debug, PartialEq)]
pub struct StepSeeds<R = f32> {
    /// ∂L/∂obs_t, `[N, obs_dim]` (rows of envs reset after step t are dropped).
    pub obs: Array2<R>,
    /// ∂L/∂reward_t, `[N]`.
    pub reward: Array1<R>,
    /// ∂L/∂final_obs of envs that ended at step t, `[N]` of optional `[obs_dim]`.
    pub final_obs: Vec<Option<Array1<R>>>,
}

/// What a `VecEnv` needs to know about a task: sizes, conventions and the column names it reads.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskSpec {
    pub name: String,
    pub num_envs: usize,
    pub obs_dim: usize,
    pub act_dim: usize,
    /// Env steps after which an episode is truncated.
    pub episode_length: usize,
    /// Control = clip(action, -1, 1) × action_scale. 1.0 for tasks whose systems scale actions.
    pub action_scale: f32,
    /// State column of the observation, `[1, obs_dim]` per env, written by a Post system.
    pub obs: String,
    /// State column of the reward, `[1, 1]` per env, written by a Post system.
    pub reward: String,
    /// Optional state column `[1, 1]` per env; value > 0.5 means terminated. Written by the task's
    /// Post systems and never differentiated.
    pub terminated: Option<String>,
    /// Control column the actions go to, `[1, act_dim]` per env.
    pub act: String,
}

impl TaskSpec {
    /// The spec every task here uses: state columns `obs` and `reward`, control column `act`,
    /// `action_scale` 1 (the tasks' own systems scale their actions: forces, activations,
    /// kinematic deltas), and no termination column (`terminating` adds one).
    pub fn new(name: &str, num_envs: usize, obs_dim: usize, act_dim: usize, episode_length: usize) -> Self {
        Self {
            name: name.into(),
            num_envs,
            obs_dim,
            act_dim,
            episode_length,
            action_scale: 1.0,
            obs: "obs".into(),
            reward: "reward".into(),
            terminated: None,
            act: "act".into(),
        }
    }

    /// `self` with the state column `terminated` (`[1, 1]` per env, > 0.5 ends the episode).
    pub fn terminating(self) -> Self {
        Self { terminated: Some("terminated".into()), ..self }
    }

    /// Adds the columns a `VecEnv` reads to a packed scene, named and sized as this spec says: the
    /// observation, reward and (if any) termination state columns and the action control.
    pub fn add_columns(&self, packed: &mut Packed) -> Result<(), EngineError> {
        packed.add_state(ColumnSpec::new(&self.obs, 1, self.obs_dim))?;
        packed.add_state(ColumnSpec::new(&self.reward, 1, 1))?;
        if let Some(t) = &self.terminated {
            packed.add_state(ColumnSpec::new(t, 1, 1))?;
        }
        packed.add_control(ColumnSpec::new(&self.act, 1, self.act_dim));
        Ok(())
    }
}

/// A task a `VecEnv` can run: a simulation factory plus its spec and its per-env init noise.
pub trait Task: SimFactory {
    fn spec(&self) -> TaskSpec;
    /// Writes env `env`'s initial state into `state`, whose rows for `env` hold the task's nominal
    /// initial state on entry (apply the init noise there). Touch no other env's rows.
    fn reset_env(&self, env: usize, rng: &mut TaskRng, state: &mut Columns<f32>) -> Result<(), EngineError>;
}

/// A tiny deterministic generator (SplitMix64) for init noise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskRng(u64);

/// SplitMix64's output function: a bijective 64-bit mix.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl TaskRng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    /// The stream of env `env`'s `episode`-th episode after `reset(seed)`: seeded by
    /// `seed ^ h(env) ^ h'(episode)` with two different 64-bit mixes, so it depends on nothing but
    /// these three numbers (not on thread count, not on other envs).
    pub fn for_episode(seed: u64, env: usize, episode: u64) -> Self {
        let env_hash = mix64((env as u64).wrapping_add(0x9E37_79B9_7F4A_7C15));
        let episode_hash = mix64(episode ^ 0xD1B5_4A32_D192_ED03).rotate_left(17);
        Self::new(seed ^ env_hash ^ episode_hash)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.0)
    }
    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// What one `VecEnv::step` returns, per env (rows / entries indexed by env).
#[derive(Clone, Debug, PartialEq)]
pub struct StepResult<R = f32> {
    /// `[N, obs_dim]`; for envs that ended this step, the first obs of their new episode.
    pub obs: Array2<R>,
    /// `[N]`, the reward of this step (computed before any autoreset).
    pub reward: Array1<R>,
    pub terminated: Array1<bool>,
    pub truncated: Array1<bool>,
    /// The terminal observation of envs that ended this step (before autoreset), else `None`.
    pub final_obs: Vec<Option<Array1<R>>>,
    /// Environments whose state became non-finite this step: each was reset (it also reads as
    /// truncated, with reward 0 and no final obs) and named here with the system that produced
    /// the value; the other environments carried on.
    pub diverged: Vec<NanEvent>,
}

/// A NaN/inf isolated by `VecEnv::step`.
#[derive(Clone, Debug, PartialEq)]
pub struct NanEvent {
    pub env: usize,
    /// The system and column that first produced a non-finite value in this step (for the
    /// first diverged env; others diverged in the same step are listed with the same origin
    /// only if the engine named them, else `"(same step)"`).
    pub system: String,
    pub column: String,
    pub step: usize,
}

/// The episode bookkeeping of a `VecEnv` (seed, episode numbers, progress): with the state and
/// control columns it is everything a checkpoint needs to continue a run exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvCounters {
    pub seed: u64,
    pub episode: Vec<u64>,
    pub progress: Vec<usize>,
}

/// What `backward` needs besides the tape, per recorded step.
#[derive(Clone, Debug)]
struct Recording<R> {
    /// ∂control/∂action: action_scale where −1 ≤ action ≤ 1, else 0 (the clip's gradient).
    clip_grad: Vec<Array2<R>>,
    /// Envs autoreset right after the step (their returned obs has no upstream).
    autoreset: Vec<Vec<usize>>,
}

/// N environments of one task, stepped in lock-step on one `Sim<R>`.
pub struct VecEnv<T: Task, R: Real = f32> {
    task: T,
    spec: TaskSpec,
    sim: Sim<R>,
    /// The nominal initial state as the task built it (in f32, where tasks draw init noise): the
    /// start of every reset.
    init: Columns<f32>,
    /// `init` plus the noise of the envs being reset (other rows unused).
    reset_buf: Columns<f32>,
    /// `reset_buf` widened to `R`, the rows `Sim::reset_envs` copies (other rows unused).
    reset_state: Columns<R>,
    seed: u64,
    /// Episodes started per env since the last `reset(seed)` (0 for the first).
    episode: Vec<u64>,
    /// Env steps taken in the current episode, per env.
    progress: Vec<usize>,
    recording: Option<Recording<R>>,
    /// Environments isolated after a NaN/inf since construction (see `StepResult::diverged`).
    nan_events: usize,
    /// The GPU backend (`VecEnv::on_gpu`): when set, physics, the tape and backward run on it and
    /// `sim` only holds the host copies of obs/reward/terminated and does the resets' bookkeeping.
    gpu: Option<std::sync::Mutex<diffsim_engine::GpuSim>>,
}

/// Checks that `name` exists in `cols` with `per_env` scalars per env.
fn check_column<R: Copy>(cols: &Columns<R>, name: &str, per_env: usize) -> Result<(), EngineError> {
    let found = cols.get(name)?.len();
    let expected = per_env * cols.num_envs();
    if found != expected {
        return Err(EngineError::ShapeMismatch { column: name.to_string(), expected, found });
    }
    Ok(())
}

/// Copies a column into an `[N, width]` array.
fn column_array<R: Copy>(cols: &Columns<R>, name: &str, width: usize) -> Result<Array2<R>, EngineError> {
    let data = cols.get(name)?;
    let expected = cols.num_envs() * width;
    Array2::from_shape_vec((cols.num_envs(), width), data.to_vec()).map_err(|_| EngineError::ShapeMismatch {
        column: name.to_string(),
        expected,
        found: data.len(),
    })
}

/// The obs seed of env `e` at step t: ∂L/∂ of the state after step t is the returned obs, or the
/// terminal one if `e` reset after step t (None: no terminal-obs adjoint was given).
fn obs_seed<'a, R: Real>(rec: &Recording<R>, t: usize, s: &'a StepSeeds<R>, e: usize) -> Option<ArrayView1<'a, R>> {
    if rec.autoreset[t].contains(&e) { s.final_obs[e].as_ref().map(|a| a.view()) } else { Some(s.obs.row(e)) }
}

/// Sorted envs grouped into contiguous ranges.
fn runs(envs: &[usize]) -> Vec<std::ops::Range<usize>> {
    let mut sorted = envs.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out: Vec<std::ops::Range<usize>> = Vec::new();
    for e in sorted {
        match out.last_mut() {
            Some(r) if r.end == e => r.end += 1,
            _ => out.push(e..e + 1),
        }
    }
    out
}

/// Runs the schedule's `Stage::Post` systems (observations, rewards, done flags) on `envs` without
/// advancing physics, so those columns describe the current state.
///
/// Not recorded on the tape: the next recorded step's checkpoint holds the refreshed columns,
/// and Post systems overwrite them before anything reads them.
fn refresh_post<R: Real>(sim: &mut Sim<R>, envs: &[usize]) -> Result<(), EngineError> {
    let n = sim.num_envs();
    let step = sim.steps_taken();
    for r in runs(envs) {
        let mut chunks = sim.state.chunks_mut(&[0..r.start, r.clone(), r.end..n]);
        let mut view = chunks.swap_remove(1);
        let model = sim.model.view(r.clone());
        let control = sim.control.view(r);
        sim.schedule.forward_stage(Stage::Post, step, &model, &control, &mut view)?;
    }
    Ok(())
}

/// Clip to [−1, 1] (the bounds pass through, as torch's `clamp`).
fn clip_unit<R: Real>(a: R) -> R {
    let one = R::one();
    if a < -one {
        -one
    } else if a > one {
        one
    } else {
        a
    }
}

impl<T: Task> VecEnv<T> {
    /// Builds the task's `Sim<f32>` and checks the spec's columns against it. The state is the
    /// nominal initial state (no init noise, observations computed); call `reset` to start
    /// episodes.
    pub fn new(task: T) -> Result<Self, EngineError> {
        Self::with_scalar(task)
    }
}

impl<T: Task, R: Real> VecEnv<T, R> {
    /// `new` on a `Sim<R>`, e.g. `VecEnv::<_, f64>::with_scalar(task)` for gradient checks.
    pub fn with_scalar(task: T) -> Result<Self, EngineError> {
        let spec = task.spec();
        let mut sim = task.sim::<R>()?;
        let n = sim.num_envs();
        check_column(&sim.state, &spec.obs, spec.obs_dim)?;
        if n != spec.num_envs {
            return Err(EngineError::ShapeMismatch {
                column: spec.obs.clone(),
                expected: spec.num_envs * spec.obs_dim,
                found: n * spec.obs_dim,
            });
        }
        check_column(&sim.state, &spec.reward, 1)?;
        if let Some(t) = &spec.terminated {
            check_column(&sim.state, t, 1)?;
        }
        check_column(&sim.control, &spec.act, spec.act_dim)?;
        // A NaN must not stop the other envs mid-step: check once per step (the step completes for
        // every env, then the culprit is named by a replay) so `step` can isolate it.
        if sim.schedule.nan_check == NanCheck::EverySystem {
            sim.schedule.nan_check = NanCheck::EveryStep;
        }
        let all: Vec<usize> = (0..n).collect();
        refresh_post(&mut sim, &all)?;
        let init = sim.state.map(|x| x.to_f64() as f32);
        Ok(Self {
            task,
            spec,
            reset_buf: init.clone(),
            reset_state: sim.state.clone(),
            init,
            sim,
            seed: 0,
            episode: vec![0; n],
            progress: vec![0; n],
            recording: None,
            nan_events: 0,
            gpu: None,
        })
    }

    /// Environments isolated after a NaN/inf since construction (a counter for training logs).
    pub fn nan_events(&self) -> usize {
        self.nan_events
    }

    pub fn spec(&self) -> &TaskSpec {
        &self.spec
    }
    pub fn task(&self) -> &T {
        &self.task
    }
    pub fn num_envs(&self) -> usize {
        self.sim.num_envs()
    }
    /// The simulation (its state holds the current obs/reward columns).
    pub fn sim(&self) -> &Sim<R> {
        &self.sim
    }
    /// Mutable access, e.g. to change the CPU backend. Stepping or recording the sim directly
    /// bypasses the env's bookkeeping (`backward` then reports a tape length mismatch).
    pub fn sim_mut(&mut self) -> &mut Sim<R> {
        &mut self.sim
    }
    /// Env steps taken in each env's current episode.
    pub fn progress(&self) -> &[usize] {
        &self.progress
    }
    /// Seed, episode numbers and progress (see `EnvCounters`).
    pub fn counters(&self) -> EnvCounters {
        EnvCounters { seed: self.seed, episode: self.episode.clone(), progress: self.progress.clone() }
    }
    /// Restores what `counters` returned (state and control columns are restored through
    /// `sim_mut`); stops any recording. Errors if the env counts differ.
    pub fn restore_counters(&mut self, c: &EnvCounters) -> Result<(), EngineError> {
        let n = self.num_envs();
        if c.episode.len() != n || c.progress.len() != n {
            return Err(EngineError::ShapeMismatch {
                column: "episode counters".into(),
                expected: n,
                found: c.episode.len().max(c.progress.len()),
            });
        }
        self.stop_recording();
        self.seed = c.seed;
        self.episode.clone_from(&c.episode);
        self.progress.clone_from(&c.progress);
        Ok(())
    }
    /// The current observations `[N, obs_dim]`.
    pub fn obs(&self) -> Result<Array2<R>, EngineError> {
        column_array(&self.sim.state, &self.spec.obs, self.spec.obs_dim)
    }

    /// Resets every env (episode 0 of `seed`, fresh init noise), zeroes the control, and returns
    /// the first observations `[N, obs_dim]`. On a tape this cuts every env's gradient path.
    pub fn reset(&mut self, seed: u64) -> Result<Array2<R>, EngineError> {
        self.seed = seed;
        self.episode.fill(0);
        self.sim.control.fill(R::zero());
        let all: Vec<usize> = (0..self.num_envs()).collect();
        self.reset_inner(&all)?;
        self.obs()
    }

    /// Resets only `envs`, each into its next episode under the current seed (a partial reset, as
    /// Gymnasium's `reset_mask`); the other envs and their tape paths are untouched. Returns all
    /// observations. Panics on an env index ≥ N.
    pub fn reset_envs(&mut self, envs: &[usize]) -> Result<Array2<R>, EngineError> {
        let n = self.num_envs();
        assert!(envs.iter().all(|&e| e < n), "reset_envs({envs:?}) with {n} environments");
        for &e in envs {
            self.episode[e] += 1;
        }
        self.reset_inner(envs)?;
        self.obs()
    }

    /// Writes init state + noise of `envs` (at their current episode numbers), cuts them on the
    /// tape, zeroes their progress and refreshes their observations.
    fn reset_inner(&mut self, envs: &[usize]) -> Result<(), EngineError> {
        let names: Vec<String> = self.init.layout().specs.iter().map(|s| s.name.clone()).collect();
        for &e in envs {
            for name in &names {
                self.reset_buf.env_mut(name, e)?.copy_from_slice(self.init.env(name, e)?);
            }
            let mut rng = TaskRng::for_episode(self.seed, e, self.episode[e]);
            self.task.reset_env(e, &mut rng, &mut self.reset_buf)?;
            for name in &names {
                let src = self.reset_buf.env(name, e)?;
                let dst = self.reset_state.env_mut(name, e)?;
                dst.iter_mut().zip(src).for_each(|(d, &s)| *d = R::from_f64(f64::from(s)));
            }
            self.progress[e] = 0;
        }
        self.sim.reset_envs(envs, &self.reset_state)?;
        refresh_post(&mut self.sim, envs)?;
        self.gpu_reset_envs(envs)?;
        Ok(())
    }

    /// Starts recording a fresh tape: the following `step`s are differentiable by `backward`.
    pub fn record(&mut self) {
        if !self.gpu_record(true) {
            self.sim.record();
        }
        self.recording = Some(Recording { clip_grad: Vec::new(), autoreset: Vec::new() });
    }
    /// Stops recording and drops the tape.
    pub fn stop_recording(&mut self) {
        if !self.gpu_record(false) {
            self.sim.stop_recording();
        }
        self.recording = None;
    }
    pub fn is_recording(&self) -> bool {
        self.recording.is_some()
    }

    /// One env step for all envs. `actions` is `[N, act_dim]`, finite; it is clipped to [-1, 1]
    /// and multiplied by `action_scale` into the control column. Envs that terminate or reach
    /// `episode_length` steps are reset (next episode of the current seed) and their returned obs
    /// is the new episode's first obs; the terminal obs is in `final_obs`.
    pub fn step(&mut self, actions: ArrayView2<R>) -> Result<StepResult<R>, EngineError> {
        let n = self.num_envs();
        let (od, ad) = (self.spec.obs_dim, self.spec.act_dim);
        if actions.dim() != (n, ad) {
            return Err(EngineError::ShapeMismatch {
                column: self.spec.act.clone(),
                expected: n * ad,
                found: actions.len(),
            });
        }
        if let Some(((env, k), &x)) = actions.indexed_iter().find(|(_, x)| !x.is_finite()) {
            return Err(EngineError::NonFinite {
                system: "VecEnv::step (actions)".into(),
                set: ColumnSet::Control,
                column: self.spec.act.clone(),
                env,
                entity: 0,
                component: k,
                step: self.steps_taken(),
                value: x.to_f64(),
            });
        }
        let scale = R::from_f64(f64::from(self.spec.action_scale));
        let control = self.sim.control.get_mut(&self.spec.act)?;
        for (c, &a) in control.iter_mut().zip(actions.iter()) {
            *c = clip_unit(a) * scale;
        }
        if let Some(rec) = &mut self.recording {
            rec.clip_grad.push(actions.mapv(|a| if clip_unit(a) == a { scale } else { R::zero() }));
            rec.autoreset.push(Vec::new());
        }
        let mut diverged = Vec::new();
        let stepped = if self.gpu.is_some() { self.gpu_step() } else { self.sim.step() };
        match stepped {
            Ok(()) => {}
            // Isolate: name the origin, mark every non-finite env diverged, reset them below.
            // On the GPU the device check names every env's origin.
            Err(EngineError::NonFinite { step, set: ColumnSet::State, .. }) if self.gpu.is_some() => {
                for b in self.gpu_mark_non_finite()? {
                    diverged.push(NanEvent { env: b.env, system: b.system, column: b.column, step });
                }
                self.nan_events += diverged.len();
            }
            Err(EngineError::NonFinite { system, column, env, step, set: ColumnSet::State, .. }) => {
                let bad = self.sim.non_finite_envs();
                self.sim.mark_diverged(&bad);
                for e in bad {
                    let (system, column) =
                        if e == env { (system.clone(), column.clone()) } else { ("(same step)".into(), String::new()) };
                    diverged.push(NanEvent { env: e, system, column, step });
                }
                self.nan_events += diverged.len();
            }
            Err(e) => return Err(e),
        }

        let mut obs = column_array(&self.sim.state, &self.spec.obs, od)?;
        let mut reward = Array1::from(self.sim.state.get(&self.spec.reward)?.to_vec());
        for d in &diverged {
            reward[d.env] = R::zero();
        }
        let mut terminated: Array1<bool> = match &self.spec.terminated {
            Some(t) => self.sim.state.get(t)?.iter().map(|&x| x.to_f64() > 0.5).collect(),
            None => Array1::from_elem(n, false),
        };
        let mut truncated = Array1::from_elem(n, false);
        for (e, p) in self.progress.iter_mut().enumerate() {
            *p += 1;
            truncated[e] = *p >= self.spec.episode_length || diverged.iter().any(|d| d.env == e);
        }
        let done: Vec<usize> = (0..n).filter(|&e| terminated[e] || truncated[e]).collect();
        let mut final_obs = vec![None; n];
        if !done.is_empty() {
            for &e in &done {
                if diverged.iter().any(|d| d.env == e) {
                    terminated[e] = false;
                    self.episode[e] += 1;
                    continue;
                }
                final_obs[e] = Some(obs.row(e).to_owned());
                self.episode[e] += 1;
            }
            self.reset_inner(&done)?;
            let fresh = self.sim.state.get(&self.spec.obs)?;
            for &e in &done {
                obs.row_mut(e).iter_mut().zip(&fresh[e * od..(e + 1) * od]).for_each(|(o, &f)| *o = f);
            }
            if let Some(rec) = &mut self.recording {
                rec.autoreset.last_mut().expect("pushed above").clone_from(&done);
            }
        }
        Ok(StepResult { obs, reward, terminated, truncated, final_obs, diverged })
    }

    /// Reverse sweep over the steps recorded since `record()`. `adj_obs[t]` (`[N, obs_dim]`) and
    /// `adj_reward[t]` (`[N]`) are ∂L/∂obs_t and ∂L/∂reward_t, where obs_t and reward_t are what
    /// step t *returned*. Returns ∂L/∂action_t (`[N, act_dim]`) for every recorded step, with
    /// respect to the actions as passed to `step`, i.e. before clipping: the clip's gradient is 0
    /// outside [-1, 1] and `action_scale` inside (bounds included, as torch's `clamp`).
    ///
    /// Autoreset: for an env reset after step t the returned obs_t is its new episode's first obs,
    /// a root with no upstream, so `adj_obs[t]` of that env is dropped; its reward_t was computed
    /// before the reset and still flows into step t and earlier. The terminal observation
    /// (`final_obs`) gets a gradient only through `backward_with_final_obs`.
    pub fn backward(&self, adj_obs: &[Array2<R>], adj_reward: &[Array1<R>]) -> Result<Vec<Array2<R>>, EngineError> {
        self.backward_with_final_obs(adj_obs, adj_reward, &[])
    }

    /// `backward` plus adjoints of the terminal observations: `adj_final_obs[t][e]` is
    /// ∂L/∂final_obs of env `e` at step t (`[obs_dim]`, only where step t returned a `final_obs`;
    /// `Some` elsewhere is an error). `adj_final_obs` may be empty (no such terms) or hold one
    /// entry per recorded step.
    pub fn backward_with_final_obs(
        &self,
        adj_obs: &[Array2<R>],
        adj_reward: &[Array1<R>],
        adj_final_obs: &[Vec<Option<Array1<R>>>],
    ) -> Result<Vec<Array2<R>>, EngineError> {
        let rec = self.recording.as_ref().ok_or_else(|| EngineError::Tape("backward without `record()`".into()))?;
        let h = rec.clip_grad.len();
        let tape_len = self.gpu_tape_len().unwrap_or_else(|| self.sim.tape().map_or(0, |t| t.len()));
        if tape_len != h {
            return Err(EngineError::Tape(format!(
                "the sim's tape holds {tape_len} steps but the env recorded {h} (was the sim stepped directly?)"
            )));
        }
        if adj_obs.len() != h || adj_reward.len() != h || !(adj_final_obs.is_empty() || adj_final_obs.len() == h) {
            return Err(EngineError::Tape(format!(
                "{h} recorded steps, got {} obs, {} reward and {} final-obs adjoints",
                adj_obs.len(),
                adj_reward.len(),
                adj_final_obs.len()
            )));
        }
        let n = self.num_envs();
        let od = self.spec.obs_dim;
        let mismatch = |column: &str, expected: usize, found: usize| EngineError::ShapeMismatch {
            column: column.to_string(),
            expected,
            found,
        };
        for t in 0..h {
            if adj_obs[t].dim() != (n, od) {
                return Err(mismatch(&self.spec.obs, n * od, adj_obs[t].len()));
            }
            if adj_reward[t].len() != n {
                return Err(mismatch(&self.spec.reward, n, adj_reward[t].len()));
            }
            if let Some(f) = adj_final_obs.get(t) {
                if f.len() != n {
                    return Err(mismatch(&self.spec.obs, n, f.len()));
                }
                for (e, a) in f.iter().enumerate() {
                    match a {
                        Some(_) if !rec.autoreset[t].contains(&e) => {
                            return Err(EngineError::Tape(format!(
                                "final-obs adjoint for environment {e} at step {t}, which did not end there"
                            )));
                        }
                        Some(a) if a.len() != od => return Err(mismatch(&self.spec.obs, od, a.len())),
                        _ => {}
                    }
                }
            }
        }
        self.backward_sweep(|t, _| {
            let final_obs = adj_final_obs.get(t).cloned().unwrap_or_else(|| vec![None; n]);
            Ok(StepSeeds { obs: adj_obs[t].clone(), reward: adj_reward[t].clone(), final_obs })
        })
    }

    /// The learner's seeds for step t of a reverse sweep, checked against the env's shapes.
    /// `next` is the simulator's adjoint of control t+1 (None at the last step), handed to
    /// `seeds` as ∂L/∂(raw action_{t+1}), i.e. through the clip.
    fn checked_seeds(
        &self,
        rec: &Recording<R>,
        t: usize,
        next: Option<&Columns<R>>,
        seeds: &mut impl FnMut(usize, Option<ArrayView2<R>>) -> Result<StepSeeds<R>, EngineError>,
    ) -> Result<StepSeeds<R>, EngineError> {
        let (n, od, ad) = (self.num_envs(), self.spec.obs_dim, self.spec.act_dim);
        let next = next.map(|c| column_array(c, &self.spec.act, ad).map(|g| g * &rec.clip_grad[t + 1])).transpose()?;
        let s = seeds(t, next.as_ref().map(|g| g.view()))?;
        if s.obs.dim() != (n, od) || s.reward.len() != n || s.final_obs.len() != n {
            return Err(EngineError::ShapeMismatch {
                column: self.spec.obs.clone(),
                expected: n * od,
                found: s.obs.len(),
            });
        }
        Ok(s)
    }

    /// The reverse sweep for learners whose actions depend on observations (the gradient bridge
    /// of DESIGN.md §2). For t = H−1 .. 0, `seeds(t, next)` receives `next` = ∂L/∂action_{t+1}
    /// (w.r.t. the raw, unclipped action; `None` for the last step), which the sweep has just
    /// finished, and returns ∂L/∂obs_t, ∂L/∂reward_t and terminal-obs adjoints for step t. A
    /// policy learner adds there its VJP ∂L/∂a_{t+1} · ∂π/∂o_{t+1} (obs_{t+1} is returned by step
    /// t), so paths through every later observation are exact. Returns ∂L/∂action_t for all t.
    /// Reset semantics are those of `backward_with_final_obs`.
    pub fn backward_sweep(
        &self,
        mut seeds: impl FnMut(usize, Option<ArrayView2<R>>) -> Result<StepSeeds<R>, EngineError>,
    ) -> Result<Vec<Array2<R>>, EngineError> {
        let rec = self.recording.as_ref().ok_or_else(|| EngineError::Tape("backward without `record()`".into()))?;
        let (od, ad) = (self.spec.obs_dim, self.spec.act_dim);
        let (obs_name, reward_name) = (&self.spec.obs, &self.spec.reward);
        if self.gpu.is_some() {
            return self.gpu_backward_sweep(seeds);
        }
        let mut failure: Option<EngineError> = None;
        let grads = self.sim.backward_sweep(|t, adj, next| {
            if failure.is_some() {
                return;
            }
            let s = match self.checked_seeds(rec, t, next, &mut seeds) {
                Ok(s) => s,
                Err(e) => return failure = Some(e),
            };
            if let Ok(col) = adj.get_mut(obs_name) {
                for (e, dst) in col.chunks_exact_mut(od).enumerate() {
                    if let Some(src) = obs_seed(rec, t, &s, e) {
                        dst.iter_mut().zip(src).for_each(|(d, &v)| *d += v);
                    }
                }
            }
            if let Ok(col) = adj.get_mut(reward_name) {
                col.iter_mut().zip(&s.reward).for_each(|(d, &v)| *d += v);
            }
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        grads
            .controls
            .iter()
            .zip(&rec.clip_grad)
            .map(|(c, clip)| Ok(column_array(c, &self.spec.act, ad)? * clip))
            .collect()
    }
}
