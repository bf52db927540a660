//! The `VecEnv` on the GPU backend (`VecEnv::on_gpu`): the task's schedule runs on a `GpuSim`
//! (physics, tape and backward on the device); the env's own `Sim` keeps only host copies of the
//! obs/reward/terminated columns (read back after every step) and does the reset bookkeeping
//! (init noise, refreshing the observations of reset envs), whose rows are then written to the
//! GPU with a tape cut. Everything the learner sees (arrays, autoreset, the gradient bridge) is
//! the CPU path's code.
//!
//! A diverged env is isolated as on the CPU: the `GpuSim` checks the whole state on the device
//! with the task schedule's `NanCheck` mode and names, per env, the system and column that
//! produced the NaN/inf; `step` marks those envs diverged on the GPU tape (backward gives them
//! no gradient through the step), resets them and lists them in `StepResult::diverged`.
//!
//! Not supported on the GPU: `VecEnv::sim()` shows stale physics columns (only the read-back
//! ones are current).

use std::sync::{Arc, Mutex, MutexGuard};

use diffsim_engine::gpu_sim::{GpuOptions, NonFiniteEnv, Scatter, Seeds};
use diffsim_engine::{Columns, EngineError, Gpu, GpuSim, Real};
use ndarray::{Array2, ArrayView2};

use super::{StepSeeds, Task, VecEnv, column_array, obs_seed};

impl<T: Task> VecEnv<T, f32> {
    /// Moves the physics onto `gpu` (every system of the task needs GPU kernels; the error names
    /// the first that has none). Any tape being recorded is dropped.
    pub fn on_gpu(mut self, gpu: Arc<Gpu>, scatter: Scatter) -> Result<Self, EngineError> {
        self.try_on_gpu(gpu, scatter)?;
        Ok(self)
    }

    /// `on_gpu` in place: on an error (no kernels, a scene the GPU mirror refuses, a device
    /// limit) the env stays on its current backend with its state untouched, so a caller can
    /// fall back to the CPU. Any tape being recorded is dropped either way.
    pub fn try_on_gpu(&mut self, gpu: Arc<Gpu>, scatter: Scatter) -> Result<(), EngineError> {
        let mut readback = vec![self.spec.obs.clone(), self.spec.reward.clone()];
        if let Some(t) = &self.spec.terminated {
            readback.push(t.clone());
        }
        self.stop_recording();
        let g = GpuSim::new(gpu, &self.sim, GpuOptions { scatter, readback })?;
        self.gpu = Some(Mutex::new(g));
        Ok(())
    }
}

impl<T: Task, R: Real> VecEnv<T, R> {
    /// Whether physics runs on the GPU.
    pub fn is_on_gpu(&self) -> bool {
        self.gpu.is_some()
    }

