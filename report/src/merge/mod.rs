//! The exact merge of worker snapshots: per interval for the cluster, per worker, and in
//! total. Percentiles only ever come from merged histograms (docs/design.md, "Histograms and the merge").
//!
//! Each worker numbers its snapshots 0, 1, 2, …; a sequence already held is ignored, so
//! a resent snapshot is never counted twice (same section). Warm-up intervals are kept in the
//! series but left out of the totals.

use crate::admission::{Refusal, RefusalClass};
use fleetload_common::events::{EventKind, SessionOutage, Stall, WorkerEvent};
use fleetload_common::scenario::OpName;
use fleetload_common::stats::{OpStats, OpTotals, PackedStats};
use fleetload_common::wire::Snapshot;
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

mod image;
pub use image::MergeImage;

/// A few numbers of one operation of one worker in one interval (histograms of every
/// worker and interval would not fit in memory for a large fleet).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Brief {
    pub ok: u64,
    pub errors: u64,
    pub dropped_backlog: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

impl Brief {
    fn of(s: &OpStats) -> Self {
        Brief {
            ok: s.ok,
            errors: s.error_total(),
            dropped_backlog: s.dropped_backlog,
            p50_us: s.response.value_at_quantile(0.5),
            p99_us: s.response.value_at_quantile(0.99),
            max_us: s.response.max(),
        }
    }

    /// Its numbers in a fixed order: how packed intervals and checkpoints store it.
    fn fields(&self) -> [u64; 6] {
        [
            self.ok,
            self.errors,
            self.dropped_backlog,
            self.p50_us,
            self.p99_us,
            self.max_us,
        ]
    }

    /// Back from [`Brief::fields`].
    fn from_fields(f: [u64; 6]) -> Self {
        Brief {
            ok: f[0],
            errors: f[1],
            dropped_backlog: f[2],
            p50_us: f[3],
            p99_us: f[4],
            max_us: f[5],
        }
    }
}

/// One interval of the cluster: open while its snapshots arrive, packed once it has
/// been reported live. Every interval is kept until the report, and open intervals cost
/// 16–90 KB per histogram (three per operation) plus a map of every worker's briefs;
/// packed, an interval of a thousand workers and five operations takes tens of KB, so a
/// long run's memory grows by that per interval rather than by megabytes. A late
/// snapshot for a packed interval unpacks it, merges, and it is packed again.
#[derive(Debug, Clone)]
pub struct IntervalAgg {
    held: Held,
    /// Whether the interval was closed (reported live) before every worker had sent it.
    pub closed: bool,
    /// Snapshots that arrived after the interval had been closed.
    pub late: u64,
}

#[derive(Debug, Clone)]
enum Held {
    Open {
        /// Per operation, in the order of `Merge::operations`.
        cluster: Vec<OpStats>,
        per_worker: BTreeMap<u32, Vec<Brief>>,
    },
    Packed {
        cluster: Vec<PackedStats>,
        /// [`pack_briefs`]: every worker's briefs as deflated varints.
        per_worker: Vec<u8>,
        workers: usize,
    },
}

impl IntervalAgg {
    fn new(operations: usize) -> Self {
        IntervalAgg {
            held: Held::Open {
                cluster: empty(operations),
                per_worker: BTreeMap::new(),
            },
            closed: false,
            late: 0,
        }
    }

    /// The cluster's stats per operation, in the order of `Merge::operations`.
    pub fn cluster(&self) -> Cow<'_, [OpStats]> {
        match &self.held {
            Held::Open { cluster, .. } => Cow::Borrowed(cluster),
            Held::Packed { cluster, .. } => Cow::Owned(
                cluster
                    .iter()
                    .map(|p| {
                        p.unpack().unwrap_or_else(|e| {
                            // Only bytes this process encoded are here.
                            tracing::error!(error = %e, "a packed interval does not decode");
                            OpStats::default()
                        })
                    })
                    .collect(),
            ),
        }
    }

    /// Each reporting worker's briefs, per operation.
    pub fn per_worker(&self) -> Cow<'_, BTreeMap<u32, Vec<Brief>>> {
        match &self.held {
            Held::Open { per_worker, .. } => Cow::Borrowed(per_worker),
            Held::Packed { per_worker, .. } => Cow::Owned(unpack_briefs(per_worker)),
        }
    }

    /// How many workers sent this interval.
    pub fn workers_reporting(&self) -> usize {
        match &self.held {
            Held::Open { per_worker, .. } => per_worker.len(),
            Held::Packed { workers, .. } => *workers,
        }
    }

    /// The open form, unpacking first if needed (a late snapshot).
    fn open(&mut self) -> (&mut Vec<OpStats>, &mut BTreeMap<u32, Vec<Brief>>) {
        if matches!(self.held, Held::Packed { .. }) {
            self.held = Held::Open {
                cluster: self.cluster().into_owned(),
                per_worker: self.per_worker().into_owned(),
            };
        }
        match &mut self.held {
            Held::Open {
                cluster,
                per_worker,
            } => (cluster, per_worker),
            Held::Packed { .. } => unreachable!("unpacked just above"),
        }
    }

    /// Pack the interval: exact (the histograms are encoded, not summarized).
    pub fn pack(&mut self) {
        let Held::Open {
            cluster,
            per_worker,
        } = &self.held
        else {
            return;
        };
        let packed: Result<Vec<_>, _> = cluster.iter().map(PackedStats::pack).collect();
        match packed {
            Ok(packed) => {
                self.held = Held::Packed {
                    cluster: packed,
                    workers: per_worker.len(),
                    per_worker: pack_briefs(per_worker),
                };
            }
            Err(e) => tracing::error!(error = %e, "cannot pack an interval; keeping it open"),
        }
    }
}

