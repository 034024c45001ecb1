//! A checkpoint is written whole or not at all: a process killed with SIGKILL while it
//! rewrites report.partial.json leaves the previous checkpoint readable.
//!
//! The test runs itself again as the writer (a child process rewriting a checkpoint of
//! tens of megabytes in a loop, the way `Checkpoint::write` does, with the encoding
//! done once so that nearly all its time is spent writing) and kills it at varied
//! moments.

use fleetload_report::checkpoint::{Checkpoint, Stage, CHECKPOINT_FORMAT};
use fleetload_report::merge::{Merge, MergeImage};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const WRITER: &str = "FLEETLOAD_TEST_CHECKPOINT_WRITER";
const PAD: usize = 8 << 20;
const NAME: &str = "a_checkpoint_killed_while_being_written_leaves_the_previous_one_readable";

fn checkpoint(round: u64) -> Checkpoint {
    Checkpoint {
        fleetload_checkpoint: CHECKPOINT_FORMAT,
        run_id: "run-20261205T000000-0001".into(),
        plan_hash: "0123456789abcdef".into(),
        stage: Stage::Running,
        written_at: "2026-12-05T00:00:00.000Z".into(),
        ran_for_s: round as f64,
        ok_so_far: Default::default(),
        plan: Default::default(),
        start_unix_nanos: 0,
        interrupted: false,
        failures: vec![
            format!("round {round} {}", "x".repeat(PAD)),
            format!("end of round {round}"),
        ],
        membership: Vec::new(),
        changes: Vec::new(),
        planned: None,
        capacity: None,
        workers: Vec::new(),
        database_counters: None,
        merge: MergeImage::of(&Merge::new(Vec::new(), 0)),
    }
}

/// The child: rewrite the checkpoint until killed (bounded: 30 s, 100 000 rounds).
fn write_forever(dir: &str) {
    let dir = std::path::Path::new(dir);
    // The first write goes through `Checkpoint::write` itself; then two encodings are
    // rewritten in turn, the same way.
    checkpoint(0).write(dir).expect("write");
    let bodies = [0, 1].map(|r| serde_json::to_vec(&checkpoint(r)).expect("encode"));
    let path = dir.join(fleetload_report::checkpoint::FILE);
    let started = Instant::now();
    for round in 0..100_000usize {
        if started.elapsed() > Duration::from_secs(30) {
            return;
        }
        fleetload_common::spool::write_atomically(&path, &bodies[round % 2]).expect("write");
    }
}

#[test]
fn a_checkpoint_killed_while_being_written_leaves_the_previous_one_readable() {
    if let Ok(dir) = std::env::var(WRITER) {
        return write_forever(&dir);
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.partial.json");
    let exe = std::env::current_exe().unwrap();
    let mut readable = 0;
    let mut last_round = -1.0;
    for kill in 0..12u64 {
        let mut child = Command::new(&exe)
            .args([NAME, "--exact", "--test-threads=1"])
            .env(WRITER, dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Varied moments: some land while a file is being written.
        std::thread::sleep(Duration::from_millis(500 + kill * 13));
        child.kill().unwrap();
        child.wait().unwrap();
        if file.exists() {
            let c = Checkpoint::read(dir.path())
                .unwrap_or_else(|e| panic!("after kill {kill}, the checkpoint is damaged: {e}"));
            assert_eq!(c.failures.len(), 2);
            assert_eq!(
                c.failures[0].len(),
                PAD + format!("round {} ", c.ran_for_s).len()
            );
            assert_eq!(c.failures[1], format!("end of round {}", c.ran_for_s));
            readable += 1;
            last_round = c.ran_for_s;
        }
    }
    assert!(
        readable == 12,
        "the writer wrote: {readable} readable, last round {last_round}"
    );
    // What the killed writers left half-written is cleared by the next checkpoint.
    checkpoint(99).write(dir.path()).unwrap();
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
