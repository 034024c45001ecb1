//! What a finished run hands to the report: the merge, every worker as it ended, what
//! happened to the fleet and the load.

use super::{Controller, Live};
use crate::merge::Merge;
use crate::report::{Membership, Report, ReportInput, WorkerInfo};
use fleetload_common::plan::Plan;
use fleetload_common::profile::Profile;
use std::time::{Duration, Instant, UNIX_EPOCH};

/// A finished run, without the database's counters (the shell samples those).
#[derive(Debug)]
pub struct Outcome {
    pub plan: Plan,
    pub run_id: String,
    pub merge: Merge,
    pub workers: Vec<WorkerInfo>,
    pub failures: Vec<String>,
    pub interrupted: bool,
    pub membership: Vec<Membership>,
    pub changes: Vec<Membership>,
    pub planned: Option<Profile>,
    /// The start instant, Unix nanoseconds on the coordinator's clock.
    pub start_unix_nanos: i64,
    pub start: Instant,
    /// How long the run actually lasted (shorter when stopped early).
    pub ran_for: Duration,
    pub capacity: Option<crate::search::CapacityJson>,
}

impl Outcome {
    pub fn report(self, database_counters: crate::counters::DatabaseCounters) -> Report {
        let started_at =
            UNIX_EPOCH + Duration::from_nanos(u64::try_from(self.start_unix_nanos).unwrap_or(0));
        Report::build(
            ReportInput {
                plan: &self.plan,
                run_id: &self.run_id,
                started_at,
                ran_for: self.ran_for,
                workers: &self.workers,
                failures: self.failures,
                interrupted: self.interrupted,
                database_counters,
                membership: self.membership,
                changes: self.changes,
                planned: self.planned,
                start_unix_nanos: self.start_unix_nanos,
                capacity: self.capacity,
            },
            &self.merge,
        )
    }
}

impl Controller {
    pub(super) fn outcome(&self, live: Live) -> Outcome {
        let ran_for = live.stopped_at.map_or(self.config.plan.duration, |t| {
            t.saturating_duration_since(live.start)
                .min(self.config.plan.duration)
        });
        let o = self.outcome_of(&live, ran_for, Merge::new(Vec::new(), 0));
        Outcome {
            merge: live.merge,
            failures: live.failures,
            ..o
        }
    }

    /// The run so far, for a checkpoint: the merge is copied (the histograms are
    /// encoded later, off the controller's task).
    pub(super) fn outcome_so_far(&self, live: &Live, now: super::Now) -> Outcome {
        let ran_for = now
            .at
            .saturating_duration_since(live.start)
            .min(self.config.plan.duration);
        self.outcome_of(live, ran_for, live.merge.clone())
    }

    fn outcome_of(&self, live: &Live, ran_for: Duration, merge: Merge) -> Outcome {
        Outcome {
            workers: self.worker_infos(),
            run_id: self.run_id.clone(),
            merge,
            failures: live.failures.clone(),
            interrupted: live.interrupted,
            membership: self.membership.clone(),
            changes: self.changes.clone(),
            planned: self.cluster.clone(),
            start_unix_nanos: live.start_nanos,
            start: live.start,
            ran_for,
            capacity: self.search.as_ref().map(crate::search::Search::report),
            plan: self.config.plan.clone(),
        }
    }

    fn worker_infos(&self) -> Vec<WorkerInfo> {
        let sessions = self.config.plan.all_sessions();
        self.slots
            .iter()
            .enumerate()
            .map(|(i, s)| WorkerInfo {
                index: i as u32,
                name: s.hello.name.clone(),
                host: s.hello.host.clone(),
                peer: s.peer.map(|p| p.to_string()),
                cores: s.hello.cores,
                capacity: s.hello.capacity,
                shard: s.shard,
                rate: s.rate,
                sessions,
                state: s.state.report_name().to_string(),
                message: s.message.clone(),
                executed: s.done.as_ref().map(|d| d.totals.clone()),
                inserted: s
                    .done
                    .as_ref()
                    .map(|d| (d.inserted, d.insert_id_base, d.insert_id_last)),
                rows_loaded: (s.rows_loaded > 0).then_some(s.rows_loaded),
                clock: s.clock,
                first_op_unix_nanos: s.done.as_ref().and_then(|d| d.first_op_unix_nanos),
                insert_id_stride: self.insert_id_stride(),
                rejected: s
                    .rejected
                    .iter()
                    .map(|(class, (n, detail))| (class.name().to_string(), *n, detail.clone()))
                    .collect(),
                spool: s.spool.clone(),
                lost_at_s: s.lost.as_ref().map(|(at, _)| *at),
                away: s.away.clone(),
            })
            .collect()
    }
}
