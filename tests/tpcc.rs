//! TPC-C across a fleet, with the database as the judge: on MariaDB, PostgreSQL and
//! SQLite, a fleet prepares its own warehouses, three workers run the five transactions,
//! the clients' committed New-Orders equal the database's count exactly, the mix and
//! the rollbacks are the specification's, remote transactions reach other workers'
//! warehouses, and consistency conditions 1 to 4 hold.

mod common;

use common::*;
use std::time::Duration;

fn prepare_and_run(
    target: &str,
    dir: &std::path::Path,
    extra: &[&str],
) -> (String, serde_json::Value) {
    let report = dir.join("report");
    let mut args = vec![
        "run",
        "--scenario",
        "tpcc",
        "--target",
        target,
        "--warehouses",
        "3",
        "--prepare",
        "--workers",
        "3",
        "--sessions",
        "3",
        "--duration",
        "6s",
        "--interval",
        "1s",
        "--report-dir",
        report.to_str().unwrap(),
    ];
    if !target.starts_with("sqlite") {
        args.extend_from_slice(&["--password-env", PASSWORD_ENV]);
    }
    args.extend_from_slice(extra);
    let out = fleetload_within(&args, Duration::from_secs(240));
    let text = out.text();
    assert_eq!(out.code, Some(0), "{text}");
    (text, read_report(&report))
}

fn a_fleet_runs_tpcc_and_the_database_agrees(target: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (text, r) = prepare_and_run(target, dir.path(), &[]);
    assert_eq!(r["status"], "passed", "{text}");
    let t = &r["tpcc"];
    assert_eq!(u(&t["warehouses"]), 3);
    // The database is the judge: every committed New-Order the clients counted, and no
    // other, moved a district's D_NEXT_O_ID.
    let committed = u(&t["new_orders_committed"]);
    assert!(committed > 100, "{t}");
    assert_eq!(
        t["database_new_orders"].as_i64(),
        Some(committed as i64),
        "{t}"
    );
    assert_eq!(t["comparable"], true);
    assert!(f(&t["nopm"]) > 0.0 && f(&t["tpmC"]) > 0.0, "{t}");
    // The mix within a few points of 45/43/4/4/4.
    for (op, want) in [
        ("new_order", 45.0),
        ("payment", 43.0),
        ("order_status", 4.0),
        ("delivery", 4.0),
        ("stock_level", 4.0),
    ] {
        let got = f(&t["mix_percent"][op]);
        let slack = if want > 10.0 { 5.0 } else { 3.0 };
        assert!((got - want).abs() <= slack, "{op}: {got}% (want {want}%)");
    }
    // Rollbacks near 1 % of New-Orders, counted apart from errors.
    let rollbacks = u(&t["rollbacks"]);
    assert!(rollbacks > 0 && f(&t["rollback_percent"]) < 3.0, "{t}");
    assert_eq!(u(&r["operations"]["new_order"]["rolled_back"]), rollbacks);
    assert_eq!(
        u(&r["operations"]["new_order"]["error_total"]),
        0,
        "{}",
        r["operations"]["new_order"]
    );
    // Remote transactions touched other workers' warehouses.
    assert!(
        u(&t["remote"]["new_order"]) > 0 && u(&t["remote"]["payment"]) > 0,
        "{t}"
    );
    assert!(
        text.contains("New-Orders committed over the run") && text.contains("(agree)"),
        "{text}"
    );
    // The load speed is reported.
    assert!(text.contains("rows/s") || text.contains("loaded"), "{text}");
    let mut args = vec![
        "verify",
        "--scenario",
        "tpcc",
        "--target",
        target,
        "--warehouses",
        "3",
    ];
    if !target.starts_with("sqlite") {
        args.extend_from_slice(&["--password-env", PASSWORD_ENV]);
    }
    let verify = fleetload(&args);
    assert_eq!(verify.code, Some(0), "{}", verify.text());
    assert!(
        verify.stdout.contains("conditions 1-4 hold"),
        "{}",
        verify.text()
    );
}

on_every_target!(a_fleet_runs_tpcc_and_the_database_agrees);
