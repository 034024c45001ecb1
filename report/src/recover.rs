//! `fleetload report recover`: a run's report rebuilt from its last checkpoint and the
//! workers' spools, after the coordinator died mid-run or workers were cut off when
//! the run ended.
//!
//! Exact by construction: the checkpoint holds the merge itself with every worker's
//! held sequences, and each spooled snapshot goes through the same checks and the same
//! `Merge::add` as one arriving on the wire, so a snapshot already in the checkpoint
//! counts once and a later one is added. A spool's final totals stand in for the
//! `Done` the coordinator never received, so the merge check means what it always does.

use crate::admission::Bounds;
use crate::checkpoint::{Checkpoint, CheckpointError, Stage};
use crate::merge::Accepted;
use crate::{Report, RunStatus};
use fleetload_common::spool::{Spool, SpoolError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What a recovered report says of the recovery.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Recovery {
    /// `running`: the coordinator died and the checkpoint was its last; `final`: the run
    /// had ended and spools were added onto it.
    pub checkpoint_stage: Stage,
    /// When the checkpoint was written, and how much of the run it covered.
    pub checkpoint_written_at: String,
    pub checkpoint_ran_for_s: f64,
    /// What each spool added.
    pub spools: Vec<SpoolContribution>,
    /// Workers whose final totals are in neither the checkpoint nor a spool.
    pub missing: Vec<MissingSpool>,
    /// The time without load after the coordinator was lost, as the workers' spools
    /// say: the run's rates, totals and thresholds cover only the time before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<LoadPaused>,
}

/// A gap in the run: the coordinator was lost and the workers' dead man's switches
/// paused their load until the run's planned end.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadPaused {
    /// The first worker's pause, seconds from the start.
    pub from_s: f64,
    /// The run's planned end.
    pub to_s: f64,
    /// Each spooled worker's pause.
    pub workers: Vec<WorkerPause>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerPause {
    pub worker: String,
    pub index: u32,
    pub at_s: f64,
}

impl LoadPaused {
    pub fn sentence(&self) -> String {
        let each: Vec<String> = self
            .workers
            .iter()
            .map(|w| format!("{} at {:.1} s", w.worker, w.at_s))
            .collect();
        format!(
            "GAP: no load from {:.1} s to {:.1} s: the coordinator was lost and the workers' dead man's switch paused their load ({}); the report is PARTIAL: rates, totals and thresholds cover the {:.1} s before the gap",
            self.from_s,
            self.to_s,
            each.join(", "),
            self.from_s
        )
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpoolContribution {
    pub worker: String,
    pub index: u32,
    pub path: String,
    /// Snapshots the checkpoint did not hold, added now.
    pub added: u64,
    /// Snapshots the checkpoint already held, ignored.
    pub already_held: u64,
    /// Snapshots refused (with the first reason).
    pub refused: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_refusal: Option<String>,
    /// Intervals the added snapshots cover.
    pub intervals: Option<(u64, u64)>,
    /// The spool held the worker's final totals.
    pub final_totals: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MissingSpool {
    pub worker: String,
    pub index: u32,
    /// The last interval of it the report holds.
    pub last_interval: Option<u64>,
    /// Snapshots it would have sent up to the last interval anyone reported.
    pub snapshots_missing: u64,
    pub detail: String,
}

impl Recovery {
    /// What the recovery did, a line each, for the text and HTML reports.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![format!(
            "RECOVERED from the {} checkpoint written {} ({:.1}s of the run) and {}",
            match self.checkpoint_stage {
                Stage::Running => "running",
                Stage::Final => "final",
            },
            self.checkpoint_written_at,
            self.checkpoint_ran_for_s,
            match self.spools.len() {
                1 => "1 spool".to_string(),
                n => format!("{n} spools"),
            }
        )];
        for c in &self.spools {
            out.push(format!(
                "  {} (slot {}): {} snapshots added{}, {} already in the checkpoint{}{}; from {}",
                c.worker,
                c.index,
                c.added,
                c.intervals
                    .map(|(a, b)| format!(" (intervals {a}–{b})"))
                    .unwrap_or_default(),
                c.already_held,
                if c.final_totals {
                    ", its final totals"
                } else {
                    ", no final totals"
                },
                match (&c.first_refusal, c.refused) {
                    (Some(r), n) => format!(", {n} refused (first: {r})"),
                    (None, _) => String::new(),
                },
                c.path
            ));
        }
        out.extend(
            self.missing
                .iter()
                .map(|m| format!("  MISSING: {}", m.detail)),
        );
        out.extend(self.paused.iter().map(LoadPaused::sentence));
        out
    }
}

/// A spool of another run than the checkpoint's.
#[derive(Debug, thiserror::Error)]
#[error("{spool} is of run {spool_run} (plan {spool_plan}), but the checkpoint in {dir} is of run {run} (plan {plan}): pass the spools of run {run}, named fleetload-unsent-{run}-w<N>.jsonl")]
pub struct OtherRun {
    pub spool: PathBuf,
    pub spool_run: String,
    pub spool_plan: String,
    pub dir: PathBuf,
    pub run: String,
    pub plan: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error(transparent)]
    OtherRun(Box<OtherRun>),
    #[error("{spool} is of worker slot {slot}, but run {run} had {slots} slots (0..{slots})")]
    NoSuchSlot {
        spool: PathBuf,
        slot: u32,
        run: String,
        slots: usize,
    },
    #[error("{second} and {first} are both spools of worker slot {slot}: pass one")]
    TwoSpools {
        first: PathBuf,
        second: PathBuf,
        slot: u32,
    },
    #[error("{dir}: {reason}")]
    Unusable { dir: PathBuf, reason: String },
}

