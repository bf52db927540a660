//! The `Cpu` backend: runs a schedule over chunks of environments on a persistent thread pool.
//!
//! Environments never interact, so a whole env step of one chunk runs on one thread with no
//! synchronisation; the chunks are contiguous env ranges, i.e. contiguous slices of every column.
//! The pool is persistent (rayon) rather than threads spawned per step (crossbeam scoped threads):
//! measured on the 2-core dev machine, spawning two scoped threads per env step cost ~100 µs, which
//! made 2 threads 8× *slower* than 1 at 8 envs; handing work to parked pool threads costs a few µs.

use std::ops::Range;
use std::sync::Arc;

use rayon::prelude::*;

use crate::columns::Columns;
use crate::error::EngineError;
use crate::model::Model;
use crate::scalar::Real;
use crate::schedule::{Schedule, Scratch};

/// Below this much work per chunk (state scalars × substeps) a step stays on one thread. Measured
/// with `diffsim bench` on chain_reach (61 scalars per env, 8 substeps, 2 cores): 8 envs
/// (~3.9k) ran 1.5–2× slower on 2 threads than on 1, 64 envs (~31k) 1.3–1.5× faster.
pub const MIN_CHUNK_WORK: usize = 8192;

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
    /// See `MIN_CHUNK_WORK`; 0 always splits (tests use it to exercise the threaded path).
    pub min_chunk_work: usize,
    /// Worker threads (the calling thread runs one chunk itself); `None` when `threads == 1`.
    pool: Option<Arc<rayon::ThreadPool>>,
}

impl std::fmt::Debug for Cpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cpu").field("threads", &self.threads).field("min_chunk_work", &self.min_chunk_work).finish()
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
        Self { threads, min_chunk_work: MIN_CHUNK_WORK, pool }
    }

    /// The same backend with another work threshold for splitting a step across threads.
    pub fn with_min_chunk_work(mut self, work: usize) -> Self {
        self.min_chunk_work = work;
        self
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

    /// Near-equal contiguous env ranges, one per thread, fewer when there are fewer envs or when
    /// a chunk would get less than `min_chunk_work` of work (`work_per_env`: state scalars per
    /// env × substeps), since then handing it to another thread costs more than it saves.
    pub fn ranges(&self, num_envs: usize, work_per_env: usize) -> Vec<Range<usize>> {
        let by_work = (num_envs * work_per_env).checked_div(self.min_chunk_work).unwrap_or(usize::MAX).max(1);
        let t = self.threads.min(by_work).clamp(1, num_envs.max(1));
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
        let ranges = self.ranges(state.num_envs(), state.layout().per_env() * schedule.substeps);
        let chunks = state.chunks_mut(&ranges);
        self.run_chunks(ranges.iter().cloned().zip(chunks).collect(), |r, mut ch| {
            schedule.forward_step(step, &model.view(r.clone()), &control.view(r), &mut ch)
        })
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
        let ranges = self.ranges(pre_step.num_envs(), pre_step.layout().per_env() * schedule.substeps);
        let adj_s = adj_state.chunks_mut(&ranges);
        let adj_c = adj_control.chunks_mut(&ranges);
        scratch.resize_with(ranges.len(), Scratch::default);
        let work = ranges.iter().cloned().zip(adj_s.into_iter().zip(adj_c).zip(scratch.iter_mut())).collect();
        self.run_chunks(work, |r, ((mut a, mut c), scratch)| {
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
    fn small_work_stays_on_one_thread() {
        let cpu = Cpu::new(2);
        assert_eq!(cpu.ranges(8, 500).len(), 1);
        assert_eq!(cpu.ranges(64, 500).len(), 2);
        assert_eq!(cpu.ranges(3, 1 << 20).len(), 2);
        assert_eq!(cpu.with_min_chunk_work(0).ranges(3, 1).len(), 2);
    }

    #[test]
    fn ranges_cover_envs_in_order() {
        for threads in 1..5 {
            for n in 1..20 {
                let r = Cpu::new(threads).with_min_chunk_work(0).ranges(n, 1);
                assert_eq!(r.first().unwrap().start, 0);
                assert_eq!(r.last().unwrap().end, n);
                assert!(r.windows(2).all(|w| w[0].end == w[1].start));
                assert!(r.iter().all(|x| !x.is_empty()));
            }
        }
    }
}
