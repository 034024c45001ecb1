//! End to end: the real `fleetload` binary starts a coordinator and worker processes
//! that talk gRPC over loopback and drive real MariaDB, PostgreSQL and SQLite.

mod common;

use common::*;
use fleetload_common::histogram::decode;
use serde_json::Value;

const ROWS: u64 = 5000;
const RATE: f64 = 400.0;

fn prepare(target: &str, scenario: &str) {
    prepare_rows(target, scenario, ROWS, &[]);
}

/// Run 2 workers open loop at RATE for 4 s with 1 s warm-up and check what a user relies on.
fn open_loop_run_is_exact_and_on_rate(target: &str) {
    prepare(target, "point_select");
    let dir = tempfile::tempdir().unwrap();
    let out = fleetload(&[
        "run",
        "--target",
        target,
        "--password-env",
        PASSWORD_ENV,
        "--scenario",
        "point_select",
        "--rows",
        &ROWS.to_string(),
        "--rate",
        &RATE.to_string(),
        "--sessions",
        "4",
        "--duration",
        "4s",
        "--warmup",
        "1s",
        "--workers",
        "2",
        "--report-dir",
        dir.path().to_str().unwrap(),
    ]);
    out.assert_ok();
    assert!(
        out.stdout.contains("workers 2/2"),
        "a live line per interval:\n{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains(&password()) && !out.stderr.contains(&password()),
        "the password is never printed"
    );
    let r = read_report(dir.path());
    assert_eq!(r["status"], "passed", "{r:#}");
    let op = &r["operations"]["point_select"];
    let count = u(&op["count"]);
    let measured = f(&r["measured_s"]);
    assert_eq!(measured, 3.0);

    // The open-loop rate is achieved within 2 %.
    let want = RATE * measured;
    assert!(
        (count as f64 - want).abs() <= want * 0.02,
        "count {count}, want {want} ± 2%"
    );
    assert!((f(&op["ok_per_s"]) - RATE).abs() <= RATE * 0.02);
    assert_eq!(u(&op["error_total"]), 0, "{op:#}");
    assert_eq!(u(&op["dropped_backlog"]), 0);

    // The merged total equals the sum of what each worker executed.
    let workers = r["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2);
    let per_worker: u64 = workers
        .iter()
        .map(|w| u(&w["operations"]["point_select"]["count"]))
        .sum();
    assert_eq!(
        per_worker, count,
        "per-worker measured counts add up to the cluster count"
    );
    let executed: u64 = workers
        .iter()
        .map(|w| u(&w["executed"]["point_select"]["ok"]))
        .sum();
    let series: u64 = r["intervals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| u(&i["operations"]["point_select"]["count"]))
        .sum();
    assert_eq!(
        executed, series,
        "what the workers say they executed equals every snapshot merged"
    );
    assert_eq!(r["verification"]["merged_equals_executed"], true);
    let whole = RATE * 4.0;
    assert!(
        (executed as f64 - whole).abs() <= whole * 0.02,
        "executed {executed} over the whole run, want {whole}"
    );
    for w in workers {
        assert!(
            (f(&w["rate"]) - RATE / 2.0).abs() < 1e-6,
            "equal rate shares"
        );
        assert_eq!(w["state"], "done");
    }

    // Disjoint shards that cover the key space.
    let mut shards: Vec<(u64, u64)> = workers
        .iter()
        .map(|w| (u(&w["shard"]["first"]), u(&w["shard"]["last"])))
        .collect();
    shards.sort();
    assert_eq!(shards[0].0, 1);
    assert_eq!(shards[0].1 + 1, shards[1].0, "no overlap, no gap");
    assert_eq!(shards[1].1, ROWS);

    // Percentiles are ordered; service time never exceeds response time.
    for kind in ["response_time", "service_time", "schedule_lag"] {
        let p = &op[kind];
        let xs: Vec<f64> = ["p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms"]
            .iter()
            .map(|k| f(&p[k]))
            .collect();
        assert!(xs.windows(2).all(|w| w[0] <= w[1]), "{kind}: {xs:?}");
        assert!(xs[0] > 0.0);
    }
    assert!(f(&op["service_time"]["p50_ms"]) <= f(&op["response_time"]["p50_ms"]));

    // Per-interval series: the warm-up interval is marked and left out of the totals.
    let intervals = r["intervals"].as_array().unwrap();
    assert_eq!(intervals.len(), 4);
    assert_eq!(intervals[0]["warmup"], true);
    let measured_series: u64 = intervals
        .iter()
        .filter(|i| i["warmup"] == false)
        .map(|i| u(&i["operations"]["point_select"]["count"]))
        .sum();
    assert_eq!(measured_series, count);
    for i in intervals {
        assert_eq!(u(&i["workers_reporting"]), 2);
        let c = u(&i["operations"]["point_select"]["count"]) as f64;
        assert!(
            (c - RATE).abs() <= RATE * 0.05,
            "interval {}: {c} ops",
            i["index"]
        );
    }

    // The cluster histogram is standard V2+deflate holding exactly the measured count.
    let b64 = r["histograms"]["point_select"]["response_time"]
        .as_str()
        .unwrap();
    let bytes = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64).unwrap();
    assert_eq!(decode(&bytes).unwrap().len(), count);
    assert_eq!(r["plan"]["target"], Value::String(target.into()));

    // report.csv: one row per interval and operation, counts matching the report.
    let csv = std::fs::read_to_string(dir.path().join("report.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert!(rows[0].starts_with("interval,start_s,end_s,warmup,operation,count,"));
    assert_eq!(rows.len(), 1 + intervals.len());
    let csv_total: u64 = rows[1..]
        .iter()
        .map(|l| l.split(',').nth(5).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(csv_total, series);

    // report.hlog: a standard HdrHistogram interval log that HdrHistogram's own reader
    // parses, holding every operation of the run.
    let hlog = std::fs::read(dir.path().join("report.hlog")).unwrap();
    let mut logged = 0;
    let mut entries = 0;
    for entry in hdrhistogram::serialization::interval_log::IntervalLogIterator::new(&hlog) {
        if let hdrhistogram::serialization::interval_log::LogEntry::Interval(h) = entry.unwrap() {
            assert_eq!(h.tag().unwrap().as_str(), "point_select");
            let bytes = base64::Engine::decode(
                &base64::engine::general_purpose::STANDARD,
                h.encoded_histogram(),
            )
            .unwrap();
            logged += decode(&bytes).unwrap().len();
            entries += 1;
        }
    }
    assert_eq!(entries, intervals.len());
    assert_eq!(logged, series, "the interval log holds every operation");
}

#[test]
fn sqlite_open_loop_run_is_exact_and_on_rate() {
    let dir = tempfile::tempdir().unwrap();
    open_loop_run_is_exact_and_on_rate(&sqlite(dir.path()));
}

#[test]
fn mariadb_open_loop_run_is_exact_and_on_rate() {
    open_loop_run_is_exact_and_on_rate(&fresh_mysql("open_loop"));
}

#[test]
fn postgres_open_loop_run_is_exact_and_on_rate() {
    open_loop_run_is_exact_and_on_rate(&fresh_pg("open_loop"));
}

#[test]
fn closed_loop_churn_run_on_postgres_counts_every_operation() {
    let target = fresh_pg("closed_loop");
    prepare(&target, "churn");
    let dir = tempfile::tempdir().unwrap();
    fleetload(&[
        "run",
        "--target",
        &target,
        "--password-env",
        PASSWORD_ENV,
        "--scenario",
        "churn",
        "--rows",
        &ROWS.to_string(),
        "--sessions",
        "2",
        "--think-time",
        "2ms",
        "--duration",
        "3s",
        "--workers",
        "2",
        "--report-dir",
        dir.path().to_str().unwrap(),
    ])
    .assert_ok();
    let r = read_report(dir.path());
    assert_eq!(r["status"], "passed");
    let op = &r["operations"]["read_customer"];
    let count = u(&op["count"]);
    // 4 sessions with 2 ms think time cannot exceed 2000 ops/s, and surely do 100.
    assert!((300..=6000).contains(&count), "{count}");
    assert!(
        op.get("schedule_lag").is_none(),
        "closed loop has no schedule"
    );
    assert_eq!(r["verification"]["merged_equals_executed"], true);
    assert_eq!(r["plan"]["mode"], "closed");
}

#[test]
fn a_wrong_password_fails_with_the_database_message() {
    let target = fresh_mysql("bad_password");
    let out = std::process::Command::new(BIN)
        .args([
            "run",
            "--target",
            &target,
            "--password-env",
            "FLEETLOAD_WRONG_PW",
            "--rate",
            "10",
            "--duration",
            "2s",
            "--workers",
            "2",
        ])
        .env("FLEETLOAD_WRONG_PW", "not-the-password")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Access denied"), "{stderr}");
    assert!(stderr.contains("cannot run its share"), "{stderr}");
    assert!(
        !stderr.contains("not-the-password"),
        "the password is never printed: {stderr}"
    );
}

#[test]
fn an_unset_password_variable_is_named() {
    let out = fleetload(&[
        "run",
        "--target",
        "postgres://fleetload@127.0.0.1:5432/fleetload",
        "--password-env",
        "FLEETLOAD_NO_SUCH_VAR",
        "--rate",
        "10",
        "--duration",
        "1s",
        "--workers",
        "1",
    ]);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("FLEETLOAD_NO_SUCH_VAR") && out.stderr.contains("not set"),
        "{}",
        out.stderr
    );
}

#[test]
fn an_unreachable_database_fails_clearly() {
    let out = fleetload(&[
        "run",
        "--target",
        "postgres://fleetload@127.0.0.1:1/nothing",
        "--rate",
        "10",
        "--duration",
        "1s",
        "--workers",
        "2",
        "--connect-timeout",
        "2s",
    ]);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr
            .contains("cannot connect to postgres://fleetload@127.0.0.1:1/nothing"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("Connection refused"), "{}", out.stderr);
}

#[test]
fn a_missing_worker_fails_naming_how_many_joined() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let dir = tempfile::tempdir().unwrap();
    let target = sqlite(dir.path());
    let coordinator = std::thread::spawn({
        let (addr, target) = (addr.clone(), target.clone());
        move || {
            fleetload(&[
                "coordinator",
                "--listen",
                &addr,
                "--target",
                &target,
                "--workers",
                "3",
                "--join-timeout",
                "3s",
                "--rate",
                "10",
                "--duration",
                "1s",
            ])
        }
    });
    wait_listening(&addr);
    let workers: Vec<_> = (0..2)
        .map(|i| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                fleetload(&[
                    "worker",
                    "--coordinator",
                    &format!("http://{addr}"),
                    "--name",
                    &format!("w{i}"),
                ])
            })
        })
        .collect();
    let c = coordinator.join().unwrap();
    assert_eq!(c.code, Some(1));
    assert!(
        c.stderr.contains("only 2 of 3 workers joined within 3s"),
        "{}",
        c.stderr
    );
    for w in workers {
        let w = w.join().unwrap();
        assert_ne!(w.code, Some(0), "workers of an aborted run exit non-zero");
        assert!(
            w.stderr.contains("only 2 of 3 workers joined"),
            "the worker is told why: {}",
            w.stderr
        );
    }
}

