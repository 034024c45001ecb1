//! The run report: what `report.json` holds (documented in docs/report-format.md, since
//! users script against it) and how it is built from the merge.
//!
//! Everything is in milliseconds with microsecond precision. Cluster percentiles come
//! from merged histograms; the cluster histograms themselves are included as base64
//! HdrHistogram V2+deflate so other HdrHistogram tools can read them.

pub mod charts;
pub mod compare;
pub mod files;
pub mod html;
mod model;
pub mod svg;
pub mod text;

pub use model::*;

#[cfg(test)]
mod fuzz;

use crate::merge::Merge;
use base64::Engine;
use fleetload_common::histogram::{encode, Latency};
use fleetload_common::outcome::ErrorClass;
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

/// Find outage windows in the interval series (warm-up included: an outage is an
/// outage). Constraint errors are the workload's, not an outage, and do not count.
fn outages(merge: &Merge, interval_s: f64, duration_s: f64) -> Vec<Outage> {
    let mut out: Vec<Outage> = Vec::new();
    let mut open: Option<Outage> = None;
    for (k, agg) in &merge.intervals {
        let mut errors = [0u64; ErrorClass::COUNT];
        let (mut ok, mut dropped) = (0u64, 0u64);
        let mut samples = Vec::new();
        for s in agg.cluster().iter() {
            for (e, n) in errors.iter_mut().zip(s.errors) {
                *e += n;
            }
            ok += s.ok;
            dropped += s.dropped_backlog;
            samples.extend(
                s.samples
                    .iter()
                    .filter(|e| e.class != ErrorClass::Constraint)
                    .cloned(),
            );
        }
        errors[ErrorClass::Constraint.index()] = 0;
        let start = *k as f64 * interval_s;
        let end = (start + interval_s).min(duration_s);
        let rate = ok as f64 / (end - start).max(1e-9);
        let bad = errors.iter().sum::<u64>() > 0 || dropped > 0;
        match (&mut open, bad) {
            (Some(o), true) => {
                o.to_s = end;
                o.duration_s = end - o.from_s;
                for (c, n) in ErrorClass::ALL.iter().zip(errors) {
                    if n > 0 {
                        *o.errors.entry(Cow::Borrowed(c.name())).or_default() += n;
                    }
                }
                o.dropped_backlog += dropped;
                o.min_ok_per_s = o.min_ok_per_s.min(rate);
            }
            (None, true) => {
                open = Some(Outage {
                    from_s: start,
                    to_s: end,
                    duration_s: end - start,
                    errors: error_map(&errors),
                    dropped_backlog: dropped,
                    min_ok_per_s: rate,
                    error_samples: samples
                        .iter()
                        .take(3)
                        .map(|e| ErrorSampleJson {
                            class: e.class,
                            message: e.message.clone(),
                        })
                        .collect(),
                })
            }
            (Some(_), false) => out.extend(open.take()),
            (None, false) => {}
        }
    }
    out.extend(open);
    out
}

/// Whether the merged snapshots add up to what every worker says it executed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verification {
    pub merged_equals_executed: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mismatches: Vec<String>,
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
    /// Windows in which operations failed or were dropped (outages, failovers).
    pub outages: Vec<Outage>,
    /// Workers lost and how their work was redistributed.
    pub membership: Vec<Membership>,
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
    pub capacity: Option<crate::search::CapacityJson>,
    /// Per-interval cluster histograms for `report.hlog` (not in report.json).
    #[serde(skip)]
    pub interval_log: Vec<files::LoggedInterval>,
    #[serde(skip)]
    pub start_unix_s: f64,
}

