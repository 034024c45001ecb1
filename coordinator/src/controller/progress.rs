//! Closing intervals: an interval closes once every live worker sent its snapshot, or
//! a grace after its end; then the live line, the capacity search's step and the
//! thresholds that abort a run.

use super::{Controller, Effect, Live, Now};
use crate::metrics::{ClosedInterval, MetricsUpdate};
use fleetload_common::histogram::{merge as merge_histogram, new_latency};
use fleetload_common::plan::{LoadModel, Plan};
use fleetload_common::profile::Profile;
use fleetload_report::merge::Merge;
use std::fmt;
use std::time::{Duration, Instant};

/// One closed interval of the cluster, for the live display.
#[derive(Debug, Clone)]
pub struct Progress {
    pub interval: u64,
    pub elapsed: Duration,
    /// The planned length; `None` for a capacity search, which ends when it converges.
    pub duration: Option<Duration>,
    pub warmup: bool,
    pub workers_reporting: usize,
    pub workers: usize,
    pub ok_per_s: f64,
    pub target_rate: Option<f64>,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
    pub dropped: u64,
    /// Ok/s per role when the mix has both (with a reader endpoint: what each served).
    pub by_role: Vec<(fleetload_common::scenario::Role, f64)>,
}

impl Progress {
    /// ` (read 120, write 80)` when there is more than one role, else nothing.
    pub fn roles_text(&self) -> String {
        if self.by_role.len() < 2 {
            return String::new();
        }
        let parts: Vec<String> = self
            .by_role
            .iter()
            .map(|(r, v)| format!("{} {v:.0}", r.name()))
            .collect();
        format!(" ({})", parts.join(", "))
    }
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = self
            .target_rate
            .map(|r| format!(" (target {r:.0})"))
            .unwrap_or_default();
        let of = self
            .duration
            .map_or(String::new(), |d| format!("/{:.0}s", d.as_secs_f64()));
        write!(
            f,
            "[{:>5.1}s{of}]{} workers {}/{}  ok/s {:.0}{}{target}  p50 {:.3}ms  p99 {:.3}ms  errors {}  dropped {}",
            self.elapsed.as_secs_f64(),
            if self.warmup { " warm-up" } else { "" },
            self.workers_reporting,
            self.workers,
            self.ok_per_s,
            self.roles_text(),
            self.p50_ms,
            self.p99_ms,
            self.errors,
            self.dropped
        )
    }
}

/// When interval `k` closes even without every snapshot.
pub(super) fn overdue_at(plan: &Plan, start: Instant, k: u64) -> Instant {
    let late_grace = plan.interval.max(Duration::from_secs(1));
    start + plan.interval * (k as u32 + 1) + late_grace
}

impl Controller {
    /// Close every interval that is complete or overdue, in order.
    pub(super) fn close_intervals(&mut self, now: Now, live: &mut Live) {
        let plan = self.config.plan.clone();
        let last_interval = plan.interval_count() - 1;
        while live.next_close <= last_interval && live.stopped_at.is_none() {
            let k = live.next_close;
            let live_workers: Vec<u32> = self
                .slots
                .iter()
                .enumerate()
                .filter(|(_, s)| s.state.is_live())
                .map(|(i, _)| i as u32)
                .collect();
            let have_all = live_workers.iter().all(|w| {
                live.merge
                    .workers
                    .get(w)
                    .is_some_and(|a| a.sent_interval(k))
            });
            if !(have_all || now.at >= overdue_at(&plan, live.start, k)) {
                break;
            }
            if let Some(agg) = live.merge.intervals.get_mut(&k) {
                agg.closed = true;
            }
            self.emit_progress(&live.merge, k, live_workers.len());
            self.search_step(&live.merge, k);
            if let Some(reason) = fleetload_report::thresholds::abort_check(&plan, &live.merge, k) {
                if self.stop_request.is_none() {
                    tracing::warn!("{reason}");
                    live.failures.push(reason.clone());
                    self.stop_request = Some(reason);
                }
            }
            live.merge.pack(k);
            live.next_close += 1;
        }
    }