#[test]
fn a_run_where_every_operation_fails_exits_non_zero_with_the_error() {
    // The stand-in answers in 200 ms and the client gives up after 5 ms: every
    // prediction times out.
    let dir = tempfile::tempdir().unwrap();
    let target = sqlite(dir.path());
    fleetload(&[
        "prepare",
        "--target",
        &target,
        "--scenario",
        "churn",
        "--rows",
        "200",
    ])
    .assert_ok();
    let report_dir = dir.path().join("report");
    let out = fleetload(&[
        "run",
        "--target",
        &target,
        "--scenario",
        "churn",
        "--mix",
        "predict_one=1",
        "--ml-delay",
        "200ms",
        "--op-timeout",
        "5ms",
        "--rate",
        "20",
        "--duration",
        "2s",
        "--workers",
        "2",
        "--report-dir",
        report_dir.to_str().unwrap(),
    ]);
    assert_eq!(out.code, Some(1), "{}\n{}", out.stdout, out.stderr);
    let r = read_report(&report_dir);
    assert_eq!(r["status"], "failed");
    let failures = r["failures"].to_string();
    assert!(
        failures.contains("no operation succeeded") && failures.contains("timeout"),
        "{failures}"
    );
    let op = &r["operations"]["predict_one"];
    assert!(u(&op["errors"]["timeout"]) >= 30, "{op:#}");
    assert!(
        out.stdout.contains("FAILURE: no operation succeeded"),
        "{}",
        out.stdout
    );
}

