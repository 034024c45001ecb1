//! Thresholds (SLOs) and stages, judged on the exact merge: the whole run's measured
//! intervals, or one stage's. Also the live check behind `abort_on_fail`.

use crate::merge::Merge;
use crate::OpSummary;
use fleetload_common::plan::{Plan, Stage};
use fleetload_common::profile::Profile;
use fleetload_common::stats::OpStats;
use fleetload_common::threshold::{Metric, Threshold};
use serde::{Deserialize, Serialize};
use std::ops::RangeInclusive;

/// One threshold's verdict.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ThresholdResult {
    /// `run` or `stage N`.
    pub scope: String,
    pub threshold: String,
    /// In the threshold's unit: ms for latency, a fraction for error_rate.
    pub measured: f64,
    pub limit: f64,
    pub passed: bool,
    /// The unit of `measured` and `limit`: `ms`, `ops/s`, or empty (a fraction for
    /// error_rate, a count for dropped).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub unit: String,
    /// Judged on a stage whose load a live change (ctl) replaced: the verdict is about
    /// the load offered, not the one planned.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub overridden: bool,
}

impl ThresholdResult {
    /// The measured value with its unit, as people read it.
    pub fn measured_text(&self) -> String {
        match self.unit.as_str() {
            "" if self.threshold.contains("error_rate") => format!("{:.3}%", self.measured * 100.0),
            "" => format!("{}", self.measured),
            unit => format!(
                "{}{}{unit}",
                self.measured,
                if unit == "ms" { "" } else { " " }
            ),
        }
    }
}

/// What one stage planned and what the cluster did in it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageJson {
    pub index: usize,
    pub description: String,
    pub start_s: f64,
    pub end_s: f64,
    /// Planned cluster value at the stage's start and end (ops/s or sessions).
    pub planned_from: f64,
    pub planned_to: f64,
    /// What was offered at the stage's start and end, after live changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offered_from: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offered_to: Option<f64>,
    /// A live change (ctl set-rate, pause, resume) replaced the planned load somewhere
    /// in this stage.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub overridden: bool,
    /// Every operation together, over the stage's measured intervals.
    pub all: Option<OpSummary>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<ThresholdResult>,
}

/// Merged cluster stats of `op` (or every operation) over intervals `range`.
pub fn stats_over(merge: &Merge, range: &RangeInclusive<u64>, op: Option<&str>) -> OpStats {
    let mut out = OpStats::default();
    for (_, agg) in merge.intervals.range(range.clone()) {
        for (name, s) in merge.operations.iter().zip(agg.cluster().iter()) {
            if op.is_none_or(|o| o == name.as_str()) {
                out.merge(s);
            }
        }
    }
    out
}

/// The verdicts of `list` on running totals (`totals[i]` of operation `ops[i]`) that
/// span `seconds`: the live dashboard's "so far", one merge per interval instead of
/// re-reading every interval. Downtime thresholds need the outages and are judged at
/// the end only (left out here).
pub fn judge_totals(
    scope: &str,
    list: &[Threshold],
    ops: &[fleetload_common::scenario::OpName],
    totals: &[OpStats],
    seconds: f64,
) -> Vec<ThresholdResult> {
    list.iter()
        .filter(|t| !t.metric.is_downtime())
        .map(|t| {
            let mut stats = OpStats::default();
            for (name, s) in ops.iter().zip(totals) {
                if t.operation.as_deref().is_none_or(|o| o == name.as_str()) {
                    stats.merge(s);
                }
            }
            verdict(scope, t, &stats, measure(t, &stats, seconds))
        })
        .collect()
}

/// `t`'s verdict on `measured`, the metric over `stats`.
fn verdict(scope: &str, t: &Threshold, stats: &OpStats, measured: f64) -> ThresholdResult {
    ThresholdResult {
        scope: scope.to_string(),
        threshold: t.text.clone(),
        measured: (measured * 1e6).round() / 1e6,
        limit: t.value,
        // No operation at all cannot meet a latency or rate threshold.
        passed: (stats.ok > 0 || !t.metric.is_latency()) && t.cmp.holds(measured, t.value),
        unit: unit_of(t.metric).to_string(),
        overridden: false,
    }
}

