//! What happened to one session or to a whole worker over a span of time, as the
//! worker saw it: a session without its instance (a failover, a restart), the worker's
//! own runtime not running (a frozen process, a starved host), and the kinds later
//! issues add (a read-only window, an action's effect). They are not per-operation
//! counts: each is one span with its own facts, so they travel, are checked, merged and
//! reported as one thing, [`WorkerEvent`]:
//!
//! - **one wire form**: `WorkerEvent` in `fleetload.proto`, a `oneof` of the kinds,
//!   carried by the snapshot of the interval the event is placed in
//!   ([`WorkerEvent::placed_at`]);
//! - **one admission check**: [`WorkerEvent::span`] must lie within the run (the
//!   coordinator's `admission`), plus each kind's own facts (an outage's session exists);
//! - **one capped log**: the merge keeps every event with its worker's slot, at most
//!   [`EventKind::run_cap`] of each kind; a snapshot carries at most
//!   [`EventKind::snapshot_cap`] of each, the longest when a worker noticed more;
//! - **report sections** read the kinds they show (outages, availability, stalls).
//!
//! Adding a kind is a variant here (with its span and caps), its `oneof` arm on the
//! wire, a detector in the worker that pushes it into the worker's event sink, and a
//! report section that reads it.

use crate::outcome::ErrorClass;
use std::time::Duration;

/// One event, as the worker saw it. Times are since the run's start on the worker's
/// clock, which the start instant aligns across the fleet (docs/design.md, "Time").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerEvent {
    /// One session's spell without its instance.
    SessionOutage(SessionOutage),
    /// The worker's own runtime did not run.
    Stall(Stall),
}

/// The kinds of [`WorkerEvent`], for caps and report sections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventKind {
    SessionOutage,
    Stall,
}

impl EventKind {
    pub const ALL: [EventKind; 2] = [EventKind::SessionOutage, EventKind::Stall];

    pub fn name(self) -> &'static str {
        match self {
            EventKind::SessionOutage => "session_outage",
            EventKind::Stall => "stall",
        }
    }

    /// Most events of this kind one snapshot carries: far more session outages than a
    /// worker's sessions can have in an interval; stalls beyond a few dozen are one
    /// long trouble, of which the longest say enough.
    pub fn snapshot_cap(self) -> usize {
        match self {
            EventKind::SessionOutage => 20_000,
            EventKind::Stall => 64,
        }
    }

    /// Most events of this kind a run's merge keeps: a million sessions failing over
    /// ten times; one stall per worker and interval for a thousand workers over an
    /// hour. Beyond it the report says some were left out.
    pub fn run_cap(self) -> usize {
        match self {
            EventKind::SessionOutage => 10_000_000,
            EventKind::Stall => 100_000,
        }
    }
}

impl WorkerEvent {
    pub fn kind(&self) -> EventKind {
        match self {
            WorkerEvent::SessionOutage(_) => EventKind::SessionOutage,
            WorkerEvent::Stall(_) => EventKind::Stall,
        }
    }

    /// When it began and, if it did, when it ended.
    pub fn span(&self) -> (Duration, Option<Duration>) {
        match self {
            WorkerEvent::SessionOutage(o) => (o.first_failure, o.recovered),
            WorkerEvent::Stall(s) => (s.at, Some(s.at.saturating_add(s.duration))),
        }
    }

    /// The instant whose interval's snapshot carries the event (or the first snapshot
    /// not yet sent, when that one already went): an outage goes with the operation
    /// that ended it (its recovery, or its first failure when it never recovered), a
    /// stall with the interval it began in.
    pub fn placed_at(&self) -> Duration {
        match self {
            WorkerEvent::SessionOutage(o) => o.recovered.unwrap_or(o.first_failure),
            WorkerEvent::Stall(s) => s.at,
        }
    }

    /// How long it lasted (to the end of what was seen, for one still going).
    pub fn length(&self) -> Duration {
        let (from, to) = self.span();
        to.unwrap_or(from).saturating_sub(from)
    }

    pub fn as_outage(&self) -> Option<&SessionOutage> {
        match self {
            WorkerEvent::SessionOutage(o) => Some(o),
            WorkerEvent::Stall(_) => None,
        }
    }

    pub fn as_stall(&self) -> Option<&Stall> {
        match self {
            WorkerEvent::Stall(s) => Some(s),
            WorkerEvent::SessionOutage(_) => None,
        }
    }
}

