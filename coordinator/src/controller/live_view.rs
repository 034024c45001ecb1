//! What the live dashboard is told: the run at its start, then every closed interval
//! as report.json will hold it, with the planned rate, the fleet and the stage.

use super::{Controller, Effect};
use fleetload_common::plan::LoadModel;
use fleetload_common::stats::OpStats;
use fleetload_report::merge::Merge;

/// Running totals for the dashboard's threshold verdicts: the measured run so far, and
/// the current stage's measured intervals so far.
#[derive(Debug, Default)]
pub(super) struct SoFar {
    run: Vec<OpStats>,
    run_intervals: u64,
    stage: Option<(usize, Vec<OpStats>, u64)>,
}

fn add(into: &mut Vec<OpStats>, stats: &[OpStats]) {
    into.resize_with(stats.len(), OpStats::default);
    for (a, s) in into.iter_mut().zip(stats) {
        a.merge(s);
    }
}

/// The fleet as the dashboard lists it.
#[derive(serde::Serialize)]
struct Fleet<'a> {
    workers: Vec<crate::ui::WorkerLine<'a>>,
    membership: &'a [fleetload_report::Membership],
    changes: &'a [fleetload_report::Membership],
}

impl Controller {
    /// The run as the dashboard introduces it.
    pub(crate) fn ui_start(&self) -> crate::ui::Start {
        let plan = &self.config.plan;
        let closed_loop = matches!(plan.load, LoadModel::Closed { .. });
        let unit = if closed_loop { "sessions" } else { "ops/s" };
        crate::ui::Start {
            run_id: self.run_id.clone(),
            target: plan.target.to_string(),
            scenario: plan.scenario.name().to_string(),
            load: match (&plan.load, self.search.is_some()) {
                (_, true) => "capacity search".into(),
                (LoadModel::Open { rate, .. }, false) => format!("open loop at {rate} ops/s"),
                (LoadModel::Closed { .. }, false) => "closed loop".into(),
            },
            duration_s: self.search.is_none().then_some(plan.duration.as_secs_f64()),
            interval_s: plan.interval.as_secs_f64(),
            warmup_s: plan.warmup.as_secs_f64(),
            operations: plan.mix.iter().map(|(op, _)| op.to_string()).collect(),
            workers: self.slots.len(),
            stages: plan
                .stages
                .iter()
                .map(|st| {
                    (
                        st.start.as_secs_f64(),
                        (st.start + st.duration).as_secs_f64(),
                        st.describe(unit),
                    )
                })
                .collect(),
            needs_token: self.outputs.dashboard.is_some_and(|d| d.needs_token),
            closed_loop,
        }
    }

    /// Interval `k` closed: to every viewer.
    pub(super) fn publish_interval(&mut self, merge: &Merge, k: u64, planned: Option<f64>) {
        let (Some(_), Some(agg)) = (self.outputs.dashboard, merge.intervals.get(&k)) else {
            return;
        };
        self.publish_fleet();
        let plan = &self.config.plan;
        let interval_s = plan.interval.as_secs_f64();
        let at = k as f64 * interval_s;
        let unit = match plan.load {
            LoadModel::Closed { .. } => "sessions",
            LoadModel::Open { .. } => "ops/s",
        };
        let stage = plan
            .stages
            .iter()
            .find(|st| {
                let from = st.start.as_secs_f64();
                from <= at && at < from + st.duration.as_secs_f64()
            })
            .map(|st| st.describe(unit));
        let thresholds = self.thresholds_so_far(merge, k);
        let plan = &self.config.plan;
        let instances = instance_lines(merge, k);
        let mut interval =
            fleetload_report::interval_json(merge, k, agg, interval_s, plan.duration.as_secs_f64());
        // Per worker, only its throughput: a thousand workers' full briefs would make
        // every frame (and a late viewer's history) hundreds of kilobytes.
        let per_worker_ok = std::mem::take(&mut interval.per_worker)
            .into_iter()
            .map(|(w, by_op)| (w, by_op.values().map(|b| b.ok_per_s).sum::<f64>()))
            .collect();
        let frame = crate::ui::Frame {
            elapsed_s: ((k + 1) as f64 * interval_s).min(plan.duration.as_secs_f64()),
            planned,
            interval,
            per_worker_ok,
            stage: stage.as_deref(),
            thresholds: thresholds
                .iter()
                .map(crate::ui::ThresholdLine::from)
                .collect(),
            instances,
            session_outages: merge.kept(fleetload_common::events::EventKind::SessionOutage),
        };
        match serde_json::to_string(&frame) {
            Ok(json) => self.effects.push(Effect::Publish {
                event: "interval",
                json,
            }),
            Err(e) => tracing::warn!(error = %e, "cannot encode the dashboard's frame"),
        }
    }

