//! Runs that lose nothing, with real processes: a coordinator killed with SIGKILL
//! mid-run, its checkpoint and the workers' spools rebuilt into an exact report.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

fn kill(child: &Child, sig: &str) {
    assert!(std::process::Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success());
}

/// The spool files in `dir`.
fn spools_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("fleetload-unsent-"))
        })
        .collect();
    v.sort();
    v
}

/// Successful operations the report's worker `w` executed, by its own final totals,
/// and what the merge holds of it.
fn executed_and_merged(r: &serde_json::Value, name: &str) -> (u64, u64) {
    let w = r["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == name)
        .unwrap_or_else(|| panic!("no worker {name}"));
    let executed = u(&w["executed"]["point_select"]["ok"]);
    // Warm-up is 0 here, so the per-worker summary holds every merged operation.
    let merged = u(&w["operations"]["point_select"]["count"]);
    (executed, merged)
}

#[test]
fn a_coordinator_killed_mid_run_is_rebuilt_exactly_from_its_checkpoint_and_the_spools() {
    let site = Site::new(2000, &["--workers", "2"]);
    let (dir, addr) = (&site.dir, site.addr.clone());
    let report = site.report_dir();
    let mut coordinator = site.coordinator(
        &[
            "--rate",
            "200",
            "--duration",
            "30s",
            "--lease",
            "1s",
            "--checkpoint",
            "1s",
            "--rejoin",
            "off",
        ],
        &[],
    );
    let endpoint = format!("http://{addr}");
    // A spool directory that does not exist yet: the workers create it at start, so
    // what they spool when the coordinator dies is not lost.
    let spool_dir = dir.path().join("not/yet/spool");
    let mut workers = spooling_workers_into(&endpoint, 2, dir.path(), &spool_dir);
    site.wait_elapsed(3.5);
    kill(&coordinator, "-KILL");
    let _ = coordinator.wait();
    for w in &mut workers {
        wait_within(w, Duration::from_secs(15)).expect("a worker outlived its lease");
    }
    // The checkpoint is there and readable; report.json is not.
    let partial: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("report.partial.json")).unwrap())
            .unwrap();
    assert_eq!(partial["stage"], "running");
    assert!(!report.join("report.json").exists());
    let in_checkpoint = u(&partial["ok_so_far"]["point_select"]);
    assert!(in_checkpoint > 0, "{partial:#}");
    let spools = spools_in(&spool_dir);
    assert_eq!(spools.len(), 2, "{spools:?}");
    let rep = report.to_str().unwrap();
    let spool = |i: usize| spools[i].to_str().unwrap();

    // Without w1's spool: which worker is missing, and how many snapshots.
    let out = fleetload(&["report", "recover", rep, spool(0)]);
    assert_eq!(out.code, Some(1), "{}", out.text());
    let text = out.text();
    assert!(
        text.contains("MISSING: worker ")
            && text.contains("(slot 1)")
            && text.contains("snapshots after interval")
            && text.contains("fleetload-unsent-"),
        "{text}"
    );

    // With both: every snapshot once, equal to what each worker executed.
    let out = fleetload(&["report", "recover", rep, spool(0), spool(1)]);
    out.assert_ok();
    let r = read_report(&report);
    assert_eq!(r["status"], "recovered");
    assert_eq!(
        r["verification"]["merged_equals_executed"], true,
        "{:#}",
        r["verification"]
    );
    let mut total = 0;
    for name in ["w0", "w1"] {
        let (executed, merged) = executed_and_merged(&r, name);
        assert_eq!(executed, merged, "{name}");
        assert!(executed > 0);
        total += merged;
    }
    assert_eq!(u(&r["operations"]["point_select"]["count"]), total);
    assert!(
        total > in_checkpoint,
        "the spools added what the checkpoint did not hold: {total} vs {in_checkpoint}"
    );
    let rec = &r["recovery"];
    assert_eq!(rec["checkpoint_stage"], "running");
    let added: u64 = rec["spools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| u(&s["added"]))
        .sum();
    assert!(added >= 2, "{rec:#}");
    for f in ["report.html", "report.csv", "report.txt", "report.hlog"] {
        assert!(report.join(f).exists(), "{f}");
    }
    // The time after the coordinator died, when the workers' dead man's switch had
    // paused the load, is a gap: marked, and left out of the measured rates.
    let paused = &rec["paused"];
    let from = paused["from_s"].as_f64().expect("the pause is marked");
    assert!((3.0..8.0).contains(&from), "paused at {from} s: {paused:#}");
    assert_eq!(paused["to_s"].as_f64(), Some(30.0));
    assert_eq!(paused["workers"].as_array().unwrap().len(), 2, "{paused:#}");
    let measured = r["measured_s"].as_f64().unwrap();
    assert!(
        measured <= from + 0.01,
        "measured {measured} s, paused at {from} s"
    );
    let ok_per_s = r["operations"]["point_select"]["ok_per_s"]
        .as_f64()
        .unwrap();
    assert!(
        (150.0..=250.0).contains(&ok_per_s),
        "ok/s over the time the load ran is near the planned 200, not diluted by the gap: {ok_per_s}"
    );
    let txt = std::fs::read_to_string(report.join("report.txt")).unwrap();
    assert!(
        txt.contains("GAP: no load from") && txt.contains("PARTIAL"),
        "{txt}"
    );
    let html = std::fs::read_to_string(report.join("report.html")).unwrap();
    assert!(
        html.contains("GAP: no load from"),
        "the chart marks the gap"
    );
    // Compared with a whole run, the recovered one is called partial.
    let out = fleetload(&[
        "report",
        "compare",
        report.join("report.json").to_str().unwrap(),
        report.join("report.json").to_str().unwrap(),
    ]);
    assert!(
        out.stdout.contains("is partial: its load was paused from"),
        "{}",
        out.text()
    );
    // Recovering again gives the same report: the checkpoint is not consumed. The
    // spools are found by run in the workers' shared directory (as on Kubernetes).
    std::fs::write(
        spool_dir.join("fleetload-unsent-run-other-w0.jsonl"),
        "not this run",
    )
    .unwrap();
    let again = fleetload(&[
        "report",
        "recover",
        rep,
        "--spool-dir",
        spool_dir.to_str().unwrap(),
    ]);
    again.assert_ok();
    assert!(again.stdout.contains("2 spools of run"), "{}", again.text());
    assert_eq!(
        u(&read_report(&report)["operations"]["point_select"]["count"]),
        total
    );

    // A spool of another run is refused, naming both runs.
    let text = std::fs::read_to_string(&spools[1]).unwrap();
    let run = partial["run_id"].as_str().unwrap();
    let other = dir.path().join("other.jsonl");
    std::fs::write(&other, text.replacen(run, "run-20990101T000000-beef", 1)).unwrap();
    let out = fleetload(&["report", "recover", rep, spool(0), other.to_str().unwrap()]);
    assert_ne!(out.code, Some(0));
    assert!(
        out.text().contains("run-20990101T000000-beef") && out.text().contains(run),
        "{}",
        out.text()
    );
}

