//! Liveness with real processes: a coordinator that dies, a worker that goes silent.

mod common;

use common::*;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn signal(child: &Child, sig: &str) {
    assert!(Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success());
}

fn stderr_of(child: Child) -> String {
    String::from_utf8_lossy(&child.wait_with_output().unwrap().stderr).into_owned()
}

#[test]
fn workers_stop_their_load_and_keep_their_data_when_the_coordinator_dies() {
    let site = Site::new(2000, &["--workers", "2"]);
    let (dir, addr) = (&site.dir, site.addr.clone());
    let mut coordinator = site.coordinator(
        // No rejoin window: the workers give up at the lease (with one, they pause and
        // redial until the planned end; see tests/partitions.rs).
        &[
            "--rate",
            "200",
            "--duration",
            "60s",
            "--lease",
            "1s",
            "--rejoin",
            "off",
        ],
        &[],
    );
    let endpoint = format!("http://{addr}");
    let mut workers = spooling_workers(&endpoint, 2, dir.path());
    site.wait_elapsed(2.0);
    signal(&coordinator, "-KILL");
    let _ = coordinator.wait();
    let killed = Instant::now();
    for w in &mut workers {
        let status = wait_within(w, Duration::from_secs(10))
            .expect("a worker kept running without its coordinator");
        assert!(
            !status.success(),
            "a worker that lost its coordinator exits non-zero"
        );
    }
    assert!(
        killed.elapsed() < Duration::from_secs(5),
        "stopped within about a lease: {:?}",
        killed.elapsed()
    );
    for w in workers {
        let err = stderr_of(w);
        assert!(
            err.contains("dead man's switch") && err.contains("fleetload-unsent-"),
            "{err}"
        );
    }
    // The unsent snapshots are on disk: at least the interval in progress, with operations.
    let spools: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("fleetload-unsent-")
        })
        .collect();
    assert_eq!(spools.len(), 2);
    let mut ok = 0;
    for f in spools {
        let text = std::fs::read_to_string(f.path()).unwrap();
        let mut lines = text.lines();
        // A header naming the run and the slot, then one line per snapshot.
        let header: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
        assert_eq!(
            header["fleetload_spool"],
            fleetload_common::spool::SPOOL_FORMAT,
            "{header}"
        );
        assert!(header["run_id"].as_str().unwrap().starts_with("run-"));
        assert_eq!(header["plan_hash"].as_str().unwrap().len(), 16);
        for line in lines {
            let snap: serde_json::Value = serde_json::from_str(line).unwrap();
            if snap.get("snapshot").is_some() {
                ok += u(&snap["ok"]);
            }
        }
    }
    assert!(
        ok > 0,
        "the operations of the unacknowledged intervals are kept"
    );
}

