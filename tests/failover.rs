//! A failover measured under load, on real servers: a PostgreSQL primary and its
//! streaming replica (the test's own), a writer endpoint the test moves from one to the
//! other as Aurora's DNS does, and a fixed-rate write load through it.

mod common;

#[path = "common/pg_pair.rs"]
mod pg_pair;

#[path = "common/maria_pair.rs"]
mod maria_pair;

use common::*;
use pg_pair::PgPair;
use std::time::{Duration, Instant};

/// The writer is demoted (read-only) mid-run, the replica promoted and the endpoint
/// moved to it: every writer session's measured downtime is the window the test
/// injected, within a second; the stale writer's refusals are `read_only`; writes resume
/// on the new writer and every one the report counts as done is there, once; the
/// reader endpoint (the replica) keeps serving reads throughout.
#[test]
fn a_writer_failover_is_measured_per_session_and_no_write_is_lost_or_doubled() {
    let pair = PgPair::start();
    let proxy = Proxy::start(format!("127.0.0.1:{}", pair.primary));
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("failover.toml");
    std::fs::write(&scenario, READ_WRITE).unwrap();
    let target = format!("postgres://postgres@{}/postgres", proxy.addr);
    let reader = format!("postgres://postgres@127.0.0.1:{}/postgres", pair.replica);
    let s = scenario.to_str().unwrap();
    fleetload(&["prepare", "--target", &target, "--scenario", s]).assert_ok();
    pair.wait_for_replica();
    let report = dir.path().join("report");
    let mut run = start_run(
        dir.path(),
        &report,
        &[
            "--target",
            &target,
            "--scenario",
            s,
            "--rate",
            "200",
            "--duration",
            "10s",
            "--sessions",
            "4",
            "--workers",
            "2",
            "--connect-timeout",
            "2s",
            "--op-timeout",
            "2s",
            "--reader",
            &reader,
            "--reader-sessions",
            "2",
            "--threshold",
            "downtime.write.max < 10s",
            "--threshold",
            "downtime.p50 < 100ms",
        ],
    );
    // Well into the run: demote the writer, promote the replica, move the endpoint.
    std::thread::sleep(Duration::from_millis(4000));
    let demoted = Instant::now();
    pair.make_primary_read_only();
    std::thread::sleep(Duration::from_millis(1500));
    pair.promote_replica();
    proxy.flip(format!("127.0.0.1:{}", pair.replica));
    let window = demoted.elapsed().as_secs_f64();
    assert!(
        wait_within(&mut run, Duration::from_secs(60)).is_some(),
        "the run ends by itself"
    );
    let out = run.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let r = read_report(&report);
    let a = &r["availability"];
    let windows = a["windows"].as_array().expect("an availability section");
    assert_eq!(
        windows.len(),
        1,
        "one failover, one window, the writer's: the reader kept serving: {a:#}\n{text}"
    );
    let w = &windows[0];
    assert_eq!(w["role"], "write");
    assert_eq!(w["unrecovered"], 0, "every session recovered: {w:#}");
    assert_eq!(
        w["sessions"], 8,
        "all 2 × 4 sessions went through it: {w:#}"
    );
    let max = w["downtime_ms"]["max"].as_f64().unwrap() / 1e3;
    let p50 = w["downtime_ms"]["p50"].as_f64().unwrap() / 1e3;
    // For docs/experiments.md: injected vs measured, with --nocapture.
    eprintln!(
        "failover: injected {window:.2}s, measured p50 {p50:.2}s max {max:.2}s, rate back {}, {} → {}",
        w["rate_back_s"], w["instance_before"], w["instance_after"]
    );
    assert!(
        (max - window).abs() <= 1.0 && (p50 - window).abs() <= 1.0,
        "measured downtime p50 {p50:.2}s max {max:.2}s, injected window {window:.2}s: {w:#}"
    );
    assert!(
        w["failed"]["read_only"].as_u64().unwrap_or(0) > 0,
        "the demoted writer's refusals are read_only: {w:#}"
    );
    assert!(
        w["rate_back_s"].as_f64().is_some_and(|s| s <= 2.0),
        "the rate is back at target within 2 intervals: {w:#}"
    );
    // Every write a worker counted ok is on the new writer, once; none that failed is.
    let count = |port: u16| -> u64 {
        pair.psql(port, "SELECT count(*) FROM fo_events WHERE id > 100")
            .parse()
            .unwrap()
    };
    let executed = r["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["executed"]["write_event"]["ok"].as_u64().unwrap())
        .sum::<u64>();
    assert_eq!(
        count(pair.replica),
        executed,
        "rows on the new writer = writes acknowledged"
    );
    // The old writer took none after its demotion: the writes went on, on the new one.
    assert!(count(pair.replica) > count(pair.primary));
    // Thresholds judge it: the first passes, the second (100 ms) must fail.
    let verdict = |t: &str| {
        r["thresholds"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["threshold"] == t)
            .unwrap_or_else(|| panic!("{t} judged: {:#}", r["thresholds"]))
            .clone()
    };
    let max_verdict = verdict("downtime.write.max < 10s");
    assert_eq!(max_verdict["passed"], true, "{max_verdict:#}");
    assert!((max_verdict["measured"].as_f64().unwrap() / 1e3 - max).abs() < 0.01);
    assert_eq!(verdict("downtime.p50 < 100ms")["passed"], false);
    assert_eq!(r["status"], "failed", "a failed threshold fails the run");
    let html = std::fs::read_to_string(report.join("report.html")).unwrap();
    assert!(
        html.contains("<rect class=\"mark\"") && html.contains("id=availability"),
        "the window is marked on the time charts"
    );
    assert!(
        text.contains("AVAILABILITY (write)"),
        "the summary shows the window:\n{text}"
    );
}

const READS: &str = r#"
name = "reads"
rows = 100

[setup]
sql = ["DROP TABLE IF EXISTS fo_events", "CREATE TABLE fo_events(id BIGINT PRIMARY KEY, at TIMESTAMP)"]

[load]
sql = "INSERT INTO fo_events(id, at) VALUES (:id, now())"
params.id = { gen = "row" }

[[operation]]
name = "read_event"
sql = "SELECT at FROM fo_events WHERE id = :id"
params.id = { gen = "shard" }
"#;

/// fleetload worker sessions connected to `port` (their `application_name`).
fn client_sessions(pair: &PgPair, port: u16) -> u64 {
    pair.psql(
        port,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'fleetload worker'",
    )
    .parse()
    .unwrap()
}

/// With `max_connection_age`, sessions reconnect on their own and so follow an
/// endpoint that moved (a replica added behind a reader endpoint, a writer endpoint
/// moved without a failure): every session is on the new server within the age and its
/// jitter, and nothing failed on the way.
#[test]
fn sessions_follow_a_moved_endpoint_after_max_connection_age() {
    let pair = PgPair::start();
    let proxy = Proxy::start(format!("127.0.0.1:{}", pair.primary));
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("reads.toml");
    std::fs::write(&scenario, READS).unwrap();
    let target = format!("postgres://postgres@{}/postgres", proxy.addr);
    let s = scenario.to_str().unwrap();
    fleetload(&["prepare", "--target", &target, "--scenario", s]).assert_ok();
    // The replica has the rows before the endpoint moves to it.
    pair.wait_for_replica();
    let report = dir.path().join("report");
    let mut run = start_run(
        dir.path(),
        &report,
        &[
            "--target",
            &target,
            "--scenario",
            s,
            "--rate",
            "200",
            "--duration",
            "10s",
            "--sessions",
            "4",
            "--workers",
            "2",
            "--max-connection-age",
            "2s",
        ],
    );
    std::thread::sleep(Duration::from_millis(3000));
    let before = client_sessions(&pair, pair.primary);
    proxy.flip(format!("127.0.0.1:{}", pair.replica));
    // 2 s × at most 1.2, an operation to notice it and a reconnect: looked at until
    // every session moved, for at most 6 s (a loaded machine reconnects slower).
    let moved_by = Instant::now() + Duration::from_secs(6);
    let (on_primary, on_replica) = loop {
        std::thread::sleep(Duration::from_millis(250));
        let now = (
            client_sessions(&pair, pair.primary),
            client_sessions(&pair, pair.replica),
        );
        if now == (0, 8) || Instant::now() >= moved_by {
            break now;
        }
    };
    assert!(
        wait_within(&mut run, Duration::from_secs(60)).is_some(),
        "the run ends by itself"
    );
    let _ = run.wait_with_output().unwrap();
    assert_eq!(before, 8, "2 workers × 4 sessions on the primary first");
    assert_eq!(
        (on_primary, on_replica),
        (0, 8),
        "every session moved to where the endpoint points now"
    );
    let r = read_report(&report);
    assert_eq!(r["status"], "passed", "{:#}", r["failures"]);
    assert_eq!(
        r["availability"]["windows"].as_array().map_or(0, Vec::len),
        0,
        "a planned reconnect is no outage: {:#}",
        r["availability"]
    );
}

const READ_WRITE: &str = r#"
name = "read_write"
rows = 100

[setup]
sql = ["DROP TABLE IF EXISTS fo_events", "CREATE TABLE fo_events(id BIGINT PRIMARY KEY, at TIMESTAMP)"]

[load]
sql = "INSERT INTO fo_events(id, at) VALUES (:id, now())"
params.id = { gen = "row" }

[[operation]]
name = "write_event"
sql = "INSERT INTO fo_events(id, at) VALUES (:id, :at)"
params.id = { gen = "sequence", above_max = "fo_events.id" }
params.at = { gen = "now" }

[[operation]]
name = "read_event"
role = "read"
sql = "SELECT at FROM fo_events WHERE id = :id"
params.id = { gen = "shard" }
"#;

/// Transactions a server committed so far, as it counts them.
fn commits(pair: &PgPair, port: u16) -> i64 {
    pair.psql(
        port,
        "SELECT xact_commit FROM pg_stat_database WHERE datname = 'postgres'",
    )
    .parse()
    .unwrap()
}

/// With a reader endpoint, read operations run on the reader's sessions and writes on
/// the writer's: what each server counted itself matches the report's per-role counts,
/// within the few statements fleetload's own probes add.
#[test]
fn reads_go_to_the_reader_and_writes_to_the_writer() {
    let pair = PgPair::start();
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("rw.toml");
    std::fs::write(&scenario, READ_WRITE).unwrap();
    let s = scenario.to_str().unwrap();
    let writer = format!("postgres://postgres@127.0.0.1:{}/postgres", pair.primary);
    let reader = format!("postgres://postgres@127.0.0.1:{}/postgres", pair.replica);
    fleetload(&["prepare", "--target", &writer, "--scenario", s]).assert_ok();
    pair.wait_for_replica();
    let before = (commits(&pair, pair.primary), commits(&pair, pair.replica));
    let report = dir.path().join("report");
    let out = fleetload(&[
        "run",
        "--target",
        &writer,
        "--reader",
        &reader,
        "--reader-sessions",
        "3",
        "--scenario",
        s,
        "--rate",
        "200",
        "--duration",
        "5s",
        "--sessions",
        "3",
        "--workers",
        "2",
        "--report-dir",
        report.to_str().unwrap(),
    ]);
    out.assert_ok();
    assert!(
        out.stdout.contains("(write ") && out.stdout.contains(", read "),
        "the live line splits by role:\n{}",
        out.stdout
    );
    let csv = std::fs::read_to_string(report.join("report.csv")).unwrap();
    assert!(
        csv.lines()
            .any(|l| l.contains(",read_event,") && l.ends_with(",read")),
        "{csv}"
    );
    // Statistics reach pg_stat_database when a backend goes idle or ends: give them a
    // moment after the sessions closed.
    std::thread::sleep(Duration::from_millis(1500));
    let after = (commits(&pair, pair.primary), commits(&pair, pair.replica));
    let r = read_report(&report);
    let executed = |op: &str| -> i64 {
        r["workers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["executed"][op]["ok"].as_i64().unwrap())
            .sum()
    };
    let (writes, reads) = (executed("write_event"), executed("read_event"));
    assert!(
        writes > 300 && reads > 300,
        "both ran: {writes} writes, {reads} reads"
    );
    let (on_writer, on_reader) = (after.0 - before.0, after.1 - before.1);
    // What fleetload's own statements add: per session, asking the instance and each
    // statement's first use (preparing it is an implicit transaction of its own); on the
    // writer also each worker's checks before the start and the coordinator's counter
    // samples (a few per interval); and this test's psql. Tens, where a misrouted role
    // would be hundreds.
    assert!(
        (0..60).contains(&(on_reader - reads)),
        "the reader committed {on_reader} transactions for {reads} reads"
    );
    assert!(
        (0..100).contains(&(on_writer - writes)),
        "the writer committed {on_writer} transactions for {writes} writes (no reads)"
    );
    assert_eq!(
        r["roles"]["read"]["count"].as_i64(),
        Some(reads),
        "{:#}",
        r["roles"]
    );
    assert_eq!(r["roles"]["write"]["count"].as_i64(), Some(writes));
    // Which instance served what, as the servers name themselves (address:port).
    let instance = |port: u16| {
        r["instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == format!("127.0.0.1:{port}"))
            .unwrap_or_else(|| panic!("instance on {port}: {:#}", r["instances"]))
            .clone()
    };
    let (w, rd) = (instance(pair.primary), instance(pair.replica));
    assert_eq!(r["instances"].as_array().unwrap().len(), 2);
    assert_eq!(
        (w["ok"].as_i64(), rd["ok"].as_i64()),
        (Some(writes), Some(reads))
    );
    assert_eq!(
        (&w["roles"][0], &rd["roles"][0]),
        (&"write".into(), &"read".into())
    );
    assert_eq!(
        (&w["read_only"], &rd["read_only"]),
        (&false.into(), &true.into())
    );
    let peak = |i: &serde_json::Value| {
        i["series"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p[1].as_f64().unwrap())
            .fold(0.0, f64::max)
    };
    assert_eq!(
        (peak(&w), peak(&rd)),
        (6.0, 6.0),
        "2 workers × 3 sessions on each"
    );
    let html = std::fs::read_to_string(report.join("report.html")).unwrap();
    assert!(html.contains("id=\"instance-sessions\"") && html.contains("id=instances"));
}

/// The same failover on MariaDB: the primary turns read-only (its ordinary users' writes
/// fail with 1290, what clients of a demoted Aurora MySQL writer see), the replica is
/// promoted once it applied everything, the endpoint moves: the measured downtime is the
/// injected window, the refusals are `read_only`, and every acknowledged write is on
/// the new writer, once.
#[test]
fn a_mariadb_writer_failover_is_measured_and_no_write_is_lost_or_doubled() {
    let pair = maria_pair::MariaPair::start();
    let proxy = Proxy::start(format!("127.0.0.1:{}", pair.primary));
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("rw.toml");
    std::fs::write(&scenario, READ_WRITE).unwrap();
    let target = format!("mysql://app@{}/test", proxy.addr);
    let reader = format!("mysql://app@127.0.0.1:{}/test", pair.replica);
    let s = scenario.to_str().unwrap();
    fleetload(&[
        "prepare",
        "--target",
        &target,
        "--password-env",
        PASSWORD_ENV,
        "--scenario",
        s,
    ])
    .assert_ok();
    pair.wait_for_replica();
    let report = dir.path().join("report");
    let mut run = start_run(
        dir.path(),
        &report,
        &[
            "--target",
            &target,
            "--reader",
            &reader,
            "--scenario",
            s,
            "--password-env",
            PASSWORD_ENV,
            "--reader-sessions",
            "2",
            "--rate",
            "200",
            "--duration",
            "10s",
            "--sessions",
            "4",
            "--workers",
            "2",
            "--connect-timeout",
            "2s",
            "--op-timeout",
            "2s",
        ],
    );
    std::thread::sleep(Duration::from_millis(4000));
    let demoted = Instant::now();
    pair.make_primary_read_only();
    std::thread::sleep(Duration::from_millis(1500));
    pair.promote_replica();
    proxy.flip(format!("127.0.0.1:{}", pair.replica));
    let window = demoted.elapsed().as_secs_f64();
    assert!(
        wait_within(&mut run, Duration::from_secs(60)).is_some(),
        "the run ends by itself"
    );
    let out = run.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let r = read_report(&report);
    let windows = r["availability"]["windows"]
        .as_array()
        .expect("availability");
    assert_eq!(
        windows.len(),
        1,
        "the writer's window only: {:#}\n{text}",
        r["availability"]
    );
    let w = &windows[0];
    assert_eq!(
        (&w["role"], &w["sessions"], &w["unrecovered"]),
        (&"write".into(), &8.into(), &0.into()),
        "{w:#}"
    );
    let max = w["downtime_ms"]["max"].as_f64().unwrap() / 1e3;
    let p50 = w["downtime_ms"]["p50"].as_f64().unwrap() / 1e3;
    eprintln!(
        "mariadb failover: injected {window:.2}s, measured p50 {p50:.2}s max {max:.2}s, {} → {}",
        w["instance_before"], w["instance_after"]
    );
    assert!(
        (max - window).abs() <= 1.0 && (p50 - window).abs() <= 1.0,
        "measured p50 {p50:.2}s max {max:.2}s, injected {window:.2}s: {w:#}"
    );
    assert!(
        w["failed"]["read_only"].as_u64().unwrap_or(0) > 0,
        "1290 is read_only: {w:#}"
    );
    assert_ne!(w["instance_before"], w["instance_after"]);
    let executed: u64 = r["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["executed"]["write_event"]["ok"].as_u64().unwrap())
        .sum();
    let rows: u64 = pair
        .root(
            pair.replica,
            "SELECT COUNT(*) FROM test.fo_events WHERE id > 100",
        )
        .parse()
        .unwrap();
    assert_eq!(
        rows, executed,
        "rows on the new writer = writes acknowledged"
    );
}

/// A replica that joins the reader endpoint mid-run gets sessions once they reach
/// `max_connection_age` and reconnect: the report's instances show it serving from then
/// on.
#[test]
fn a_replica_added_mid_run_receives_sessions_after_max_connection_age() {
    let pair = PgPair::start();
    let readers = Proxy::start(format!("127.0.0.1:{}", pair.replica));
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("rw.toml");
    std::fs::write(&scenario, READ_WRITE).unwrap();
    let s = scenario.to_str().unwrap();
    let writer = format!("postgres://postgres@127.0.0.1:{}/postgres", pair.primary);
    let reader = format!("postgres://postgres@{}/postgres", readers.addr);
    fleetload(&["prepare", "--target", &writer, "--scenario", s]).assert_ok();
    pair.wait_for_replica();
    let report = dir.path().join("report");
    let mut run = start_run(
        dir.path(),
        &report,
        &[
            "--target",
            &writer,
            "--reader",
            &reader,
            "--scenario",
            s,
            "--rate",
            "200",
            "--duration",
            "10s",
            "--sessions",
            "2",
            "--reader-sessions",
            "4",
            "--workers",
            "2",
            "--max-connection-age",
            "2s",
        ],
    );
    std::thread::sleep(Duration::from_millis(2500));
    let joined = pair.add_replica();
    readers.add(format!("127.0.0.1:{joined}"));
    assert!(
        wait_within(&mut run, Duration::from_secs(60)).is_some(),
        "the run ends by itself"
    );
    let _ = run.wait_with_output().unwrap();
    let r = read_report(&report);
    assert_eq!(r["status"], "passed", "{:#}", r["failures"]);
    let new = r["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == format!("127.0.0.1:{joined}"))
        .unwrap_or_else(|| panic!("the new replica served: {:#}", r["instances"]))
        .clone();
    assert_eq!(new["roles"][0], "read");
    // The endpoint hands out connections round robin, as DNS over replicas does: how
    // many land on the new one varies, but some do, and every reader session is on
    // one of the two at the end (a session that moved within an interval counts on both).
    let last = |i: &serde_json::Value| {
        i["series"]
            .as_array()
            .unwrap()
            .last()
            .map_or(0.0, |p| p[1].as_f64().unwrap())
    };
    let old = r["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == format!("127.0.0.1:{}", pair.replica))
        .unwrap()
        .clone();
    assert!(
        last(&new) >= 1.0,
        "sessions moved to it: {:#}",
        new["series"]
    );
    assert!(last(&new) + last(&old) >= 8.0, "{:#}", r["instances"]);
    assert!(new["ok"].as_u64().unwrap() > 0);
}

/// The writer endpoint as a real host name, moved the way Aurora's DNS moves it: the
/// run resolves `writer.fleetload.test` through a hosts file of its own (bind-mounted
/// over /etc/hosts in a mount namespace, `unshare -m`), which the test rewrites from the
/// primary (127.0.0.1) to the promoted replica (127.0.0.2, same port) mid-run. Every
/// session reconnects and resolves the name again: they all end up on the new writer.
/// Needs root (CI runs as root).
#[test]
fn a_writer_name_that_moves_is_resolved_again_on_reconnect() {
    let pair = PgPair::start_same_port();
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    let name = "writer.fleetload.test";
    std::fs::write(&hosts, format!("127.0.0.1 {name}\n")).unwrap();
    let scenario = dir.path().join("rw.toml");
    std::fs::write(&scenario, READ_WRITE).unwrap();
    let s = scenario.to_str().unwrap();
    let direct = format!("postgres://postgres@127.0.0.1:{}/postgres", pair.primary);
    fleetload(&["prepare", "--target", &direct, "--scenario", s]).assert_ok();
    pair.wait_for_replica();
    let target = format!("postgres://postgres@{name}:{}/postgres", pair.primary);
    let report = dir.path().join("report");
    let script = format!(
        "mount --bind {} /etc/hosts && exec {BIN} run --target {target} --scenario {s} --mix write_event=1 --rate 200 --duration 10s --sessions 4 --workers 2 --connect-timeout 2s --op-timeout 2s --report-dir {}",
        hosts.display(),
        report.display()
    );
    let mut run = std::process::Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .env("FLEETLOAD_LOG", "warn")
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("unshare: this test needs root (CI runs as root)");
    std::thread::sleep(Duration::from_millis(4000));
    let demoted = Instant::now();
    pair.make_primary_read_only();
    std::thread::sleep(Duration::from_millis(1000));
    pair.promote_replica();
    // In place (same file the mount shows): the name now points at the new writer.
    std::fs::write(&hosts, format!("{} {name}\n", pair.replica_host)).unwrap();
    let window = demoted.elapsed().as_secs_f64();
    assert!(
        wait_within(&mut run, Duration::from_secs(60)).is_some(),
        "the run ends by itself"
    );
    let out = run.wait_with_output().unwrap();
    let r = read_report(&report);
    let windows = r["availability"]["windows"]
        .as_array()
        .unwrap_or_else(|| panic!("no report: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(windows.len(), 1, "{:#}", r["availability"]);
    let w = &windows[0];
    let max = w["downtime_ms"]["max"].as_f64().unwrap() / 1e3;
    eprintln!(
        "dns failover: injected {window:.2}s, measured max {max:.2}s, {} → {}",
        w["instance_before"], w["instance_after"]
    );
    assert!(
        (max - window).abs() <= 1.0,
        "max {max:.2}s vs {window:.2}s: {w:#}"
    );
    assert_eq!(w["unrecovered"], 0);
    assert_eq!(w["instance_before"], format!("127.0.0.1:{}", pair.primary));
    assert_eq!(
        w["instance_after"],
        format!("{}:{}", pair.replica_host, pair.replica),
        "every session resolved the name again and reached the new writer"
    );
    let executed: u64 = r["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["executed"]["write_event"]["ok"].as_u64().unwrap())
        .sum();
    let rows: u64 = pair
        .on_replica("SELECT count(*) FROM fo_events WHERE id > 100")
        .parse()
        .unwrap();
    assert_eq!(rows, executed);
}

/// What a MariaDB server counted itself: `Com_select` and `Com_insert`.
fn com(pair: &maria_pair::MariaPair, port: u16) -> (i64, i64) {
    let v = |name: &str| -> i64 {
        pair.root(port, &format!("SHOW GLOBAL STATUS LIKE '{name}'"))
            .split_whitespace()
            .last()
            .and_then(|n| n.parse().ok())
            .unwrap()
    };
    (v("Com_select"), v("Com_insert"))
}

/// On MariaDB too, reads run on the reader and writes on the writer: each server's own
/// `Com_select` / `Com_insert` match the report's per-instance counts, within what
/// fleetload's own probes add.
#[test]
fn on_mariadb_reads_go_to_the_reader_and_writes_to_the_writer() {
    let pair = maria_pair::MariaPair::start();
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("rw.toml");
    std::fs::write(&scenario, READ_WRITE).unwrap();
    let s = scenario.to_str().unwrap();
    let writer = format!("mysql://app@127.0.0.1:{}/test", pair.primary);
    let reader = format!("mysql://app@127.0.0.1:{}/test", pair.replica);
    fleetload(&[
        "prepare",
        "--target",
        &writer,
        "--password-env",
        PASSWORD_ENV,
        "--scenario",
        s,
    ])
    .assert_ok();
    pair.wait_for_replica();
    let before = (com(&pair, pair.primary), com(&pair, pair.replica));
    let report = dir.path().join("report");
    fleetload(&[
        "run",
        "--target",
        &writer,
        "--reader",
        &reader,
        "--password-env",
        PASSWORD_ENV,
        "--reader-sessions",
        "3",
        "--scenario",
        s,
        "--rate",
        "200",
        "--duration",
        "5s",
        "--sessions",
        "3",
        "--workers",
        "2",
        "--report-dir",
        report.to_str().unwrap(),
    ])
    .assert_ok();
    pair.wait_for_replica();
    let after = (com(&pair, pair.primary), com(&pair, pair.replica));
    let r = read_report(&report);
    let instance_ok = |port: u16| -> i64 {
        r["instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| {
                i["name"]
                    .as_str()
                    .is_some_and(|n| n.ends_with(&format!(":{port}")))
            })
            .unwrap_or_else(|| panic!("instance on {port}: {:#}", r["instances"]))["ok"]
            .as_i64()
            .unwrap()
    };
    let (writes, reads) = (instance_ok(pair.primary), instance_ok(pair.replica));
    assert!(
        writes > 300 && reads > 300,
        "{writes} writes, {reads} reads"
    );
    let inserts_on_writer = after.0 .1 - before.0 .1;
    let selects_on_reader = after.1 .0 - before.1 .0;
    let selects_on_writer = after.0 .0 - before.0 .0;
    // The replica applies the writer's inserts through replication, not as Com_insert;
    // fleetload's own SELECTs (each session asking its instance, each worker's checks
    // and sequence bases, the coordinator's counter samples) are tens.
    assert_eq!(
        inserts_on_writer, writes,
        "every insert on the writer, once"
    );
    assert!(
        (0..40).contains(&(selects_on_reader - reads)),
        "the reader ran {selects_on_reader} SELECTs for {reads} reads"
    );
    assert!(
        selects_on_writer < 60,
        "the writer ran {selects_on_writer} SELECTs: no reads went there"
    );
}

/// `fleetload run ARGS --report-dir REPORT` in `dir`, with the test password in its
/// environment and its output captured.
fn start_run(
    dir: &std::path::Path,
    report: &std::path::Path,
    args: &[&str],
) -> std::process::Child {
    std::process::Command::new(BIN)
        .arg("run")
        .args(args)
        .arg("--report-dir")
        .arg(report)
        .env(PASSWORD_ENV, password())
        .env("FLEETLOAD_LOG", "warn")
        .current_dir(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}
