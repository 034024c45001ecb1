//! What the report can vouch for: whether the merged snapshots add up to what every
//! worker executed, what it knows it is missing (a worker lost for good), and the
//! spans in which a worker could not measure the database: its own runtime stalled, or
//! it was cut off from the coordinator.
//!
//! A worker whose final totals never arrived cannot be checked, so the check is then
//! neither passed nor failed but unknown (`null`), with what is missing named: a
//! report that says "exact" only when it is.

use super::*;

/// Whether the merged snapshots add up to what every worker says it executed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verification {
    /// `true`: every worker's final totals arrived and equal its merged snapshots;
    /// `false`: some differ (see `mismatches`); `null`: a worker's totals never arrived
    /// (see `missing`), so what it executed is not known.
    pub merged_equals_executed: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mismatches: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<MissingWorker>,
}

/// A worker whose final totals never arrived, and what of its work the report holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MissingWorker {
    pub worker: String,
    pub index: u32,
    pub state: String,
    pub snapshots_merged: u64,
    /// The highest sequence merged with every one before it.
    pub last_sequence: Option<u64>,
    /// The last interval it sent a snapshot of.
    pub last_interval: Option<u64>,
    /// When the coordinator gave up on it, seconds from the start.
    pub lost_at_s: Option<f64>,
    /// Sequences above `last_sequence` that did arrive (out of order).
    pub merged_beyond_gap: u64,
    /// Where it said it spools what it could not deliver.
    pub spool: Option<String>,
    /// One sentence: what is missing and how to get it back.
    pub detail: String,
}

/// A stall of a worker's own runtime.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StallJson {
    pub worker: String,
    pub index: u32,
    /// From the run's start, on the worker's clock.
    pub at_s: f64,
    pub duration_s: f64,
}

/// A span in which a worker was cut off from the coordinator.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GapJson {
    pub worker: String,
    pub index: u32,
    pub lost_at_s: f64,
    /// `None`: it never came back.
    pub rejoined_at_s: Option<f64>,
}

/// Where a worker's snapshots do not add up to what it says it executed.
fn mismatches_of(w: &WorkerInfo, merge: &Merge) -> Vec<String> {
    let agg = merge.workers.get(&w.index);
    let sum = |e: &[u64]| e.iter().fold(0u64, |a, e| a.saturating_add(*e));
    let mut out = Vec::new();
    for (op, done) in w.executed.iter().flatten() {
        let got = agg
            .and_then(|a| {
                merge
                    .operations
                    .iter()
                    .position(|o| o == op)
                    .map(|i| a.received[i])
            })
            .unwrap_or_default();
        if got != *done {
            out.push(format!(
                "worker {} {}: executed {} ok / {} errors / {} dropped / {} retries, snapshots hold {} / {} / {} / {}",
                w.name, op.name(), done.ok, sum(&done.errors), done.dropped_backlog, done.retries,
                got.ok, sum(&got.errors), got.dropped_backlog, got.retries
            ));
        }
    }
    out
}

/// A worker that ran load and whose totals never arrived.
fn missing_of(w: &WorkerInfo, merge: &Merge) -> Option<MissingWorker> {
    if w.executed.is_some() {
        return None;
    }
    let agg = merge.workers.get(&w.index);
    let snapshots = agg.map_or(0, |a| a.snapshots());
    if snapshots == 0 && w.lost_at_s.is_none() && w.state != "lost" {
        // It never ran load (refused or failed before the start): nothing is missing.
        return None;
    }
    let last_sequence = agg.and_then(|a| a.contiguous());
    let last_interval = agg.and_then(|a| a.last_interval);
    let beyond = agg.map_or(0, |a| a.ahead_count());
    let after = match (last_interval, last_sequence) {
        (Some(k), Some(s)) => format!("after interval {k} (sequence {s})"),
        _ => "from its first interval".to_string(),
    };
    let when = match w.lost_at_s {
        Some(t) => format!("was lost at {t:.1}s"),
        None => format!("ended {}", w.state),
    };
    let recover = match &w.spool {
        // The worker writes its spool only when it stops itself (its dead man's switch,
        // the rejoin window passed): a killed process or a lost host writes none.
        Some(p) => format!("if the worker stopped itself it wrote its spool {p}: pass it to `fleetload report recover <report dir> {p}`; if its process was killed or its host lost, there is no spool and what it ran after the last merged snapshot is lost (the report stays partial)"),
        None => "it named no spool file; look for fleetload-unsent-*.jsonl where it ran and pass it to `fleetload report recover`".to_string(),
    };
    Some(MissingWorker {
        worker: w.name.clone(),
        index: w.index,
        state: w.state.clone(),
        snapshots_merged: snapshots,
        last_sequence,
        last_interval,
        lost_at_s: w.lost_at_s,
        merged_beyond_gap: beyond,
        spool: w.spool.clone(),
        detail: format!(
            "worker {} {when} and its final totals never arrived: what it ran {after} is not in this report; {recover}",
            w.name
        ),
    })
}