/// What the controller knows of one worker at the end.
#[derive(Debug, Clone)]
pub struct WorkerInfo {
    pub index: u32,
    /// The stride of its insert ids (the largest fleet the run admits).
    pub insert_id_stride: u64,
    pub name: String,
    pub host: String,
    pub peer: Option<String>,
    pub cores: u32,
    pub capacity: f64,
    pub shard: Shard,
    pub rate: Option<f64>,
    pub sessions: u32,
    pub state: &'static str,
    pub message: Option<String>,
    pub executed: Option<Vec<(fleetload_common::scenario::OpName, OpTotals)>>,
    /// Rows inserted, the first and the last insert id, from the worker's final message.
    pub inserted: Option<(u64, u64, u64)>,
    /// Rows of its shard it loaded when the fleet prepared the data.
    pub rows_loaded: Option<u64>,
    /// (offset, round trip) of its clock, nanoseconds.
    pub clock: Option<(i64, i64)>,
    /// Its observed start on its own clock, Unix nanoseconds.
    pub first_op_unix_nanos: Option<i64>,
    /// Messages refused from it during the run, per reason class: how many, and the
    /// first one's detail.
    pub rejected: Vec<(&'static str, u64, String)>,
}

fn b64(h: &Latency) -> String {
    encode(h)
        .map(|b| base64::engine::general_purpose::STANDARD.encode(b))
        .unwrap_or_default()
}

/// The inputs of a report besides the merge.
pub struct ReportInput<'a> {
    pub plan: &'a Plan,
    pub run_id: &'a str,
    pub started_at: std::time::SystemTime,
    /// How long the run actually lasted (shorter when stopped early).
    pub ran_for: std::time::Duration,
    pub workers: &'a [WorkerInfo],
    pub failures: Vec<String>,
    pub interrupted: bool,
    pub database_counters: crate::counters::DatabaseCounters,
    pub membership: Vec<Membership>,
    /// Live changes of the load (ctl), in order.
    pub changes: Vec<Membership>,
    /// The cluster's planned load as it ended up (stages and changes).
    pub planned: Option<fleetload_common::profile::Profile>,
    /// The start instant, Unix nanoseconds on the coordinator's clock.
    pub start_unix_nanos: i64,
    /// The capacity search's outcome, when the run was one.
    pub capacity: Option<crate::search::CapacityJson>,
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

