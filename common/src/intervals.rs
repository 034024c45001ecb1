//! Which interval a moment of the run belongs to: the one rule the pacer, the sessions
//! and the worker's link all apply, so an operation, a drop and a snapshot edge never
//! disagree on it.
//!
//! Interval k is `[start + k·I, start + (k+1)·I)` on every worker (each on its own
//! monotonic clock from the shared start instant); an event belongs to the interval in
//! which it happened, and anything after the run's last interval (a straggler that
//! completed after the planned end) belongs to the last one, so no snapshot has to be
//! invented for it.

use std::time::Duration;

/// The run's intervals: their length and the index of the last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intervals {
    length: Duration,
    last: u64,
}

impl Intervals {
    /// The intervals of a run of `duration` in steps of `interval` (at least one).
    pub fn of_run(duration: Duration, interval: Duration) -> Intervals {
        Intervals {
            length: interval,
            last: crate::plan::interval_count(duration, interval) - 1,
        }
    }

    /// The interval of an event `since_start` after the start (the last one past the
    /// end).
    pub fn at(&self, since_start: Duration) -> u64 {
        let k = since_start.as_nanos() / self.length.as_nanos().max(1);
        u64::try_from(k).unwrap_or(u64::MAX).min(self.last)
    }

    /// The index of the last interval.
    pub fn last(&self) -> u64 {
        self.last
    }

    /// How long each interval lasts.
    pub fn length(&self) -> Duration {
        self.length
    }

    /// When interval `k` ends, after the start.
    pub fn end_of(&self, k: u64) -> Duration {
        self.length
            .checked_mul(u32::try_from(k.saturating_add(1)).unwrap_or(u32::MAX))
            .unwrap_or(Duration::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_belongs_to_the_interval_it_happened_in_and_stragglers_to_the_last() {
        let i = Intervals::of_run(Duration::from_millis(2500), Duration::from_secs(1));
        assert_eq!(i.last(), 2, "2.5 s take three intervals");
        assert_eq!(i.at(Duration::ZERO), 0);
        assert_eq!(i.at(Duration::from_millis(999)), 0);
        assert_eq!(
            i.at(Duration::from_millis(1000)),
            1,
            "an edge opens the next"
        );
        assert_eq!(i.at(Duration::from_millis(2600)), 2);
        assert_eq!(
            i.at(Duration::from_secs(3600)),
            2,
            "after the end: the last"
        );
        assert_eq!(i.end_of(0), Duration::from_secs(1));
        assert_eq!(i.end_of(u64::MAX), Duration::from_secs(u64::from(u32::MAX)));
    }
}
