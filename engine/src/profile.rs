//! `SystemProfile`: where a schedule's time goes, per system — the forward in env steps, the
//! forward recomputed inside the backward sweep, and the adjoint (what Rewarped's `profile`
//! subcommand reports per Warp kernel, reference §8.4).
//!
//! Off by default (`Schedule::profile` is `None`): then the only cost is one branch per system
//! call. When on, each call is timed with `Instant` (≈20–40 ns) and added to atomic counters, so
//! the times are summed over the threads that ran chunks in parallel (CPU time, not wall time).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Which part of the work a timed call belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// `System::forward` while stepping.
    Forward,
    /// `System::forward` re-run by the backward sweep to rebuild pre-states from a checkpoint.
    Recompute,
    /// `System::adjoint`.
    Adjoint,
}

/// Accumulated nanoseconds and calls per system (schedule order) and phase.
#[derive(Debug)]
pub struct SystemProfile {
    names: Vec<String>,
    ns: Vec<[AtomicU64; 3]>,
    calls: Vec<[AtomicU64; 3]>,
}

/// One system's totals.
#[derive(Clone, Debug, PartialEq)]
pub struct SystemTimes {
    pub name: String,
    pub forward: Duration,
    pub recompute: Duration,
    pub adjoint: Duration,
    /// Calls of `forward` while stepping (one per chunk, substep and step).
    pub forward_calls: u64,
    pub adjoint_calls: u64,
}

impl SystemProfile {
    pub fn new(names: Vec<String>) -> Self {
        let zeros = || std::array::from_fn(|_| AtomicU64::new(0));
        Self { ns: names.iter().map(|_| zeros()).collect(), calls: names.iter().map(|_| zeros()).collect(), names }
    }

    /// Runs `f` and adds its time to system `index` in `phase`.
    #[inline]
    pub fn time<T>(&self, index: usize, phase: Phase, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        let p = phase as usize;
        self.ns[index][p].fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.calls[index][p].fetch_add(1, Ordering::Relaxed);
        out
    }

    /// Zeroes every counter (e.g. after a warm-up).
    pub fn reset(&self) {
        for c in self.ns.iter().chain(&self.calls).flatten() {
            c.store(0, Ordering::Relaxed);
        }
    }

    /// Totals per system, in schedule order.
    pub fn totals(&self) -> Vec<SystemTimes> {
        let ns = |i: usize, p: Phase| Duration::from_nanos(self.ns[i][p as usize].load(Ordering::Relaxed));
        let calls = |i: usize, p: Phase| self.calls[i][p as usize].load(Ordering::Relaxed);
        (0..self.names.len())
            .map(|i| SystemTimes {
                name: self.names[i].clone(),
                forward: ns(i, Phase::Forward),
                recompute: ns(i, Phase::Recompute),
                adjoint: ns(i, Phase::Adjoint),
                forward_calls: calls(i, Phase::Forward),
                adjoint_calls: calls(i, Phase::Adjoint),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_accumulate_per_system_and_phase() {
        let p = SystemProfile::new(vec!["a".into(), "b".into()]);
        let x = p.time(1, Phase::Adjoint, || {
            std::thread::sleep(Duration::from_millis(2));
            7
        });
        assert_eq!(x, 7);
        p.time(0, Phase::Forward, || ());
        let t = p.totals();
        assert!(t[1].adjoint >= Duration::from_millis(2) && t[1].forward.is_zero(), "{t:?}");
        assert_eq!((t[0].forward_calls, t[1].adjoint_calls, t[1].forward_calls), (1, 1, 0));
        p.reset();
        assert!(p.totals().iter().all(|s| s.adjoint.is_zero() && s.forward_calls == 0));
    }
}
