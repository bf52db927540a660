//! The `Cpu` backend: runs a schedule over chunks of environments on crossbeam scoped threads.
//!
//! Environments never interact, so a whole env step of one chunk runs on one thread with no
//! synchronisation; the chunks are contiguous env ranges, i.e. contiguous slices of every column.

use std::ops::Range;

use crate::columns::Columns;
use crate::error::EngineError;
use crate::model::Model;
use crate::scalar::Real;
use crate::schedule::Schedule;

/// What the tape kept of one env step: its index, its control and its starting state.
#[derive(Clone, Copy)]
pub struct RecordedStep<'a, R: Real> {
    pub step: usize,
    pub control: &'a Columns<R>,
    pub pre_step: &'a Columns<R>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cpu {
    pub threads: usize,
}

impl Default for Cpu {
    /// One thread per available core.
    fn default() -> Self {
        Self { threads: std::thread::available_parallelism().map_or(1, |n| n.get()) }
    }
}

impl Cpu {
    pub fn new(threads: usize) -> Self {
        Self { threads: threads.max(1) }
    }

    /// Near-equal contiguous env ranges, one per thread (fewer if there are fewer envs).
    pub fn ranges(&self, num_envs: usize) -> Vec<Range<usize>> {
        let t = self.threads.clamp(1, num_envs.max(1));
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
        let ranges = self.ranges(state.num_envs());
        let chunks = state.chunks_mut(&ranges);
        let run = |r: Range<usize>, mut ch: crate::columns::ViewMut<'_, R>| {
            schedule.forward_step(step, &model.view(r.clone()), &control.view(r), &mut ch)
        };
        if chunks.len() == 1 {
            let ch = chunks.into_iter().next().expect("one chunk");
            return run(ranges[0].clone(), ch);
        }
        crossbeam::scope(|s| {
            let handles: Vec<_> =
                ranges.iter().cloned().zip(chunks).map(|(r, ch)| s.spawn(move |_| run(r, ch))).collect();
            handles.into_iter().try_for_each(|h| h.join().expect("simulation thread panicked"))
        })
        .expect("crossbeam scope")
    }

    /// One env step backward for all environments (see `Schedule::backward_step`).
    pub fn backward_step<R: Real>(
        &self,
        schedule: &Schedule<R>,
        model: &Model,
        recorded: RecordedStep<'_, R>,
        adj_state: &mut Columns<R>,
        adj_control: &mut Columns<R>,
    ) -> Result<(), EngineError> {
        let RecordedStep { step, control, pre_step } = recorded;
        let ranges = self.ranges(pre_step.num_envs());
        let adj_s = adj_state.chunks_mut(&ranges);
        let adj_c = adj_control.chunks_mut(&ranges);
        let run = |r: Range<usize>, mut a: crate::columns::ViewMut<'_, R>, mut c: crate::columns::ViewMut<'_, R>| {
            schedule.backward_step(
                step,
                &model.view(r.clone()),
                &control.view(r.clone()),
                &pre_step.view(r),
                &mut a,
                &mut c,
            )
        };
        if ranges.len() == 1 {
            let a = adj_s.into_iter().next().expect("one chunk");
            let c = adj_c.into_iter().next().expect("one chunk");
            return run(ranges[0].clone(), a, c);
        }
        crossbeam::scope(|s| {
            let handles: Vec<_> = ranges
                .iter()
                .cloned()
                .zip(adj_s.into_iter().zip(adj_c))
                .map(|(r, (a, c))| s.spawn(move |_| run(r, a, c)))
                .collect();
            handles.into_iter().try_for_each(|h| h.join().expect("simulation thread panicked"))
        })
        .expect("crossbeam scope")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_envs_in_order() {
        for threads in 1..5 {
            for n in 1..20 {
                let r = Cpu::new(threads).ranges(n);
                assert_eq!(r.first().unwrap().start, 0);
                assert_eq!(r.last().unwrap().end, n);
                assert!(r.windows(2).all(|w| w[0].end == w[1].start));
                assert!(r.iter().all(|x| !x.is_empty()));
            }
        }
    }
}