/// Built-in scenarios are checked before the load, as scenario files are: a missing
/// table fails the run before its start, naming the table and the `fleetload prepare`
/// command that makes it; a plan reading keys the table does not have is refused; a
/// plan that names no rows takes the table's key space.
fn built_in_scenarios_are_checked_before_the_start(target: &str) {
    // `fleetload COMMAND` on this target with `extra` flags.
    let fl = |command: &str, extra: &[&str]| {
        let mut args = vec![command, "--target", target, "--password-env", PASSWORD_ENV];
        args.extend_from_slice(extra);
        fleetload(&args)
    };
    if let Some(file) = target.strip_prefix("sqlite://") {
        // An empty file: the missing table is what is checked here.
        std::fs::write(file, b"").unwrap();
    }
    let o = fl("check", &["--scenario", "churn"]);
    assert_ne!(o.code, Some(0));
    assert!(
        o.text().contains("customers") && o.text().contains("fleetload prepare"),
        "{}",
        o.text()
    );
    let started = std::time::Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r");
    let report = report.to_str().unwrap();
    let o = fl(
        "run",
        &[
            "--scenario",
            "point_select",
            "--rate",
            "20",
            "--duration",
            "30s",
            "--report-dir",
            report,
        ],
    );
    assert_ne!(o.code, Some(0));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(25),
        "ran its duration: {}",
        o.text()
    );
    assert!(
        o.text().contains("sbtest1") && o.text().contains("fleetload prepare"),
        "{}",
        o.text()
    );

    fl("prepare", &["--scenario", "point_select", "--rows", "700"]).assert_ok();
    let o = fl("check", &["--rows", "100000"]);
    assert_ne!(o.code, Some(0));
    assert!(o.text().contains("holds ids up to 700"), "{}", o.text());
    // A report directory of its own: the failed run above left its report in `r`.
    let report = dir.path().join("r2");
    let report = report.to_str().unwrap();
    fl(
        "run",
        &["--rate", "50", "--duration", "2s", "--report-dir", report],
    )
    .assert_ok();
    let r = read_report(std::path::Path::new(report));
    assert_eq!(
        u(&r["plan"]["rows"]),
        700,
        "the key space of the table, not the default"
    );
}

