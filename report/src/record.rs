//! What a finished run hands to the report: the merge, every worker as it ended, what
//! happened to the fleet and the load. The coordinator's controller produces it (at the
//! end, and for every checkpoint); `report recover` rebuilds it from a checkpoint.

use crate::merge::Merge;
use crate::{Membership, Report, ReportInput, WorkerInfo};
use fleetload_common::plan::Plan;
use fleetload_common::profile::Profile;
use std::time::{Duration, Instant, UNIX_EPOCH};

/// A finished run, without the database's counters (the shell samples those).
#[derive(Debug)]
pub struct RunRecord {
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
    pub capacity: Option<crate::capacity::CapacityJson>,
}

impl RunRecord {
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