    /// The `GpuSim` (None on the CPU backend), e.g. to read its state or to perturb it in tests.
    /// Stepping or recording it directly bypasses the env's bookkeeping.
    pub fn gpu_sim(&self) -> Option<Result<MutexGuard<'_, GpuSim>, EngineError>> {
        self.gpu_lock()
    }

    fn gpu_lock(&self) -> Option<Result<MutexGuard<'_, GpuSim>, EngineError>> {
        self.gpu.as_ref().map(|m| m.lock().map_err(|_| EngineError::Gpu("the GpuSim lock is poisoned".into())))
    }

    /// Mirrors a reset of `envs` (rows of `reset_buf`) onto the GPU, cutting their tape paths.
    pub(super) fn gpu_reset_envs(&self, envs: &[usize]) -> Result<(), EngineError> {
        match self.gpu_lock() {
            Some(g) => g?.reset_envs(envs, &self.reset_buf),
            None => Ok(()),
        }
    }

    /// Starts (`on`) or stops recording on the GPU; false when there is no GPU.
    pub(super) fn gpu_record(&self, on: bool) -> bool {
        match self.gpu_lock() {
            Some(Ok(mut g)) => {
                if on {
                    g.record();
                } else {
                    g.stop_recording();
                }
                true
            }
            // A poisoned lock: the next GPU call reports it.
            Some(Err(_)) => true,
            None => false,
        }
    }

    /// Env steps taken since construction: the `GpuSim`'s count on the GPU, where the host `Sim`
    /// is not stepped.
    pub(super) fn steps_taken(&self) -> usize {
        match self.gpu_lock() {
            Some(Ok(g)) => g.steps_taken(),
            _ => self.sim.steps_taken(),
        }
    }

    pub(super) fn gpu_tape_len(&self) -> Option<usize> {
        self.gpu_lock().map(|g| g.map_or(0, |g| g.tape_len()))
    }

    /// One env step on the GPU with the control the env just wrote; the read-back columns are
    /// copied into the host `Sim`'s state, where the rest of `step` reads them. A non-finite
    /// state is `EngineError::NonFinite` as from `Sim::step` (the columns are copied all the same:
    /// the other envs' rows are the step's result).
    pub(super) fn gpu_step(&mut self) -> Result<(), EngineError> {
        let control: Columns<f32> = self.sim.control.map(|x| x.to_f64() as f32);
        let Some(g) = self.gpu_lock() else { return Err(EngineError::Gpu("gpu_step without a GPU".into())) };
        let mut g = g?;
        g.write_control(&control)?;
        let stepped = g.step();
        if stepped.as_ref().is_err_and(|e| !matches!(e, EngineError::NonFinite { .. })) {
            return stepped;
        }
        let mut names = vec![self.spec.obs.clone(), self.spec.reward.clone()];
        names.extend(self.spec.terminated.clone());
        let host = names.into_iter().map(|n| Ok((g.host(&n)?.to_vec(), n))).collect::<Result<Vec<_>, EngineError>>()?;
        drop(g);
        for (v, name) in host {
            let dst = self.sim.state.get_mut(&name)?;
            dst.iter_mut().zip(&v).for_each(|(d, &x)| *d = R::from_f64(f64::from(x)));
        }
        stepped
    }

    /// After a non-finite GPU step: every env the device check flagged, with the system and
    /// column that produced its value, marked diverged on the GPU tape.
    pub(super) fn gpu_mark_non_finite(&self) -> Result<Vec<NonFiniteEnv>, EngineError> {
        let Some(g) = self.gpu_lock() else { return Err(EngineError::Gpu("no GPU".into())) };
        let mut g = g?;
        let bad = g.non_finite().to_vec();
        g.mark_diverged(&bad.iter().map(|b| b.env).collect::<Vec<_>>());
        Ok(bad)
    }

    /// `backward_sweep` on the GPU's tape: the same seeds, autoreset and clip conventions.
    pub(super) fn gpu_backward_sweep(
        &self,
        mut seeds: impl FnMut(usize, Option<ArrayView2<R>>) -> Result<StepSeeds<R>, EngineError>,
    ) -> Result<Vec<Array2<R>>, EngineError> {
        let rec = self.recording.as_ref().ok_or_else(|| EngineError::Tape("backward without `record()`".into()))?;
        let n = self.num_envs();
        let (od, ad) = (self.spec.obs_dim, self.spec.act_dim);
        let (obs_name, reward_name, act_name) = (&self.spec.obs, &self.spec.reward, &self.spec.act);
        let widen = |c: &Columns<f32>| c.map(|x| R::from_f64(f64::from(x)));
        let mut failure: Option<EngineError> = None;
        let Some(g) = self.gpu_lock() else { return Err(EngineError::Gpu("no GPU".into())) };
        let grads = g?.backward_sweep(|t, out: &mut Seeds, next| {
            if failure.is_some() {
                return;
            }
            let s = match self.checked_seeds(rec, t, next.map(widen).as_ref(), &mut seeds) {
                Ok(s) => s,
                Err(e) => return failure = Some(e),
            };
            let mut obs = vec![0.0f32; n * od];
            for (e, dst) in obs.chunks_exact_mut(od).enumerate() {
                if let Some(src) = obs_seed(rec, t, &s, e) {
                    dst.iter_mut().zip(src).for_each(|(d, v)| *d = v.to_f64() as f32);
                }
            }
            out.add(obs_name, obs);
            out.add(reward_name, s.reward.iter().map(|x| x.to_f64() as f32).collect());
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        grads
            .controls
            .iter()
            .zip(&rec.clip_grad)
            .map(|(c, clip)| Ok(column_array(&widen(c), act_name, ad)? * clip))
            .collect()
    }
}