on_every_target!(built_in_scenarios_are_checked_before_the_start);

#[test]
fn a_bad_plan_names_the_key_and_what_is_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.toml");
    std::fs::write(
        &plan,
        "target = \"sqlite://x.db\"\nscenario = \"point_select\"\nsesions = 4\n",
    )
    .unwrap();
    let out = fleetload(&["run", "--plan", plan.to_str().unwrap()]);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("sesions") && out.stderr.contains("sessions"),
        "{}",
        out.stderr
    );
    let out = fleetload(&["run", "--target", "sqlite://x.db", "--rate", "0"]);
    assert!(
        out.stderr.contains("`rate`") && out.stderr.contains("above 0"),
        "{}",
        out.stderr
    );
    let out = fleetload(&[
        "run",
        "--target",
        "mysql://root:hunter2@127.0.0.1/test",
        "--rate",
        "5",
    ]);
    assert!(
        out.stderr.contains("password_env") && !out.stderr.contains("hunter2"),
        "{}",
        out.stderr
    );
}

#[test]
fn an_interrupted_run_still_writes_an_exact_report_and_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let target = sqlite(dir.path());
    prepare(&target, "point_select");
    let report_dir = dir.path().join("report");
    let child = std::process::Command::new(BIN)
        .args([
            "run",
            "--target",
            &target,
            "--rows",
            &ROWS.to_string(),
            "--rate",
            "200",
            "--duration",
            "60s",
            "--workers",
            "2",
            "--report-dir",
            report_dir.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(4));
    let killed = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let started = std::time::Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "stops promptly, not after the planned 60 s"
    );
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = read_report(&report_dir);
    assert_eq!(r["status"], "interrupted");
    assert_eq!(
        r["verification"]["merged_equals_executed"], true,
        "final snapshots were flushed"
    );
    let count = u(&r["operations"]["point_select"]["count"]);
    let measured = f(&r["measured_s"]);
    assert!((2.0..10.0).contains(&measured), "{measured}");
    assert!(
        (count as f64 - 200.0 * measured).abs() <= 200.0 * measured * 0.05 + 5.0,
        "{count} ops in {measured} s"
    );
}

