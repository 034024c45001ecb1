//! The types report.json holds, as users script against them (docs/report-format.md),
//! and how each is made from merged stats. Building the whole report from the merge is
//! the parent module's job.

use crate::merge::Brief;
use fleetload_common::histogram::Latency;
use fleetload_common::outcome::ErrorClass;
use fleetload_common::scenario::OpName;
use fleetload_common::split::Shard;
use fleetload_common::stats::{OpStats, OpTotals};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Version of the report format; bumped on any incompatible change.
pub const REPORT_FORMAT: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Passed,
    Failed,
    Interrupted,
    /// Rebuilt by `fleetload report recover` from a checkpoint and spools.
    Recovered,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Percentiles {
    pub fn of(h: &Latency) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Percentiles {
            p50_ms: ms(h.value_at_quantile(0.5)),
            p90_ms: ms(h.value_at_quantile(0.9)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
            mean_ms: (h.mean() / 1000.0 * 1000.0).round() / 1000.0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorSampleJson {
    pub class: ErrorClass,
    pub message: String,
}

/// Counts by error class name (borrowed when built, owned when read back from JSON).
pub type ClassCounts = BTreeMap<Cow<'static, str>, u64>;

pub(crate) fn error_map(errors: &[u64; ErrorClass::COUNT]) -> ClassCounts {
    ErrorClass::ALL
        .iter()
        .filter(|c| errors[c.index()] > 0)
        .map(|c| (Cow::Borrowed(c.name()), errors[c.index()]))
        .collect()
}

/// One operation over some span: counts, rates and latency percentiles.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OpSummary {
    /// Successful operations.
    pub count: u64,
    pub ok_per_s: f64,
    pub errors: ClassCounts,
    pub error_total: u64,
    pub error_rate: f64,
    pub dropped_backlog: u64,
    /// Deadlocks and serialization failures retried inside successful or failed
    /// operations (scenario files' `retry`); not operations themselves.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: u64,
    /// Rows read or updated of existing keys (built-in scenarios), and the operations
    /// that found none: reads of keys the table does not have.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rows: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub empty_results: u64,
    /// Of `count`: operations that ended in the rollback their scenario asks for (TPC-C
    /// New-Order's 1 % with an unused item), and those that touched another worker's
    /// keys (TPC-C's remote warehouses).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rolled_back: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub remote: u64,
    pub response_time: Percentiles,
    pub service_time: Percentiles,
    /// Only in open loop: actual send − intended start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule_lag: Option<Percentiles>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub error_samples: Vec<ErrorSampleJson>,
}

impl OpSummary {
    pub fn of(s: &OpStats, seconds: f64) -> Self {
        let attempts = s.ok + s.error_total();
        OpSummary {
            count: s.ok,
            ok_per_s: if seconds > 0.0 {
                round3(s.ok as f64 / seconds)
            } else {
                0.0
            },
            errors: error_map(&s.errors),
            error_total: s.error_total(),
            error_rate: if attempts > 0 {
                s.error_total() as f64 / attempts as f64
            } else {
                0.0
            },
            dropped_backlog: s.dropped_backlog,
            retries: s.retries,
            rows: s.rows,
            empty_results: s.empty,
            rolled_back: s.rolled_back,
            remote: s.remote,
            response_time: Percentiles::of(&s.response),
            service_time: Percentiles::of(&s.service),
            schedule_lag: (!s.lag.is_empty()).then(|| Percentiles::of(&s.lag)),
            error_samples: s
                .samples
                .iter()
                .map(|e| ErrorSampleJson {
                    class: e.class,
                    message: e.message.clone(),
                })
                .collect(),
        }
    }
}

pub(crate) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BriefJson {
    pub count: u64,
    pub ok_per_s: f64,
    pub errors: u64,
    pub dropped_backlog: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl BriefJson {
    pub(crate) fn of(b: &Brief, seconds: f64) -> Self {
        BriefJson {
            count: b.ok,
            ok_per_s: round3(b.ok as f64 / seconds),
            errors: b.errors,
            dropped_backlog: b.dropped_backlog,
            p50_ms: b.p50_us as f64 / 1000.0,
            p99_ms: b.p99_us as f64 / 1000.0,
            max_ms: b.max_us as f64 / 1000.0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IntervalJson {
    pub index: u64,
    pub start_s: f64,
    pub end_s: f64,
    pub warmup: bool,
    /// Workers whose snapshot for this interval arrived.
    pub workers_reporting: usize,
    /// Snapshots that arrived after the interval was reported live (still counted).
    pub late_snapshots: u64,
    pub operations: BTreeMap<OpName, OpSummary>,
    pub per_worker: BTreeMap<u32, BTreeMap<OpName, BriefJson>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecutedJson {
    pub ok: u64,
    pub errors: ClassCounts,
    pub dropped_backlog: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: u64,
}

pub(crate) fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl From<&OpTotals> for ExecutedJson {
    fn from(t: &OpTotals) -> Self {
        ExecutedJson {
            ok: t.ok,
            errors: error_map(&t.errors),
            dropped_backlog: t.dropped_backlog,
            retries: t.retries,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerJson {
    pub index: u32,
    pub name: String,
    pub host: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    pub cores: u32,
    pub capacity: f64,
    pub shard: Shard,
    /// Open-loop rate share, operations per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    pub sessions: u32,
    /// done, failed or lost.
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub snapshots: usize,
    pub duplicate_snapshots: u64,
    /// What the worker says it executed, warm-up included (from its final message).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub executed: Option<BTreeMap<OpName, ExecutedJson>>,
    /// Measured totals from its snapshots (warm-up excluded).
    pub operations: BTreeMap<OpName, OpSummary>,
    /// Rows it inserted, and the ids they took: `insert_id_base + k·insert_id_stride`
    /// for the run's k = 0, 1, … (each session of the worker owns one residue).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inserted_rows: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insert_id_base: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insert_id_last: Option<u64>,
    /// The id stride: the number of workers.
    pub insert_id_stride: u64,
    /// Rows of its shard it loaded, when the fleet prepared the data (`--prepare`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows_loaded: Option<u64>,
    /// Its clock minus the coordinator's, estimated before the start (ms), and the
    /// round trip of the probe it came from (the estimate is within half of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_offset_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_rtt_ms: Option<f64>,
    /// How far off `clock_offset_ms` can be: half the best probe's round trip (the
    /// echo's way out and back may differ by at most the whole of it), ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_uncertainty_ms: Option<f64>,
    /// When it actually started (first operation's send minus its intended offset, in
    /// the coordinator's clock) relative to the planned start, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_delay_ms: Option<f64>,
    /// Messages refused from it during the run (malformed or impossible snapshots, a
    /// Done for another slot, implausible clock echoes, claims on its slot, …).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rejected_messages: u64,
    /// The same by reason class (see docs/security.md).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rejected_by_reason: BTreeMap<String, u64>,
    /// The first refusal of each class, `class: detail`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejected_samples: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistogramsJson {
    pub response_time: String,
    pub service_time: String,
    pub schedule_lag: String,
}

/// A change of the fleet during the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Membership {
    pub t_s: f64,
    pub event: String,
}

/// A stretch of consecutive intervals in which operations failed or were dropped: a
/// database outage or failover, as the clients saw it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outage {
    pub from_s: f64,
    pub to_s: f64,
    /// How long until operations succeeded without errors again.
    pub duration_s: f64,
    pub errors: ClassCounts,
    pub dropped_backlog: u64,
    /// Lowest successful rate of the cluster in the window, all operations.
    pub min_ok_per_s: f64,
    pub error_samples: Vec<ErrorSampleJson>,
}
