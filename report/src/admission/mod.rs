//! What a worker may say, bounded by what is physically possible in this run
//! (docs/design.md, "What a worker may send"). A worker holding the fleet token is still outside the
//! coordinator's trust: a buggy build, a bit flip or a clock gone wrong must not be able
//! to corrupt a report, hang the coordinator or grow its memory without bound.
//!
//! This module owns the bounds and the reasons for refusing; it holds no run state and
//! does no I/O, so every rule is unit-tested with chosen instants. It does not own the
//! checks that need the merge's state (a sequence already held, sums that would
//! overflow): those live in [`crate::merge`] and refuse with the same [`Refusal`].

use fleetload_common::events::{EventKind, WorkerEvent};
use fleetload_common::plan::{Plan, MAX_RATE};
use fleetload_common::scenario::OpName;
use fleetload_common::wire::{Done, Snapshot};
use std::fmt;
use std::time::Duration;

/// Why a message from a worker was refused: the classes counted per worker in the
/// report (`rejected_by_reason`) and logged once per worker and class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RefusalClass {
    /// Did not decode, or its parts disagree (histogram counts, bounds).
    Malformed,
    /// Names another run.
    WrongRun,
    /// Names another worker's slot.
    WrongSlot,
    /// An operation the run does not have.
    UnknownOperation,
    /// An interval outside the run, or one that has not happened yet.
    IntervalOutOfRange,
    /// A sequence number the run could not have produced by then.
    SequenceOutOfRange,
    /// More operations than the worker's sessions could have done.
    ImpossibleCount,
    /// A latency longer than the run had lasted.
    ImpossibleLatency,
    /// A sum that would not fit: refused, never wrapped.
    Overflow,
    /// A clock echo with a negative round trip, an implausible offset, or for no probe.
    Clock,
    /// A Done that does not fit what the worker was assigned and could have done.
    ImpossibleDone,
    /// A message that is not due in the slot's state (a second Done).
    Unexpected,
    /// A rejoin without the slot's resume secret or from another certificate.
    Rejoin,
}

impl RefusalClass {
    pub fn name(self) -> &'static str {
        match self {
            RefusalClass::Malformed => "malformed",
            RefusalClass::WrongRun => "wrong_run",
            RefusalClass::WrongSlot => "wrong_slot",
            RefusalClass::UnknownOperation => "unknown_operation",
            RefusalClass::IntervalOutOfRange => "interval_out_of_range",
            RefusalClass::SequenceOutOfRange => "sequence_out_of_range",
            RefusalClass::ImpossibleCount => "impossible_count",
            RefusalClass::ImpossibleLatency => "impossible_latency",
            RefusalClass::Overflow => "overflow",
            RefusalClass::Clock => "clock",
            RefusalClass::ImpossibleDone => "impossible_done",
            RefusalClass::Unexpected => "unexpected",
            RefusalClass::Rejoin => "rejoin",
        }
    }
}

/// A refused message: its class and what exactly was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub class: RefusalClass,
    pub detail: String,
}

impl Refusal {
    pub fn new(class: RefusalClass, detail: impl Into<String>) -> Self {
        Refusal {
            class,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.class.name(), self.detail)
    }
}

/// No database operation completes in less than this, per session: the floor of what
/// a worker's sessions can do in an interval. Generous by design (a loopback round trip
/// is tens of µs): the bound is there to refuse the impossible, not the surprising.
const FLOOR_LATENCY: Duration = Duration::from_micros(1);
/// A worker's snapshot may carry a little of the previous interval (operations that
/// completed after it was sent), so counts are bounded over two intervals.
const INTERVALS_PER_SNAPSHOT: u32 = 2;
/// Intervals a snapshot may be ahead of the coordinator's own clock: the workers' start
/// instants are synchronized to well under a millisecond, so this covers a worker whose
/// clock could not be probed and a coordinator that is slow to read its stream.
const AHEAD_INTERVALS: u64 = 1;
const AHEAD_SLACK: Duration = Duration::from_secs(2);
/// Slack on latencies beyond the run's elapsed time (clock error, late stragglers).
const LATENCY_SLACK: Duration = Duration::from_secs(10);
/// Largest plausible offset between a worker's clock and ours.
pub const MAX_CLOCK_OFFSET: Duration = Duration::from_secs(86_400);
/// Most rows one operation may insert (a scenario file's INSERT … SELECT).
const MAX_ROWS_PER_OPERATION: u64 = 1_000_000;
/// Longest a worker may take between receiving a probe and answering it.
const MAX_ECHO_TURNAROUND: Duration = Duration::from_secs(10);