/// `run --threads N` gives each local worker process N runtime threads.
#[test]
fn run_passes_threads_to_its_worker_processes() {
    let dir = tempfile::tempdir().unwrap();
    let target = sqlite(dir.path());
    fleetload(&["prepare", "--target", &target, "--rows", "300"]).assert_ok();
    let report = dir.path().join("r");
    let mut run = spawn(
        &[
            "run",
            "--target",
            &target,
            "--rate",
            "20",
            "--duration",
            "3s",
            "--threads",
            "2",
            "--report-dir",
            report.to_str().unwrap(),
        ],
        dir.path(),
    );
    let started = std::time::Instant::now();
    let mut seen = Vec::new();
    while seen.len() < 2 && started.elapsed() < std::time::Duration::from_secs(10) {
        // The run's children, by their parent pid (stat field 4).
        let parent = run.id().to_string();
        seen = std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| {
                let p = e.ok()?.path();
                let stat = std::fs::read_to_string(p.join("stat")).ok()?;
                let ppid = stat
                    .rsplit(')')
                    .next()?
                    .split_whitespace()
                    .nth(1)?
                    .to_string();
                (ppid == parent).then(|| std::fs::read(p.join("cmdline")).ok())?
            })
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| c.contains("worker --coordinator") && c.contains("--threads 2"))
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(wait_within(&mut run, std::time::Duration::from_secs(60)).is_some_and(|s| s.success()));
    assert_eq!(seen.len(), 2, "worker processes with --threads 2: {seen:?}");
    let o = fleetload(&["run", "--target", &target, "--threads", "0"]);
    assert_ne!(o.code, Some(0));
    assert!(o.text().contains("--threads"), "{}", o.text());
}

/// Reads that find no row are counted and warned about: the report holds the rows
/// every operation returned and how many found none, per operation and interval, in
/// report.json and report.csv, and the summary says so loudly.
#[test]
fn lookups_that_find_no_row_are_counted_and_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let target = sqlite(dir.path());
    fleetload(&["prepare", "--target", &target, "--rows", "1000"]).assert_ok();
    // Half the keys disappear; the highest stays, so the pre-flight lets the run go.
    exec(
        &target,
        "DELETE FROM sbtest1 WHERE id % 2 = 0 AND id < 1000",
    );
    let report = dir.path().join("r");
    let o = fleetload(&[
        "run",
        "--target",
        &target,
        "--rows",
        "1000",
        "--rate",
        "200",
        "--duration",
        "2s",
        "--report-dir",
        report.to_str().unwrap(),
    ]);
    o.assert_ok();
    let r = read_report(&report);
    let op = &r["operations"]["point_select"];
    let (count, rows, empty) = (u(&op["count"]), u(&op["rows"]), u(&op["empty_results"]));
    assert_eq!(
        rows + empty,
        count,
        "a point lookup returns one row or none: {op:#}"
    );
    let share = empty as f64 / count as f64;
    assert!(
        (0.35..0.65).contains(&share),
        "{empty} of {count} found nothing"
    );
    assert!(
        o.stdout.contains("WARNING point_select") && o.stdout.contains("found no row"),
        "{}",
        o.stdout
    );
    let csv = std::fs::read_to_string(report.join("report.csv")).unwrap();
    assert!(
        csv.lines()
            .next()
            .unwrap()
            .contains(",retries,rows,empty_results"),
        "{csv}"
    );
}

/// `run --listen`: a local run a user can steer with `ctl` at an address of their
/// choosing, and the start says how.
#[test]
fn a_local_run_listens_where_asked_and_prints_the_ctl_command() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite(dir.path());
    fleetload(&["prepare", "--target", &db, "--rows", "1000"]).assert_ok();
    let addr = free_port();
    let report = dir.path().join("report");
    let run = spawn(
        &[
            "run",
            "--target",
            &db,
            "--rows",
            "1000",
            "--rate",
            "100",
            "--duration",
            "6s",
            "--listen",
            &addr,
            "--report-dir",
            report.to_str().unwrap(),
        ],
        dir.path(),
    );
    wait_elapsed(&addr, 1.0);
    fleetload(&["ctl", "--coordinator", &addr, "set-rate", "150"]).assert_ok();
    let (code, text) = output(run);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(&format!(
            "steer it: fleetload ctl --coordinator {addr} status"
        )),
        "{text}"
    );
    let r = read_report(&report);
    assert!(
        r["changes"].to_string().contains("150"),
        "{:#}",
        r["changes"]
    );
}

