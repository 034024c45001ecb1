//! The run so far on disk: `report.partial.json` in the report directory, rewritten
//! every `checkpoint` interval and once more at the end, so that a coordinator killed
//! mid-run (an OOM kill, a drained node, a spot instance taken back) loses nothing that
//! `fleetload report recover` cannot rebuild with the workers' spools.
//!
//! It holds everything the report is built from: the effective plan, every worker as
//! the controller knew it (with the spool it named), the fleet's changes, and the
//! merge itself ([`MergeImage`]): every interval and every worker's held sequences, so
//! a spooled snapshot already in the checkpoint counts once and a later one is added.
//!
//! Workers keep each snapshot until a checkpoint holds it (the coordinator
//! acknowledges only what it has written), so the checkpoint plus the spools is the
//! whole run. A checkpoint is written whole or not at all (a temporary file, synced,
//! renamed over the old one): killed while writing, the previous one stays readable.

use crate::counters::DatabaseCounters;
use crate::merge::MergeImage;
use crate::RunRecord;
use crate::{Membership, WorkerInfo};
use fleetload_common::plan::{Plan, RawPlan};
use fleetload_common::profile::Profile;
use fleetload_common::scenario::OpName;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The checkpoint's file name in the report directory.
pub const FILE: &str = "report.partial.json";
/// The checkpoint format; bumped on any incompatible change.
pub const CHECKPOINT_FORMAT: u32 = 2;

/// Whether the run was still going when the checkpoint was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Running,
    /// Written with report.json at the end: `report recover` merges spools onto it.
    Final,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    pub fleetload_checkpoint: u32,
    pub run_id: String,
    pub plan_hash: String,
    pub stage: Stage,
    /// RFC 3339, the coordinator's clock.
    pub written_at: String,
    /// Seconds of the run it covers.
    pub ran_for_s: f64,
    /// Successful operations merged so far, warm-up included: for people looking in.
    pub ok_so_far: BTreeMap<OpName, u64>,
    pub plan: RawPlan,
    pub start_unix_nanos: i64,
    pub interrupted: bool,
    pub failures: Vec<String>,
    pub membership: Vec<Membership>,
    pub changes: Vec<Membership>,
    pub planned: Option<Vec<(f64, f64)>>,
    pub capacity: Option<crate::capacity::CapacityJson>,
    pub workers: Vec<WorkerInfo>,
    /// Only in the final checkpoint: the coordinator samples them until the end.
    pub database_counters: Option<DatabaseCounters>,
    pub merge: MergeImage,
}

/// What is wrong with a checkpoint file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot read {path}: {error}{}", hint(error))]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path} is not a fleetload checkpoint: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("cannot write {path}: {error}")]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// Temporary files of writers killed mid-write (`.report.partial.json.<pid>.tmp` of
/// another process): never read, so removed rather than left to pile up.
fn remove_stale_temporaries(dir: &Path) {
    let prefix = format!(".{FILE}.");
    let mine = format!(".{FILE}.{}.tmp", std::process::id());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) && name.ends_with(".tmp") && name != mine {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// What to do when the checkpoint is not there.
fn hint(e: &std::io::Error) -> &'static str {
    if e.kind() == std::io::ErrorKind::NotFound {
        "; give the run's report directory (--report-dir, or fleetload-report/<run id>), where the coordinator wrote report.partial.json (a plan with checkpoint = \"0s\" writes none)"
    } else {
        ""
    }
}