/// A directory with a SQLite database prepared for the churn scenario (2 000 rows).
fn churn_site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite(dir.path());
    fleetload(&[
        "prepare",
        "--target",
        &db,
        "--scenario",
        "churn",
        "--rows",
        "2000",
    ])
    .assert_ok();
    dir
}

/// Three snapshots a second at most: how a run at `rate` for `secs` looks through
/// `report compare`.
fn churn_run(dir: &Path, name: &str, delay: &str) -> PathBuf {
    let out = dir.join(name);
    let db = sqlite(dir);
    fleetload(&[
        "run",
        "--target",
        &db,
        "--scenario",
        "churn",
        "--mix",
        "predict_one=3,read_customer=1",
        "--ml-delay",
        delay,
        "--rate",
        "150",
        "--duration",
        "8s",
        "--warmup",
        "1s",
        "--report-dir",
        out.to_str().unwrap(),
    ])
    .assert_ok();
    out.join("report.json")
}

#[test]
fn compare_gates_pass_a_run_against_itself_and_fail_an_injected_slowdown() {
    let dir = churn_site();
    let base = churn_run(dir.path(), "base", "3ms");
    let slow = churn_run(dir.path(), "slow", "6ms");
    let (b, s) = (base.to_str().unwrap(), slow.to_str().unwrap());
    // The median doubles with the injected delay; the tail can drown in a loaded
    // machine's noise (the gate then rightly passes it), so both are gated.
    let gates = [
        "--fail-on",
        "p50 > +10%",
        "--fail-on",
        "p99 > +10%",
        "--fail-on",
        "ok_per_s < -5%",
    ];

    let mut args = vec!["report", "compare", b, b];
    args.extend(gates);
    let same = fleetload(&args);
    same.assert_ok();
    assert!(same.stdout.contains("every gate passed"), "{}", same.stdout);

    let mut args = vec!["report", "compare", b, s, "--format", "json"];
    args.extend(gates);
    let out = fleetload(&args);
    assert_eq!(out.code, Some(1), "{}", out.text());
    let j: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(j["passed"], false);
    let failed: Vec<&serde_json::Value> = j["gates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["failed"] == true)
        .collect();
    assert!(
        failed
            .iter()
            .any(|g| g["operation"] == "predict_one"
                && (g["metric"] == "p50" || g["metric"] == "p99")),
        "{:#}",
        j["gates"]
    );
    for metric in ["p90 ms", "p99.9 ms", "svc p99"] {
        assert!(j["changes"].to_string().contains(metric), "{metric}");
    }
    assert!(j["warnings"].as_array().unwrap().is_empty(), "same plan");

    // Markdown for a CI comment, and a warning when the plans differ.
    let mut other: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&slow).unwrap()).unwrap();
    other["plan"]["rate"] = serde_json::json!(300.0);
    other["plan"]["scenario"] = serde_json::json!("point_select");
    let other_path = dir.path().join("other.json");
    std::fs::write(&other_path, other.to_string()).unwrap();
    let out = fleetload(&[
        "report",
        "compare",
        b,
        other_path.to_str().unwrap(),
        "--format",
        "markdown",
    ]);
    out.assert_ok();
    let md = &out.stdout;
    let warn = md
        .find("**Warning:** the plans differ, rate differs")
        .expect(md);
    assert!(
        md.contains("scenario differs: churn in base, point_select in new"),
        "{md}"
    );
    assert!(
        warn < md.find("| operation |").unwrap(),
        "warnings come first"
    );

    // A gate that cannot be read says how to write one.
    let out = fleetload(&["report", "compare", b, b, "--fail-on", "p98 > 10%"]);
    assert_ne!(out.code, Some(0));
    assert!(
        out.text().contains("unknown metric") && out.text().contains("p99 > +10%"),
        "{}",
        out.text()
    );
}