/// A target that accepts connections and never answers: the run fails after one
/// `--connect-timeout`, not two (the coordinator's look and the workers' pre-flight),
/// and says so once, not once per process.
#[test]
fn a_silent_server_fails_the_run_after_one_deadline_said_once() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let target = format!("postgres://x@127.0.0.1:{port}/db");
    let started = std::time::Instant::now();
    let out = fleetload(&[
        "run",
        "--target",
        &target,
        "--rate",
        "10",
        "--duration",
        "2s",
        "--connect-timeout",
        "3s",
        "--report-dir",
        dir.path().join("r").to_str().unwrap(),
    ]);
    let took = started.elapsed().as_secs_f64();
    assert_eq!(out.code, Some(1), "{}", out.text());
    assert!(
        took < 5.5,
        "one 3 s deadline, not two: {took:.1} s\n{}",
        out.text()
    );
    let said = out
        .text()
        .matches("the server did not answer in time")
        .count();
    assert_eq!(said, 1, "said once:\n{}", out.text());
    drop(silent);
}

/// A URL of one engine on the other's port: the error names the protocol that answered.
#[test]
fn a_url_on_the_other_engines_port_says_which_protocol_answered() {
    let dir = tempfile::tempdir().unwrap();
    let attempt = |target: &str, report: &str| {
        let out = fleetload(&[
            "run",
            "--target",
            target,
            "--rows",
            "100",
            "--rate",
            "10",
            "--duration",
            "2s",
            "--connect-timeout",
            "2s",
            "--report-dir",
            dir.path().join(report).to_str().unwrap(),
        ]);
        assert_eq!(out.code, Some(1), "{}", out.text());
        out.text()
    };
    let text = attempt("postgres://root@127.0.0.1:3306/test", "a");
    assert!(
        text.contains("does not speak PostgreSQL")
            && text.contains("port 3306 is MySQL's: for MySQL or MariaDB write mysql://")
            && !text.contains("sqlx_postgres::"),
        "{text}"
    );
    let text = attempt("mysql://root@127.0.0.1:5432/test", "b");
    assert!(
        text.contains("port 5432 is PostgreSQL's") && text.contains("write postgres://"),
        "{text}"
    );
}

/// Plan files as users get them wrong: a misspelled key gets the nearest one, a key
/// TOML moved into `[[stage]]` is named with its line, and run-wide thresholds written
/// under the last stage are flagged.
#[test]
fn plan_file_mistakes_are_named_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite(dir.path());
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let p = write("typo.toml", &format!("target = \"{db}\"\nsesions = 4\n"));
    let out = fleetload(&["run", "--plan", &p]);
    assert_ne!(out.code, Some(0));
    assert!(
        out.text().contains("did you mean `sessions`?"),
        "{}",
        out.text()
    );
    let p = write(
        "moved.toml",
        &format!("target = \"{db}\"\nrate = 10.0\n[[stage]]\nhold = \"2s\"\nsessions = 3\n"),
    );
    let out = fleetload(&["run", "--plan", &p]);
    assert_ne!(out.code, Some(0));
    assert!(
        out.text()
            .contains("line 5: `sessions` is a plan key, but it comes after [[stage]]"),
        "{}",
        out.text()
    );
    fleetload(&["prepare", "--target", &db, "--rows", "100"]).assert_ok();
    let p = write(
        "thresholds.toml",
        &format!("target = \"{db}\"\nrows = 100\nrate = 10.0\n[[stage]]\nhold = \"1s\"\nthresholds = [\"p99 < 5s\"]\n"),
    );
    let out = fleetload(&[
        "run",
        "--plan",
        &p,
        "--report-dir",
        dir.path().join("r").to_str().unwrap(),
    ]);
    assert!(
        out.stderr.contains("judges that stage only"),
        "{}",
        out.text()
    );
}

/// `--help` of the data commands lists what they use, not the run's ~60 load flags,
/// while a shared plan file (or a flag) with load keys is still accepted.
#[test]
fn the_data_commands_help_lists_only_what_they_use() {
    for cmd in ["prepare", "check", "verify", "teardown"] {
        let out = fleetload(&[cmd, "--help"]);
        out.assert_ok();
        for load in [
            "--rate ",
            "--duration ",
            "--stage ",
            "--lease ",
            "--catch-up ",
        ] {
            assert!(!out.stdout.contains(load), "{cmd} --help lists {load}");
        }
        for data in ["--target ", "--scenario ", "--rows ", "--tls-ca "] {
            assert!(out.stdout.contains(data), "{cmd} --help lacks {data}");
        }
        assert!(
            out.stdout.contains("tpcc"),
            "{cmd}: the scenario help names tpcc"
        );
    }
    let run = fleetload(&["run", "--help"]);
    assert!(run.stdout.contains("--rate ") && run.stdout.contains("--stage "));
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite(dir.path());
    fleetload(&["prepare", "--target", &db, "--rows", "10", "--rate", "100"]).assert_ok();
}
