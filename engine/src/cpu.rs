//! The `Cpu` backend: runs a schedule over chunks of environments on a persistent thread pool.
//!
//! Environments never interact, so a whole env step of one chunk runs on one thread with no
//! synchronisation; the chunks are contiguous env ranges, i.e. contiguous slices of every column.
//! The pool is persistent (rayon) rather than threads spawned per step (crossbeam scoped threads):
//! measured on the 2-core dev machine, spawning two scoped threads per env step cost ~100 µs, which
//! made 2 threads 8× *slower* than 1 at 8 envs; handing work to parked pool threads costs a few µs.
//!
//! Whether splitting a step pays depends on how much work a step is, which no column count
//! predicts (a chain_reach env is 61 scalars of cheap springs, a cartpole env 50 scalars of
//! Featherstone dynamics). So by default (`Split::Auto`) the backend *measures*: for each kind of
//! call (forward / backward, env count, state size) it times the first few calls on one thread and
//! split across all threads, alternating, then keeps the faster.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rayon::prelude::*;

use crate::columns::Columns;
use crate::error::EngineError;
use crate::model::Model;
use crate::scalar::Real;
use crate::schedule::{Schedule, Scratch};

/// How a step is spread over the threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// Measure one thread against all threads on the first calls, keep the faster (default).
    Auto,
    /// Always split (tests use it to exercise the threaded path whatever the size).
    Always,
    Never,
}

/// Timed calls per arm before `Split::Auto` decides.
const TRIALS: u32 = 3;
/// Untimed calls per arm first (first-touch page faults and scratch allocation).
const WARMUP: u32 = 1;

/// Timings of one kind of call: per arm (one thread, split) the best time and the count.
#[derive(Clone, Copy, Debug, Default)]
struct Trial {
    best_ns: [u64; 2],
    count: [u32; 2],
}

type TrialKey = (bool, usize, usize);

/// What the tape kept of one env step: its index, its control and its starting state.
#[derive(Clone, Copy)]
pub struct RecordedStep<'a, R: Real> {
    pub step: usize,
    pub control: &'a Columns<R>,
    pub pre_step: &'a Columns<R>,
}

#[derive(Clone)]
pub struct Cpu {
    pub threads: usize,
    pub split: Split,
    /// Worker threads; `None` when `threads == 1`.
    pool: Option<Arc<rayon::ThreadPool>>,
    /// `Split::Auto` measurements, keyed by (backward?, num_envs, state scalars per env).
    trials: Arc<Mutex<HashMap<TrialKey, Trial>>>,
}

impl std::fmt::Debug for Cpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cpu").field("threads", &self.threads).field("split", &self.split).finish()
    }
}

impl Default for Cpu {
    /// One thread per available core.
    fn default() -> Self {
        Self::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }
}

impl Cpu {
    /// A backend with `threads` threads; falls back to one thread if the pool cannot start.
    pub fn new(threads: usize) -> Self {
        let threads = threads.max(1);
        let pool = (threads > 1)
            .then(|| {
                rayon::ThreadPoolBuilder::new().num_threads(threads).thread_name(|i| format!("diffsim-cpu-{i}")).build()
            })
            .and_then(Result::ok)
            .map(Arc::new);
        let threads = if pool.is_some() { threads } else { 1 };
        Self { threads, split: Split::Auto, pool, trials: Arc::default() }
    }

    /// The same backend with another split policy.
    pub fn with_split(mut self, split: Split) -> Self {
        self.split = split;
        self
    }

    /// Whether to split this call, and (under `Split::Auto`, while still measuring) the arm to time.
    fn decide(&self, key: TrialKey) -> (bool, Option<usize>) {
        if self.threads == 1 || key.1 < 2 {
            return (false, None);
        }
        match self.split {
            Split::Always => (true, None),
            Split::Never => (false, None),
            Split::Auto => {
                let trials = self.trials.lock().unwrap_or_else(|e| e.into_inner());
                let t = trials.get(&key).copied().unwrap_or_default();
                if t.count.iter().all(|&c| c >= WARMUP + TRIALS) {
                    (t.best_ns[1] < t.best_ns[0], None)
                } else {
                    let arm = if t.count[0] <= t.count[1] { 0 } else { 1 };
                    (arm == 1, Some(arm))
                }
            }
        }
    }

    fn record(&self, key: TrialKey, arm: usize, elapsed: std::time::Duration) {
        let mut trials = self.trials.lock().unwrap_or_else(|e| e.into_inner());
        let t = trials.entry(key).or_default();
        let ns = elapsed.as_nanos() as u64;
        if t.count[arm] >= WARMUP {
            t.best_ns[arm] = if t.count[arm] == WARMUP { ns } else { t.best_ns[arm].min(ns) };
        }
        t.count[arm] += 1;
    }