/// The limits of one run, worked out once from its plan.
#[derive(Debug, Clone)]
pub struct Bounds {
    operations: Vec<OpName>,
    interval: Duration,
    last_interval: u64,
    duration: Duration,
    /// Most operations (ok + errors + retries) of one operation in one snapshot.
    executed_per_snapshot: u64,
    /// Most operations dropped for backlog of one operation in one snapshot.
    dropped_per_snapshot: u64,
    /// Sessions per worker: the session index an outage may name.
    sessions: u32,
}

impl Bounds {
    pub fn of(plan: &Plan) -> Self {
        let interval = plan.interval.max(Duration::from_millis(1));
        let span = interval * INTERVALS_PER_SNAPSHOT;
        // What the sessions could do at one operation per floor latency each...
        let by_sessions =
            u128::from(plan.all_sessions().max(1)) * span.as_nanos() / FLOOR_LATENCY.as_nanos();
        // ...and the hard ceiling: the largest cluster rate a plan may ask for, all of
        // it on this one worker.
        let ceiling = (MAX_RATE * span.as_secs_f64()).ceil() as u128;
        let clamp = |v: u128| u64::try_from(v).unwrap_or(u64::MAX).max(1);
        Bounds {
            operations: plan.mix.iter().map(|(op, _)| op.clone()).collect(),
            interval,
            last_interval: plan.interval_count().saturating_sub(1),
            duration: plan.duration,
            executed_per_snapshot: clamp(by_sessions.min(ceiling)),
            dropped_per_snapshot: clamp(ceiling),
            sessions: plan.all_sessions(),
        }
    }

    /// The run's last interval index.
    pub fn last_interval(&self) -> u64 {
        self.last_interval
    }

    /// The latest interval a snapshot may name when the run has lasted `elapsed`.
    fn latest_interval(&self, elapsed: Duration) -> u64 {
        let now = (elapsed + AHEAD_SLACK).as_nanos() / self.interval.as_nanos();
        u64::try_from(now)
            .unwrap_or(u64::MAX)
            .saturating_add(AHEAD_INTERVALS)
            .min(self.last_interval)
    }

    /// Check a snapshot from the worker in slot `slot` of run `run_id`, received when
    /// the run had lasted `elapsed` (zero before the start).
    ///
    /// # Errors
    /// The first rule it breaks.
    pub fn snapshot(
        &self,
        snap: &Snapshot,
        slot: u32,
        run_id: &str,
        elapsed: Duration,
    ) -> Result<(), Refusal> {
        use RefusalClass as C;
        belongs(
            "a snapshot",
            (&snap.run_id, snap.worker_index),
            (run_id, slot),
        )?;
        let latest = self.latest_interval(elapsed);
        if snap.interval_index > latest {
            return Err(Refusal::new(
                C::IntervalOutOfRange,
                format!(
                    "interval {} at {:.1}s into a run of intervals 0..={}: at most {latest} so far",
                    snap.interval_index,
                    elapsed.as_secs_f64(),
                    self.last_interval
                ),
            ));
        }
        // One snapshot per interval from the first the worker ran: never more
        // sequences than intervals.
        if snap.sequence > snap.interval_index {
            return Err(Refusal::new(
                C::SequenceOutOfRange,
                format!(
                    "sequence {} for interval {}: a worker sends one snapshot per interval",
                    snap.sequence, snap.interval_index
                ),
            ));
        }
        // Response, service and lag times cannot exceed the time since the start.
        let elapsed_by_end =
            self.interval * u32::try_from(snap.interval_index + 1).unwrap_or(u32::MAX);
        let longest = u64::try_from((elapsed_by_end + self.interval + LATENCY_SLACK).as_micros())
            .unwrap_or(u64::MAX);
        for (op, s) in &snap.operations {
            self.snapshot_operation(op, s, snap.interval_index, elapsed_by_end, longest)?;
        }
        for e in &snap.events {
            self.event(e, snap.interval_index, elapsed_by_end)?;
        }
        Ok(())
    }

