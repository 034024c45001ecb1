//! Where sessions record what they did, by interval.
//!
//! An operation belongs to the interval in which it completed (docs/design.md, "Time"). A few
//! sessions share one recorder (uncontended mutex, held for a histogram add): one per
//! session would cost ~190 KB of histogram per operation and session, which does not
//! scale to thousands of sessions. The snapshot task takes closed intervals out; an
//! operation that lands after its interval was taken is counted in the next open one,
//! so totals stay exact.

use fleetload_common::histogram::record;
use fleetload_common::outcome::ErrorClass;
use fleetload_common::stats::{InstanceStats, OpStats, MAX_INSTANCES};
use fleetload_db::workloads::Executed;
use std::sync::Mutex;
use std::time::Duration;

/// Stats of one interval: one `OpStats` per slot of the worker's operation mix.
pub(crate) type IntervalStats = Vec<OpStats>;

/// The instance an operation ran on, as its session sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct On<'a> {
    pub name: &'a str,
    pub read_only: bool,
    /// The session's first operation on this instance in the interval: it counts the
    /// session once.
    pub new_session: bool,
}

/// Count an operation on its instance: its response time when it succeeded (`None`:
/// it failed).
fn count_on(s: &mut OpStats, on: &On<'_>, response: Option<Duration>) {
    let k = match s.instances.iter().position(|i| i.name == on.name) {
        Some(k) => k,
        None if s.instances.len() < MAX_INSTANCES => {
            s.instances.push(InstanceStats::new(on.name, on.read_only));
            s.instances.len() - 1
        }
        None => return,
    };
    let i = &mut s.instances[k];
    i.read_only |= on.read_only;
    i.sessions += u32::from(on.new_session);
    match response {
        Some(d) => {
            i.ok += 1;
            record(&mut i.response, d);
        }
        None => i.errors += 1,
    }
}

#[derive(Debug)]
struct Inner {
    /// Lowest interval not yet taken by the snapshot task.
    open_from: u64,
    current_index: u64,
    current: Option<IntervalStats>,
    closed: Vec<(u64, IntervalStats)>,
}

/// Per-interval stats for a group of sessions.
#[derive(Debug)]
pub(crate) struct Recorder {
    slots: usize,
    inner: Mutex<Inner>,
}

impl Recorder {
    pub(crate) fn new(slots: usize) -> Self {
        Recorder {
            slots,
            inner: Mutex::new(Inner {
                open_from: 0,
                current_index: 0,
                current: None,
                closed: Vec::new(),
            }),
        }
    }

    fn with<R>(&self, interval: u64, slot: usize, f: impl FnOnce(&mut OpStats) -> R) -> R {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let k = interval.max(inner.open_from).max(inner.current_index);
        if k != inner.current_index {
            if let Some(done) = inner.current.take() {
                let idx = inner.current_index;
                inner.closed.push((idx, done));
            }
            inner.current_index = k;
        }
        let slots = self.slots;
        let current = inner
            .current
            .get_or_insert_with(|| (0..slots).map(|_| OpStats::default()).collect());
        f(&mut current[slot])
    }

    #[cfg(test)]
    /// A successful operation; `lag` is `None` in closed loop, where it has no meaning.
    /// `rows`: what it returned or matched of existing keys (`None`: an operation that
    /// only creates rows, or one whose rows are not counted).
    pub(crate) fn ok(
        &self,
        interval: u64,
        slot: usize,
        response: Duration,
        service: Duration,
        lag: Option<Duration>,
        rows: Option<u64>,
    ) {
        let done = Executed {
            rows,
            ..Executed::default()
        };
        self.ok_on(interval, slot, (response, service, lag), &done, None);
    }

    /// A successful operation, and the instance it ran on: one lock for both.
    pub(crate) fn ok_on(
        &self,
        interval: u64,
        slot: usize,
        (response, service, lag): (Duration, Duration, Option<Duration>),
        done: &Executed,
        on: Option<On<'_>>,
    ) {
        self.with(interval, slot, |s| {
            s.ok += 1;
            if let Some(n) = done.rows {
                s.rows += n;
                s.empty += u64::from(n == 0);
            }
            s.rolled_back += u64::from(done.rolled_back);
            s.remote += u64::from(done.remote);
            record(&mut s.response, response);
            record(&mut s.service, service);
            if let Some(lag) = lag {
                record(&mut s.lag, lag);
            }
            if let Some(on) = on {
                count_on(s, &on, Some(response));
            }
        });
    }

    pub(crate) fn error(
        &self,
        interval: u64,
        slot: usize,
        class: ErrorClass,
        message: impl FnOnce() -> String,
    ) {
        self.error_on(interval, slot, class, message, None);
    }

    /// A failed operation, and the instance it ran on: one lock for both.
    pub(crate) fn error_on(
        &self,
        interval: u64,
        slot: usize,
        class: ErrorClass,
        message: impl FnOnce() -> String,
        on: Option<On<'_>>,
    ) {
        self.with(interval, slot, |s| {
            s.add_error(class, message);
            if let Some(on) = on {
                count_on(s, &on, None);
            }
        });
    }

    /// Deadlocks or serialization failures an operation retried past.
    pub(crate) fn retried(&self, interval: u64, slot: usize, retries: u64) {
        self.with(interval, slot, |s| s.retries += retries);
    }

    pub(crate) fn dropped(&self, interval: u64, slot: usize) {
        self.with(interval, slot, |s| s.dropped_backlog += 1);
    }

    /// Take every interval up to and including `through`; later operations for those
    /// intervals go into the next open one.
    pub(crate) fn take_through(&self, through: u64) -> Vec<(u64, IntervalStats)> {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        inner.open_from = inner.open_from.max(through.saturating_add(1));
        let mut out = Vec::new();
        let mut keep = Vec::new();
        for (k, s) in inner.closed.drain(..) {
            if k <= through {
                out.push((k, s));
            } else {
                keep.push((k, s));
            }
        }
        inner.closed = keep;
        if inner.current_index <= through {
            if let Some(s) = inner.current.take() {
                out.push((inner.current_index, s));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: Duration = Duration::from_micros(100);

    #[test]
    fn operations_land_in_their_interval_and_late_ones_in_the_next_open_one() {
        let r = Recorder::new(2);
        r.ok(0, 0, US, US, Some(Duration::ZERO), Some(1));
        r.ok(0, 1, US, US, Some(Duration::ZERO), Some(0));
        r.ok(1, 0, US, US, Some(Duration::ZERO), None);
        let taken = r.take_through(0);
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].0, 0);
        assert_eq!(taken[0].1[0].ok + taken[0].1[1].ok, 2);
        // Rows found, and the read that found none.
        assert_eq!((taken[0].1[0].rows, taken[0].1[0].empty), (1, 0));
        assert_eq!((taken[0].1[1].rows, taken[0].1[1].empty), (0, 1));
        // Interval 0 is closed: a straggler for it counts in interval 1.
        r.error(0, 1, ErrorClass::Timeout, || "late".into());
        r.dropped(3, 0);
        let taken = r.take_through(u64::MAX);
        let (k1, s1) = &taken[0];
        assert_eq!(*k1, 1);
        assert_eq!(s1[0].ok, 1);
        assert_eq!(s1[1].errors[ErrorClass::Timeout.index()], 1);
        assert_eq!(taken[1].0, 3);
        assert_eq!(taken[1].1[0].dropped_backlog, 1);
        assert!(r.take_through(u64::MAX).is_empty());
    }
}
