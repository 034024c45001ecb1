//! The exact merge of worker snapshots: per interval for the cluster, per worker, and in
//! total. Percentiles only ever come from merged histograms (DESIGN-NOTES §3).
//!
//! Each worker numbers its snapshots 0, 1, 2, …; a sequence already held is ignored, so
//! a resent snapshot is never counted twice (§4). Warm-up intervals are kept in the
//! series but left out of the totals.

use fleetload_common::scenario::OpName;
use fleetload_common::stats::{OpStats, OpTotals};
use fleetload_common::wire::Snapshot;
use std::collections::{BTreeMap, BTreeSet};

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
}

/// One interval of the cluster.
#[derive(Debug, Default)]
pub struct IntervalAgg {
    /// Per operation, in the order of `Merge::operations`.
    pub cluster: Vec<OpStats>,
    pub per_worker: BTreeMap<u32, Vec<Brief>>,
    /// Whether the interval was closed (reported live) before every worker had sent it.
    pub closed: bool,
    /// Snapshots that arrived after the interval had been closed.
    pub late: u64,
}

/// Everything received from one worker.
#[derive(Debug, Default)]
pub struct WorkerAgg {
    /// Measured totals (warm-up excluded).
    pub measured: Vec<OpStats>,
    /// Counts over every interval, warm-up included: compared with the worker's own.
    pub received: Vec<OpTotals>,
    pub sequences: BTreeSet<u64>,
    pub intervals: BTreeSet<u64>,
    pub duplicates: u64,
}

impl WorkerAgg {
    /// Highest sequence `s` such that every sequence up to `s` is held.
    pub fn contiguous(&self) -> Option<u64> {
        let mut expected = 0;
        for s in &self.sequences {
            if *s != expected {
                break;
            }
            expected += 1;
        }
        expected.checked_sub(1)
    }
}

/// What happened to a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    New,
    /// Already held: ignored.
    Duplicate,
}

#[derive(Debug)]
pub struct Merge {
    pub operations: Vec<OpName>,
    pub warmup_intervals: u64,
    pub intervals: BTreeMap<u64, IntervalAgg>,
    pub workers: BTreeMap<u32, WorkerAgg>,
}

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
        }
    }

    fn slot(&self, op: &OpName) -> Option<usize> {
        self.operations.iter().position(|o| o == op)
    }

    /// Add one worker's snapshot. Operations the run does not have are an error.
    pub fn add(&mut self, snap: &Snapshot) -> Result<Accepted, String> {
        let n = self.operations.len();
        let mut slots = Vec::with_capacity(snap.operations.len());
        for (op, _) in &snap.operations {
            slots.push(
                self.slot(op)
                    .ok_or_else(|| format!("operation {} is not part of this run", op.name()))?,
            );
        }
        let worker = self
            .workers
            .entry(snap.worker_index)
            .or_insert_with(|| WorkerAgg {
                // Per-worker rows at 2 significant digits; the cluster stays at 3.
                measured: (0..n).map(|_| OpStats::coarse()).collect(),
                received: vec![OpTotals::default(); n],
                ..WorkerAgg::default()
            });
        if !worker.sequences.insert(snap.sequence) {
            worker.duplicates += 1;
            return Ok(Accepted::Duplicate);
        }
        worker.intervals.insert(snap.interval_index);
        let measured = snap.interval_index >= self.warmup_intervals;
        let interval = self
            .intervals
            .entry(snap.interval_index)
            .or_insert_with(|| IntervalAgg {
                cluster: empty(n),
                ..IntervalAgg::default()
            });
        if interval.closed {
            interval.late += 1;
        }
        let mut briefs = vec![Brief::default(); n];
        for ((_, stats), slot) in snap.operations.iter().zip(slots) {
            interval.cluster[slot].merge(stats);
            worker.received[slot].add(stats);
            if measured {
                worker.measured[slot].merge(stats);
            }
            briefs[slot] = Brief::of(stats);
        }
        interval.per_worker.insert(snap.worker_index, briefs);
        Ok(Accepted::New)
    }

    /// Cluster totals over the measured intervals, per operation.
    pub fn cluster_measured(&self) -> Vec<OpStats> {
        let mut out = empty(self.operations.len());
        for (_, agg) in self.intervals.range(self.warmup_intervals..) {
            for (o, s) in out.iter_mut().zip(&agg.cluster) {
                o.merge(s);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetload_common::histogram::record;
    use fleetload_common::scenario::Operation;
    use std::time::Duration;

    fn snap(worker: u32, seq: u64, interval: u64, values_us: &[u64]) -> Snapshot {
        let mut s = OpStats::default();
        for v in values_us {
            record(&mut s.response, Duration::from_micros(*v));
            record(&mut s.service, Duration::from_micros(*v));
        }
        s.ok = values_us.len() as u64;
        Snapshot {
            run_id: "r".into(),
            worker_index: worker,
            sequence: seq,
            interval_index: interval,
            operations: vec![(Operation::PointSelect.into(), s)],
        }
    }

    #[test]
    fn merge_is_exact_ignores_duplicates_and_leaves_out_warmup() {
        let mut m = Merge::new(vec![Operation::PointSelect.into()], 1);
        assert_eq!(m.add(&snap(0, 0, 0, &[9_000; 10])).unwrap(), Accepted::New);
        assert_eq!(
            m.add(&snap(0, 1, 1, &[100, 200, 300])).unwrap(),
            Accepted::New
        );
        assert_eq!(m.add(&snap(1, 0, 0, &[9_000; 5])).unwrap(), Accepted::New);
        assert_eq!(m.add(&snap(1, 1, 1, &[400, 500])).unwrap(), Accepted::New);
        assert_eq!(
            m.add(&snap(1, 1, 1, &[400, 500])).unwrap(),
            Accepted::Duplicate
        );
        let total = &m.cluster_measured()[0];
        assert_eq!(
            total.ok, 5,
            "warm-up interval 0 left out, duplicate ignored"
        );
        assert!(total.response.max() < 1_000);
        let mut all = fleetload_common::histogram::new_latency();
        for v in [100u64, 200, 300, 400, 500] {
            all.record(v).unwrap();
        }
        assert_eq!(
            total.response.value_at_quantile(0.5),
            all.value_at_quantile(0.5)
        );
        assert_eq!(
            m.workers[&1].received[0].ok, 7,
            "warm-up still counted against the worker's own totals"
        );
        assert_eq!(m.workers[&1].duplicates, 1);
        assert_eq!(m.workers[&1].contiguous(), Some(1));
    }
}