/// `report.json` of `base` with every p99 of `op` multiplied by 4, the intervals'
/// swinging between ×1 and ×12: a regression whose own run is as unstable as the one a
/// user saw pass as "noise".
fn regressed(base: &serde_json::Value, op: &str) -> serde_json::Value {
    let mut new = base.clone();
    new["run_id"] = serde_json::json!("run-regressed");
    let p99 = &mut new["operations"][op]["response_time"]["p99_ms"];
    *p99 = serde_json::json!(p99.as_f64().unwrap() * 4.0);
    for (i, iv) in new["intervals"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .enumerate()
    {
        let p = &mut iv["operations"][op]["response_time"]["p99_ms"];
        if let Some(v) = p.as_f64() {
            *p = serde_json::json!(v * if i % 2 == 0 { 1.0 } else { 12.0 });
        }
    }
    new
}

#[test]
fn compare_fails_a_fourfold_p99_regression_however_much_the_new_run_swings() {
    let dir = churn_site();
    let base = churn_run(dir.path(), "base", "3ms");
    let b: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&base).unwrap()).unwrap();
    let new_path = dir.path().join("regressed.json");
    std::fs::write(&new_path, regressed(&b, "predict_one").to_string()).unwrap();
    let (bp, np) = (base.to_str().unwrap(), new_path.to_str().unwrap());

    let out = fleetload(&["report", "compare", bp, np, "--fail-on", "p99 > +10%"]);
    assert_eq!(
        out.code,
        Some(1),
        "a 4× p99 must fail the gate: {}",
        out.text()
    );
    assert!(
        out.stdout
            .contains("FAILED: predict_one p99 changed +300.0%"),
        "{}",
        out.stdout
    );
    // A tighter bound, and none: both fail it too; the table says which noise applied.
    for noise in ["10%", "off"] {
        let out = fleetload(&[
            "report",
            "compare",
            bp,
            np,
            "--fail-on",
            "p99 > +10%",
            "--noise",
            noise,
        ]);
        assert_eq!(out.code, Some(1), "--noise {noise}: {}", out.text());
    }
    // The same run against itself passes, whatever the bound.
    let out = fleetload(&[
        "report",
        "compare",
        bp,
        bp,
        "--fail-on",
        "p99 > +10%",
        "--noise",
        "off",
    ]);
    out.assert_ok();
    // A bound that cannot be read is named.
    let out = fleetload(&["report", "compare", bp, np, "--noise", "loud"]);
    assert_eq!(out.code, Some(1));
    assert!(out.text().contains("--noise \"loud\""), "{}", out.text());

    // A gate with nothing to judge fails and says why: the operation was renamed.
    let mut renamed = b.clone();
    for key in ["operations", "histograms"] {
        let ops = renamed[key].as_object_mut().unwrap();
        let names: Vec<String> = ops.keys().cloned().collect();
        for n in names {
            let v = ops.remove(&n).unwrap();
            ops.insert(format!("{n}_v2"), v);
        }
    }
    let renamed_path = dir.path().join("renamed.json");
    std::fs::write(&renamed_path, renamed.to_string()).unwrap();
    let out = fleetload(&[
        "report",
        "compare",
        bp,
        renamed_path.to_str().unwrap(),
        "--fail-on",
        "p99 > +10%",
    ]);
    assert_ne!(out.code, Some(0), "{}", out.text());
    assert!(
        out.text().contains("nothing to judge") && out.text().contains("predict_one_v2"),
        "{}",
        out.text()
    );
    let out = fleetload(&[
        "report",
        "compare",
        bp,
        renamed_path.to_str().unwrap(),
        "--fail-on",
        "predict_one:p99 > +10%",
    ]);
    assert_ne!(out.code, Some(0));
    assert!(out.text().contains("was it renamed?"), "{}", out.text());
}

/// A spool directory the worker cannot write is refused at start, before it dials,
/// not discovered when the coordinator is gone and the data has nowhere to go.
#[test]
fn a_worker_refuses_to_start_with_a_spool_dir_it_cannot_write() {
    let out = fleetload_within(
        &[
            "worker",
            "--coordinator",
            "http://127.0.0.1:9",
            "--dial-timeout",
            "30s",
            "--spool-dir",
            "/proc/self/fleetload-spool",
        ],
        Duration::from_secs(10),
    );
    assert_ne!(out.code, Some(0));
    assert!(
        out.text()
            .contains("--spool-dir /proc/self/fleetload-spool cannot be used"),
        "{}",
        out.text()
    );
}
