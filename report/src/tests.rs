//! A report built from fixed snapshots: what its text, CSV and HTML look like.
use super::*;
use fleetload_common::histogram::record;
use fleetload_common::outcome::ErrorClass;
use fleetload_common::wire::Snapshot;
use std::time::Duration;

/// Two workers, two operations, three 1 s intervals (the first warm-up), with fixed
/// latencies and one error: every number in the outputs follows from these.
pub(crate) fn fixture() -> Report {
    let raw = RawPlan {
        target: Some("postgres://app@db.example:5432/shop".into()),
        password_env: Some("PGPASSWORD".into()),
        rate: Some(40.0),
        warmup: Some("1s".into()),
        sessions: Some(4),
        stage: Some(vec![
            fleetload_common::plan::RawStage {
                step: Some(40.0),
                hold: Some("2s".into()),
                thresholds: Some(vec!["p50 < 5ms".into()]),
                ..Default::default()
            },
            fleetload_common::plan::RawStage {
                ramp: Some("1s".into()),
                to: Some(60.0),
                ..Default::default()
            },
        ]),
        thresholds: Some(vec!["p99 < 2ms".into(), "error_rate < 1%".into()]),
        ..RawPlan::default()
    };
    let plan = Plan::try_from(raw).expect("fixture plan");
    let ops: Vec<OpName> = ["point_select", "update_k"]
        .iter()
        .map(|n| OpName::new(n).unwrap())
        .collect();
    let mut merge = Merge::new(ops.clone(), 1);
    for worker in 0..2u32 {
        for interval in 0..3u64 {
            let operations = ops
                .iter()
                .enumerate()
                .map(|(k, op)| {
                    let mut s = OpStats::default();
                    let n = 10 + 5 * k as u64 + interval + u64::from(worker);
                    for i in 0..n {
                        let us = 200 + 50 * i + 1000 * k as u64 + 100 * interval;
                        record(&mut s.response, Duration::from_micros(us));
                        record(&mut s.service, Duration::from_micros(us - 20));
                        record(&mut s.lag, Duration::from_micros(20));
                    }
                    s.ok = n;
                    if k == 1 && interval == 2 && worker == 1 {
                        s.add_error(ErrorClass::Deadlock, || {
                            "Deadlock found when trying to get lock".into()
                        });
                        s.retries = 2;
                    }
                    (op.clone(), s)
                })
                .collect();
            merge
                .add(&Snapshot {
                    run_id: "run-fixture".into(),
                    worker_index: worker,
                    sequence: interval,
                    interval_index: interval,
                    operations,
                    // Worker 1 froze for 0.8 s in interval 2 (its own runtime).
                    events: if worker == 1 && interval == 2 {
                        vec![fleetload_common::events::WorkerEvent::Stall(
                            fleetload_common::events::Stall {
                                at: std::time::Duration::from_millis(2_100),
                                duration: std::time::Duration::from_millis(800),
                            },
                        )]
                    } else {
                        Vec::new()
                    },
                })
                .unwrap();
        }
    }
    let workers: Vec<WorkerInfo> = (0..2u32)
        .map(|i| WorkerInfo {
            index: i,
            insert_id_stride: 2,
            name: format!("worker-{i}"),
            host: format!("host-{i}"),
            peer: None,
            cores: 2,
            capacity: 2.0,
            shard: Shard {
                first: 1 + 5000 * u64::from(i),
                last: 5000 * (u64::from(i) + 1),
            },
            rate: Some(20.0),
            sessions: 4,
            state: "done".into(),
            message: None,
            executed: Some(
                merge
                    .operations
                    .iter()
                    .enumerate()
                    .map(|(k, op)| (op.clone(), merge.workers[&i].received[k]))
                    .collect(),
            ),
            inserted: None,
            away: if i == 0 { vec![(1.5, 2.5)] } else { Vec::new() },
            rows_loaded: None,
            clock: Some((1_500_000 * i64::from(i), 300_000)),
            first_op_unix_nanos: Some(
                1_795_752_306_000_000_000 + 1_500_000 * i64::from(i) + 200_000 * i64::from(i),
            ),
            rejected: Vec::new(),
            spool: None,
            lost_at_s: None,
        })
        .collect();
    Report::build(
        ReportInput {
            plan: &plan,
            run_id: "run-fixture",
            started_at: std::time::UNIX_EPOCH + Duration::from_secs(1_795_752_306),
            ran_for: Duration::from_secs(3),
            workers: &workers,
            failures: Vec::new(),
            interrupted: false,
            database_counters: crate::counters::DatabaseCounters::default(),
            membership: Vec::new(),
            changes: vec![Membership {
                t_s: 2.0,
                event: "set-rate 60 ops/s (was 40.0) from 2.0s, by ctl".into(),
            }],
            planned: plan.cluster_profile(),
            start_unix_nanos: 1_795_752_306_000_000_000,
            capacity: None,
        },
        &merge,
    )
}