/// Keep at most each kind's [`EventKind::snapshot_cap`] of `events`, the longest of a
/// kind over its cap, in the order they came.
pub fn cap_per_snapshot(events: &mut Vec<WorkerEvent>) {
    for kind in EventKind::ALL {
        let n = events.iter().filter(|e| e.kind() == kind).count();
        let cap = kind.snapshot_cap();
        if n <= cap {
            continue;
        }
        let mut lengths: Vec<Duration> = events
            .iter()
            .filter(|e| e.kind() == kind)
            .map(WorkerEvent::length)
            .collect();
        lengths.sort_unstable_by(|a, b| b.cmp(a));
        let shortest_kept = lengths[cap - 1];
        // Those strictly longer than the shortest kept, then ties in order, to the cap.
        let mut longer = lengths.iter().filter(|l| **l > shortest_kept).count();
        let mut ties = cap - longer;
        events.retain(|e| {
            if e.kind() != kind {
                return true;
            }
            let l = e.length();
            if l > shortest_kept {
                longer -= 1;
                true
            } else if l == shortest_kept && ties > 0 {
                ties -= 1;
                true
            } else {
                false
            }
        });
    }
}

/// One session's spell without its instance, as the session saw it: from its first
/// failure of an unavailability class (connect, connection lost, timeout, read-only) to
/// its next success (docs/design.md, "Failovers").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionOutage {
    /// The session's index on its worker.
    pub session: u32,
    /// The endpoint it was on: the writer (everything, without a reader) or the reader.
    pub role: crate::scenario::Role,
    /// Its last success before the failure (`None`: it had none yet).
    pub last_ok: Option<Duration>,
    pub first_failure: Duration,
    /// Its first success after (`None`: not recovered by the end of the run).
    pub recovered: Option<Duration>,
    /// Operations that failed in between, by class.
    pub failed: [u64; ErrorClass::COUNT],
    /// The instance the session was connected to when it failed, and the one it
    /// recovered on (a failover shows as two names).
    pub from_instance: Option<String>,
    pub to_instance: Option<String>,
}

/// A stall of a worker's own runtime: its event loop woke this much later than it
/// asked to (a frozen process, a starved host, a long pause), so nothing it measured in
/// that span is the database's doing. `at` is from the run's start on its clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stall {
    pub at: Duration,
    pub duration: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stall(at_ms: u64, ms: u64) -> WorkerEvent {
        WorkerEvent::Stall(Stall {
            at: Duration::from_millis(at_ms),
            duration: Duration::from_millis(ms),
        })
    }

    #[test]
    fn over_its_cap_a_kind_keeps_its_longest_in_order_and_other_kinds_stay() {
        let cap = EventKind::Stall.snapshot_cap();
        let mut events: Vec<WorkerEvent> = (0..cap as u64 + 10)
            .map(|i| stall(i * 1_000, 100 + (i % 7)))
            .collect();
        let outage = WorkerEvent::SessionOutage(SessionOutage {
            session: 1,
            role: crate::scenario::Role::Write,
            last_ok: None,
            first_failure: Duration::from_millis(5),
            recovered: None,
            failed: [0; ErrorClass::COUNT],
            from_instance: None,
            to_instance: None,
        });
        events.insert(3, outage.clone());
        cap_per_snapshot(&mut events);
        let stalls: Vec<&WorkerEvent> = events.iter().filter(|e| e.as_stall().is_some()).collect();
        assert_eq!(stalls.len(), cap);
        assert!(events.contains(&outage));
        // 11 of the 74 stalls last the shortest 100 ms: 10 go, the first of them stays.
        let shortest: Vec<Duration> = stalls
            .iter()
            .filter(|e| e.length() == Duration::from_millis(100))
            .map(|e| e.span().0)
            .collect();
        assert_eq!(shortest, vec![Duration::ZERO]);
        let ats: Vec<Duration> = stalls.iter().map(|e| e.span().0).collect();
        assert!(
            ats.windows(2).all(|w| w[0] < w[1]),
            "in the order they came"
        );
    }

    #[test]
    fn an_outage_is_placed_by_its_end_and_a_stall_by_its_start() {
        let o = SessionOutage {
            session: 0,
            role: crate::scenario::Role::Read,
            last_ok: None,
            first_failure: Duration::from_secs(3),
            recovered: Some(Duration::from_secs(5)),
            failed: [0; ErrorClass::COUNT],
            from_instance: None,
            to_instance: None,
        };
        assert_eq!(
            WorkerEvent::SessionOutage(o.clone()).placed_at(),
            Duration::from_secs(5)
        );
        let open = SessionOutage {
            recovered: None,
            ..o
        };
        assert_eq!(
            WorkerEvent::SessionOutage(open).placed_at(),
            Duration::from_secs(3)
        );
        assert_eq!(stall(7_000, 400).placed_at(), Duration::from_secs(7));
    }
}