fn unit_of(m: Metric) -> &'static str {
    match m {
        m if m.is_duration() => "ms",
        Metric::OkPerS => "ops/s",
        _ => "",
    }
}

/// The threshold's metric over `stats` spanning `seconds`.
pub fn measure(t: &Threshold, stats: &OpStats, seconds: f64) -> f64 {
    let ms = |us: u64| us as f64 / 1000.0;
    match t.metric {
        Metric::Mean => stats.response.mean() / 1000.0,
        Metric::ErrorRate => {
            let attempts = stats.ok + stats.error_total();
            if attempts == 0 {
                0.0
            } else {
                stats.error_total() as f64 / attempts as f64
            }
        }
        Metric::OkPerS => stats.ok as f64 / seconds.max(1e-9),
        Metric::Dropped => stats.dropped_backlog as f64,
        m => ms(stats
            .response
            .value_at_quantile(m.quantile().unwrap_or(1.0))),
    }
}

/// Sessions' downtime (ms) over outages that began in `[from_s, to_s)`, of one role or
/// all: the threshold's statistic over sessions; an outage not recovered counts to
/// `to_s`. 0 without any.
fn downtime(t: &Threshold, merge: &Merge, from_s: f64, to_s: f64) -> f64 {
    let mut d: Vec<f64> = merge
        .outages()
        .map(|(_, o)| o)
        .filter(|o| t.role.is_none_or(|r| r == o.role))
        .filter(|o| (from_s..to_s).contains(&o.first_failure.as_secs_f64()))
        .map(|o| {
            let end = o.recovered.map_or(to_s, |r| r.as_secs_f64());
            (end - o.first_failure.as_secs_f64()).max(0.0) * 1e3
        })
        .collect();
    if d.is_empty() {
        return 0.0;
    }
    d.sort_by(f64::total_cmp);
    let q = match t.metric {
        Metric::DowntimeP50 => 0.5,
        Metric::DowntimeP99 => 0.99,
        _ => 1.0,
    };
    d[((q * d.len() as f64).ceil() as usize).clamp(1, d.len()) - 1]
}

fn judge(
    scope: &str,
    list: &[Threshold],
    merge: &Merge,
    (range, interval_s): (&RangeInclusive<u64>, f64),
    seconds: f64,
) -> Vec<ThresholdResult> {
    list.iter()
        .map(|t| {
            let stats = stats_over(merge, range, t.operation.as_deref());
            let measured = if t.metric.is_downtime() {
                let from = *range.start() as f64 * interval_s;
                downtime(t, merge, from, (*range.end() + 1) as f64 * interval_s)
            } else {
                measure(t, &stats, seconds)
            };
            verdict(scope, t, &stats, measured)
        })
        .collect()
}

fn interval_s(plan: &Plan) -> f64 {
    plan.interval.as_secs_f64()
}

/// The measured intervals lying wholly inside a stage.
pub fn stage_range(
    plan: &Plan,
    stage: &Stage,
    warmup_intervals: u64,
) -> Option<RangeInclusive<u64>> {
    let i = interval_s(plan);
    let first = ((stage.start.as_secs_f64() / i) - 1e-9).ceil().max(0.0) as u64;
    let end = ((stage.start + stage.duration).as_secs_f64() / i + 1e-9).floor() as u64;
    let first = first.max(warmup_intervals);
    (end > first).then(|| first..=end - 1)
}

/// Whether the `offered` load differs from the plan's anywhere in `stage` (both are
/// piecewise linear, so comparing at the stage's ends and every corner inside is exact).
fn overridden(planned: &Profile, offered: &Profile, stage: &Stage) -> bool {
    let (a, b) = (
        stage.start.as_secs_f64(),
        (stage.start + stage.duration).as_secs_f64(),
    );
    // Just inside the ends: a step at the stage's start belongs to it.
    let inside = [a + 1e-6, (a + b) / 2.0, b - 1e-6];
    planned
        .points()
        .iter()
        .chain(offered.points())
        .map(|(t, _)| *t)
        .filter(|t| *t > a && *t < b)
        .chain(inside)
        .any(|t| {
            (planned.value_at(t) - offered.value_at(t)).abs()
                > 1e-6 * planned.value_at(t).abs().max(1.0)
        })
}

