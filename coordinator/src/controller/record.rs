//! The controller's side of the run record: what it knows of the run, as the report
//! needs it.

use super::{Controller, Live};
use fleetload_report::merge::Merge;
use fleetload_report::{RunRecord, WorkerInfo};
use std::time::Duration;

impl Controller {
    pub(super) fn record(&self, live: Live) -> RunRecord {
        let ran_for = live.stopped_at.map_or(self.config.plan.duration, |t| {
            t.saturating_duration_since(live.start)
                .min(self.config.plan.duration)
        });
        let o = self.record_of(&live, ran_for, Merge::new(Vec::new(), 0));
        RunRecord {
            merge: live.merge,
            failures: live.failures,
            ..o
        }
    }

    /// The run so far, for a checkpoint: the merge is copied (the histograms are
    /// encoded later, off the controller's task).
    pub(super) fn record_so_far(&self, live: &Live, now: super::Now) -> RunRecord {
        let ran_for = now
            .at
            .saturating_duration_since(live.start)
            .min(self.config.plan.duration);
        self.record_of(live, ran_for, live.merge.clone())
    }

    fn record_of(&self, live: &Live, ran_for: Duration, merge: Merge) -> RunRecord {
        RunRecord {
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
