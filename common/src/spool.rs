//! A worker's spool file: what it measured and could not hand to its coordinator (the
//! coordinator died, or the worker was cut off for longer than its rejoin window), so
//! that `fleetload report recover` can merge it into the run's report, exactly.
//!
//! JSON lines, so a person can look inside with `jq`: first a header naming the run,
//! the worker's slot and the plan's hash (a spool never merges into another run's
//! report), then one line per snapshot and, when the worker's load had ended, a last
//! line with its final totals (the same `Done` it would have sent). Snapshots and totals
//! are the wire's own protobuf bytes in base64: every field survives, and reading them
//! back runs the same checks as receiving them.

use crate::error::WireError;
use crate::wire::{Done, Snapshot};
use base64::Engine;
use prost::Message;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The spool format; bumped on any incompatible change.
pub const SPOOL_FORMAT: u32 = 2;

/// Who wrote the spool, for which run, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpoolHeader {
    pub fleetload_spool: u32,
    pub run_id: String,
    pub worker_index: u32,
    /// The worker's name.
    pub worker: String,
    pub plan_hash: String,
    /// Why the worker gave up on its coordinator.
    pub reason: String,
    /// When its dead man's switch paused or stopped the load (the worker's wall clock,
    /// Unix nanoseconds), if the load had not ended by itself: from then on nothing was
    /// measured, and a recovered report marks that time as a gap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_paused_unix_nanos: Option<i64>,
}

