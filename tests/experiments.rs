//! Coordinated experiments end to end, on real processes over real sockets: load
//! shapes across the fleet, live control, thresholds, clock offsets, workers joining
//! late, and the capacity search.

mod common;
use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Child;
use std::time::Duration;

fn finish(child: Child) -> i32 {
    output(child).0.unwrap_or(-1)
}

/// Wait for the coordinator, which must pass, and its workers; the run's report.
fn report_after(lab: &Site, coordinator: Child, workers: impl IntoIterator<Item = Child>) -> Value {
    assert_eq!(finish(coordinator), 0);
    for w in workers {
        finish(w);
    }
    lab.report()
}

/// `fleetload ctl` against this site's coordinator.
fn ctl(lab: &Site, args: &[&str]) -> Invocation {
    let mut all = vec!["ctl", "--coordinator", &lab.addr];
    all.extend_from_slice(args);
    fleetload(&all)
}

/// Operations (ok + errors + dropped) of the cluster, or of one worker, per interval.
fn counts(r: &Value, worker: Option<&str>) -> Vec<u64> {
    r["intervals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| match worker {
            None => i["operations"]
                .as_object()
                .unwrap()
                .values()
                .map(|o| u(&o["count"]) + u(&o["error_total"]) + u(&o["dropped_backlog"]))
                .sum(),
            Some(w) => i["per_worker"][w].as_object().map_or(0, |ops| {
                ops.values().map(|b| u(&b["count"]) + u(&b["errors"])).sum()
            }),
        })
        .collect()
}