    pub fn build(input: ReportInput<'_>, merge: &Merge) -> Report {
        let plan = input.plan;
        let interval_s = plan.interval.as_secs_f64();
        let warmup_s = plan.warmup.as_secs_f64();
        let measured_s = (input.ran_for.as_secs_f64().min(plan.duration.as_secs_f64()) - warmup_s)
            .max(interval_s.min(plan.duration.as_secs_f64()));
        let names: Vec<OpName> = merge.operations.clone();
        let cluster = merge.cluster_measured();
        let operations = names
            .iter()
            .zip(&cluster)
            .map(|(n, s)| (n.clone(), OpSummary::of(s, measured_s)))
            .collect();
        let histograms = names
            .iter()
            .zip(&cluster)
            .map(|(n, s)| {
                (
                    n.clone(),
                    HistogramsJson {
                        response_time: b64(&s.response),
                        service_time: b64(&s.service),
                        schedule_lag: b64(&s.lag),
                    },
                )
            })
            .collect();
        let duration_s = plan.duration.as_secs_f64();
        let intervals = merge
            .intervals
            .iter()
            .map(|(k, agg)| {
                let start_s = *k as f64 * interval_s;
                let end_s = ((*k + 1) as f64 * interval_s).min(duration_s);
                let len = (end_s - start_s).max(1e-9);
                IntervalJson {
                    index: *k,
                    start_s,
                    end_s,
                    warmup: *k < merge.warmup_intervals,
                    workers_reporting: agg.workers_reporting(),
                    late_snapshots: agg.late,
                    operations: names
                        .iter()
                        .zip(agg.cluster().iter())
                        .map(|(n, s)| (n.clone(), OpSummary::of(s, len)))
                        .collect(),
                    per_worker: agg
                        .per_worker()
                        .iter()
                        .map(|(w, briefs)| {
                            (
                                *w,
                                names
                                    .iter()
                                    .zip(briefs)
                                    .map(|(n, b)| (n.clone(), BriefJson::of(b, len)))
                                    .collect(),
                            )
                        })
                        .collect(),
                }
            })
            .collect();

        let mut mismatches = Vec::new();
        let workers: Vec<WorkerJson> = input
            .workers
            .iter()
            .map(|w| {
                let agg = merge.workers.get(&w.index);
                if let Some(executed) = &w.executed {
                    for (op, done) in executed {
                        let got = agg
                            .and_then(|a| merge.operations.iter().position(|o| o == op).map(|i| a.received[i]))
                            .unwrap_or_default();
                        if got != *done {
                            mismatches.push(format!(
                                "worker {} {}: executed {} ok / {} errors / {} dropped / {} retries, snapshots hold {} / {} / {} / {}",
                                w.name, op.name(), done.ok, done.errors.iter().fold(0u64, |a, e| a.saturating_add(*e)), done.dropped_backlog, done.retries,
                                got.ok, got.errors.iter().fold(0u64, |a, e| a.saturating_add(*e)), got.dropped_backlog, got.retries
                            ));
                        }
                    }
                }
                WorkerJson {
                    index: w.index,
                    name: w.name.clone(),
                    host: w.host.clone(),
                    peer: w.peer.clone(),
                    cores: w.cores,
                    capacity: w.capacity,
                    shard: w.shard,
                    rate: w.rate,
                    sessions: w.sessions,
                    state: w.state.to_string(),
                    message: w.message.clone(),
                    snapshots: agg.map_or(0, |a| a.snapshots() as usize),
                    duplicate_snapshots: agg.map_or(0, |a| a.duplicates),
                    executed: w.executed.as_ref().map(|e| e.iter().map(|(op, t)| (op.clone(), ExecutedJson::from(t))).collect()),
                    operations: agg
                        .map(|a| names.iter().zip(&a.measured).map(|(n, s)| (n.clone(), OpSummary::of(s, measured_s))).collect())
                        .unwrap_or_default(),
                    inserted_rows: w.inserted.map(|(rows, _, _)| rows),
                    insert_id_base: w.inserted.map(|(_, base, _)| base),
                    insert_id_last: w.inserted.and_then(|(_, _, last)| (last > 0).then_some(last)),
                    insert_id_stride: w.insert_id_stride,
                    rows_loaded: w.rows_loaded,
                    clock_offset_ms: w.clock.map(|(o, _)| o as f64 / 1e6),
                    clock_rtt_ms: w.clock.map(|(_, r)| r as f64 / 1e6),
                    rejected_messages: w
                        .rejected
                        .iter()
                        .fold(0u64, |a, (_, n, _)| a.saturating_add(*n)),
                    rejected_by_reason: w
                        .rejected
                        .iter()
                        .map(|(class, n, _)| (class.to_string(), *n))
                        .collect(),
                    rejected_samples: w
                        .rejected
                        .iter()
                        .map(|(class, _, detail)| format!("{class}: {detail}"))
                        .collect(),
                    start_delay_ms: w.first_op_unix_nanos.map(|f| {
                        let corrected = i128::from(f) - i128::from(w.clock.map_or(0, |(o, _)| o));
                        (corrected - i128::from(input.start_unix_nanos)) as f64 / 1e6
                    }),
                }
            })
            .collect();

        let inserted_rows = input
            .workers
            .iter()
            .filter_map(|w| w.inserted.map(|(rows, _, _)| rows))
            .fold(0, u64::saturating_add);
        let mut failures = input.failures;
        let verified = mismatches.is_empty();
        if !verified {
            failures.push(format!(
                "the merged snapshots do not add up to what the workers executed: {}",
                mismatches.join("; ")
            ));
        }
        let ok: u64 = cluster.iter().map(|s| s.ok).sum();
        let errors: u64 = cluster.iter().map(OpStats::error_total).sum();
        if ok == 0 && !input.interrupted {
            let first = cluster.iter().flat_map(|s| s.samples.first()).next();
            failures.push(match first {
                Some(e) => format!(
                    "no operation succeeded ({errors} errors); first error ({}): {}",
                    e.class.name(),
                    e.message
                ),
                None => "no operation completed in the measured part of the run".to_string(),
            });
        }
        let (thresholds, stages) = crate::thresholds::evaluate(
            plan,
            merge,
            input.ran_for.as_secs_f64(),
            input.planned.as_ref(),
        );
        for t in thresholds.iter().filter(|t| !t.passed) {
            failures.push(format!(
                "threshold {} ({}{}) failed: measured {}",
                t.threshold,
                t.scope,
                if t.overridden {
                    ", load overridden by a live change"
                } else {
                    ""
                },
                t.measured_text()
            ));
        }
        let delays: Vec<f64> = workers.iter().filter_map(|w| w.start_delay_ms).collect();
        let start_skew_ms = (delays.len() >= 2).then(|| {
            delays.iter().copied().fold(f64::MIN, f64::max)
                - delays.iter().copied().fold(f64::MAX, f64::min)
        });
        let status = if input.interrupted {
            RunStatus::Interrupted
        } else if failures.is_empty() {
            RunStatus::Passed
        } else {
            RunStatus::Failed
        };
        Report {
            report_format: REPORT_FORMAT,
            fleetload_version: Cow::Borrowed(env!("CARGO_PKG_VERSION")),
            run_id: input.run_id.to_string(),
            status,
            failures,
            started_at: humantime::format_rfc3339_millis(input.started_at).to_string(),
            duration_s,
            warmup_s,
            measured_s,
            interval_s,
            plan: plan.effective(),
            workers,
            operations,
            intervals,
            histograms,
            verification: Verification {
                merged_equals_executed: verified,
                mismatches,
            },
            inserted_rows,
            database_counters: input.database_counters,
            outages: outages(merge, interval_s, duration_s),
            membership: input.membership,
            changes: input.changes,
            planned: input
                .planned
                .map(|p| p.points().iter().map(|(t, v)| [*t, *v]).collect())
                .unwrap_or_default(),
            stages,
            thresholds,
            start_skew_ms,
            capacity: input.capacity,
            scratch_target: false,
            interval_log: merge
                .intervals
                .iter()
                .flat_map(|(k, agg)| {
                    let start_s = *k as f64 * interval_s;
                    let length_s = (interval_s).min(duration_s - start_s).max(0.0);
                    let cluster = agg.cluster();
                    names
                        .iter()
                        .zip(cluster.iter())
                        .map(|(n, s)| files::LoggedInterval {
                            start_s,
                            length_s,
                            operation: n.clone(),
                            max_us: s.response.max(),
                            encoded: b64(&s.response),
                        })
                        .collect::<Vec<_>>()
                })
                .collect(),
            start_unix_s: input
                .started_at
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
        }
    }

