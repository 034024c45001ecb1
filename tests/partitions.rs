//! Partitions and stalls with real processes: workers cut off from their coordinator
//! by a userspace proxy for longer than the lease, and a worker frozen with SIGSTOP.
//! The database is the judge: every operation is one INSERT, so the rows in the table
//! are the operations the database served, and the report must count each once.

mod common;

use common::*;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Child;
use std::time::Duration;

/// One INSERT per operation, with the server's time of each row.
const HITS: &str = r#"
name = "hits"
rows = 3000

[setup]
sql = [
  "DROP TABLE IF EXISTS hits",
  { mysql = "CREATE TABLE hits(id BIGINT AUTO_INCREMENT PRIMARY KEY, k INTEGER NOT NULL, at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB", postgres = "CREATE TABLE hits(id BIGSERIAL PRIMARY KEY, k INTEGER NOT NULL, at TIMESTAMP NOT NULL DEFAULT clock_timestamp())", sqlite = "CREATE TABLE hits(id INTEGER PRIMARY KEY, k INTEGER NOT NULL, at TEXT)" },
]

[[operation]]
name = "hit"
sql = "INSERT INTO hits(k) VALUES (:k)"
params.k = { gen = "shard" }
"#;

/// A MariaDB database with the `hits` table, a coordinator and its workers' paths.
struct Fleet {
    dir: tempfile::TempDir,
    target: String,
    scenario: PathBuf,
    addr: String,
}

impl Fleet {
    fn new(name: &str) -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let target = fresh_mysql(name);
        let scenario = dir.path().join("hits.toml");
        std::fs::write(&scenario, HITS).unwrap();
        fleetload(&[
            "prepare",
            "--target",
            &target,
            "--password-env",
            PASSWORD_ENV,
            "--scenario",
            scenario.to_str().unwrap(),
        ])
        .assert_ok();
        Fleet {
            dir,
            target,
            scenario,
            addr: free_port(),
        }
    }

    fn report_dir(&self) -> PathBuf {
        self.dir.path().join("report")
    }

    fn coordinator(&self, workers: usize, flags: &[&str]) -> Child {
        let report = self.report_dir();
        let n = workers.to_string();
        let mut args = vec![
            "coordinator",
            "--listen",
            &self.addr,
            "--target",
            &self.target,
            "--password-env",
            PASSWORD_ENV,
            "--scenario",
            self.scenario.to_str().unwrap(),
            "--workers",
            &n,
            "--sessions",
            "8",
            "--report-dir",
            report.to_str().unwrap(),
        ];
        args.extend_from_slice(flags);
        let child = spawn(&args, self.dir.path());
        wait_listening(&self.addr);
        child
    }

    /// A worker named `name` dialing `via` (the coordinator or a proxy before it).
    fn worker(&self, name: &str, via: &str) -> Child {
        spawn(
            &[
                "worker",
                "--coordinator",
                &format!("http://{via}"),
                "--name",
                name,
                "--spool-dir",
                self.dir.path().to_str().unwrap(),
            ],
            self.dir.path(),
        )
    }

    fn wait_elapsed(&self, secs: f64) {
        wait_elapsed(&self.addr, secs);
    }

    /// Rows the database holds: the operations it served.
    fn served(&self) -> u64 {
        scalar(&self.target, "SELECT COUNT(*) FROM hits") as u64
    }

    /// The most rows the database took in any second (a sliding window over the
    /// rows' own timestamps, so a burst is not split by a window's edge).
    fn busiest_second(&self) -> u64 {
        let mut at: Vec<i64> = id_text_rows(
            &self.target,
            "SELECT CAST(UNIX_TIMESTAMP(at) * 1000000 AS SIGNED), '' FROM hits",
        )
        .into_iter()
        .map(|(us, _)| us)
        .collect();
        at.sort_unstable();
        let mut busiest = 0;
        let mut from = 0;
        for (to, t) in at.iter().enumerate() {
            while at[from] <= t - 1_000_000 {
                from += 1;
            }
            busiest = busiest.max(to + 1 - from);
        }
        busiest as u64
    }
}

fn merged(r: &Value) -> u64 {
    u(&r["operations"]["hit"]["count"])
}

