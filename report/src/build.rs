//! Building a report from the merge and what the controller knew of each worker: the
//! measured totals, the interval series, each worker with the check that its snapshots
//! add up to what it executed, and the run's failures.

use super::outages::outages;
use super::*;

/// What the controller knows of one worker at the end (a checkpoint holds it too).
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    pub state: String,
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
    pub rejected: Vec<(String, u64, String)>,
    /// Where it spools what it cannot deliver, as it said.
    #[serde(default)]
    pub spool: Option<String>,
    /// The last interval it was sent a share of the load for, when it was lost: what
    /// came after is missing unless its spool is found.
    #[serde(default)]
    pub lost_at_s: Option<f64>,
    /// Spans it was cut off and came back: (lost at, rejoined at), seconds.
    #[serde(default)]
    pub away: Vec<(f64, f64)>,
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
    pub capacity: Option<crate::capacity::CapacityJson>,
}

impl Report {
    /// The report of a run.
    pub fn build(input: ReportInput<'_>, merge: &Merge) -> Report {
        let plan = input.plan;
        let interval_s = plan.interval.as_secs_f64();
        let warmup_s = plan.warmup.as_secs_f64();
        let duration_s = plan.duration.as_secs_f64();
        let measured_s = (input.ran_for.as_secs_f64().min(duration_s) - warmup_s)
            .max(interval_s.min(duration_s));
        let names: Vec<OpName> = merge.operations.clone();
        let cluster = merge.cluster_measured();
        let workers = workers_json(&input, merge, measured_s);
        let (verification, unverified) = super::verify::verification(input.workers, merge);
        let failures = failures(&input, &cluster, unverified);
        let (thresholds, stages) = crate::thresholds::evaluate(
            plan,
            merge,
            input.ran_for.as_secs_f64(),
            input.planned.as_ref(),
        );
        let failures = with_thresholds(failures, &thresholds);
        let intervals = intervals_json(merge, interval_s, duration_s);
        let run_end = input.ran_for.as_secs_f64().min(duration_s);
        let role_of: BTreeMap<OpName, fleetload_common::scenario::Role> =
            names.iter().cloned().zip(plan.roles()).collect();
        let role_plan = input
            .planned
            .as_ref()
            .filter(|_| matches!(plan.load, fleetload_common::plan::LoadModel::Open { .. }))
            .map(|profile| super::availability::RolePlan {
                profile,
                role_of: &role_of,
                share: role_shares(plan),
            });
        let session_outages: Vec<_> = merge.outages().collect();
        let availability = super::availability::availability(
            &session_outages,
            &workers,
            &intervals,
            role_plan.as_ref(),
            interval_s,
            run_end,
        );
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
        let mut report = Report {
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
            operations: names
                .iter()
                .zip(&cluster)
                .map(|(n, s)| (n.clone(), OpSummary::of(s, measured_s)))
                .collect(),
            intervals,
            histograms: histograms_json(&names, &cluster),
            roles: roles_json(plan, &cluster, measured_s),
            operation_roles: names.iter().cloned().zip(plan.roles()).collect(),
            instances: instances_json(plan, merge, measured_s),
            verification,
            stalls: super::verify::stalls(input.workers, merge),
            gaps: super::verify::gaps(input.workers),
            inserted_rows: input
                .workers
                .iter()
                .filter_map(|w| w.inserted.map(|(rows, _, _)| rows))
                .fold(0, u64::saturating_add),
            database_counters: input.database_counters,
            cloudwatch: None,
            outages: outages(merge, interval_s, duration_s),
            availability,
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
            recovery: None,
            scratch_target: false,
            interval_log: interval_log(merge, interval_s, duration_s),
            start_unix_s: input
                .started_at
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            tpcc: None,
        };
        // TPC-C: the database judges the clients' count of committed New-Orders.
        report.tpcc = super::tpcc::summary(&report);
        if let Some(why) = report
            .tpcc
            .as_ref()
            .and_then(super::tpcc::TpccJson::disagreement)
        {
            report.failures.push(why);
            if report.status == RunStatus::Passed {
                report.status = RunStatus::Failed;
            }
        }
        report
    }
}

