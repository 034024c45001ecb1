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
mod tests {
    use super::*;
    use fleetload_common::histogram::record;
    use fleetload_common::plan::RawPlan;
    use fleetload_common::scenario::Operation;
    use fleetload_common::stats::{OpStats, OpTotals};

    fn plan() -> Plan {
        Plan::try_from(RawPlan {
            target: Some("sqlite:///tmp/x.db".into()),
            rate: Some(100.0),
            sessions: Some(4),
            duration: Some("10s".into()),
            interval: Some("1s".into()),
            ..RawPlan::default()
        })
        .unwrap()
    }

    fn snap(seq: u64, k: u64, ok: u64) -> Snapshot {
        let mut s = OpStats::default();
        for _ in 0..ok.min(10) {
            record(&mut s.response, Duration::from_millis(2));
        }
        s.ok = ok;
        Snapshot {
            run_id: "r".into(),
            worker_index: 1,
            sequence: seq,
            interval_index: k,
            operations: vec![(Operation::PointSelect.into(), s)],
            events: Vec::new(),
        }
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_snapshot_a_worker_could_have_sent_passes() {
        let b = Bounds::of(&plan());
        assert_eq!(b.snapshot(&snap(0, 0, 10), 1, "r", SECOND), Ok(()));
        assert_eq!(b.snapshot(&snap(3, 9, 10), 1, "r", 10 * SECOND), Ok(()));
        // A late joiner starts its sequence at 0 in a later interval.
        assert_eq!(b.snapshot(&snap(0, 5, 10), 1, "r", 6 * SECOND), Ok(()));
    }

    #[test]
    fn each_impossible_field_is_refused_with_its_class() {
        use RefusalClass as C;
        let b = Bounds::of(&plan());
        let class = |s: &Snapshot, slot, run, at| b.snapshot(s, slot, run, at).unwrap_err().class;
        assert_eq!(class(&snap(0, 0, 1), 1, "other", SECOND), C::WrongRun);
        assert_eq!(class(&snap(0, 0, 1), 0, "r", SECOND), C::WrongSlot);
        for k in [10, 1_000_000, 1 << 40, u64::MAX] {
            assert_eq!(
                class(&snap(0, k, 1), 1, "r", 60 * SECOND),
                C::IntervalOutOfRange
            );
        }
        // Within the run but not yet happened: interval 8 at 2 s.
        assert_eq!(
            class(&snap(0, 8, 1), 1, "r", 2 * SECOND),
            C::IntervalOutOfRange
        );
        assert_eq!(
            class(&snap(1 << 63, 2, 1), 1, "r", 5 * SECOND),
            C::SequenceOutOfRange
        );
        assert_eq!(
            class(&snap(3, 2, 1), 1, "r", 5 * SECOND),
            C::SequenceOutOfRange
        );
        // 4 sessions for 2 s at 1 µs each: 8 000 000 at most.
        let mut s = snap(0, 0, 0);
        s.operations[0].1.errors[0] = 8_000_001;
        assert_eq!(class(&s, 1, "r", SECOND), C::ImpossibleCount);
        s.operations[0].1.errors[0] = u64::MAX;
        s.operations[0].1.errors[1] = 2;
        assert_eq!(
            class(&s, 1, "r", SECOND),
            C::ImpossibleCount,
            "a sum that wraps"
        );
        let mut s = snap(0, 0, 2);
        s.operations[0].1.rows = 1 << 62;
        assert_eq!(
            class(&s, 1, "r", SECOND),
            C::ImpossibleCount,
            "rows from two reads"
        );
        let mut s = snap(0, 0, 0);
        s.operations[0].1.dropped_backlog = 1 << 62;
        assert_eq!(class(&s, 1, "r", SECOND), C::ImpossibleCount);
        let mut s = snap(0, 0, 1);
        s.operations[0].1.response.reset();
        record(&mut s.operations[0].1.response, Duration::from_secs(3000));
        assert_eq!(class(&s, 1, "r", SECOND), C::ImpossibleLatency);
        let mut s = snap(0, 0, 1);
        s.operations[0].0 = Operation::PredictOne.into();
        assert_eq!(class(&s, 1, "r", SECOND), C::UnknownOperation);
        // A stall reported with the first snapshot after it passes; one past the run's
        // end (or of centuries) is refused.
        let stall = |at: u64, secs: u64| {
            WorkerEvent::Stall(fleetload_common::events::Stall {
                at: Duration::from_millis(at),
                duration: Duration::from_secs(secs),
            })
        };
        let mut s = snap(0, 3, 1);
        s.events = vec![stall(3_100, 3)];
        assert_eq!(b.snapshot(&s, 1, "r", 7 * SECOND), Ok(()));
        for bad in [stall(3_100, 60), stall(u64::MAX / 2, 1), stall(0, u64::MAX)] {
            s.events = vec![bad];
            assert_eq!(class(&s, 1, "r", 7 * SECOND), C::ImpossibleLatency);
        }
        // The same check for an outage: its session must exist, and it may not ride
        // with a snapshot earlier than the interval that ended it.
        let outage = |session: u32, from_ms: u64, to_ms: u64| {
            WorkerEvent::SessionOutage(fleetload_common::events::SessionOutage {
                session,
                role: fleetload_common::scenario::Role::Write,
                last_ok: None,
                first_failure: Duration::from_millis(from_ms),
                recovered: Some(Duration::from_millis(to_ms)),
                failed: [0; fleetload_common::outcome::ErrorClass::COUNT],
                from_instance: None,
                to_instance: None,
            })
        };
        s.events = vec![outage(3, 2_000, 3_500)];
        assert_eq!(b.snapshot(&s, 1, "r", 7 * SECOND), Ok(()));
        for bad in [outage(4, 2_000, 3_500), outage(0, 2_000, 30_000)] {
            s.events = vec![bad];
            assert_eq!(class(&s, 1, "r", 7 * SECOND), C::ImpossibleCount);
        }
    }

    fn done() -> Done {
        Done {
            run_id: "r".into(),
            worker_index: 1,
            snapshots_sent: 10,
            totals: vec![(
                Operation::PointSelect.into(),
                OpTotals {
                    ok: 1000,
                    ..OpTotals::default()
                },
            )],
            inserted: 0,
            insert_id_base: 7,
            insert_id_last: 0,
            first_op_unix_nanos: Some(5_000_000_000),
        }
    }

    #[test]
    fn a_done_only_for_its_own_slot_run_and_what_was_possible() {
        use RefusalClass as C;
        let b = Bounds::of(&plan());
        let start = 5_000_000_000;
        assert_eq!(b.done(&done(), 1, "r", 7, start), Ok(()));
        let class = |d: &Done| b.done(d, 1, "r", 7, start).unwrap_err().class;
        let mut d = done();
        d.worker_index = 0;
        assert_eq!(class(&d), C::WrongSlot);
        let mut d = done();
        d.run_id = "another".into();
        assert_eq!(class(&d), C::WrongRun);
        let mut d = done();
        d.totals[0].1.ok = 1 << 62;
        assert_eq!(class(&d), C::ImpossibleDone);
        let mut d = done();
        d.snapshots_sent = 1 << 63;
        assert_eq!(class(&d), C::ImpossibleDone);
        let mut d = done();
        d.insert_id_base = 1;
        assert_eq!(class(&d), C::ImpossibleDone);
        let mut d = done();
        d.first_op_unix_nanos = Some(i64::MAX);
        assert_eq!(class(&d), C::Clock);
    }

    #[test]
    fn clock_samples_need_our_probe_a_forward_worker_and_a_plausible_offset() {
        let ms = 1_000_000i64;
        let t1 = 1_700_000_000_000 * ms;
        // The worker is 250 ms ahead; 2 ms each way; 1 ms to answer.
        let ok = clock_sample(t1, t1, t1 + 252 * ms, t1 + 253 * ms, t1 + 5 * ms).unwrap();
        assert_eq!(ok, (250 * ms, 4 * ms));
        for (t2, t3, t4) in [
            (0, 0, t1 + ms),
            (-1, -1, t1 + ms),
            (i64::MIN, i64::MAX, t1 + ms),
            (i64::MAX, i64::MAX, t1 + ms),
            (t1, t1 + 10 * ms, t1 + ms), // answered after the echo came back
            (t1 + ms, t1, t1 + 2 * ms),  // answered before it was received
        ] {
            let r = clock_sample(t1, t1, t2, t3, t4);
            assert_eq!(
                r.map_err(|e| e.class),
                Err(RefusalClass::Clock),
                "{t2} {t3}"
            );
        }
        assert!(
            clock_sample(t1, t1 - 1, t1, t1, t1 + ms).is_err(),
            "not our probe"
        );
    }
}