    /// One event of a snapshot of interval `k` (the one check for every kind): it is
    /// placed no later than the snapshot's interval allows, ends within the run, and
    /// its own facts are possible (an outage's session exists).
    fn event(&self, e: &WorkerEvent, k: u64, elapsed_by_end: Duration) -> Result<(), Refusal> {
        use RefusalClass as C;
        // An event rides with the snapshot of the interval it is placed in or a later
        // one (when that one had gone), never an earlier one.
        let placed_by = elapsed_by_end + self.interval + LATENCY_SLACK;
        // A stall may outlast its interval: only the run's end bounds where it ends.
        let run_end = self.duration + self.interval + LATENCY_SLACK;
        let (from, to) = e.span();
        let end = to.unwrap_or(from);
        if e.placed_at() > placed_by || end > run_end {
            return Err(Refusal::new(
                match e.kind() {
                    EventKind::Stall => C::ImpossibleLatency,
                    EventKind::SessionOutage => C::ImpossibleCount,
                },
                format!(
                    "a {} from {:.3} s to {:.3} s in the snapshot of interval {k}, past the run's end ({:.3} s) or that interval",
                    e.kind().name(),
                    from.as_secs_f64(),
                    end.as_secs_f64(),
                    run_end.as_secs_f64()
                ),
            ));
        }
        if let WorkerEvent::SessionOutage(o) = e {
            if o.session >= self.sessions {
                return Err(Refusal::new(
                    C::ImpossibleCount,
                    format!(
                        "an outage of session {} (of {}) in interval {k}",
                        o.session, self.sessions
                    ),
                ));
            }
        }
        Ok(())
    }