/// Briefs as varints (worker, then six numbers per operation), deflated.
fn pack_briefs(per_worker: &BTreeMap<u32, Vec<Brief>>) -> Vec<u8> {
    use std::io::Write;
    let mut raw = Vec::with_capacity(per_worker.len() * 32);
    let mut put = |mut v: u64| loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            raw.push(byte);
            break;
        }
        raw.push(byte | 0x80);
    };
    for (worker, briefs) in per_worker {
        put(u64::from(*worker));
        put(briefs.len() as u64);
        for b in briefs {
            for v in b.fields() {
                put(v);
            }
        }
    }
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    // Writing to memory cannot fail.
    let _ = z.write_all(&raw);
    z.finish().unwrap_or_default()
}

fn unpack_briefs(packed: &[u8]) -> BTreeMap<u32, Vec<Brief>> {
    use std::io::Read;
    let mut raw = Vec::new();
    if let Err(e) = flate2::read::DeflateDecoder::new(packed).read_to_end(&mut raw) {
        tracing::error!(error = %e, "packed briefs do not inflate");
    }
    let mut at = 0;
    let mut get = || -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *raw.get(at)?;
            at += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    };
    let mut out = BTreeMap::new();
    while let Some(worker) = get() {
        let Some(n) = get() else { break };
        let mut briefs = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let mut f = [0u64; 6];
            for x in &mut f {
                *x = get().unwrap_or(0);
            }
            briefs.push(Brief::from_fields(f));
        }
        out.insert(u32::try_from(worker).unwrap_or(u32::MAX), briefs);
    }
    out
}

/// Everything received from one worker.
#[derive(Debug, Default, Clone)]
pub struct WorkerAgg {
    /// Measured totals (warm-up excluded).
    pub measured: Vec<OpStats>,
    /// Counts over every interval, warm-up included: compared with the worker's own.
    pub received: Vec<OpTotals>,
    /// Every sequence below this one is held.
    next_sequence: u64,
    /// Sequences held beyond a gap (snapshots resent out of order after a reconnect).
    ahead: BTreeSet<u64>,
    /// Intervals this worker has sent that are not closed yet.
    intervals: BTreeSet<u64>,
    pub duplicates: u64,
    /// The highest interval it sent a snapshot of.
    pub last_interval: Option<u64>,
}

impl WorkerAgg {
    /// Highest sequence `s` such that every sequence up to `s` is held: O(1), asked
    /// for every snapshot (a set of all sequences walked each time grew quadratic over
    /// a long run).
    pub fn contiguous(&self) -> Option<u64> {
        self.next_sequence.checked_sub(1)
    }

    /// Snapshots held.
    pub fn snapshots(&self) -> u64 {
        self.next_sequence + self.ahead.len() as u64
    }

    /// Sequences held beyond the first gap.
    pub fn ahead_count(&self) -> u64 {
        self.ahead.len() as u64
    }

    /// Whether this worker sent interval `k` (asked until `k` is closed).
    pub fn sent_interval(&self, k: u64) -> bool {
        self.intervals.contains(&k)
    }

    /// Hold `sequence`; false if it was already held.
    fn hold(&mut self, sequence: u64) -> bool {
        if sequence < self.next_sequence || !self.ahead.insert(sequence) {
            return false;
        }
        while self.ahead.remove(&self.next_sequence) {
            self.next_sequence += 1;
        }
        true
    }
}

/// What happened to a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    New,
    /// Already held: ignored.
    Duplicate,
}