/// Every threshold of the plan, judged over the run's measured intervals that were
/// recorded (up to `ran_s`). `offered` is the cluster's load as it ended up (the plan's
/// stages, then live changes): stages it replaced are marked, and so are their verdicts.
pub fn evaluate(
    plan: &Plan,
    merge: &Merge,
    ran_s: f64,
    offered: Option<&Profile>,
) -> (Vec<ThresholdResult>, Vec<StageJson>) {
    let planned = plan.cluster_profile();
    let i = interval_s(plan);
    let last = ((ran_s / i).ceil() as u64).saturating_sub(1);
    let warm = merge.warmup_intervals;
    let mut results = Vec::new();
    if last >= warm {
        let seconds = (ran_s - warm as f64 * i).max(1e-9);
        results.extend(judge(
            "run",
            &plan.thresholds,
            merge,
            (&(warm..=last), i),
            seconds,
        ));
    }
    let open = matches!(plan.load, fleetload_common::plan::LoadModel::Open { .. });
    let unit = if open { "ops/s" } else { "sessions" };
    let mut stages = Vec::new();
    for (n, st) in plan.stages.iter().enumerate() {
        let range = stage_range(plan, st, warm)
            .filter(|r| *r.start() <= last)
            .map(|r| *r.start()..=(*r.end()).min(last));
        let seconds = range
            .as_ref()
            .map_or(0.0, |r| (r.end() - r.start() + 1) as f64 * i);
        let scope = format!("stage {}", n + 1);
        let changed = match (&planned, offered) {
            (Some(p), Some(o)) => overridden(p, o, st),
            _ => false,
        };
        let mut thresholds = match &range {
            Some(r) => judge(&scope, &st.thresholds, merge, (r, i), seconds),
            None => Vec::new(),
        };
        for t in &mut thresholds {
            t.overridden = changed;
        }
        let at = |t: f64| offered.map(|o| o.value_at(t));
        let (a, b) = (
            st.start.as_secs_f64(),
            (st.start + st.duration).as_secs_f64(),
        );
        results.extend(thresholds.iter().cloned());
        stages.push(StageJson {
            index: n + 1,
            description: st.describe(unit),
            start_s: st.start.as_secs_f64(),
            end_s: (st.start + st.duration).as_secs_f64(),
            planned_from: st.from,
            planned_to: st.to,
            offered_from: at(a + 1e-6),
            offered_to: at(b - 1e-6),
            overridden: changed,
            all: range.map(|r| OpSummary::of(&stats_over(merge, &r, None), seconds)),
            thresholds,
        });
    }
    (results, stages)
}

/// With `abort_on_fail`: once interval `k` closed, does a threshold fail after its grace?
/// Whole-run thresholds are judged on the measured intervals so far, a stage's on its
/// intervals so far.
pub fn abort_check(plan: &Plan, merge: &Merge, k: u64) -> Option<String> {
    let grace = plan.abort_on_fail?.as_secs_f64();
    let i = interval_s(plan);
    let warm = merge.warmup_intervals;
    let now = (k + 1) as f64 * i;
    let failed = |results: Vec<ThresholdResult>| {
        results.into_iter().find(|r| !r.passed).map(|r| {
            format!(
                "aborted at {now:.1}s: threshold {} ({}) failed, measured {} (abort_on_fail)",
                r.threshold, r.scope, r.measured
            )
        })
    };
    if k >= warm && now - warm as f64 * i >= grace {
        if let Some(reason) = failed(judge(
            "run",
            &plan.thresholds,
            merge,
            (&(warm..=k), i),
            now - warm as f64 * i,
        )) {
            return Some(reason);
        }
    }
    for (n, st) in plan.stages.iter().enumerate() {
        let Some(range) = stage_range(plan, st, warm) else {
            continue;
        };
        if k < *range.start() || k > *range.end() || st.thresholds.is_empty() {
            continue;
        }
        let seconds = (k - range.start() + 1) as f64 * i;
        if now - st.start.as_secs_f64() >= grace {
            if let Some(reason) = failed(judge(
                &format!("stage {}", n + 1),
                &st.thresholds,
                merge,
                (&(*range.start()..=k), i),
                seconds,
            )) {
                return Some(reason);
            }
        }
    }
    None
}