    /// One operation of a snapshot of interval `k`: known, with counts its sessions
    /// could have done and latencies the run could have had.
    fn snapshot_operation(
        &self,
        op: &fleetload_common::scenario::OpName,
        s: &fleetload_common::stats::OpStats,
        k: u64,
        elapsed_by_end: Duration,
        longest: u64,
    ) -> Result<(), Refusal> {
        use RefusalClass as C;
        if !self.operations.contains(op) {
            return Err(Refusal::new(
                C::UnknownOperation,
                format!("operation {} is not part of this run", op.name()),
            ));
        }
        let executed = s
            .errors
            .iter()
            .try_fold(s.ok, |a, e| a.checked_add(*e))
            .and_then(|a| a.checked_add(s.retries));
        match executed {
            Some(n) if n <= self.executed_per_snapshot => {}
            _ => {
                return Err(Refusal::new(
                    C::ImpossibleCount,
                    format!(
                        "{}: {} ok, {} errors, {} retries in one interval; its sessions can do at most {}",
                        op.name(),
                        s.ok,
                        s.errors.iter().fold(0u64, |a, e| a.saturating_add(*e)),
                        s.retries,
                        self.executed_per_snapshot
                    ),
                ))
            }
        }
        if s.rows > s.ok.saturating_mul(MAX_ROWS_PER_OPERATION) {
            return Err(Refusal::new(
                C::ImpossibleCount,
                format!("{}: {} rows from {} operations", op.name(), s.rows, s.ok),
            ));
        }
        if s.dropped_backlog > self.dropped_per_snapshot {
            return Err(Refusal::new(
                C::ImpossibleCount,
                format!(
                    "{}: {} operations dropped in one interval; at most {} were due",
                    op.name(),
                    s.dropped_backlog,
                    self.dropped_per_snapshot
                ),
            ));
        }
        for (what, h) in [
            ("response time", &s.response),
            ("service time", &s.service),
            ("schedule lag", &s.lag),
        ] {
            if !h.is_empty() && h.max() > longest {
                return Err(Refusal::new(
                    C::ImpossibleLatency,
                    format!(
                        "{}: a {what} of {:.3} s in interval {}, when the run had lasted at most {:.3} s",
                        op.name(),
                        h.max() as f64 / 1e6,
                        k,
                        elapsed_by_end.as_secs_f64()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Check a Done from the worker in slot `slot`, assigned `insert_id_base`, whose
    /// start instant on its own clock was `start_in_worker_clock` (Unix nanoseconds).
    ///
    /// # Errors
    /// The first rule it breaks.
    pub fn done(
        &self,
        done: &Done,
        slot: u32,
        run_id: &str,
        insert_id_base: u64,
        start_in_worker_clock: i64,
    ) -> Result<(), Refusal> {
        use RefusalClass as C;
        belongs("a Done", (&done.run_id, done.worker_index), (run_id, slot))?;
        let intervals = self.last_interval.saturating_add(1);
        if done.snapshots_sent > intervals {
            return Err(Refusal::new(
                C::ImpossibleDone,
                format!(
                    "{} snapshots sent in a run of {intervals} intervals",
                    done.snapshots_sent
                ),
            ));
        }
        let most = self.executed_per_snapshot.saturating_mul(intervals);
        let most_dropped = self.dropped_per_snapshot.saturating_mul(intervals);
        let attempts = self.done_totals(done, most, most_dropped)?;
        if done.insert_id_base != insert_id_base {
            return Err(Refusal::new(
                C::ImpossibleDone,
                format!(
                    "insert ids from {}, but the worker was assigned {insert_id_base}",
                    done.insert_id_base
                ),
            ));
        }
        if done.inserted > attempts.saturating_mul(MAX_ROWS_PER_OPERATION) {
            return Err(Refusal::new(
                C::ImpossibleDone,
                format!("{} rows inserted by {attempts} operations", done.inserted),
            ));
        }
        if let Some(first) = done.first_op_unix_nanos {
            let after = i128::from(first) - i128::from(start_in_worker_clock);
            let run =
                i128::try_from((self.duration + LATENCY_SLACK).as_nanos()).unwrap_or(i128::MAX);
            let before = i128::try_from(LATENCY_SLACK.as_nanos()).unwrap_or(0);
            if after < -before || after > run {
                return Err(Refusal::new(
                    C::Clock,
                    format!(
                        "first operation {:.3} s from the start, outside the run",
                        after as f64 / 1e9
                    ),
                ));
            }
        }
        Ok(())
    }
    /// A Done's totals: known operations, counts the run could have had; returns the
    /// operations attempted.
    fn done_totals(&self, done: &Done, most: u64, most_dropped: u64) -> Result<u64, Refusal> {
        use RefusalClass as C;
        let mut attempts = 0u64;
        for (op, t) in &done.totals {
            if !self.operations.contains(op) {
                return Err(Refusal::new(
                    C::UnknownOperation,
                    format!("operation {} is not part of this run", op.name()),
                ));
            }
            let executed = t
                .errors
                .iter()
                .try_fold(t.ok, |a, e| a.checked_add(*e))
                .and_then(|a| a.checked_add(t.retries));
            match executed {
                Some(n) if n <= most && t.dropped_backlog <= most_dropped => {
                    attempts = attempts.saturating_add(n);
                }
                _ => {
                    return Err(Refusal::new(
                        C::ImpossibleDone,
                        format!(
                        "{}: {} ok and {} dropped over the run; its sessions can do at most {most}",
                        op.name(),
                        t.ok,
                        t.dropped_backlog
                    ),
                    ))
                }
            }
        }
        Ok(attempts)
    }
}

/// A message of another run or another slot is refused.
fn belongs(
    what: &str,
    (run, slot): (&str, u32),
    (run_id, own): (&str, u32),
) -> Result<(), Refusal> {
    if run != run_id {
        return Err(Refusal::new(
            RefusalClass::WrongRun,
            format!("{what} for run {run:?}, this is {run_id}"),
        ));
    }
    if slot != own {
        return Err(Refusal::new(
            RefusalClass::WrongSlot,
            format!("{what} for worker slot {slot} from the worker in slot {own}"),
        ));
    }
    Ok(())
}

/// One NTP-style clock sample from a probe we sent at `t1` (our clock), received by the
/// worker at `t2` and answered at `t3` (its clock), whose echo arrived at `t4` (ours):
/// the worker's offset from us and the round trip, nanoseconds. The offset is wrong by at
/// most half the round trip, so the caller keeps the sample with the lowest.
///
/// # Errors
/// `t1` is not the probe we sent (`sent`), the worker's times run backwards or stall,
/// the round trip is negative, or the offset is beyond [`MAX_CLOCK_OFFSET`]. Computed
/// in 128 bits: no timestamp a worker sends can overflow it.
pub fn clock_sample(sent: i64, t1: i64, t2: i64, t3: i64, t4: i64) -> Result<(i64, i64), Refusal> {
    let refuse = |d: String| Err(Refusal::new(RefusalClass::Clock, d));
    if t1 != sent {
        return refuse(format!(
            "an echo of a probe sent at {t1}, not of ours ({sent})"
        ));
    }
    let (t1, t2, t3, t4) = (
        i128::from(t1),
        i128::from(t2),
        i128::from(t3),
        i128::from(t4),
    );
    let turnaround = t3 - t2;
    if turnaround < 0 || turnaround > MAX_ECHO_TURNAROUND.as_nanos() as i128 {
        return refuse(format!(
            "answered {:.3} s after receiving (worker times {t2} → {t3})",
            turnaround as f64 / 1e9
        ));
    }
    let rtt = (t4 - t1) - turnaround;
    if rtt < 0 {
        return refuse(format!(
            "a negative round trip ({:.3} ms): the worker took longer to answer than the probe was away",
            rtt as f64 / 1e6
        ));
    }
    let offset = ((t2 - t1) + (t3 - t4)) / 2;
    if offset.unsigned_abs() > MAX_CLOCK_OFFSET.as_nanos() {
        return refuse(format!(
            "a clock {:.0} s from ours (at most {} s is plausible)",
            offset as f64 / 1e9,
            MAX_CLOCK_OFFSET.as_secs()
        ));
    }
    // Both fit: |offset| ≤ a day and 0 ≤ rtt ≤ t4 − t1, a difference of two i64.
    Ok((
        i64::try_from(offset).unwrap_or(0),
        i64::try_from(rtt).unwrap_or(i64::MAX),
    ))
}

#[cfg(test)]
mod tests;