/// The check of every worker, and one failure sentence per worker missing.
pub(super) fn verification(workers: &[WorkerInfo], merge: &Merge) -> (Verification, Vec<String>) {
    let mismatches: Vec<String> = workers
        .iter()
        .flat_map(|w| mismatches_of(w, merge))
        .collect();
    let missing: Vec<MissingWorker> = workers
        .iter()
        .filter_map(|w| missing_of(w, merge))
        .collect();
    let mut failures = Vec::new();
    if !mismatches.is_empty() {
        failures.push(format!(
            "the merged snapshots do not add up to what the workers executed: {}",
            mismatches.join("; ")
        ));
    }
    failures.extend(missing.iter().map(|m| m.detail.clone()));
    let verdict = if !mismatches.is_empty() {
        Some(false)
    } else if !missing.is_empty() {
        None
    } else {
        Some(true)
    };
    (
        Verification {
            merged_equals_executed: verdict,
            mismatches,
            missing,
        },
        failures,
    )
}

/// Every stall the workers reported, in order of time.
pub(super) fn stalls(workers: &[WorkerInfo], merge: &Merge) -> Vec<StallJson> {
    let name = |i: u32| {
        workers
            .iter()
            .find(|w| w.index == i)
            .map_or_else(|| format!("slot {i}"), |w| w.name.clone())
    };
    let mut out: Vec<StallJson> = merge
        .stalls()
        .map(|(i, s)| StallJson {
            worker: name(i),
            index: i,
            at_s: s.at.as_secs_f64(),
            duration_s: s.duration.as_secs_f64(),
        })
        .collect();
    out.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
    out
}

/// Every span a worker was cut off: lost and rejoined, or lost for good.
pub(super) fn gaps(workers: &[WorkerInfo]) -> Vec<GapJson> {
    let mut out = Vec::new();
    for w in workers {
        let gap = |lost_at_s, rejoined_at_s| GapJson {
            worker: w.name.clone(),
            index: w.index,
            lost_at_s,
            rejoined_at_s,
        };
        out.extend(w.away.iter().map(|(from, to)| gap(*from, Some(*to))));
        out.extend(w.lost_at_s.map(|t| gap(t, None)));
    }
    out.sort_by(|a, b| a.lost_at_s.total_cmp(&b.lost_at_s));
    out
}

impl Verification {
    /// The merge check in one line, for the text and HTML reports.
    pub fn summary(&self) -> String {
        match self.merged_equals_executed {
            Some(true) => "merged snapshots equal what every worker executed".into(),
            Some(false) => format!("MISMATCH: {}", self.mismatches.join("; ")),
            None => format!(
                "UNKNOWN, {} worker{} never sent final totals: {}",
                self.missing.len(),
                if self.missing.len() == 1 { "" } else { "s" },
                self.missing
                    .iter()
                    .map(|m| m.detail.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        }
    }
}

impl StallJson {
    /// "w1 stalled 3.0 s at 8.0 s".
    pub fn sentence(&self) -> String {
        format!(
            "{} stalled {:.1} s at {:.1} s (its own runtime, not the database)",
            self.worker, self.duration_s, self.at_s
        )
    }
}

impl GapJson {
    pub fn sentence(&self) -> String {
        match self.rejoined_at_s {
            Some(t) => format!(
                "{} was cut off from {:.1} s to {t:.1} s and rejoined",
                self.worker, self.lost_at_s
            ),
            None => format!(
                "{} was cut off from {:.1} s and never came back",
                self.worker, self.lost_at_s
            ),
        }
    }
}
