//! The report as people and tools read it after a run: report.html in a real browser,
//! `fleetload report show | html | compare` on real report.json files.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn run_sqlite(db_dir: &Path, rate: &str, report: &Path) {
    let target = sqlite(db_dir);
    fleetload(&[
        "run",
        "--target",
        &target,
        "--scenario",
        "churn",
        "--rows",
        "2000",
        "--prepare",
        "--mix",
        "read_customer=2,predict_one=1",
        "--rate",
        rate,
        "--duration",
        "3s",
        "--workers",
        "2",
        "--report-dir",
        report.to_str().unwrap(),
    ])
    .assert_ok();
}

fn chromium() -> PathBuf {
    for c in [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ] {
        if Path::new(c).exists() {
            return PathBuf::from(c);
        }
    }
    panic!("no Chromium: install Debian's chromium package (scripts/test does)");
}

/// report.html opens in headless Chromium without a console error, every chart in the
/// rendered page has data points, and a screenshot is kept in target/ for people.
#[test]
fn report_html_renders_in_chromium_with_data_in_every_chart() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report");
    run_sqlite(dir.path(), "120", &report);
    let html = report.join("report.html");
    let url = format!("file://{}", html.display());
    let profile = tempfile::tempdir().unwrap();
    let shot = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/report-screenshot.png");
    // (The target directory may live elsewhere: CARGO_TARGET_DIR.)
    std::fs::create_dir_all(shot.parent().unwrap()).unwrap();
    let common_flags = [
        "--headless".to_string(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--no-first-run".into(),
        format!("--user-data-dir={}", profile.path().display()),
        "--enable-logging=stderr".into(),
        "--v=0".into(),
    ];
    let dom = Command::new(chromium())
        .args(&common_flags)
        .args(["--dump-dom", &url])
        .output()
        .expect("run chromium");
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let page = String::from_utf8_lossy(&dom.stdout);
    let log = String::from_utf8_lossy(&dom.stderr);
    let console_errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("CONSOLE") && (l.contains("ERROR") || l.contains("Uncaught")))
        .collect();
    assert!(
        console_errors.is_empty(),
        "console errors: {console_errors:#?}"
    );

    // Every chart Chromium rendered has points, and a line to draw through them.
    let charts: Vec<&str> = page.split("<svg class=\"chart\"").skip(1).collect();
    assert!(charts.len() >= 6, "{} charts in the page", charts.len());
    for c in &charts {
        let svg = &c[..c.find("</svg>").unwrap()];
        let id = svg
            .split("id=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let points: usize = svg
            .split("data-points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(points > 0, "chart {id} has no data");
        assert!(svg.contains("<polyline"), "chart {id} draws no line");
        assert!(!svg.contains("NaN"), "chart {id} has NaN coordinates");
    }
    for id in [
        "throughput",
        "latency-predict_one",
        "latency-read_customer",
        "errors",
        "workers",
        "distribution",
        "database",
    ] {
        assert!(page.contains(&format!("id=\"{id}\"")), "chart {id} missing");
    }

    let out = Command::new(chromium())
        .args(&common_flags)
        .args(["--hide-scrollbars", "--window-size=1050,2600"])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&url)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "screenshot of {} bytes",
        png.len()
    );
}

/// `report show` prints exactly the summary the run printed; `report html` renders the
/// same page again; `report compare` marks a tripled rate and nothing when a run is
/// compared with itself; a file that is not a report gets a clear error.
#[test]
fn report_show_html_and_compare_read_report_json_again() {
    let dir = tempfile::tempdir().unwrap();
    let (slow, fast) = (dir.path().join("slow"), dir.path().join("fast"));
    run_sqlite(dir.path(), "60", &slow);
    run_sqlite(dir.path(), "180", &fast);
    let json = |d: &Path| d.join("report.json").to_str().unwrap().to_string();

    let show = fleetload(&["report", "show", &json(&slow)]);
    show.assert_ok();
    assert_eq!(
        show.stdout,
        std::fs::read_to_string(slow.join("report.txt")).unwrap()
    );

    let again = dir.path().join("again.html");
    fleetload(&[
        "report",
        "html",
        &json(&slow),
        "--out",
        again.to_str().unwrap(),
    ])
    .assert_ok();
    assert_eq!(
        std::fs::read_to_string(&again).unwrap(),
        std::fs::read_to_string(slow.join("report.html")).unwrap()
    );

    let cmp = fleetload(&["report", "compare", &json(&slow), &json(&fast)]);
    cmp.assert_ok();
    let line = |op: &str, metric: &str| -> String {
        cmp.stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(op) && l.contains(metric))
            .unwrap_or_else(|| panic!("no {op} {metric} row in\n{}", cmp.stdout))
            .to_string()
    };
    for op in ["read_customer", "predict_one"] {
        let ok = line(op, "ok/s");
        assert!(
            ok.trim_end().ends_with('*'),
            "tripled rate not marked: {ok}"
        );
        let pct: f64 = ok
            .split_whitespace()
            .find(|w| w.ends_with('%'))
            .and_then(|w| w.trim_end_matches('%').parse().ok())
            .unwrap();
        assert!(
            (100.0..400.0).contains(&pct),
            "three times the rate, give or take the random mix: {ok}"
        );
    }
    let same = fleetload(&["report", "compare", &json(&fast), &json(&fast)]);
    same.assert_ok();
    assert!(
        !same.stdout.lines().any(|l| l.trim_end().ends_with(" *")),
        "a run compared with itself shows a change:\n{}",
        same.stdout
    );

    let bad = dir.path().join("not-a-report.json");
    std::fs::write(&bad, "{\"hello\": 1}").unwrap();
    let out = fleetload(&["report", "show", bad.to_str().unwrap()]);
    assert_ne!(out.code, Some(0));
    assert!(
        out.stderr.contains("is not a fleetload report"),
        "{}",
        out.stderr
    );
}