#[derive(Debug, Clone)]
pub struct Merge {
    pub operations: Vec<OpName>,
    pub warmup_intervals: u64,
    pub intervals: BTreeMap<u64, IntervalAgg>,
    pub workers: BTreeMap<u32, WorkerAgg>,
    /// Packed intervals that a late snapshot opened again.
    reopened: BTreeSet<u64>,
    /// What each server instance served, by name (at most `MAX_INSTANCES`).
    pub instances: BTreeMap<String, InstanceAgg>,
    /// Every event the workers reported (session outages, stalls of their own
    /// runtime, …), with the worker's slot, in the order received: at most
    /// [`EventKind::run_cap`] of each kind. Report sections read the kinds they show
    /// ([`Merge::outages`], [`Merge::stalls`]).
    pub events: Vec<(u32, WorkerEvent)>,
    /// Events kept so far, by kind (for the caps).
    event_counts: BTreeMap<EventKind, usize>,
    /// Every count accepted, of every operation, interval and worker, summed: every
    /// other sum the merge, the report and the exporters make is part of this one, so
    /// checking that it fits checks them all (an overflow refuses the snapshot).
    grand_total: u64,
}

/// What one server instance served over the run.
#[derive(Debug, Default, Clone)]
pub struct InstanceAgg {
    pub read_only: bool,
    /// The mix slots of the operations it ran.
    pub slots: BTreeSet<usize>,
    /// Over the measured intervals: successes, failures and response times.
    pub measured: fleetload_common::stats::InstanceStats,
    /// Per interval: sessions on it, successes, failures (warm-up included).
    pub series: BTreeMap<u64, (u64, u64, u64)>,
    /// Intervals in which it said it was read-only: a demoted writer is read-only for
    /// a span, not for the whole run.
    pub read_only_in: BTreeSet<u64>,
}

impl InstanceAgg {
    fn add(
        &mut self,
        i: &fleetload_common::stats::InstanceStats,
        slot: usize,
        k: u64,
        measured: bool,
    ) {
        self.read_only |= i.read_only;
        if i.read_only {
            self.read_only_in.insert(k);
        }
        self.slots.insert(slot);
        if measured {
            self.measured.merge(i);
        }
        let e = self.series.entry(k).or_default();
        e.0 = e.0.saturating_add(u64::from(i.sessions));
        e.1 = e.1.saturating_add(i.ok);
        e.2 = e.2.saturating_add(i.errors);
    }
}

/// Packed intervals a late snapshot may hold open at once: beyond this they are packed
/// again at once, so memory stays bounded whatever a worker resends.
const MAX_REOPENED: usize = 16;

fn empty(n: usize) -> Vec<OpStats> {
    (0..n).map(|_| OpStats::default()).collect()
}

impl Merge {
    pub fn new(operations: Vec<OpName>, warmup_intervals: u64) -> Self {
        Merge {
            operations,
            warmup_intervals,
            intervals: BTreeMap::new(),
            workers: BTreeMap::new(),
            reopened: BTreeSet::new(),
            events: Vec::new(),
            event_counts: BTreeMap::new(),
            instances: BTreeMap::new(),
            grand_total: 0,
        }
    }

    fn slot(&self, op: &OpName) -> Option<usize> {
        self.operations.iter().position(|o| o == op)
    }