fn executed(r: &Value) -> u64 {
    r["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| u(&w["executed"]["hit"]["ok"]))
        .sum()
}

fn finish(coordinator: Child, workers: Vec<Child>) -> (Option<i32>, String) {
    let (code, log) = output(coordinator);
    for w in workers {
        let _ = output(w);
    }
    (code, log)
}

/// Workers behind a proxy cut for 4 s, twice the lease: lost, then back in their slots.
fn partition(cut_all: bool) {
    let fleet = Fleet::new(if cut_all { "part_all" } else { "part_one" });
    let coordinator = fleet.coordinator(
        3,
        &[
            "--rate",
            "300",
            "--duration",
            "14s",
            "--lease",
            "2s",
            "--checkpoint",
            "1s",
        ],
    );
    let proxy = Proxy::start(fleet.addr.clone());
    let workers: Vec<Child> = (0..3)
        .map(|i| {
            let via = if cut_all || i == 2 {
                &proxy.addr
            } else {
                &fleet.addr
            };
            fleet.worker(&format!("w{i}"), via)
        })
        .collect();
    fleet.wait_elapsed(3.0);
    proxy.cut();
    std::thread::sleep(Duration::from_secs(4));
    proxy.heal();
    let (code, log) = finish(coordinator, workers);
    let r = read_report(&fleet.report_dir());
    assert_eq!(code, Some(0), "{log}\n{:#}", r["failures"]);
    assert_eq!(r["status"], "passed", "{:#}", r["failures"]);
    // Every worker behind the proxy was lost and came back.
    let cut = if cut_all { 3 } else { 1 };
    let gaps = r["gaps"].as_array().unwrap();
    assert_eq!(gaps.len(), cut, "{gaps:#?}");
    for g in gaps {
        assert!(g["rejoined_at_s"].as_f64().unwrap() > g["lost_at_s"].as_f64().unwrap());
    }
    assert_eq!(
        r["membership"]
            .to_string()
            .matches("rejoined (lost at")
            .count(),
        cut,
        "{:#}",
        r["membership"]
    );
    // Exactly what the database served, each operation once.
    assert_eq!(
        r["verification"]["merged_equals_executed"], true,
        "{:#}",
        r["verification"]
    );
    let served = fleet.served();
    eprintln!(
        "partition of {cut} worker(s) for 4 s (lease 2 s): the database served {served}, the report merged {}, late snapshots {}",
        merged(&r),
        r["intervals"].as_array().unwrap().iter().map(|i| u(&i["late_snapshots"])).sum::<u64>()
    );
    assert_eq!(merged(&r), served, "the report against the database's rows");
    assert_eq!(executed(&r), served);
    if !cut_all {
        // The survivors took the lost worker's rate meanwhile: the cluster kept on.
        assert!(served as f64 > 300.0 * 14.0 * 0.9, "{served}");
    }
}

#[test]
fn one_worker_cut_off_longer_than_the_lease_rejoins_and_every_operation_counts_once() {
    partition(false);
}

#[test]
fn every_worker_cut_off_longer_than_the_lease_rejoins_and_every_operation_counts_once() {
    partition(true);
}

#[test]
fn a_run_that_ends_during_a_partition_is_completed_exactly_by_report_recover() {
    let fleet = Fleet::new("part_end");
    let coordinator = fleet.coordinator(2, &["--rate", "200", "--duration", "6s", "--lease", "2s"]);
    let proxy = Proxy::start(fleet.addr.clone());
    let workers: Vec<Child> = (0..2)
        .map(|i| fleet.worker(&format!("w{i}"), &proxy.addr))
        .collect();
    fleet.wait_elapsed(3.0);
    // Never healed: the run ends while the workers are cut off.
    proxy.cut();
    let (code, log) = finish(coordinator, workers);
    assert_eq!(code, Some(1), "{log}");
    let report = fleet.report_dir();
    let r = read_report(&report);
    eprintln!(
        "run ended during the partition: report.json merged {} of the {} the database served",
        merged(&r),
        fleet.served()
    );
    assert_eq!(r["verification"]["merged_equals_executed"], Value::Null);
    assert_eq!(r["verification"]["missing"].as_array().unwrap().len(), 2);
    assert!(
        merged(&r) < fleet.served(),
        "the cut-off part is not in report.json yet"
    );
    let spools: Vec<String> = std::fs::read_dir(fleet.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path().display().to_string())
        .filter(|p| p.contains("fleetload-unsent-"))
        .collect();
    assert_eq!(spools.len(), 2, "{spools:?}");
    let mut args = vec!["report", "recover", report.to_str().unwrap()];
    args.extend(spools.iter().map(String::as_str));
    fleetload(&args).assert_ok();
    let r = read_report(&report);
    assert_eq!(r["status"], "recovered");
    assert_eq!(r["recovery"]["checkpoint_stage"], "final");
    assert_eq!(
        r["verification"]["merged_equals_executed"], true,
        "{:#}",
        r["verification"]
    );
    let served = fleet.served();
    assert_eq!(merged(&r), served);
    assert_eq!(executed(&r), served);
}

/// Freeze worker w1 for 3 s at 3 s, with the lease longer than that.
fn freeze(catch_up: &str) -> (Fleet, Value) {
    let fleet = Fleet::new(&format!("freeze_{catch_up}"));
    let coordinator = fleet.coordinator(
        2,
        &[
            "--rate",
            "200",
            "--duration",
            "10s",
            "--lease",
            "6s",
            "--catch-up",
            catch_up,
        ],
    );
    let workers: Vec<Child> = (0..2)
        .map(|i| fleet.worker(&format!("w{i}"), &fleet.addr))
        .collect();
    fleet.wait_elapsed(3.0);
    let pid = workers[1].id().to_string();
    let signal = |s: &str| {
        assert!(std::process::Command::new("kill")
            .args([s, &pid])
            .status()
            .unwrap()
            .success());
    };
    signal("-STOP");
    std::thread::sleep(Duration::from_secs(3));
    signal("-CONT");
    let (code, log) = finish(coordinator, workers);
    assert_eq!(code, Some(0), "{log}");
    let r = read_report(&fleet.report_dir());
    assert_eq!(merged(&r), fleet.served());
    let stalls = r["stalls"].as_array().unwrap();
    let frozen = stalls
        .iter()
        .find(|s| s["worker"] == "w1" && f(&s["duration_s"]) > 2.5)
        .unwrap_or_else(|| panic!("the freeze is not in the report: {stalls:#?}"));
    eprintln!("catch_up = {catch_up}: the report's stall {frozen}");
    assert!(f(&frozen["duration_s"]) < 4.0, "{frozen}");
    assert!((2.5..4.5).contains(&f(&frozen["at_s"])), "{frozen}");
    assert!(
        std::fs::read_to_string(fleet.report_dir().join("report.txt"))
            .unwrap()
            .contains("w1 stalled"),
    );
    (fleet, r)
}

#[test]
fn a_frozen_worker_reports_its_stall_and_catches_up_at_twice_its_rate() {
    let (fleet, _) = freeze("pace");
    // w1's share is 100/s: paced, the database sees at most 2 × 100 + w0's 100 in any
    // second (a tenth more for the scheduler's jitter).
    let busiest = fleet.busiest_second();
    eprintln!("catch_up = pace: busiest second {busiest} rows (fleet rate 200/s)");
    assert!(busiest <= 330, "{busiest} rows in one second");
}

#[test]
fn with_catch_up_burst_a_frozen_worker_fires_its_backlog_at_once() {
    let (fleet, _) = freeze("burst");
    let busiest = fleet.busiest_second();
    eprintln!("catch_up = burst: busiest second {busiest} rows (fleet rate 200/s)");
    // The 300 missed arrivals at once, on top of the fleet's 200.
    assert!(
        busiest >= 420,
        "{busiest} rows in one second: the 3 s backlog in one burst"
    );
}

#[test]
fn a_database_stall_is_not_a_client_stall_and_its_queue_goes_out_at_once() {
    let fleet = Fleet::new("db_stall");
    let coordinator = fleet.coordinator(2, &["--rate", "200", "--duration", "8s", "--lease", "2s"]);
    let workers: Vec<Child> = (0..2)
        .map(|i| fleet.worker(&format!("w{i}"), &fleet.addr))
        .collect();
    fleet.wait_elapsed(3.0);
    // Every session blocks on the table for 2 s: the database stalls, the clients do not.
    hold_lock(
        &fleet.target,
        "LOCK TABLES hits WRITE",
        "UNLOCK TABLES",
        Duration::from_secs(2),
    );
    let (code, log) = finish(coordinator, workers);
    assert_eq!(code, Some(0), "{log}");
    let r = read_report(&fleet.report_dir());
    assert_eq!(merged(&r), fleet.served());
    assert!(
        r["stalls"].as_array().is_none_or(|s| s.is_empty()),
        "a database stall is not the client's: {:#}",
        r["stalls"]
    );
    // The operations queued behind the lock went out as soon as sessions were free.
    let busiest = fleet.busiest_second();
    eprintln!("database locked 2 s: busiest second {busiest} rows (fleet rate 200/s)");
    assert!(busiest >= 500, "{busiest} rows in one second");
    let p99 = f(&r["operations"]["hit"]["response_time"]["p99_ms"]);
    assert!(
        p99 > 1000.0,
        "the wait counts from the intended start: p99 {p99} ms"
    );
}
