//! fleetload's run report: what `report.json` holds (documented in
//! docs/report-format.md, since users script against it), the exact merge it is built
//! from, the analyses over it, and every file rendered from it. `fleetload report …`
//! needs this crate alone; the coordinator feeds it during a run.
//!
//! Everything is in milliseconds with microsecond precision. Cluster percentiles come
//! from merged histograms; the cluster histograms themselves are included as base64
//! HdrHistogram V2+deflate so other HdrHistogram tools can read them.
//!
//! # Layout
//! - The record: [`merge`] (exact merge of snapshots per interval, worker and run),
//!   [`admission`] (what a worker's message may say before it enters the merge),
//!   `record` (a finished run: the merge and the fleet as it ended),
//!   [`checkpoint`] (the run so far on disk), [`recover`] (a record rebuilt from a
//!   checkpoint and the workers' spools).
//! - The JSON: the report's types here and in `model`, with the sources the coordinator
//!   samples beside the load: [`counters`], [`cloudwatch`], [`capacity`].
//! - The analyses: [`thresholds`], `availability`, verification (`verify`),
//!   outages, `tpcc`.
//! - The renderers: [`text`], [`html`] with `charts` and `svg`, `files` (CSV,
//!   hlog), and [`compare`] (two runs side by side, with gates).

pub mod admission;
mod availability;
mod build;
pub mod capacity;
mod charts;
pub mod checkpoint;
pub mod cloudwatch;
pub mod compare;
pub mod counters;
mod error;
mod files;
pub mod html;
mod io;
pub mod merge;
mod model;
mod outages;
mod record;
pub mod recover;
mod svg;
pub mod text;
pub mod thresholds;
mod tpcc;
mod verify;

pub use error::ReportError;
pub use record::RunRecord;

pub use build::interval_json;
pub use build::{ReportInput, WorkerInfo};
pub use model::*;
pub use verify::{GapJson, MissingWorker, StallJson, Verification};

#[cfg(test)]
mod fuzz;

use crate::merge::Merge;
use base64::Engine;
use fleetload_common::histogram::{encode, Latency};
use fleetload_common::plan::{Plan, RawPlan};
use fleetload_common::scenario::OpName;
use fleetload_common::split::Shard;
use fleetload_common::stats::{OpStats, OpTotals};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

/// `1 worker`, `3 workers`.
pub fn count_of(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Error samples with identical messages folded, each with how often it was kept.
pub fn distinct_samples(samples: &[ErrorSampleJson]) -> Vec<(&ErrorSampleJson, usize)> {
    let mut out: Vec<(&ErrorSampleJson, usize)> = Vec::new();
    for e in samples {
        match out
            .iter_mut()
            .find(|(seen, _)| seen.class == e.class && seen.message == e.message)
        {
            Some((_, n)) => *n += 1,
            None => out.push((e, 1)),
        }
    }
    out
}

/// One server instance as the sessions saw it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InstanceJson {
    /// As the server names itself: Aurora's instance identifier, otherwise address:port.
    pub name: String,
    /// It said it was read-only when a session connected (a replica, a demoted writer),
    /// at some time in the run: `read_only_spans` says when.
    pub read_only: bool,
    /// `[from_s, to_s]` spans of the intervals in which it was read-only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub read_only_spans: Vec<[f64; 2]>,
    pub roles: Vec<fleetload_common::scenario::Role>,
    pub operations: Vec<OpName>,
    /// Over the measured intervals.
    pub ok: u64,
    pub errors: u64,
    pub ok_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Per interval, warm-up included: `[start_s, sessions, ok_per_s]`.
    pub series: Vec<[f64; 3]>,
}