/// Rebuild the report of the run checkpointed in `dir` with `spools`.
///
/// # Errors
/// The checkpoint or a spool cannot be read, a spool is of another run or of a slot the
/// run did not have, or two spools are of one slot.
pub fn recover(dir: &Path, spools: &[PathBuf]) -> Result<(Report, Recovery), RecoverError> {
    let checkpoint = Checkpoint::read(dir)?;
    let mut read: Vec<(PathBuf, Spool)> = Vec::new();
    for path in spools {
        let spool = fleetload_common::spool::read(path)?;
        let h = &spool.header;
        if h.run_id != checkpoint.run_id || h.plan_hash != checkpoint.plan_hash {
            return Err(RecoverError::OtherRun(Box::new(OtherRun {
                spool: path.clone(),
                spool_run: h.run_id.clone(),
                spool_plan: h.plan_hash.clone(),
                dir: dir.to_path_buf(),
                run: checkpoint.run_id.clone(),
                plan: checkpoint.plan_hash.clone(),
            })));
        }
        if h.worker_index as usize >= checkpoint.workers.len() {
            return Err(RecoverError::NoSuchSlot {
                spool: path.clone(),
                slot: h.worker_index,
                run: checkpoint.run_id.clone(),
                slots: checkpoint.workers.len(),
            });
        }
        if let Some((first, _)) = read
            .iter()
            .find(|(_, s)| s.header.worker_index == h.worker_index)
        {
            return Err(RecoverError::TwoSpools {
                first: first.clone(),
                second: path.clone(),
                slot: h.worker_index,
            });
        }
        read.push((path.clone(), spool));
    }
    let stage = checkpoint.stage;
    let written_at = checkpoint.written_at.clone();
    let ran_for_s = checkpoint.ran_for_s;
    let (mut outcome, counters) =
        checkpoint
            .into_record()
            .map_err(|reason| RecoverError::Unusable {
                dir: dir.to_path_buf(),
                reason,
            })?;
    let bounds = Bounds::of(&outcome.plan);
    // Every interval of the run may be named: the run is over.
    let elapsed = outcome.plan.duration + outcome.plan.interval * 4;
    let mut contributions = Vec::new();
    for (path, spool) in &read {
        let slot = spool.header.worker_index;
        let mut c = SpoolContribution {
            worker: spool.header.worker.clone(),
            index: slot,
            path: path.display().to_string(),
            added: 0,
            already_held: 0,
            refused: 0,
            first_refusal: None,
            intervals: None,
            final_totals: false,
        };
        for snap in &spool.snapshots {
            let checked = bounds
                .snapshot(snap, slot, &outcome.run_id, elapsed)
                .and_then(|()| outcome.merge.add(snap));
            match checked {
                Ok(Accepted::New) => {
                    c.added += 1;
                    let k = snap.interval_index;
                    c.intervals = Some(c.intervals.map_or((k, k), |(a, b)| (a.min(k), b.max(k))));
                }
                Ok(Accepted::Duplicate) => c.already_held += 1,
                Err(r) => {
                    c.refused += 1;
                    c.first_refusal.get_or_insert(r.detail);
                }
            }
        }
        let worker = &mut outcome.workers[slot as usize];
        if let (Some(done), None) = (&spool.done, &worker.executed) {
            let base = outcome.plan.insert_id_base(slot as usize);
            let its_start = start_on_its_clock(outcome.start_unix_nanos, worker);
            match bounds.done(done, slot, &outcome.run_id, base, its_start) {
                Ok(()) => {
                    worker.executed = Some(done.totals.clone());
                    worker.inserted =
                        Some((done.inserted, done.insert_id_base, done.insert_id_last));
                    worker.first_op_unix_nanos = done.first_op_unix_nanos;
                    worker.state = "recovered".into();
                    c.final_totals = true;
                }
                Err(r) => {
                    c.refused += 1;
                    c.first_refusal
                        .get_or_insert(format!("its final totals: {}", r.detail));
                }
            }
        }
        if worker.spool.is_none() {
            worker.spool = Some(path.display().to_string());
        }
        contributions.push(c);
    }
    // The run lasted at least as long as anything any worker measured.
    let last = outcome
        .merge
        .workers
        .values()
        .filter_map(|a| a.last_interval)
        .max();
    if let Some(k) = last {
        let covered = (outcome.plan.interval * u32::try_from(k + 1).unwrap_or(u32::MAX))
            .min(outcome.plan.duration);
        outcome.ran_for = outcome.ran_for.max(covered);
    }
    let paused = paused(&outcome, &read);
    if let Some(p) = &paused {
        // The time without load is not measured time: rates and thresholds stop there.
        outcome.ran_for = outcome
            .ran_for
            .min(std::time::Duration::from_secs_f64(p.from_s.max(0.0)));
    }
    let missing = missing(&outcome, last, &read);
    let counters = counters.unwrap_or_else(|| crate::counters::DatabaseCounters {
        unavailable: Some(format!(
            "the coordinator stopped before the end of the run (last checkpoint {written_at}); its samples of the database's counters went with it"
        )),
        ..Default::default()
    });
    let recovery = Recovery {
        checkpoint_stage: stage,
        checkpoint_written_at: written_at,
        checkpoint_ran_for_s: ran_for_s,
        spools: contributions,
        missing,
        paused,
    };
    let mut report = outcome.report(counters);
    report.status = RunStatus::Recovered;
    report.recovery = Some(recovery.clone());
    Ok((report, recovery))
}