fn redacted<R>(f: impl FnOnce() -> R) -> R {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "[time]");
    settings.add_filter(r"run-\d{8}T\d{6}-[0-9a-f]{4}", "[run-id]");
    settings.bind(f)
}

#[test]
fn the_text_summary_reads_as_reviewed() {
    let r = fixture();
    redacted(|| insta::assert_snapshot!("summary", text::render(&r)));
}

#[test]
fn the_csv_reads_as_reviewed() {
    let r = fixture();
    redacted(|| insta::assert_snapshot!("csv", files::csv(&r)));
}

/// What users noticed: "1 workers", a constant-rate header on staged runs, 0.000ms
/// for nothing measured, three identical error samples, open-loop wording in a
/// closed-loop report.
#[test]
fn the_summary_says_what_ran_in_plain_words() {
    assert_eq!(count_of(1, "worker", "workers"), "1 worker");
    assert_eq!(count_of(3, "worker", "workers"), "3 workers");
    let mut r = fixture();
    assert_eq!(r.load_description(), "open loop, 2 stages up to 60 ops/s");
    r.plan.stage = None;
    assert_eq!(r.load_description(), "open loop at 40 ops/s");
    r.plan.mode = Some(fleetload_common::plan::Mode::Closed);
    r.plan.think_time = Some("5ms".into());
    assert_eq!(r.load_description(), "closed loop, think time 5ms");
    assert_eq!(r.response_time_definition(), "completion − send");
    let text = text::render(&r);
    assert!(text.contains("response time (completion − send)"), "{text}");

    let mut r = fixture();
    let op = r.operations.values_mut().next().unwrap();
    op.count = 0;
    let same = ErrorSampleJson {
        class: ErrorClass::Connect,
        message: "refused".into(),
    };
    op.error_samples = vec![same.clone(), same.clone(), same];
    op.error_total = 3;
    let text = text::render(&r);
    assert!(
        text.contains("—"),
        "no latency shown for no success: {text}"
    );
    assert_eq!(text.matches("refused").count(), 1, "{text}");
    assert!(text.contains("(×3 in the samples)"), "{text}");
}

#[test]
fn the_json_reads_back_into_the_same_report() {
    let r = fixture();
    let dir = std::env::temp_dir().join(format!("fl-report-{}", std::process::id()));
    r.write_to(&dir).unwrap();
    let back = Report::from_json_file(&dir.join("report.json")).unwrap();
    assert_eq!(text::render(&back), text::render(&r));
    assert_eq!(html::render(&back), html::render(&r));
    assert_eq!(files::csv(&back), files::csv(&r));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_html_chart_has_data_points_and_the_page_needs_nothing_outside() {
    let r = fixture();
    let charts = charts::charts(&r);
    let ids: Vec<&str> = charts.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "throughput",
            "latency-point_select",
            "latency-update_k",
            "errors",
            "workers",
            "distribution"
        ]
    );
    for c in &charts {
        assert!(c.point_count() > 0, "{} has no points", c.id);
    }
    let page = html::render(&r);
    // Self-contained: the only URLs are the SVG namespace names, which are not fetched.
    assert_eq!(
        page.matches("http://").count(),
        page.matches("xmlns=\"http://www.w3.org/2000/svg\"").count()
    );
    assert!(!page.contains("<script") && !page.contains("https://"));
    assert!(page.contains("planned rate") && page.contains("Deadlock found"));
    assert!(!page.contains("PGPASSWORD=") && page.contains("postgres://app@db.example:5432/shop"));
}