    /// Add one worker's snapshot (validated against the run's bounds by
    /// [`crate::admission::Bounds::snapshot`] first).
    ///
    /// # Errors
    /// An operation the run does not have, or counts whose sum with what is already
    /// held would not fit in 64 bits; nothing of the snapshot is merged then.
    pub fn add(&mut self, snap: &Snapshot) -> Result<Accepted, Refusal> {
        let n = self.operations.len();
        let mut slots = Vec::with_capacity(snap.operations.len());
        let mut sum = 0u64;
        for (op, s) in &snap.operations {
            slots.push(self.slot(op).ok_or_else(|| {
                Refusal::new(
                    RefusalClass::UnknownOperation,
                    format!("operation {} is not part of this run", op.name()),
                )
            })?);
            sum = [
                s.ok,
                s.dropped_backlog,
                s.retries,
                s.rows,
                s.empty,
                s.rolled_back,
                s.remote,
            ]
            .iter()
            .chain(&s.errors)
            .try_fold(sum, |a, v| a.checked_add(*v))
            .ok_or_else(|| Refusal::new(RefusalClass::Overflow, "its counts do not fit 64 bits"))?;
        }
        let Some(grand_total) = self.grand_total.checked_add(sum) else {
            return Err(Refusal::new(
                RefusalClass::Overflow,
                format!(
                    "{sum} more operations would overflow the run's total of {}",
                    self.grand_total
                ),
            ));
        };
        let worker = self
            .workers
            .entry(snap.worker_index)
            .or_insert_with(|| WorkerAgg {
                // Per-worker rows at 2 significant digits; the cluster stays at 3.
                measured: (0..n).map(|_| OpStats::coarse()).collect(),
                received: vec![OpTotals::default(); n],
                ..WorkerAgg::default()
            });
        if !worker.hold(snap.sequence) {
            worker.duplicates += 1;
            return Ok(Accepted::Duplicate);
        }
        self.grand_total = grand_total;
        worker.intervals.insert(snap.interval_index);
        worker.last_interval = worker.last_interval.max(Some(snap.interval_index));
        let measured = snap.interval_index >= self.warmup_intervals;
        let interval = self
            .intervals
            .entry(snap.interval_index)
            .or_insert_with(|| IntervalAgg::new(n));
        if interval.closed {
            interval.late += 1;
        }
        if matches!(interval.held, Held::Packed { .. }) {
            // Packed again with the next interval packed, not per late snapshot: after
            // an outage a thousand workers may resend into the same interval.
            self.reopened.insert(snap.interval_index);
        }
        let (cluster, per_worker) = interval.open();
        let mut briefs = vec![Brief::default(); n];
        for ((_, stats), slot) in snap.operations.iter().zip(slots) {
            for i in &stats.instances {
                let known = self.instances.len();
                let agg = match self.instances.get_mut(&i.name) {
                    Some(agg) => agg,
                    None if known < fleetload_common::stats::MAX_INSTANCES => {
                        self.instances.entry(i.name.clone()).or_default()
                    }
                    None => continue,
                };
                agg.add(i, slot, snap.interval_index, measured);
            }
            cluster[slot].merge(stats);
            worker.received[slot].add(stats);
            if measured {
                worker.measured[slot].merge(stats);
            }
            briefs[slot] = Brief::of(stats);
        }
        per_worker.insert(snap.worker_index, briefs);
        for e in &snap.events {
            self.keep_event(snap.worker_index, e.clone());
        }
        if self.reopened.len() > MAX_REOPENED {
            for k in std::mem::take(&mut self.reopened) {
                if let Some(agg) = self.intervals.get_mut(&k) {
                    agg.pack();
                }
            }
        }
        Ok(Accepted::New)
    }

    /// Keep `e` of worker `slot` in the run's event log, within its kind's cap.
    pub fn keep_event(&mut self, slot: u32, e: WorkerEvent) {
        let kept = self.event_counts.entry(e.kind()).or_default();
        if *kept < e.kind().run_cap() {
            *kept += 1;
            self.events.push((slot, e));
        }
    }

    /// How many events of `kind` the log holds.
    pub fn kept(&self, kind: EventKind) -> usize {
        self.event_counts.get(&kind).copied().unwrap_or(0)
    }

    /// The session outages kept, with their worker's slot.
    pub fn outages(&self) -> impl Iterator<Item = (u32, &SessionOutage)> {
        self.events
            .iter()
            .filter_map(|(w, e)| e.as_outage().map(|o| (*w, o)))
    }

    /// The stalls of workers' own runtimes kept, with their worker's slot.
    pub fn stalls(&self) -> impl Iterator<Item = (u32, &Stall)> {
        self.events
            .iter()
            .filter_map(|(w, e)| e.as_stall().map(|s| (*w, s)))
    }

    /// Intervals held open (unpacked) now: bounded by the intervals not yet closed plus
    /// `MAX_REOPENED`.
    pub fn open_intervals(&self) -> usize {
        self.intervals
            .values()
            .filter(|a| matches!(a.held, Held::Open { .. }))
            .count()
    }

    /// Pack interval `k` (see [`IntervalAgg`]); call once it has been reported live.
    /// Intervals that late snapshots unpacked are packed again here too.
    /// Workers' interval sets keep only what is not closed yet.
    pub fn pack(&mut self, k: u64) {
        for w in self.workers.values_mut() {
            w.intervals = w.intervals.split_off(&(k + 1));
        }
        self.reopened.insert(k);
        for k in std::mem::take(&mut self.reopened) {
            if let Some(agg) = self.intervals.get_mut(&k) {
                agg.pack();
            }
        }
    }

    /// Cluster totals over the measured intervals, per operation.
    pub fn cluster_measured(&self) -> Vec<OpStats> {
        let mut out = empty(self.operations.len());
        for (_, agg) in self.intervals.range(self.warmup_intervals..) {
            for (o, s) in out.iter_mut().zip(agg.cluster().iter()) {
                o.merge(s);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