    /// After interval `k` closed: let the capacity search judge its stage and set the
    /// next rate (from the next interval on) or end the run.
    fn search_step(&mut self, merge: &Merge, k: u64) {
        let interval = self.config.plan.interval;
        let Some(search) = &mut self.search else {
            return;
        };
        match search.interval_closed(merge, k, interval) {
            crate::search::Next::Continue => {}
            crate::search::Next::Rate(rate) => {
                let at = (k + 1) as f64 * interval.as_secs_f64();
                let cluster = self
                    .cluster
                    .clone()
                    .unwrap_or_else(|| Profile::constant(0.0));
                self.cluster = Some(cluster.splice(at, &Profile::constant(rate)));
                self.changes.push(fleetload_report::Membership {
                    t_s: at,
                    event: if rate > 0.0 {
                        format!("capacity search: {rate:.1} ops/s")
                    } else {
                        "capacity search: no load for a stage, to drain the backlog".into()
                    },
                });
                self.push_load(at);
            }
            crate::search::Next::Finish(why) => {
                tracing::info!("{why}");
                self.stop_request = Some(why);
            }
        }
    }

    /// The planned cluster rate over `[from, from + len)`, open loop only.
    fn planned_rate(&self, from: f64, len: f64) -> Option<f64> {
        match self.config.plan.load {
            LoadModel::Open { .. } => self
                .cluster
                .as_ref()
                .map(|c| c.integral(from, from + len) / len.max(1e-9)),
            LoadModel::Closed { .. } => None,
        }
    }

    fn emit_progress(&mut self, merge: &Merge, k: u64, live: usize) {
        let plan = &self.config.plan;
        let Some(agg) = merge.intervals.get(&k) else {
            return;
        };
        let cluster = agg.cluster();
        let end = (plan.interval * (k as u32 + 1)).min(plan.duration);
        let from = (plan.interval * k as u32).as_secs_f64();
        let len = end.saturating_sub(plan.interval * k as u32).as_secs_f64();
        let target = self.planned_rate(from, len);
        if self.outputs.metrics {
            let ops: Vec<_> = merge
                .operations
                .iter()
                .cloned()
                .zip(cluster.iter())
                .collect();
            self.effects
                .push(Effect::Metrics(MetricsUpdate::IntervalClosed(
                    ClosedInterval::of(&ops, len, live, end, target),
                )));
        }
        let mut all = new_latency();
        let (mut ok, mut errors, mut dropped) = (0, 0, 0);
        let mut by_role: Vec<(fleetload_common::scenario::Role, f64)> = Vec::new();
        for (role, s) in plan.roles().into_iter().zip(cluster.iter()) {
            let rate = s.ok as f64 / len.max(1e-9);
            match by_role.iter_mut().find(|(r, _)| *r == role) {
                Some((_, v)) => *v += rate,
                None => by_role.push((role, rate)),
            }
        }
        by_role.sort_by_key(|(r, _)| *r);
        for s in cluster.iter() {
            merge_histogram(&mut all, &s.response);
            ok += s.ok;
            errors += s.error_total();
            dropped += s.dropped_backlog;
        }
        let progress = Progress {
            interval: k,
            elapsed: end,
            duration: self.search.is_none().then_some(plan.duration),
            warmup: k < merge.warmup_intervals,
            workers_reporting: agg.workers_reporting(),
            workers: live,
            ok_per_s: ok as f64 / len.max(1e-9),
            target_rate: target,
            p50_ms: all.value_at_quantile(0.5) as f64 / 1000.0,
            p99_ms: all.value_at_quantile(0.99) as f64 / 1000.0,
            errors,
            dropped,
            by_role,
        };
        self.last_progress = Some(progress.clone());
        self.effects.push(Effect::Progress(progress));
        self.publish_interval(merge, k, target);
    }
}