    /// The fleet, only when it changed: a thousand workers' lines in every frame would be
    /// most of it.
    fn publish_fleet(&mut self) {
        let fleet = Fleet {
            workers: self
                .slots
                .iter()
                .enumerate()
                .map(|(i, s)| crate::ui::WorkerLine {
                    index: i,
                    name: &s.hello.name,
                    host: &s.hello.host,
                    state: s.state.live_name(),
                    rate: s.rate,
                })
                .collect(),
            membership: &self.membership,
            changes: &self.changes,
        };
        if let Ok(text) = serde_json::to_string(&fleet) {
            if text != self.ui_fleet {
                self.effects.push(Effect::Publish {
                    event: "fleet",
                    json: text.clone(),
                });
                self.ui_fleet = text;
            }
        }
    }

    /// Every threshold's verdict on the measured intervals so far (the run's) and on the
    /// current stage's so far, from running totals.
    fn thresholds_so_far(
        &mut self,
        merge: &Merge,
        k: u64,
    ) -> Vec<fleetload_report::thresholds::ThresholdResult> {
        let plan = &self.config.plan;
        let has_any =
            !plan.thresholds.is_empty() || plan.stages.iter().any(|st| !st.thresholds.is_empty());
        let (true, Some(agg)) = (has_any, merge.intervals.get(&k)) else {
            return Vec::new();
        };
        if k < merge.warmup_intervals {
            return Vec::new();
        }
        let cluster = agg.cluster();
        let i = plan.interval.as_secs_f64();
        let so_far = &mut self.ui_so_far;
        add(&mut so_far.run, &cluster);
        so_far.run_intervals += 1;
        let mut out = fleetload_report::thresholds::judge_totals(
            "run",
            &plan.thresholds,
            &merge.operations,
            &so_far.run,
            so_far.run_intervals as f64 * i,
        );
        let stage = plan.stages.iter().enumerate().find(|(_, st)| {
            fleetload_report::thresholds::stage_range(plan, st, merge.warmup_intervals)
                .is_some_and(|r| r.contains(&k))
        });
        match stage {
            Some((n, st)) => {
                if so_far.stage.as_ref().is_none_or(|(m, _, _)| *m != n) {
                    so_far.stage = Some((n, Vec::new(), 0));
                }
                if let Some((_, totals, count)) = &mut so_far.stage {
                    add(totals, &cluster);
                    *count += 1;
                    out.extend(fleetload_report::thresholds::judge_totals(
                        &format!("stage {}", n + 1),
                        &st.thresholds,
                        &merge.operations,
                        totals,
                        *count as f64 * i,
                    ));
                }
            }
            None => so_far.stage = None,
        }
        out
    }
}

/// What each server instance served in interval `k`.
fn instance_lines(merge: &Merge, k: u64) -> Vec<crate::ui::InstanceLine<'_>> {
    merge
        .instances
        .iter()
        .filter_map(|(name, i)| {
            i.series
                .get(&k)
                .map(|(sessions, ok, errors)| crate::ui::InstanceLine {
                    name,
                    read_only: i.read_only,
                    sessions: *sessions,
                    ok: *ok,
                    errors: *errors,
                })
        })
        .collect()
}