/// A spool read back.
#[derive(Debug, Clone)]
pub struct Spool {
    pub header: SpoolHeader,
    pub snapshots: Vec<Snapshot>,
    /// The worker's final totals, when its load had ended before it spooled.
    pub done: Option<Done>,
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("cannot read {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path} line {line}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

#[derive(Serialize, Deserialize)]
struct SnapshotLine {
    sequence: u64,
    interval_index: u64,
    /// Successful operations in it, all operations: for people reading the file.
    ok: u64,
    snapshot: String,
}

#[derive(Serialize, Deserialize)]
struct DoneLine {
    /// Successful operations the worker ran, all operations: for people.
    ok: u64,
    done: String,
}

/// Where worker `worker_index` of `run_id` spools, in `dir`.
pub fn path(dir: &Path, run_id: &str, worker_index: u32) -> PathBuf {
    dir.join(format!("fleetload-unsent-{run_id}-w{worker_index}.jsonl"))
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// Write a spool at `path`, whole or not at all: a temporary file beside it, synced,
/// then renamed over it.
///
/// # Errors
/// The file cannot be written, or a histogram cannot be encoded.
pub fn write(
    path: &Path,
    header: &SpoolHeader,
    snapshots: &[Snapshot],
    done: Option<&Done>,
) -> std::io::Result<()> {
    let mut body = Vec::new();
    serde_json::to_writer(&mut body, header)?;
    body.push(b'\n');
    for s in snapshots {
        let proto = s.to_proto().map_err(std::io::Error::other)?;
        let line = SnapshotLine {
            sequence: s.sequence,
            interval_index: s.interval_index,
            ok: s.operations.iter().map(|(_, o)| o.ok).sum(),
            snapshot: b64().encode(proto.encode_to_vec()),
        };
        serde_json::to_writer(&mut body, &line)?;
        body.push(b'\n');
    }
    if let Some(d) = done {
        let line = DoneLine {
            ok: d.totals.iter().map(|(_, t)| t.ok).sum(),
            done: b64().encode(fleetload_proto::v1::Done::from(d).encode_to_vec()),
        };
        serde_json::to_writer(&mut body, &line)?;
        body.push(b'\n');
    }
    write_atomically(path, &body)
}

/// Replace `path` with `body` so that a reader (or a crash) sees the old file or the
/// new one, never half of one: write a temporary file in the same directory, sync it,
/// rename it over `path`, sync the directory.
///
/// # Errors
/// Any step fails; the old file is then untouched.
pub fn write_atomically(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(body)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            // Not every file system syncs a directory; the rename itself is atomic.
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Read a spool back, checking every snapshot as if it had just arrived on the wire
/// and that each belongs to the header's run and worker.
///
/// # Errors
/// The file cannot be read, is not a fleetload spool (or of another format), or a line
/// is malformed; the error names the file and the line.
pub fn read(path: &Path) -> Result<Spool, SpoolError> {
    let text = std::fs::read_to_string(path).map_err(|error| SpoolError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    let bad = |line: usize, message: String| SpoolError::Invalid {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, first) = lines
        .next()
        .ok_or_else(|| bad(1, "empty file: not a fleetload spool".into()))?;
    let header: SpoolHeader = serde_json::from_str(first).map_err(|e| {
        bad(
            1,
            format!("not a fleetload spool header ({e}); spools are the fleetload-unsent-RUN-wN.jsonl files workers write"),
        )
    })?;
    if header.fleetload_spool != SPOOL_FORMAT {
        return Err(bad(
            1,
            format!(
                "spool format {}; this fleetload reads format {SPOOL_FORMAT}",
                header.fleetload_spool
            ),
        ));
    }
    let mut spool = Spool {
        header,
        snapshots: Vec::new(),
        done: None,
    };
    for (i, line) in lines {
        let n = i + 1;
        if spool.done.is_some() {
            return Err(bad(n, "a line after the final totals".into()));
        }
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| bad(n, format!("not JSON: {e}")))?;
        if value.get("snapshot").is_some() {
            let l: SnapshotLine = serde_json::from_value(value)
                .map_err(|e| bad(n, format!("not a snapshot line: {e}")))?;
            let s = decode::<fleetload_proto::v1::Snapshot>(&l.snapshot)
                .and_then(|p| Snapshot::try_from(p).map_err(|e| e.to_string()))
                .map_err(|e| bad(n, format!("snapshot {}: {e}", l.sequence)))?;
            if s.run_id != spool.header.run_id || s.worker_index != spool.header.worker_index {
                return Err(bad(
                    n,
                    format!(
                        "a snapshot of run {} worker {}, in the spool of run {} worker {}",
                        s.run_id, s.worker_index, spool.header.run_id, spool.header.worker_index
                    ),
                ));
            }
            spool.snapshots.push(s);
        } else if value.get("done").is_some() {
            let l: DoneLine = serde_json::from_value(value)
                .map_err(|e| bad(n, format!("not a totals line: {e}")))?;
            let d = decode::<fleetload_proto::v1::Done>(&l.done)
                .and_then(|p| Done::try_from(p).map_err(|e: WireError| e.to_string()))
                .map_err(|e| bad(n, format!("final totals: {e}")))?;
            if d.run_id != spool.header.run_id || d.worker_index != spool.header.worker_index {
                return Err(bad(n, "final totals of another run or worker".into()));
            }
            spool.done = Some(d);
        } else {
            return Err(bad(n, "neither a snapshot nor the final totals".into()));
        }
    }
    Ok(spool)
}

fn decode<M: Message + Default>(b64_text: &str) -> Result<M, String> {
    let bytes = b64()
        .decode(b64_text)
        .map_err(|e| format!("not base64: {e}"))?;
    M::decode(bytes.as_slice()).map_err(|e| format!("not a protobuf message: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::record;
    use crate::scenario::Operation;
    use crate::stats::{OpStats, OpTotals};
    use std::time::Duration;

    fn snapshot(seq: u64) -> Snapshot {
        let mut s = OpStats::default();
        for us in [120, 480] {
            record(&mut s.response, Duration::from_micros(us));
            record(&mut s.service, Duration::from_micros(us));
        }
        s.ok = 2;
        s.rows = 2;
        Snapshot {
            run_id: "run-1".into(),
            worker_index: 1,
            sequence: seq,
            interval_index: seq,
            operations: vec![(Operation::PointSelect.into(), s)],
            events: vec![crate::events::WorkerEvent::Stall(crate::events::Stall {
                at: Duration::from_secs(seq),
                duration: Duration::from_millis(300),
            })],
        }
    }

    fn header() -> SpoolHeader {
        SpoolHeader {
            fleetload_spool: SPOOL_FORMAT,
            run_id: "run-1".into(),
            worker_index: 1,
            worker: "w1".into(),
            plan_hash: "abc".into(),
            reason: "no coordinator".into(),
            load_paused_unix_nanos: Some(1_700_000_000_000_000_000),
        }
    }

    #[test]
    fn a_spool_reads_back_every_field() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path(), "run-1", 1);
        let done = Done {
            run_id: "run-1".into(),
            worker_index: 1,
            snapshots_sent: 2,
            totals: vec![(
                Operation::PointSelect.into(),
                OpTotals {
                    ok: 4,
                    ..OpTotals::default()
                },
            )],
            inserted: 0,
            insert_id_base: 7,
            insert_id_last: 0,
            first_op_unix_nanos: Some(5),
        };
        write(&p, &header(), &[snapshot(3), snapshot(4)], Some(&done)).unwrap();
        let back = read(&p).unwrap();
        assert_eq!(back.header, header());
        assert_eq!(back.snapshots.len(), 2);
        assert_eq!(back.snapshots[1].sequence, 4);
        assert_eq!(back.snapshots[1].operations[0].1.rows, 2);
        assert_eq!(back.snapshots[1].events, snapshot(4).events);
        assert_eq!(back.done, Some(done));
    }

    #[test]
    fn a_spool_of_another_kind_or_with_a_foreign_line_is_refused_by_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.jsonl");
        std::fs::write(&p, "{\"hello\": 1}\n").unwrap();
        let e = read(&p).unwrap_err().to_string();
        assert!(
            e.contains("line 1") && e.contains("not a fleetload spool"),
            "{e}"
        );
        let mut other = snapshot(1);
        other.worker_index = 2;
        write(&p, &header(), &[snapshot(0), other], None).unwrap();
        let e = read(&p).unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("worker 2"), "{e}");
        let text = std::fs::read_to_string(&p)
            .unwrap()
            .replace("\"snapshot\":\"", "\"snapshot\":\"!!");
        std::fs::write(&p, text).unwrap();
        let e = read(&p).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("base64"), "{e}");
    }
}