#[test]
fn a_worker_that_goes_silent_is_marked_lost_when_its_lease_expires() {
    let site = Site::new(2000, &["--workers", "2"]);
    let (dir, addr) = (&site.dir, site.addr.clone());
    let report = site.report_dir();
    let coordinator =
        site.coordinator(&["--rate", "100", "--duration", "6s", "--lease", "1s"], &[]);
    let endpoint = format!("http://{addr}");
    let workers: Vec<Child> = (0..2)
        .map(|i| {
            spawn(
                &[
                    "worker",
                    "--coordinator",
                    &endpoint,
                    "--name",
                    &format!("w{i}"),
                ],
                dir.path(),
            )
        })
        .collect();
    site.wait_elapsed(1.5);
    // Frozen, not dead: its TCP connection stays open, only the lease can tell.
    signal(&workers[1], "-STOP");
    let out = coordinator.wait_with_output().unwrap();
    signal(&workers[1], "-KILL");
    for w in workers {
        let _ = w.wait_with_output();
    }
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = read_report(&report);
    assert_eq!(r["status"], "failed");
    let states: Vec<&str> = r["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["state"].as_str().unwrap())
        .collect();
    assert!(
        states.contains(&"lost") && states.contains(&"done"),
        "{states:?}"
    );
    assert!(
        r["failures"].to_string().contains("lease"),
        "{}",
        r["failures"]
    );
    // The silent worker's data up to its last snapshot stays in the report.
    let lost = r["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["state"] == "lost")
        .unwrap();
    assert!(u(&lost["snapshots"]) >= 1);
}

#[test]
fn a_worker_cut_off_for_less_than_the_lease_rejoins_and_nothing_is_lost_or_doubled() {
    let site = Site::new(2000, &["--workers", "2"]);
    let (dir, addr) = (&site.dir, site.addr.clone());
    let report = site.report_dir();
    let coordinator =
        site.coordinator(&["--rate", "200", "--duration", "8s", "--lease", "4s"], &[]);
    let proxy = Proxy::start(addr.clone());
    let direct = spawn(
        &[
            "worker",
            "--coordinator",
            &format!("http://{addr}"),
            "--name",
            "direct",
        ],
        dir.path(),
    );
    let behind = spawn(
        &[
            "worker",
            "--coordinator",
            &format!("http://{}", proxy.addr),
            "--name",
            "behind-proxy",
        ],
        dir.path(),
    );
    site.wait_elapsed(2.0);
    proxy.cut();
    std::thread::sleep(Duration::from_millis(1500));
    proxy.heal();
    let out = coordinator.wait_with_output().unwrap();
    let (d, b) = (
        direct.wait_with_output().unwrap(),
        behind.wait_with_output().unwrap(),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        d.status.success() && b.status.success(),
        "{}",
        String::from_utf8_lossy(&b.stderr)
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("stream broke") && log.contains("behind-proxy"),
        "the cut really cut the worker off:\n{log}"
    );
    let r = read_report(&report);
    assert_eq!(r["status"], "passed", "{:#}", r["failures"]);
    assert_eq!(
        r["verification"]["merged_equals_executed"], true,
        "every snapshot arrived exactly once"
    );
    let executed: u64 = r["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| u(&w["executed"]["point_select"]["ok"]))
        .sum();
    assert!(
        (executed as f64 - 1600.0).abs() <= 32.0,
        "the cut worker kept its share running: {executed}"
    );
    assert!(r["workers"]
        .as_array()
        .unwrap()
        .iter()
        .all(|w| w["state"] == "done"));
}

#[test]
fn a_database_outage_shows_as_a_window_and_the_run_recovers() {
    let direct = fresh_pg("outage");
    fleetload(&[
        "prepare",
        "--target",
        &direct,
        "--password-env",
        PASSWORD_ENV,
        "--rows",
        "5000",
    ])
    .assert_ok();
    let proxy = Proxy::start("127.0.0.1:5432".into());
    let through_proxy = direct.replace("127.0.0.1:5432", &proxy.addr);
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report");
    let mut run = Command::new(BIN)
        .args([
            "run",
            "--target",
            &through_proxy,
            "--password-env",
            PASSWORD_ENV,
            "--rows",
            "5000",
            "--rate",
            "200",
            "--sessions",
            "4",
            "--duration",
            "9s",
            "--workers",
            "2",
            "--op-timeout",
            "1s",
            "--connect-timeout",
            "1s",
            "--report-dir",
            report.to_str().unwrap(),
        ])
        .env(PASSWORD_ENV, password())
        .env("FLEETLOAD_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(3500));
    proxy.cut();
    std::thread::sleep(Duration::from_millis(1500));
    proxy.heal();
    assert!(
        wait_within(&mut run, Duration::from_secs(60)).is_some(),
        "the run ends by itself"
    );
    let out = run.wait_with_output().unwrap();
    let r = read_report(&report);
    assert_eq!(r["verification"]["merged_equals_executed"], true);
    // The outage is one window of connection errors, shorter than 5 s.
    let outages = r["outages"].as_array().unwrap();
    assert_eq!(
        outages.len(),
        1,
        "{outages:#?}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let o = &outages[0];
    let classes = o["errors"].as_object().unwrap();
    assert!(
        classes
            .keys()
            .all(|c| ["connect", "connection_lost", "timeout"].contains(&c.as_str())),
        "{classes:?}"
    );
    assert!(
        f(&o["duration_s"]) <= 5.0 && f(&o["min_ok_per_s"]) < 150.0,
        "{o:#}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("OUTAGE"));
    // The coordinator's own connection for the database's counters was cut too: it
    // reconnects, and the time without samples is a gap, never zeros.
    let c = &r["database_counters"];
    let gaps = c["gaps"].as_array().expect("a gap in the counters");
    assert_eq!(gaps.len(), 1, "{gaps:#?}");
    let (from, to) = (f(&gaps[0]["from_s"]), f(&gaps[0]["to_s"]));
    assert!(
        (3.0..6.5).contains(&from) && to > from && to < 9.5,
        "{gaps:#?}"
    );
    let samples = c["samples"].as_array().unwrap();
    assert!(
        samples.iter().any(|s| f(&s["t_s"]) > to),
        "sampled again after the gap"
    );
    assert!(
        samples.iter().all(|s| u(&s["values"]["xact_commit"]) > 0),
        "no zeros stand in for missing samples"
    );
    assert!(u(&c["deltas"]["xact_commit"]) > 0, "{c:#}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("database counters unavailable from"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // After it the cluster is back at the planned rate.
    let last = r["intervals"].as_array().unwrap().last().unwrap();
    let ok = u(&last["operations"]["point_select"]["count"]) as f64;
    assert!(
        (ok - 200.0).abs() <= 12.0,
        "recovered to the planned rate: {ok} in the last interval"
    );
}

#[test]
fn when_a_worker_dies_the_survivor_takes_over_its_keys_and_rate() {
    let site = Site::new(2000, &["--workers", "2"]);
    let (dir, addr) = (&site.dir, site.addr.clone());
    let report = site.report_dir();
    let coordinator =
        site.coordinator(&["--rate", "200", "--duration", "8s", "--lease", "1s"], &[]);
    let endpoint = format!("http://{addr}");
    let workers: Vec<Child> = (0..2)
        .map(|i| {
            spawn(
                &[
                    "worker",
                    "--coordinator",
                    &endpoint,
                    "--name",
                    &format!("w{i}"),
                ],
                dir.path(),
            )
        })
        .collect();
    site.wait_elapsed(1.5);
    signal(&workers[1], "-KILL");
    let out = coordinator.wait_with_output().unwrap();
    for w in workers {
        let _ = w.wait_with_output();
    }
    let r = read_report(&report);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a lost worker fails the run, even when rebalanced"
    );
    let events = r["membership"].to_string();
    assert!(
        events.contains("left the run")
            && events.contains("rebalanced")
            && events.contains("rate 200.0/s"),
        "{events}"
    );
    // Within two intervals of the loss the cluster is back at the planned rate.
    let intervals = r["intervals"].as_array().unwrap();
    for i in &intervals[intervals.len() - 3..] {
        let ok = u(&i["operations"]["point_select"]["count"]) as f64;
        assert!(
            (ok - 200.0).abs() <= 15.0,
            "interval {}: {ok} ok, planned 200",
            i["index"]
        );
    }
    let survivor = r["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["state"] == "done")
        .unwrap();
    assert_eq!(survivor["rate"], 200.0);
    // The killed worker never sent its totals: the check says so instead of "exact",
    // and names what is missing and where it would be.
    let v = &r["verification"];
    assert_eq!(
        v["merged_equals_executed"],
        serde_json::Value::Null,
        "{v:#}"
    );
    let lost = &v["missing"][0];
    assert_ne!(lost["worker"], survivor["name"], "{v:#}");
    assert!(u(&lost["snapshots_merged"]) >= 1, "{v:#}");
    assert!(lost["lost_at_s"].as_f64().is_some(), "{v:#}");
    let detail = lost["detail"].as_str().unwrap();
    assert!(
        detail.contains("final totals never arrived")
            && detail.contains("fleetload report recover"),
        "{detail}"
    );
    // A SIGKILLed worker wrote no spool: the text must not promise one.
    assert!(
        detail.contains("if the worker stopped itself")
            && detail.contains("if its process was killed or its host lost, there is no spool"),
        "{detail}"
    );
    assert!(
        r["failures"]
            .to_string()
            .contains("final totals never arrived"),
        "{}",
        r["failures"]
    );
}

#[test]
fn with_on_worker_loss_abort_the_run_stops() {
    let site = Site::new(2000, &["--workers", "2"]);
    let (dir, addr) = (&site.dir, site.addr.clone());
    let report = site.report_dir();
    let coordinator = site.coordinator(
        &[
            "--rate",
            "100",
            "--duration",
            "30s",
            "--lease",
            "1s",
            "--on-worker-loss",
            "abort",
        ],
        &[],
    );
    let endpoint = format!("http://{addr}");
    let workers: Vec<Child> = (0..2)
        .map(|i| {
            spawn(
                &[
                    "worker",
                    "--coordinator",
                    &endpoint,
                    "--name",
                    &format!("w{i}"),
                ],
                dir.path(),
            )
        })
        .collect();
    site.wait_elapsed(1.5);
    let killed = Instant::now();
    signal(&workers[1], "-KILL");
    let out = coordinator.wait_with_output().unwrap();
    assert!(
        killed.elapsed() < Duration::from_secs(10),
        "stopped long before the planned 30 s"
    );
    for w in workers {
        let _ = w.wait_with_output();
    }
    assert_eq!(out.status.code(), Some(1));
    let r = read_report(&report);
    assert!(
        r["failures"].to_string().contains("on_worker_loss = abort"),
        "{}",
        r["failures"]
    );
    // The killed worker's totals never arrived: the check cannot say "exact".
    assert_eq!(
        r["verification"]["merged_equals_executed"],
        serde_json::Value::Null,
        "{:#}",
        r["verification"]
    );
    let missing = &r["verification"]["missing"];
    assert_eq!(missing.as_array().unwrap().len(), 1, "{missing:#}");
    assert!(
        r["verification"]["mismatches"].is_null(),
        "the survivor's data is complete"
    );
}

#[test]
fn an_interrupted_worker_flushes_its_last_snapshot_before_it_exits() {
    let site = Site::new(2000, &["--workers", "2"]);
    let (dir, addr) = (&site.dir, site.addr.clone());
    let report = site.report_dir();
    let coordinator = site.coordinator(&["--rate", "200", "--duration", "6s"], &[]);
    let endpoint = format!("http://{addr}");
    let mut workers: Vec<Child> = (0..2)
        .map(|i| {
            spawn(
                &[
                    "worker",
                    "--coordinator",
                    &endpoint,
                    "--name",
                    &format!("w{i}"),
                ],
                dir.path(),
            )
        })
        .collect();
    site.wait_elapsed(1.5);
    signal(&workers[1], "-INT");
    let status = wait_within(&mut workers[1], Duration::from_secs(5))
        .expect("an interrupted worker exits promptly");
    assert!(status.success(), "a graceful stop is not an error");
    let _ = coordinator.wait_with_output().unwrap();
    for w in workers {
        let _ = w.wait_with_output();
    }
    let r = read_report(&report);
    assert_eq!(
        r["verification"]["merged_equals_executed"], true,
        "its last snapshot arrived before it left"
    );
    let ok = |name: &str| {
        let w = r["workers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["name"] == name)
            .unwrap();
        u(&w["executed"]["point_select"]["ok"])
    };
    let (stopped, kept) = (ok("w1"), ok("w0"));
    assert!(
        stopped > 50 && stopped < kept,
        "the interrupted worker ran part of the run: {stopped} vs {kept}"
    );
}