/// Planned operations in interval k of 1 s, from the report's planned profile.
fn planned(r: &Value, k: usize) -> f64 {
    let points: Vec<(f64, f64)> = r["planned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (f(&p[0]), f(&p[1])))
        .collect();
    let at = |t: f64| {
        let idx = points.partition_point(|(pt, _)| *pt <= t);
        if idx == 0 {
            return points[0].1;
        }
        if idx == points.len() {
            return points[idx - 1].1;
        }
        let ((t0, v0), (t1, v1)) = (points[idx - 1], points[idx]);
        if t1 <= t0 {
            v1
        } else {
            v0 + (v1 - v0) * (t - t0) / (t1 - t0)
        }
    };
    // Trapezoids at 1 ms steps: exact for piecewise-linear profiles up to the steps.
    let steps = 1000;
    (0..steps)
        .map(|s| at(k as f64 + (s as f64 + 0.5) / steps as f64) / steps as f64)
        .sum()
}

/// Ramp, hold, step across three workers: every interval's cluster count tracks the plan
/// within 3 % (or one operation per worker, when the interval plans few).
#[test]
fn a_three_stage_plan_across_three_workers_tracks_the_planned_rate() {
    let lab = Site::new(3000, &[]);
    let c = lab.coordinator(
        &[
            "--workers",
            "3",
            "--mode",
            "open",
            "--rate",
            "60",
            "--stage",
            "ramp:3s:450",
            "--stage",
            "hold:2s",
            "--stage",
            "step:150:2s",
        ],
        &[],
    );
    let workers: Vec<Child> = (0..3).map(|_| lab.worker(&[])).collect();
    let r = report_after(&lab, c, workers);
    assert_eq!(r["stages"].as_array().unwrap().len(), 3);
    let got = counts(&r, None);
    assert_eq!(got.len(), 7);
    for (k, n) in got.iter().enumerate() {
        let want = planned(&r, k);
        let tolerance = (want * 0.03).max(3.0);
        assert!(
            (*n as f64 - want).abs() <= tolerance,
            "interval {k}: {n} operations, the plan says {want:.1} (all: {got:?})"
        );
    }
    // The stage summaries agree with the plan too.
    let hold = &r["stages"][1];
    assert!(
        (f(&hold["all"]["ok_per_s"]) - 450.0).abs() < 450.0 * 0.03,
        "{hold:#}"
    );
}

/// Closed loop: stages set how many sessions run.
#[test]
fn closed_loop_stages_set_the_active_sessions() {
    let lab = Site::new(3000, &[]);
    let c = lab.coordinator(
        &[
            "--workers",
            "2",
            "--mode",
            "closed",
            "--sessions",
            "4",
            "--think-time",
            "50ms",
            "--stage",
            "step:2:3s",
            "--stage",
            "step:8:3s",
        ],
        &[],
    );
    let workers: Vec<Child> = (0..2).map(|_| lab.worker(&[])).collect();
    let r = report_after(&lab, c, workers);
    let stages = r["stages"].as_array().unwrap();
    let (few, many) = (
        f(&stages[0]["all"]["ok_per_s"]),
        f(&stages[1]["all"]["ok_per_s"]),
    );
    // Each session runs about 1 / 50 ms = 20 operations a second.
    assert!((30.0..42.0).contains(&few), "2 sessions: {few} ops/s");
    assert!(
        (many / few - 4.0).abs() < 0.6,
        "8 sessions vs 2: {many} vs {few}"
    );
}

/// `ctl set-rate` reaches every worker within two intervals; pause stops the load and
/// resume brings back what ran before; status answers; the report marks each change.
#[test]
fn live_control_changes_the_running_experiment_on_every_worker() {
    let lab = Site::new(3000, &[]);
    // Two stages of 100 ops/s: the first ends before the first change, the second is
    // overridden by it.
    let plan = lab.dir.path().join("stages.toml");
    std::fs::write(
        &plan,
        "[[stage]]\nstep = 100\nhold = \"2s\"\nthresholds = [\"p99 < 10s\"]\n\n[[stage]]\nstep = 100\nhold = \"7s\"\nthresholds = [\"p99 < 10s\"]\n",
    )
    .unwrap();
    let c = lab.coordinator(
        &[
            "--workers",
            "2",
            "--mode",
            "open",
            "--plan",
            plan.to_str().unwrap(),
        ],
        &[],
    );
    let workers: Vec<Child> = (0..2).map(|_| lab.worker(&[])).collect();
    // Past the first stage (2 s), so the change overrides only the second.
    let at = lab.wait_elapsed(2.1);
    let status = ctl(&lab, &["status"]);
    status.assert_ok();
    let st: Value = serde_json::from_str(&status.stdout).expect("status is JSON");
    assert_eq!(st["state"], "running");
    assert_eq!(st["workers"].as_array().unwrap().len(), 2);
    ctl(&lab, &["set-rate", "300"]).assert_ok();
    lab.wait_elapsed(at + 2.5);
    ctl(&lab, &["pause"]).assert_ok();
    lab.wait_elapsed(at + 4.5);
    ctl(&lab, &["resume"]).assert_ok();
    let r = report_after(&lab, c, workers);
    let changes: Vec<(f64, String)> = r["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (f(&c["t_s"]), c["event"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(changes.len(), 3, "{changes:?}");
    assert!(
        changes[0].1.starts_with("set-rate 300")
            && changes[1].1.starts_with("paused")
            && changes[2].1.starts_with("resumed at 300")
    );
    let set_at = changes[0].0 as usize;
    let paused_at = changes[1].0 as usize;
    let resumed_at = changes[2].0 as usize;
    for w in ["0", "1"] {
        let per = counts(&r, Some(w));
        // Within two intervals of the command, each worker runs its half of 300/s.
        for k in set_at + 1..paused_at {
            assert!(
                (per[k] as i64 - 150).abs() <= 5,
                "worker {w} interval {k}: {per:?}"
            );
        }
        for k in paused_at + 1..resumed_at {
            assert_eq!(per[k], 0, "worker {w} ran while paused: {per:?}");
        }
        for k in resumed_at + 1..per.len() {
            assert!(
                (per[k] as i64 - 150).abs() <= 5,
                "worker {w} after resume: {per:?}"
            );
        }
    }
    // Per stage, planned and offered: the second stage ran as the changes said, and its
    // verdict says so; the first ran as planned.
    let stages = r["stages"].as_array().unwrap();
    assert_eq!(stages[0]["overridden"], Value::Null, "{:#}", stages[0]);
    assert_eq!(stages[1]["overridden"], true, "{:#}", stages[1]);
    assert_eq!(f(&stages[1]["planned_to"]), 100.0);
    assert_eq!(
        f(&stages[1]["offered_to"]),
        300.0,
        "resumed at 300 by the end"
    );
    let verdicts = r["thresholds"].as_array().unwrap();
    assert!(
        verdicts
            .iter()
            .any(|t| t["scope"] == "stage 2" && t["overridden"] == true),
        "{verdicts:#?}"
    );
    assert!(verdicts
        .iter()
        .any(|t| t["scope"] == "stage 1" && t["overridden"] == Value::Null));
    let text = std::fs::read_to_string(lab.report_dir().join("report.txt")).unwrap();
    assert!(text.contains("overridden"), "{text}");
}

/// A threshold that must fail fails, is reported and sets the exit status; with
/// abort_on_fail the load stops within two intervals of the grace.
#[test]
fn failed_thresholds_fail_the_run_and_abort_stops_the_load() {
    let dir = tempfile::tempdir().unwrap();
    let target = sqlite(dir.path());
    fleetload(&["prepare", "--target", &target, "--rows", "1000"]).assert_ok();
    let run = |report: &Path, extra: &[&str]| {
        let mut args = vec![
            "run",
            "--target",
            &target,
            "--rows",
            "1000",
            "--rate",
            "100",
            "--workers",
            "2",
            "--report-dir",
            report.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        fleetload(&args)
    };
    let plain = dir.path().join("plain");
    let out = run(
        &plain,
        &[
            "--duration",
            "3s",
            "--threshold",
            "p99 < 1us",
            "--threshold",
            "error_rate < 1%",
        ],
    );
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    let r = read_report(&plain);
    assert_eq!(r["status"], "failed");
    let t = r["thresholds"].as_array().unwrap();
    assert_eq!(
        (t[0]["passed"].as_bool(), t[1]["passed"].as_bool()),
        (Some(false), Some(true))
    );
    assert!(out.stdout.contains("FAIL p99 < 1us") && out.stdout.contains("PASS error_rate < 1%"));

    let aborted = dir.path().join("aborted");
    let out = run(
        &aborted,
        &[
            "--duration",
            "20s",
            "--threshold",
            "p99 < 1us",
            "--abort-on-fail",
            "--abort-grace",
            "2s",
        ],
    );
    assert_eq!(out.code, Some(1));
    let r = read_report(&aborted);
    let reason = r["failures"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .find(|f| f.starts_with("aborted at"))
        .unwrap_or_else(|| panic!("{:#}", r["failures"]))
        .to_string();
    let at: f64 = reason["aborted at ".len()..]
        .split('s')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((2.0..=4.0).contains(&at), "{reason}");
    let per = counts(&r, None);
    let last_busy = per.iter().rposition(|n| *n > 0).unwrap();
    assert!(
        last_busy as f64 <= at + 2.0,
        "load went on after the abort at {at}s: {per:?}"
    );
}

/// Workers whose clocks are off by a known amount: the coordinator's estimates are
/// within 2 ms of it and the corrected start skew across the fleet is under 5 ms.
#[test]
fn clock_offsets_are_estimated_and_the_start_is_synchronized() {
    let lab = Site::new(3000, &[]);
    let c = lab.coordinator(
        &["--workers", "3", "--rate", "150", "--duration", "3s"],
        &[],
    );
    let skews = [250i64, -120, 0];
    let workers: Vec<Child> = skews
        .iter()
        .map(|s| lab.worker(&["--clock-skew-ms", &s.to_string()]))
        .collect();
    let r = report_after(&lab, c, workers);
    let mut offsets: Vec<f64> = r["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| f(&w["clock_offset_ms"]))
        .collect();
    offsets.sort_by(f64::total_cmp);
    let mut want: Vec<f64> = skews.iter().map(|s| *s as f64).collect();
    want.sort_by(f64::total_cmp);
    for (got, want) in offsets.iter().zip(&want) {
        assert!(
            (got - want).abs() < 2.0,
            "estimated {got} ms for a clock {want} ms off"
        );
    }
    let skew = f(&r["start_skew_ms"]);
    assert!(skew < 5.0, "start skew {skew} ms");
}

/// A worker that joins a running run gets a share from the next interval on; the split
/// is rebalanced, membership records it, and the merge still equals what ran.
#[test]
fn a_worker_joining_late_gets_a_share_from_the_next_interval() {
    let lab = Site::new(3000, &[]);
    let c = lab.coordinator(
        &[
            "--workers",
            "1",
            "--max-workers",
            "2",
            "--rate",
            "200",
            "--duration",
            "6s",
        ],
        &[],
    );
    let first = lab.worker(&[]);
    lab.wait_elapsed(2.2);
    let late = lab.worker(&[]);
    let r = report_after(&lab, c, [first, late]);
    assert_eq!(r["status"], "passed", "{:#}", r["failures"]);
    assert_eq!(r["verification"]["merged_equals_executed"], true);
    let joined = r["membership"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["event"].as_str().unwrap().contains("joined"))
        .expect("membership records the join");
    let from = joined["event"]
        .as_str()
        .unwrap()
        .split("from ")
        .nth(1)
        .unwrap()
        .split('s')
        .next()
        .unwrap()
        .parse::<f64>()
        .unwrap() as usize;
    let (w0, w1, all) = (
        counts(&r, Some("0")),
        counts(&r, Some("1")),
        counts(&r, None),
    );
    for k in 0..all.len() {
        assert!(
            (all[k] as i64 - 200).abs() <= 4,
            "the cluster kept 200/s: {all:?}"
        );
        if k >= from {
            assert!(
                (w0[k] as i64 - 100).abs() <= 4 && (w1[k] as i64 - 100).abs() <= 4,
                "interval {k}: {w0:?} {w1:?}"
            );
        } else {
            assert_eq!(
                w1.get(k).copied().unwrap_or(0),
                0,
                "the late worker ran before its share: {w1:?}"
            );
        }
    }
}

/// The capacity search finds the rate at which a stand-in model endpoint (4 model
/// instances, 10 ms per request) saturates, within 15 % of the saturation measured by a
/// closed-loop run that keeps every instance busy.
#[test]
fn capacity_search_finds_the_saturation_point() {
    let target = fresh_pg("capacity");
    fleetload(&[
        "prepare",
        "--target",
        &target,
        "--password-env",
        PASSWORD_ENV,
        "--scenario",
        "churn",
        "--rows",
        "2000",
        "--ml-delay",
        "10ms",
        "--ml-capacity",
        "4",
    ])
    .assert_ok();
    let dir = tempfile::tempdir().unwrap();
    let common = [
        "--target",
        target.as_str(),
        "--password-env",
        PASSWORD_ENV,
        "--scenario",
        "churn",
        "--rows",
        "2000",
        "--mix",
        "predict_one=1",
        "--sessions",
        "12",
        "--workers",
        "2",
    ];
    let sat = dir.path().join("saturation");
    let mut args = vec![
        "run",
        "--duration",
        "4s",
        "--report-dir",
        sat.to_str().unwrap(),
    ];
    args.extend_from_slice(&common);
    fleetload(&args).assert_ok();
    let saturation = f(&read_report(&sat)["operations"]["predict_one"]["ok_per_s"]);
    let found = dir.path().join("found");
    let mut args = vec![
        "find-capacity",
        "--slo",
        "p99<100ms",
        "--start",
        "100",
        "--step",
        "1.6",
        "--stage-length",
        "3s",
        "--precision",
        "0.08",
        "--report-dir",
        found.to_str().unwrap(),
    ];
    args.extend_from_slice(&common);
    let out = fleetload_within(&args, Duration::from_secs(180));
    out.assert_ok();
    let r = read_report(&found);
    let answer = f(&r["capacity"]["answer"]);
    assert!(
        (answer - saturation).abs() <= saturation * 0.15,
        "capacity {answer} ops/s vs saturation {saturation} ops/s\n{}",
        out.stdout
    );
    assert_eq!(r["capacity"]["converged"], true);
    let curve = r["capacity"]["curve"].as_array().unwrap();
    assert!(
        curve.iter().any(|p| p["passed"] == false) && curve.iter().any(|p| p["passed"] == true)
    );
    assert!(out.stdout.contains("capacity (p99<100ms)"));
}

/// `--listen 127.0.0.1:0` prints the port the system chose, which workers can dial;
/// with room for more workers than came, insert ids step by the largest fleet the run
/// admits, and the report says so (verify checks the ids by that stride).
#[test]
fn port_zero_prints_the_bound_address_and_the_stride_is_the_admitted_fleet() {
    use std::io::BufRead;
    let lab = Site::new(500, &[]);
    let report = lab.report_dir();
    let mut c = std::process::Command::new(BIN)
        .args([
            "coordinator",
            "--listen",
            "127.0.0.1:0",
            "--target",
            &lab.target,
            "--rows",
            "500",
            "--workers",
            "1",
            "--max-workers",
            "3",
            "--rate",
            "20",
            "--duration",
            "2s",
            "--report-dir",
            report.to_str().unwrap(),
        ])
        .env("FLEETLOAD_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(c.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first
        .strip_prefix("coordinator listening on ")
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("{first}"))
        .to_string();
    assert!(
        !addr.ends_with(":0"),
        "the requested address, not the bound one: {first}"
    );
    let w = spawn(
        &["worker", "--coordinator", &format!("http://{addr}")],
        lab.dir.path(),
    );
    // Drain the rest so the coordinator never blocks on a full pipe.
    let drain = std::thread::spawn(move || lines.count());
    assert!(wait_within(&mut c, Duration::from_secs(60)).is_some_and(|s| s.success()));
    let _ = drain.join();
    assert_eq!(finish(w), 0);
    let r = lab.report();
    assert_eq!(
        u(&r["workers"][0]["insert_id_stride"]),
        3,
        "{:#}",
        r["workers"][0]
    );
}
