//! CloudWatch around a run, offline but real: a moto server on loopback (PyPI
//! `moto[server]`) takes metric data with PutMetricData while a churn run runs, and the
//! report, report.html and the live dashboard show exactly those points on the run's
//! timeline; a CloudWatch that cannot be reached costs the run nothing.

mod common;

#[path = "common/moto.rs"]
mod moto;

use common::*;
use moto::{run_env, Moto};
use std::io::Write;

/// The live dashboard's event stream at `addr` (dialled until it listens), as read for
/// `within`.
fn live_events(addr: &str, within: std::time::Duration) -> String {
    use std::io::Read;
    let until = std::time::Instant::now() + within;
    let mut out = Vec::new();
    while std::time::Instant::now() < until {
        let Ok(mut s) = std::net::TcpStream::connect(addr) else {
            std::thread::sleep(std::time::Duration::from_millis(20));
            continue;
        };
        let _ = write!(s, "GET /events HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        let _ = s.set_read_timeout(Some(std::time::Duration::from_millis(200)));
        let mut buf = vec![0u8; 65536];
        while std::time::Instant::now() < until {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
        }
        break;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Put one high-resolution point per whole second into moto until `stop`: (metric,
/// dimensions) → value. Returns what it put: (metric, unix second, value, and when
/// moto had it, Unix seconds).
fn put_points_every_second(
    moto: &Moto,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Vec<(String, u64, f64, f64)>> {
    use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
    let endpoint_port = moto.port;
    std::thread::spawn(move || {
        let moto_port = endpoint_port;
        Moto::block_on(async move {
            let cfg = moto::config_for(moto_port).await;
            let cw = aws_sdk_cloudwatch::Client::new(&cfg);
            let dim = |n: &str, v: &str| Dimension::builder().name(n).value(v).build();
            let mut put = Vec::new();
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && n < 120 {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap();
                let second = now.as_secs();
                let at = aws_smithy_types::DateTime::from_secs(second as i64);
                n += 1;
                let points = [
                    (
                        "AWS/RDS",
                        "CPUUtilization",
                        vec![dim("DBClusterIdentifier", "churn-db")],
                        20.0 + n as f64,
                    ),
                    (
                        "AWS/SageMaker",
                        "ModelLatency",
                        vec![
                            dim("EndpointName", "churn-ep"),
                            dim("VariantName", "AllTraffic"),
                        ],
                        4000.0 + 10.0 * n as f64,
                    ),
                    (
                        "AWS/SageMaker",
                        "Invocations",
                        vec![
                            dim("EndpointName", "churn-ep"),
                            dim("VariantName", "AllTraffic"),
                        ],
                        40.0 + n as f64,
                    ),
                    // Another cluster's: not asked for, never in the report.
                    (
                        "AWS/RDS",
                        "CPUUtilization",
                        vec![dim("DBClusterIdentifier", "other-db")],
                        99.0,
                    ),
                ];
                for (namespace, metric, dims, value) in points {
                    let datum = MetricDatum::builder()
                        .metric_name(metric)
                        .set_dimensions(Some(dims.clone()))
                        .value(value)
                        .storage_resolution(1)
                        .timestamp(at)
                        .build();
                    cw.put_metric_data()
                        .namespace(namespace)
                        .metric_data(datum)
                        .send()
                        .await
                        .expect("put_metric_data");
                    if dims[0].value() != Some("other-db") {
                        let stored = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .unwrap()
                            .as_secs_f64();
                        put.push((metric.to_string(), second, value, stored));
                    }
                }
                let next = std::time::Duration::from_secs(second + 1) - now
                    + std::time::Duration::from_millis(20);
                tokio::time::sleep(next).await;
            }
            put
        })
    })
}

/// CloudWatch series put into moto while a churn run runs come back in report.json
/// exactly (every point, value and second) on the run's timeline, only for the cluster
/// and endpoint the plan names, and beside the client's p99 in report.html.
#[test]
fn cloudwatch_series_land_on_the_run_s_timeline_exactly() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let target = sqlite(dir.path());
    fleetload(&[
        "prepare",
        "--scenario",
        "churn",
        "--target",
        &target,
        "--rows",
        "300",
    ])
    .assert_ok();
    // A point long before the run: outside its window.
    Moto::block_on(async {
        let cw = aws_sdk_cloudwatch::Client::new(&moto.config().await);
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(300);
        cw.put_metric_data()
            .namespace("AWS/RDS")
            .metric_data(
                aws_sdk_cloudwatch::types::MetricDatum::builder()
                    .metric_name("CPUUtilization")
                    .dimensions(
                        aws_sdk_cloudwatch::types::Dimension::builder()
                            .name("DBClusterIdentifier")
                            .value("churn-db")
                            .build(),
                    )
                    .value(1234.0)
                    .storage_resolution(1)
                    .timestamp(aws_smithy_types::DateTime::from(old))
                    .build(),
            )
            .send()
            .await
            .unwrap();
    });
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let putter = put_points_every_second(&moto, stop.clone());
    let ui = free_port();
    let sse = {
        let ui = ui.clone();
        std::thread::spawn(move || live_events(&ui, std::time::Duration::from_secs(9)))
    };
    let report = dir.path().join("report");
    let env = moto.env(dir.path());
    let (code, log) = run_env(
        &[
            "run",
            "--scenario",
            "churn",
            "--target",
            &target,
            "--rows",
            "300",
            "--workers",
            "2",
            "--rate",
            "40",
            "--duration",
            "5s",
            "--interval",
            "1s",
            "--cloudwatch",
            "db_cluster=churn-db,sagemaker_endpoint=churn-ep,period=1s",
            "--ui-listen",
            &ui,
            "--ui-hold",
            "0s",
            "--report-dir",
            report.to_str().unwrap(),
        ],
        dir.path(),
        &env,
    );
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let put = putter.join().unwrap();
    assert_eq!(code, Some(0), "{log}");
    let r = read_report(&report);
    assert_eq!(r["status"], "passed", "{log}");
    let cw = &r["cloudwatch"];
    let start = f(&cw["start_unix_s"]);
    assert_eq!(u(&cw["period_s"]), 1);
    let series = cw["series"].as_array().unwrap();
    let mut metrics: Vec<&str> = series
        .iter()
        .map(|s| s["metric"].as_str().unwrap())
        .collect();
    metrics.sort_unstable();
    assert_eq!(
        metrics,
        ["CPUUtilization", "Invocations", "ModelLatency"],
        "{cw}"
    );
    for s in series {
        let metric = s["metric"].as_str().unwrap();
        let got: Vec<(u64, f64)> = s["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let at = f(&p[0]) + start;
                assert!(
                    (at - at.round()).abs() < 0.01,
                    "{metric}: {p} is not on a whole second after {start}"
                );
                (at.round() as u64, f(&p[1]))
            })
            .collect();
        let wanted: Vec<(u64, f64)> = put
            .iter()
            .filter(|(m, ..)| m == metric)
            .map(|(_, t, v, _)| (*t, *v))
            .collect();
        // Every point in the report is one that was put, at its second, with its value.
        for p in &got {
            assert!(
                wanted.contains(p),
                "{metric}: {p:?} was never put ({wanted:?})"
            );
        }
        // Every point of the run's seconds that moto had by the run's end (the last
        // fetch comes after it) is in the report.
        for (_, t, v, _) in put.iter().filter(|(m, t, _, stored)| {
            m == metric && *t as f64 >= start.ceil() && *stored < start + 5.0
        }) {
            let p = (*t, *v);
            assert!(got.contains(&p), "{metric}: {p:?} is missing ({got:?})");
        }
        assert!(got.len() >= 4, "{metric}: {got:?}");
        assert!(
            !got.iter().any(|(_, v)| *v == 1234.0 || *v == 99.0),
            "{metric}: a point from outside the window or another cluster"
        );
    }
    // The live dashboard got CloudWatch's series while the run ran.
    let events = sse.join().unwrap();
    assert!(
        events.contains("event: cloudwatch") && events.contains("CPUUtilization"),
        "no cloudwatch event on the live dashboard: {}",
        &events[..events.len().min(2000)]
    );
    let html = std::fs::read_to_string(report.join("report.html")).unwrap();
    for chart in [
        "cloudwatch-latency",
        "cloudwatch-load",
        "cloudwatch-cpuutilization",
        "p99 predict_one",
    ] {
        assert!(html.contains(chart), "report.html has no {chart}");
    }
    assert!(
        log.contains("CloudWatch") && log.contains("CPUUtilization"),
        "{log}"
    );
}

/// A CloudWatch that cannot be reached costs the run nothing: it passes, the report
/// says why there are no series, and the end is not held up past the bounded last
/// fetch.
#[test]
fn an_unreachable_cloudwatch_leaves_a_note_and_the_run_passes() {
    let dir = tempfile::tempdir().unwrap();
    let target = sqlite(dir.path());
    fleetload(&["prepare", "--target", &target, "--rows", "300"]).assert_ok();
    let closed = free_port_number();
    let env = vec![
        ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{closed}")),
        ("AWS_ACCESS_KEY_ID", "AKIDX".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "x".to_string()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
        ("HOME", dir.path().display().to_string()),
    ];
    let report = dir.path().join("report");
    let began = std::time::Instant::now();
    let (code, log) = run_env(
        &[
            "run",
            "--target",
            &target,
            "--rows",
            "300",
            "--workers",
            "1",
            "--rate",
            "20",
            "--duration",
            "2s",
            "--region",
            "eu-west-1",
            "--cloudwatch",
            "db_cluster=churn-db,period=60s",
            "--report-dir",
            report.to_str().unwrap(),
        ],
        dir.path(),
        &env,
    );
    assert_eq!(code, Some(0), "{log}");
    assert!(
        began.elapsed() < std::time::Duration::from_secs(40),
        "held up for {:?}",
        began.elapsed()
    );
    let r = read_report(&report);
    assert_eq!(r["status"], "passed");
    let cw = &r["cloudwatch"];
    assert_eq!(cw["region"], "eu-west-1");
    assert!(cw["series"].as_array().unwrap().is_empty(), "{cw}");
    let notes = cw["notes"].to_string();
    assert!(
        notes.contains("could not read CloudWatch after the run")
            || notes.contains("did not answer"),
        "{notes}"
    );
}