    /// Write `report.json` and `report.txt` into `dir` (created if missing).
    ///
    /// # Errors
    /// The directory or a file cannot be written.
    /// Read a report.json back (for `fleetload report show | html | compare`).
    ///
    /// # Errors
    /// The file cannot be read, is not a report, or is of another report format.
    pub fn from_json_file(path: &Path) -> Result<Report, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
        match value
            .get("report_format")
            .and_then(serde_json::Value::as_u64)
        {
            Some(f) if f == u64::from(REPORT_FORMAT) => {}
            Some(f) => {
                return Err(format!(
                    "{} is report format {f}; this fleetload reads format {REPORT_FORMAT}",
                    path.display()
                ))
            }
            None => {
                return Err(format!(
                    "{} is not a fleetload report (no report_format)",
                    path.display()
                ))
            }
        }
        serde_json::from_value(value)
            .map_err(|e| format!("{} is not a valid fleetload report: {e}", path.display()))
    }

    pub fn write_to(&self, dir: &Path) -> Result<(), crate::CoordinatorError> {
        let werr = |path: &Path| {
            let path = path.to_path_buf();
            move |source| crate::CoordinatorError::WriteReport { path, source }
        };
        std::fs::create_dir_all(dir).map_err(werr(dir))?;
        let json = dir.join("report.json");
        let body =
            serde_json::to_vec_pretty(self).map_err(|e| crate::CoordinatorError::WriteReport {
                path: json.clone(),
                source: std::io::Error::other(e),
            })?;
        std::fs::write(&json, body).map_err(werr(&json))?;
        for (name, body) in [
            ("report.csv", files::csv(self)),
            ("report.hlog", files::hlog(self, self.start_unix_s)),
            ("report.html", html::render(self)),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, body).map_err(werr(&path))?;
        }
        let txt = dir.join("report.txt");
        std::fs::write(&txt, text::render(self)).map_err(werr(&txt))?;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests;