    /// Runs `f` over the env ranges chosen for `key`, timing it while `Split::Auto` measures.
    fn run_timed<T: Send>(
        &self,
        key: TrialKey,
        chunks: impl FnOnce(&[Range<usize>]) -> Vec<T>,
        f: impl Fn(Range<usize>, T) -> Result<(), EngineError> + Sync,
    ) -> Result<(), EngineError> {
        let (split, arm) = self.decide(key);
        let ranges = self.ranges(key.1, split);
        let work = ranges.iter().cloned().zip(chunks(&ranges)).collect();
        let start = Instant::now();
        let out = self.run_chunks(work, f);
        if let Some(arm) = arm {
            self.record(key, arm, start.elapsed());
        }
        out
    }

    /// Runs `f` on every (range, item) pair, in parallel on the pool; returns the first error.
    fn run_chunks<T: Send>(
        &self,
        work: Vec<(Range<usize>, T)>,
        f: impl Fn(Range<usize>, T) -> Result<(), EngineError> + Sync,
    ) -> Result<(), EngineError> {
        match &self.pool {
            Some(pool) if work.len() > 1 => {
                pool.install(|| work.into_par_iter().map(|(r, t)| f(r, t)).collect::<Result<Vec<()>, _>>())?;
                Ok(())
            }
            _ => work.into_iter().try_for_each(|(r, t)| f(r, t)),
        }
    }

    /// Near-equal contiguous env ranges: one per thread if `split`, else one.
    pub fn ranges(&self, num_envs: usize, split: bool) -> Vec<Range<usize>> {
        let t = if split { self.threads.clamp(1, num_envs.max(1)) } else { 1 };
        (0..t).map(|i| (i * num_envs / t)..((i + 1) * num_envs / t)).collect()
    }

    /// One env step forward for all environments.
    pub fn forward_step<R: Real>(
        &self,
        schedule: &Schedule<R>,
        step: usize,
        model: &Model,
        control: &Columns<R>,
        state: &mut Columns<R>,
    ) -> Result<(), EngineError> {
        let key = (false, state.num_envs(), state.layout().per_env());
        self.run_timed(
            key,
            |ranges| state.chunks_mut(ranges),
            |r, mut ch| schedule.forward_step(step, &model.view(r.clone()), &control.view(r), &mut ch),
        )
    }

    /// One env step backward for all environments (see `Schedule::backward_step`).
    pub fn backward_step<R: Real>(
        &self,
        schedule: &Schedule<R>,
        model: &Model,
        recorded: RecordedStep<'_, R>,
        adj_state: &mut Columns<R>,
        adj_control: &mut Columns<R>,
        scratch: &mut Vec<Scratch<R>>,
    ) -> Result<(), EngineError> {
        let RecordedStep { step, control, pre_step } = recorded;
        let key = (true, pre_step.num_envs(), pre_step.layout().per_env());
        scratch.resize_with(self.threads, Scratch::default);
        let scratch = &mut scratch[..];
        let chunks = move |ranges: &[Range<usize>]| {
            let (adj_state, adj_control, scratch) = (adj_state, adj_control, scratch);
            let adj_s = adj_state.chunks_mut(ranges);
            let adj_c = adj_control.chunks_mut(ranges);
            adj_s.into_iter().zip(adj_c).zip(scratch.iter_mut()).collect::<Vec<_>>()
        };
        self.run_timed(key, chunks, |r, ((mut a, mut c), scratch)| {
            schedule.backward_step(
                step,
                &model.view(r.clone()),
                &control.view(r.clone()),
                &pre_step.view(r),
                &mut a,
                &mut c,
                scratch,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_split_measures_both_arms_then_keeps_one() {
        let cpu = Cpu::new(2);
        let key = (false, 8, 10);
        let mut arms = Vec::new();
        for _ in 0..2 * (WARMUP + TRIALS) {
            let (split, arm) = cpu.decide(key);
            let arm = arm.expect("still measuring");
            assert_eq!(split, arm == 1);
            // The split arm is made to look faster.
            cpu.record(key, arm, std::time::Duration::from_micros(if split { 10 } else { 20 }));
            arms.push(arm);
        }
        assert_eq!(arms.iter().filter(|&&a| a == 1).count() as u32, WARMUP + TRIALS);
        assert_eq!(cpu.decide(key), (true, None));
        assert_eq!(cpu.clone().with_split(Split::Never).decide(key), (false, None));
        assert_eq!(Cpu::new(1).decide(key), (false, None));
        assert_eq!(cpu.decide((false, 1, 10)), (false, None));
    }

    #[test]
    fn ranges_cover_envs_in_order() {
        for threads in 1..5 {
            for n in 1..20 {
                let r = Cpu::new(threads).ranges(n, true);
                assert_eq!(r.first().unwrap().start, 0);
                assert_eq!(r.last().unwrap().end, n);
                assert!(r.windows(2).all(|w| w[0].end == w[1].start));
                assert!(r.iter().all(|x| !x.is_empty()));
            }
        }
    }
}