impl Checkpoint {
    /// The checkpoint of `o` (encodes every histogram: call off the controller's task).
    pub fn of(o: &RunRecord, stage: Stage, counters: Option<&DatabaseCounters>) -> Checkpoint {
        // From each worker's running totals: summing the intervals would decode every
        // packed interval's histograms at every checkpoint.
        let mut ok_so_far: BTreeMap<OpName, u64> = BTreeMap::new();
        for agg in o.merge.workers.values() {
            for (op, t) in o.merge.operations.iter().zip(&agg.received) {
                let e = ok_so_far.entry(op.clone()).or_default();
                *e = e.saturating_add(t.ok);
            }
        }
        Checkpoint {
            fleetload_checkpoint: CHECKPOINT_FORMAT,
            run_id: o.run_id.clone(),
            plan_hash: o.plan.hash(),
            stage,
            written_at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            ran_for_s: o.ran_for.as_secs_f64(),
            ok_so_far,
            plan: o.plan.effective(),
            start_unix_nanos: o.start_unix_nanos,
            interrupted: o.interrupted,
            failures: o.failures.clone(),
            membership: o.membership.clone(),
            changes: o.changes.clone(),
            planned: o.planned.as_ref().map(|p| p.points().to_vec()),
            capacity: o.capacity.clone(),
            workers: o.workers.clone(),
            database_counters: counters.cloned(),
            merge: MergeImage::of(&o.merge),
        }
    }

    /// Write it to `dir/report.partial.json`, whole or not at all.
    ///
    /// # Errors
    /// The directory or the file cannot be written; the previous checkpoint stays.
    pub fn write(&self, dir: &Path) -> Result<PathBuf, CheckpointError> {
        let path = dir.join(FILE);
        let werr = |error| CheckpointError::Write {
            path: path.clone(),
            error,
        };
        std::fs::create_dir_all(dir).map_err(werr)?;
        remove_stale_temporaries(dir);
        let body = serde_json::to_vec(self).map_err(|e| werr(std::io::Error::other(e)))?;
        fleetload_common::spool::write_atomically(&path, &body).map_err(werr)?;
        Ok(path)
    }

    /// Read a checkpoint: `path` is the file or the report directory holding it.
    ///
    /// # Errors
    /// It cannot be read, is not a checkpoint, or is of another format.
    pub fn read(path: &Path) -> Result<Checkpoint, CheckpointError> {
        let path = if path.is_dir() {
            path.join(FILE)
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read_to_string(&path).map_err(|error| CheckpointError::Read {
            path: path.clone(),
            error,
        })?;
        let invalid = |reason: String| CheckpointError::Invalid {
            path: path.clone(),
            reason,
        };
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| invalid(format!("not JSON ({e})")))?;
        match value
            .get("fleetload_checkpoint")
            .and_then(serde_json::Value::as_u64)
        {
            Some(f) if f == u64::from(CHECKPOINT_FORMAT) => {}
            Some(f) => {
                return Err(invalid(format!(
                    "checkpoint format {f}; this fleetload reads format {CHECKPOINT_FORMAT}"
                )))
            }
            None => return Err(invalid("no fleetload_checkpoint key".into())),
        }
        serde_json::from_value(value).map_err(|e| invalid(e.to_string()))
    }

    /// The run as the checkpoint has it, ready to take spooled snapshots and be
    /// reported; and the database's counters when the checkpoint is the final one.
    ///
    /// # Errors
    /// The plan does not validate any more (a scenario file that moved), or the merge
    /// does not read back.
    pub fn into_record(self) -> Result<(RunRecord, Option<DatabaseCounters>), String> {
        let plan = Plan::try_from(self.plan)
            .map_err(|e| format!("the checkpoint's plan does not validate: {e}"))?;
        let merge = self
            .merge
            .merge()
            .map_err(|e| format!("the checkpoint's merge does not read back: {e}"))?;
        let planned = match self.planned {
            Some(points) => Some(
                Profile::from_points(points)
                    .map_err(|e| format!("the checkpoint's planned load: {e}"))?,
            ),
            None => None,
        };
        Ok((
            RunRecord {
                plan,
                run_id: self.run_id,
                merge,
                workers: self.workers,
                failures: self.failures,
                interrupted: self.interrupted,
                membership: self.membership,
                changes: self.changes,
                planned,
                start_unix_nanos: self.start_unix_nanos,
                start: std::time::Instant::now(),
                ran_for: Duration::from_secs_f64(self.ran_for_s.max(0.0)),
                capacity: self.capacity,
            },
            self.database_counters,
        ))
    }
}