impl InstanceJson {
    /// When it was read-only, as people read it: `read-only`, `read-only 12.0–15.0 s`
    /// (a demoted writer), or nothing.
    pub fn read_only_text(&self, run_s: f64) -> Option<String> {
        if !self.read_only {
            return None;
        }
        let whole = match self.read_only_spans.as_slice() {
            [] => true,
            [only] => only[0] <= 0.0 && only[1] >= run_s,
            _ => false,
        };
        if whole {
            return Some("read-only".into());
        }
        let spans: Vec<String> = self
            .read_only_spans
            .iter()
            .map(|s| format!("{:.1}–{:.1} s", s[0], s[1].min(run_s)))
            .collect();
        Some(format!("read-only {}", spans.join(", ")))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub report_format: u32,
    pub fleetload_version: Cow<'static, str>,
    pub run_id: String,
    pub status: RunStatus,
    /// Why the run failed, one sentence each.
    pub failures: Vec<String>,
    /// The start instant, RFC 3339 (coordinator clock).
    pub started_at: String,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub measured_s: f64,
    pub interval_s: f64,
    /// The effective plan; URLs never hold passwords, so nothing is redacted away.
    pub plan: RawPlan,
    pub workers: Vec<WorkerJson>,
    pub operations: BTreeMap<OpName, OpSummary>,
    pub intervals: Vec<IntervalJson>,
    pub histograms: BTreeMap<OpName, HistogramsJson>,
    pub verification: Verification,
    /// Rows the run inserted, over all workers (warm-up included).
    pub inserted_rows: u64,
    /// The database's own counters over the run.
    pub database_counters: crate::counters::DatabaseCounters,
    /// CloudWatch's series of Aurora and SageMaker on the run's timeline, when the plan
    /// names `[cloudwatch]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloudwatch: Option<crate::cloudwatch::CloudWatchJson>,
    /// TPC-C's figures: tpmC, NOPM from the database, the two counts compared, the mix,
    /// rollbacks and remote transactions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpcc: Option<tpcc::TpccJson>,
    /// Windows in which operations failed or were dropped (outages, failovers).
    pub outages: Vec<Outage>,
    /// Which server instance served what: per instance, the roles and operations it
    /// served, its counts and latencies over the measured run, and sessions and
    /// throughput per interval.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instances: Vec<InstanceJson>,
    /// Each operation's role: read or write (with a reader endpoint, where it ran).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub operation_roles: BTreeMap<OpName, fleetload_common::scenario::Role>,
    /// The measured run per role (read, write): the operations of each merged, so a
    /// plan with a reader endpoint shows what each endpoint served.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub roles: BTreeMap<fleetload_common::scenario::Role, OpSummary>,
    /// What outages and failovers cost each session: downtime from its first failure to
    /// its first success after, in cluster-wide windows.
    #[serde(default)]
    pub availability: availability::Availability,
    /// Workers lost and how their work was redistributed.
    pub membership: Vec<Membership>,
    /// Stalls of the workers' own runtimes (a frozen process, a starved host): what
    /// they measured then is not the database's doing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stalls: Vec<StallJson>,
    /// Spans in which a worker was cut off from the coordinator (lost, then rejoined
    /// or not).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gaps: Vec<GapJson>,
    /// Live changes of the load (`fleetload ctl`, threshold aborts), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Membership>,
    /// The planned cluster load over time, as `[seconds, value]` points (ops/s, or
    /// active sessions in closed loop): the stages, then any live change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub planned: Vec<[f64; 2]>,
    /// Per stage: planned and achieved load, percentiles, thresholds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<crate::thresholds::StageJson>,
    /// Every threshold's verdict (whole run and per stage).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<crate::thresholds::ThresholdResult>,
    /// Spread of the workers' observed starts (their first operations, clocks
    /// corrected): the largest minus the smallest, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_skew_ms: Option<f64>,
    /// The target was a scratch database removed with the command (the demo), so the
    /// summary does not suggest checking it afterwards.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub scratch_target: bool,
    /// `fleetload find-capacity`: the answer and the curve measured on the way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<crate::capacity::CapacityJson>,
    /// Rebuilt by `fleetload report recover`: from which checkpoint, what each spool
    /// added, and what is still missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<crate::recover::Recovery>,
    /// Per-interval cluster histograms for `report.hlog` (not in report.json).
    #[serde(skip)]
    pub interval_log: Vec<files::LoggedInterval>,
    #[serde(skip)]
    pub start_unix_s: f64,
}

fn b64(h: &Latency) -> String {
    encode(h)
        .map(|b| base64::engine::general_purpose::STANDARD.encode(b))
        .unwrap_or_default()
}

impl Report {
    /// The load as people would say it: a capacity search, a staged plan, a constant
    /// rate, or a closed loop.
    pub fn load_description(&self) -> String {
        let plan = &self.plan;
        let closed = plan.mode == Some(fleetload_common::plan::Mode::Closed);
        let unit = if closed { "sessions" } else { "ops/s" };
        if let Some(c) = &self.capacity {
            let first = c.curve.first().map_or(0.0, |p| p.rate);
            return format!(
                "capacity search from {first} ops/s for {}",
                c.slos.join(", ")
            );
        }
        match (&plan.stage, closed) {
            (Some(stages), _) if !stages.is_empty() => {
                let peak = self.planned.iter().map(|p| p[1]).fold(0.0_f64, f64::max);
                format!(
                    "{} loop, {} up to {peak} {unit}",
                    if closed { "closed" } else { "open" },
                    count_of(stages.len(), "stage", "stages")
                )
            }
            (_, true) => format!(
                "closed loop, think time {}",
                plan.think_time.as_deref().unwrap_or("0s")
            ),
            (_, false) => format!("open loop at {} ops/s", plan.rate.unwrap_or(0.0)),
        }
    }

    /// What the response time measures: from the intended start in open loop (so time
    /// spent behind schedule counts), from the send in closed loop.
    pub fn response_time_definition(&self) -> &'static str {
        if self.plan.mode == Some(fleetload_common::plan::Mode::Closed) {
            "completion − send"
        } else {
            "completion − intended start"
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