/// Without --report-dir every run gets a directory of its own under
/// fleetload-report/, and fleetload-report/latest points at the newest; `report html
/// -o FILE` renders one where asked.
#[test]
fn each_run_keeps_its_own_report_directory_and_latest_points_at_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let target = sqlite(dir.path());
    fleetload(&["prepare", "--target", &target, "--rows", "200"]).assert_ok();
    let mut run_ids = Vec::new();
    for _ in 0..2 {
        let (code, out) = output(spawn(
            &[
                "run",
                "--target",
                &target,
                "--rate",
                "20",
                "--duration",
                "1s",
            ],
            dir.path(),
        ));
        assert_eq!(code, Some(0), "{out}");
        let latest: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("fleetload-report/latest/report.json"))
                .unwrap(),
        )
        .unwrap();
        run_ids.push(latest["run_id"].as_str().unwrap().to_string());
    }
    assert_ne!(run_ids[0], run_ids[1]);
    for id in &run_ids {
        assert!(
            dir.path()
                .join("fleetload-report")
                .join(id)
                .join("report.html")
                .exists(),
            "run {id} kept its own files"
        );
    }
    let page = dir.path().join("page.html");
    let json = dir
        .path()
        .join("fleetload-report")
        .join(&run_ids[0])
        .join("report.json");
    fleetload(&[
        "report",
        "html",
        json.to_str().unwrap(),
        "-o",
        page.to_str().unwrap(),
    ])
    .assert_ok();
    assert!(std::fs::read_to_string(&page)
        .unwrap()
        .contains(&run_ids[0]));
}

/// The demo runs with nothing installed and says what it did; its database is gone when
/// it ends, so it does not suggest checking it, and its report has a directory of its
/// own.
#[test]
fn the_demo_runs_and_does_not_point_at_its_removed_database() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = output(spawn(&["demo", "--duration", "2s"], dir.path()));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("temporary database, removed with it"), "{out}");
    assert!(!out.contains("check them with `fleetload verify`"), "{out}");
    assert!(dir
        .path()
        .join("fleetload-report/latest/report.html")
        .exists());
}

/// A report directory is never reused silently, and a run that fails before its start
/// still leaves a report.json (status failed, with why) where its report would go.
#[test]
fn a_report_dir_is_never_overwritten_and_a_run_failing_before_its_start_writes_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let same = dir.path().join("r/same");
    run_sqlite(dir.path(), "100", &same);
    let first = read_report(&same)["run_id"].as_str().unwrap().to_string();
    let target = sqlite(dir.path());
    let out = fleetload(&[
        "run",
        "--target",
        &target,
        "--scenario",
        "churn",
        "--rate",
        "100",
        "--duration",
        "2s",
        "--report-dir",
        same.to_str().unwrap(),
    ]);
    assert_ne!(out.code, Some(0), "{}", out.text());
    assert!(
        out.text().contains("already holds a run's report") && out.text().contains(&first),
        "{}",
        out.text()
    );
    assert_eq!(
        read_report(&same)["run_id"],
        first.as_str(),
        "the first run's report is untouched"
    );

    // A table that does not exist: the run fails before its start, with a report.
    let empty = tempfile::tempdir().unwrap();
    let target = format!("sqlite://{}", empty.path().join("empty.db").display());
    let run_args = |extra: &[&str]| -> Vec<String> {
        [
            "run",
            "--target",
            &target,
            "--scenario",
            "point_select",
            "--rate",
            "100",
            "--duration",
            "2s",
        ]
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect()
    };
    let run = |extra: &[&str]| {
        let args = run_args(extra);
        fleetload(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let failed = dir.path().join("failed");
    let out = run(&["--report-dir", failed.to_str().unwrap()]);
    assert_eq!(out.code, Some(1), "{}", out.text());
    let r = read_report(&failed);
    assert_eq!(r["status"], "failed", "{r:#}");
    let why = r["failures"][0].as_str().unwrap();
    assert!(why.contains("before its start"), "{why}");
    assert!(
        out.stdout.contains("report of the failed run written to"),
        "{}",
        out.text()
    );

    // The same without --report-dir: in fleetload-report/<run id>/, with `latest`.
    let cwd = tempfile::tempdir().unwrap();
    let args = run_args(&[]);
    let child = spawn(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        cwd.path(),
    );
    let (code, text) = output(child);
    assert_eq!(code, Some(1), "{text}");
    let r = read_report(&cwd.path().join("fleetload-report/latest"));
    assert_eq!(r["status"], "failed", "{text}");

    // A --report-dir that cannot be made is refused before anything runs.
    let out = run(&["--report-dir", "/proc/self/fleetload-report"]);
    assert_ne!(out.code, Some(0));
    assert!(
        out.text()
            .contains("--report-dir /proc/self/fleetload-report cannot be used"),
        "{}",
        out.text()
    );
}