/// Every instance the sessions were on, by name.
fn instances_json(plan: &Plan, merge: &Merge, measured_s: f64) -> Vec<InstanceJson> {
    let interval_s = plan.interval.as_secs_f64();
    let roles = plan.roles();
    let ms = |us: u64| us as f64 / 1000.0;
    merge
        .instances
        .iter()
        .map(|(name, agg)| {
            let r = &agg.measured.response;
            let mut served: Vec<_> = agg
                .slots
                .iter()
                .filter_map(|s| roles.get(*s).copied())
                .collect();
            served.sort();
            served.dedup();
            InstanceJson {
                name: name.clone(),
                read_only: agg.read_only,
                read_only_spans: spans(&agg.read_only_in, interval_s),
                roles: served,
                operations: agg
                    .slots
                    .iter()
                    .filter_map(|s| merge.operations.get(*s).cloned())
                    .collect(),
                ok: agg.measured.ok,
                errors: agg.measured.errors,
                ok_per_s: agg.measured.ok as f64 / measured_s.max(1e-9),
                p50_ms: ms(r.value_at_quantile(0.5)),
                p99_ms: ms(r.value_at_quantile(0.99)),
                max_ms: ms(r.max()),
                series: agg
                    .series
                    .iter()
                    .map(|(k, (sessions, ok, _))| {
                        [
                            *k as f64 * interval_s,
                            *sessions as f64,
                            *ok as f64 / interval_s,
                        ]
                    })
                    .collect(),
            }
        })
        .collect()
}

/// Each role's share of the planned rate: its operations' weights in the mix.
fn role_shares(plan: &Plan) -> BTreeMap<fleetload_common::scenario::Role, f64> {
    let total: f64 = plan.mix.iter().map(|(_, w)| f64::from(*w)).sum();
    let mut out = BTreeMap::new();
    if total <= 0.0 {
        return out;
    }
    for ((_, w), role) in plan.mix.iter().zip(plan.roles()) {
        *out.entry(role).or_insert(0.0) += f64::from(*w) / total;
    }
    out
}

/// Consecutive intervals joined into `[from_s, to_s]` spans.
fn spans(intervals: &std::collections::BTreeSet<u64>, interval_s: f64) -> Vec<[f64; 2]> {
    let mut out: Vec<[f64; 2]> = Vec::new();
    let mut last: Option<u64> = None;
    for &k in intervals {
        let (from, to) = (k as f64 * interval_s, (k + 1) as f64 * interval_s);
        match (out.last_mut(), last) {
            (Some(span), Some(prev)) if prev + 1 == k => span[1] = to,
            _ => out.push([from, to]),
        }
        last = Some(k);
    }
    out
}

/// The measured run per role: every operation of the role merged exactly.
fn roles_json(
    plan: &Plan,
    cluster: &[OpStats],
    measured_s: f64,
) -> BTreeMap<fleetload_common::scenario::Role, OpSummary> {
    let mut by_role: BTreeMap<fleetload_common::scenario::Role, OpStats> = BTreeMap::new();
    for (role, stats) in plan.roles().into_iter().zip(cluster) {
        by_role.entry(role).or_default().merge(stats);
    }
    by_role
        .into_iter()
        .map(|(role, s)| (role, OpSummary::of(&s, measured_s)))
        .collect()
}

/// The cluster's histograms, base64 HdrHistogram V2+deflate per operation.
fn histograms_json(names: &[OpName], cluster: &[OpStats]) -> BTreeMap<OpName, HistogramsJson> {
    names
        .iter()
        .zip(cluster)
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
        .collect()
}

/// Every interval: the cluster per operation and each worker's brief.
fn intervals_json(merge: &Merge, interval_s: f64, duration_s: f64) -> Vec<IntervalJson> {
    merge
        .intervals
        .iter()
        .map(|(k, agg)| interval_json(merge, *k, agg, interval_s, duration_s))
        .collect()
}

/// Interval `k` as report.json holds it (the live dashboard shows the same).
pub fn interval_json(
    merge: &Merge,
    k: u64,
    agg: &crate::merge::IntervalAgg,
    interval_s: f64,
    duration_s: f64,
) -> IntervalJson {
    let names = &merge.operations;
    let start_s = k as f64 * interval_s;
    let end_s = ((k + 1) as f64 * interval_s).min(duration_s);
    let len = (end_s - start_s).max(1e-9);
    IntervalJson {
        index: k,
        start_s,
        end_s,
        warmup: k < merge.warmup_intervals,
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
                let by_op = names
                    .iter()
                    .zip(briefs)
                    .map(|(n, b)| (n.clone(), BriefJson::of(b, len)))
                    .collect();
                (*w, by_op)
            })
            .collect(),
    }
}

