//! The coordinator's Prometheus endpoint, scraped over a real socket during a real run,
//! and the Grafana dashboard that reads it.

mod common;
use common::*;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn scrape(port: u16) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    let (head, body) = body.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Scraped while the run goes, the counters grow; scraped after it (during
/// --metrics-hold), they equal what the report says every worker executed.
#[test]
fn metrics_scraped_during_a_run_end_equal_to_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let target = sqlite(dir.path());
    fleetload(&["prepare", "--target", &target, "--rows", "2000"]).assert_ok();
    let listen = free_port();
    let port: u16 = listen.rsplit(':').next().unwrap().parse().unwrap();
    let report = dir.path().join("report");
    let mut child = Command::new(BIN)
        .args([
            "run",
            "--target",
            &target,
            "--rows",
            "2000",
            "--rate",
            "200",
            "--duration",
            "4s",
            "--workers",
            "2",
            "--metrics-listen",
            &listen,
            "--metrics-hold",
            "3s",
            "--report-dir",
            report.to_str().unwrap(),
        ])
        .env("FLEETLOAD_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut during = Vec::new();
    let mut last = None;
    while started.elapsed() < Duration::from_secs(60) {
        let done = report.join("report.json").exists();
        if let Some(text) = scrape(port) {
            if done {
                last = Some(text);
                break;
            }
            during.push(text);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let status = child.wait().unwrap();
    assert!(status.success());
    let last = last.expect("the endpoint answered after the report was written (--metrics-hold)");
    let r = read_report(&report);
    let ops = "fleetload_operations_total{operation=\"point_select\",role=\"read\"}";
    let executed: u64 = r["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| u(&w["executed"]["point_select"]["ok"]))
        .sum();
    assert_eq!(value(&last, ops), Some(executed as f64), "{last}");
    assert!(
        during
            .iter()
            .filter_map(|t| value(t, ops))
            .any(|v| v > 0.0 && v < executed as f64),
        "no scrape saw the run in progress"
    );
    let errors: f64 = last
        .lines()
        .filter(|l| l.starts_with("fleetload_errors_total{operation=\"point_select\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(
        errors,
        u(&r["operations"]["point_select"]["error_total"]) as f64
    );
    assert_eq!(value(&last, "fleetload_target_rate"), Some(200.0));
    assert_eq!(value(&last, "fleetload_workers_connected"), Some(2.0));
    let p99 = value(
        &last,
        "fleetload_response_time_seconds{operation=\"point_select\",role=\"read\",percentile=\"99\"}",
    )
    .unwrap();
    assert!(p99 > 0.0 && p99 < 1.0, "{p99}");

    // Lint-clean for Prometheus itself (Debian's promtool, which scripts/test installs):
    // during the run and after it.
    for text in during.iter().take(1).chain([&last]) {
        let mut lint = std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("promtool (Debian's prometheus package) is installed");
        use std::io::Write;
        lint.stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = lint.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool check metrics:\n{}{}\n{text}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The shipped dashboard only asks for metrics the endpoint serves.
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("deploy/grafana/fleetload-dashboard.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let served: Vec<&str> = last
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let mut asked = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            for name in expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("fleetload_"))
            {
                assert!(
                    served.contains(&name),
                    "dashboard panel {} asks for {name}, not served",
                    panel["title"]
                );
                asked += 1;
            }
        }
    }
    assert!(asked >= 10);
}
