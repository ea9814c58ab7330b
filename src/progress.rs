//! Progress of long steps (bootstrap resamples, many fits, simulations), as the library reports
//! it. The library only counts: a [`Progress`] handle is advanced from any thread; what is
//! drawn, and whether anything is, is decided by the [`ProgressSink`] the caller passes in (the
//! command line draws terminal bars, tests and library callers pass [`Silent`]).
use std::sync::Arc;

/// One bar of a long step: advanced by [`inc`](Tick::inc), closed by [`finish`](Tick::finish).
pub trait Tick: Send + Sync {
    fn inc(&self, n: u64);
    fn finish(&self);
}

/// Where progress goes: makes one [`Progress`] per long step.
pub trait ProgressSink: Send + Sync {
    /// A bar of `len` steps labelled `label`.
    fn bar(&self, len: u64, label: &str) -> Progress;
}

/// A progress handle; cheap to clone and shared across rayon threads.
#[derive(Clone, Default)]
pub struct Progress(Option<Arc<dyn Tick>>);

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Progress"
        } else {
            "Progress(hidden)"
        })
    }
}

impl Progress {
    /// A handle that reports to `tick`.
    pub fn new(tick: Arc<dyn Tick>) -> Progress {
        Progress(Some(tick))
    }

    /// A handle that reports nowhere.
    pub fn hidden() -> Progress {
        Progress(None)
    }

    /// Advances by `n` steps.
    pub fn inc(&self, n: u64) {
        if let Some(t) = &self.0 {
            t.inc(n);
        }
    }

    /// Closes the bar.
    pub fn finish(&self) {
        if let Some(t) = &self.0 {
            t.finish();
        }
    }
}

/// The sink that reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl ProgressSink for Silent {
    fn bar(&self, _len: u64, _label: &str) -> Progress {
        Progress::hidden()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    struct Count(AtomicU64);
    impl Tick for Count {
        fn inc(&self, n: u64) {
            self.0.fetch_add(n, Ordering::Relaxed);
        }
        fn finish(&self) {}
    }

    #[test]
    fn handles_share_one_count_and_hidden_does_nothing() {
        let c = Arc::new(Count(AtomicU64::new(0)));
        let p = Progress::new(c.clone());
        let q = p.clone();
        p.inc(3);
        q.inc(2);
        p.finish();
        assert_eq!(c.0.load(Ordering::Relaxed), 5);
        Progress::hidden().inc(1);
        Silent.bar(10, "x").inc(1);
    }
}