/// Each interval's response-time histogram per operation, for `report.hlog`.
fn interval_log(merge: &Merge, interval_s: f64, duration_s: f64) -> Vec<files::LoggedInterval> {
    merge
        .intervals
        .iter()
        .flat_map(|(k, agg)| {
            let start_s = *k as f64 * interval_s;
            let length_s = interval_s.min(duration_s - start_s).max(0.0);
            let cluster = agg.cluster();
            merge
                .operations
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
        .collect()
}

/// Every worker as the report shows it.
fn workers_json(input: &ReportInput<'_>, merge: &Merge, measured_s: f64) -> Vec<WorkerJson> {
    input
        .workers
        .iter()
        .map(|w| worker_json(w, merge, measured_s, input.start_unix_nanos))
        .collect()
}

fn worker_json(
    w: &WorkerInfo,
    merge: &Merge,
    measured_s: f64,
    start_unix_nanos: i64,
) -> WorkerJson {
    let agg = merge.workers.get(&w.index);
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
        executed: w.executed.as_ref().map(|e| {
            e.iter()
                .map(|(op, t)| (op.clone(), ExecutedJson::from(t)))
                .collect()
        }),
        operations: agg
            .map(|a| {
                merge
                    .operations
                    .iter()
                    .zip(&a.measured)
                    .map(|(n, s)| (n.clone(), OpSummary::of(s, measured_s)))
                    .collect()
            })
            .unwrap_or_default(),
        inserted_rows: w.inserted.map(|(rows, _, _)| rows),
        insert_id_base: w.inserted.map(|(_, base, _)| base),
        insert_id_last: w
            .inserted
            .and_then(|(_, _, last)| (last > 0).then_some(last)),
        insert_id_stride: w.insert_id_stride,
        rows_loaded: w.rows_loaded,
        clock_offset_ms: w.clock.map(|(o, _)| o as f64 / 1e6),
        clock_rtt_ms: w.clock.map(|(_, r)| r as f64 / 1e6),
        clock_uncertainty_ms: w.clock.map(|(_, r)| r as f64 / 2e6),
        rejected_messages: w
            .rejected
            .iter()
            .fold(0u64, |a, (_, n, _)| a.saturating_add(*n)),
        rejected_by_reason: w
            .rejected
            .iter()
            .map(|(class, n, _)| (class.clone(), *n))
            .collect(),
        rejected_samples: w
            .rejected
            .iter()
            .map(|(class, _, detail)| format!("{class}: {detail}"))
            .collect(),
        start_delay_ms: w.first_op_unix_nanos.map(|f| {
            let corrected = i128::from(f) - i128::from(w.clock.map_or(0, |(o, _)| o));
            (corrected - i128::from(start_unix_nanos)) as f64 / 1e6
        }),
    }
}

/// The run's failures: the controller's, a merge that does not add up or a worker
/// whose totals are missing, and a run where nothing succeeded.
fn failures(input: &ReportInput<'_>, cluster: &[OpStats], unverified: Vec<String>) -> Vec<String> {
    let mut failures = input.failures.clone();
    failures.extend(unverified);
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
    failures
}

/// The failures with every threshold that failed.
fn with_thresholds(
    mut failures: Vec<String>,
    thresholds: &[crate::thresholds::ThresholdResult],
) -> Vec<String> {
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
    failures
}

impl Report {
    /// The report of a run that failed before its start (a missing table, a refused
    /// login, workers that never joined): no measurement, status `failed` and why, so
    /// CI finds a `report.json` where the run would have written one.
    pub fn failed_before_start(plan: &Plan, run_id: &str, failure: String) -> Report {
        Report {
            report_format: REPORT_FORMAT,
            fleetload_version: Cow::Borrowed(env!("CARGO_PKG_VERSION")),
            run_id: run_id.to_string(),
            status: RunStatus::Failed,
            failures: vec![format!("the run failed before its start: {failure}")],
            started_at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            duration_s: 0.0,
            warmup_s: plan.warmup.as_secs_f64(),
            measured_s: 0.0,
            interval_s: plan.interval.as_secs_f64(),
            plan: plan.effective(),
            workers: Vec::new(),
            operations: BTreeMap::new(),
            intervals: Vec::new(),
            histograms: BTreeMap::new(),
            verification: Verification {
                merged_equals_executed: None,
                mismatches: Vec::new(),
                missing: Vec::new(),
            },
            inserted_rows: 0,
            database_counters: crate::counters::DatabaseCounters {
                unavailable: Some("the run never started".into()),
                ..Default::default()
            },
            cloudwatch: None,
            tpcc: None,
            outages: Vec::new(),
            instances: Vec::new(),
            operation_roles: BTreeMap::new(),
            roles: BTreeMap::new(),
            availability: Default::default(),
            membership: Vec::new(),
            stalls: Vec::new(),
            gaps: Vec::new(),
            changes: Vec::new(),
            planned: Vec::new(),
            stages: Vec::new(),
            thresholds: Vec::new(),
            start_skew_ms: None,
            scratch_target: false,
            capacity: None,
            recovery: None,
            interval_log: Vec::new(),
            start_unix_s: 0.0,
        }
    }
}