/// The run's start on worker `w`'s own clock (Unix nanoseconds): what its spool's
/// times are measured against.
fn start_on_its_clock(start_unix_nanos: i64, w: &crate::WorkerInfo) -> i64 {
    start_unix_nanos.saturating_add(w.clock.map_or(0, |(o, _)| o))
}

/// When the workers' dead man's switch paused their load before the run's end, from
/// their spools (each pause on the coordinator's timeline: its clock offset taken out).
fn paused(outcome: &crate::RunRecord, read: &[(PathBuf, Spool)]) -> Option<LoadPaused> {
    let end_s = outcome.plan.duration.as_secs_f64();
    let mut workers: Vec<WorkerPause> = read
        .iter()
        .filter_map(|(_, s)| {
            let at = s.header.load_paused_unix_nanos?;
            let w = outcome.workers.get(s.header.worker_index as usize)?;
            let its_start = start_on_its_clock(outcome.start_unix_nanos, w);
            let at_s = at.saturating_sub(its_start) as f64 / 1e9;
            (at_s < end_s).then(|| WorkerPause {
                worker: w.name.clone(),
                index: w.index,
                at_s: at_s.max(0.0),
            })
        })
        .collect();
    workers.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
    let from_s = workers.first()?.at_s;
    Some(LoadPaused {
        from_s,
        to_s: end_s,
        workers,
    })
}

/// Workers whose final totals are nowhere: not in the checkpoint, not in a spool.
fn missing(
    outcome: &crate::RunRecord,
    last: Option<u64>,
    read: &[(PathBuf, Spool)],
) -> Vec<MissingSpool> {
    outcome
        .workers
        .iter()
        .filter(|w| w.executed.is_none())
        .filter(|w| !read.iter().any(|(_, s)| s.header.worker_index == w.index))
        .map(|w| {
            let agg = outcome.merge.workers.get(&w.index);
            let mine = agg.and_then(|a| a.last_interval);
            let snapshots_missing = match (last, mine) {
                (Some(l), Some(m)) => l.saturating_sub(m),
                (Some(l), None) => l + 1,
                _ => 0,
            };
            let file = fleetload_common::spool::path(Path::new(""), &outcome.run_id, w.index);
            MissingSpool {
                worker: w.name.clone(),
                index: w.index,
                last_interval: mine,
                snapshots_missing,
                detail: format!(
                    "worker {} (slot {}): no spool given and no final totals in the checkpoint; about {snapshots_missing} snapshot{} after interval {} are missing: pass its {} ({})",
                    w.name,
                    w.index,
                    if snapshots_missing == 1 { "" } else { "s" },
                    mine.map_or_else(|| "none".to_string(), |m| m.to_string()),
                    file.display(),
                    w.spool.as_deref().map_or_else(|| "written where it ran, in its --spool-dir".to_string(), |p| format!("it said {p}")),
                ),
            }
        })
        .collect()
}
