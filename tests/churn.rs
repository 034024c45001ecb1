//! The churn scenario's ML stand-in, end to end: the real binary, a coordinator and 2
//! workers over loopback gRPC, against MariaDB and PostgreSQL.

mod common;

use common::*;
use fleetload_common::churn;

const ROWS: u64 = 1500;
const CALL: &str = "will_churn(state, account_length, area_code, intl_plan, vmail_plan, vmail_message, day_mins, day_calls, eve_mins, eve_calls, night_mins, night_calls, intl_mins, intl_calls, custserv_calls)";

fn prepare(target: &str, delay: &str, capacity: u32) {
    let capacity = capacity.to_string();
    prepare_rows(
        target,
        "churn",
        ROWS,
        &["--ml-delay", delay, "--ml-capacity", &capacity],
    );
}

/// A stand-in counter: `requests`, `logical` or `single`.
fn counter(target: &str, name: &str) -> i64 {
    let driver = fleetload_common::target::Target::parse(target, None)
        .unwrap()
        .driver();
    let wanted = format!("standin_{name}");
    let (_, sql) = fleetload_db::ml::counters(driver)
        .into_iter()
        .find(|(n, _)| *n == wanted)
        .unwrap();
    scalar(target, sql)
}

fn requests(target: &str) -> i64 {
    counter(target, "requests")
}

fn executed(r: &serde_json::Value, op: &str) -> u64 {
    r["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| u(&w["executed"][op]["ok"]))
        .sum()
}

/// The SQL name of a 64-bit integer cast target.
fn bigint(target: &str) -> &'static str {
    if target.starts_with("mysql") {
        "SIGNED"
    } else if target.starts_with("sqlite") {
        "INTEGER"
    } else {
        "BIGINT"
    }
}

/// Run 2 workers with `extra` flags; returns the report and the directory holding it.
fn run_keep(target: &str, extra: &[&str]) -> (serde_json::Value, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let rows = ROWS.to_string();
    let mut args = vec!["--scenario", "churn", "--rows", &rows, "--workers", "2"];
    args.extend_from_slice(extra);
    run_on(target, &args, dir.path()).assert_ok();
    let r = read_report(dir.path());
    assert_eq!(r["status"], "passed", "{r:#}");
    (r, dir)
}

fn run(target: &str, extra: &[&str]) -> serde_json::Value {
    run_keep(target, extra).0
}

fn verify(target: &str, report: &std::path::Path) -> Invocation {
    fleetload(&[
        "verify",
        "--target",
        target,
        "--password-env",
        PASSWORD_ENV,
        "--scenario",
        "churn",
        "--report",
        report.join("report.json").to_str().unwrap(),
    ])
}

/// The stand-in labels every loaded row exactly as the Rust model does.
fn stand_in_agrees_with_the_model(target: &str) {
    prepare(target, "0ms", 64);
    let rows = id_text_rows(
        target,
        &format!(
            "SELECT CAST(id AS {}) , {CALL} FROM customers ORDER BY id",
            bigint(target)
        ),
    );
    assert_eq!(rows.len() as u64, ROWS);
    let mut churners = 0;
    for (id, label) in rows {
        let want = churn::label(churn::predict(&churn::customer(42, id as u64)));
        assert_eq!(label, want, "customer {id}");
        churners += usize::from(label == "True.");
    }
    assert!(
        churners > 50,
        "{churners} churners: the model is not constant"
    );
    assert_eq!(
        requests(target),
        ROWS as i64,
        "one request per single-row call"
    );
}

/// With delay D, predict_one's median lies in [D, D + 15 ms]; inserts and updates are
/// scored by the triggers, the report's insert count equals the rows added, and every
/// model call is counted.
fn triggers_fill_predictions_and_counts_match(target: &str) {
    prepare(target, "20ms", 64);
    let before = requests(target);
    // SQLite has one writer, and a trigger holds it for the model's delay: at 150 ops/s
    // the writes alone would keep it ~75 % busy and queue everything behind them. The
    // D..D+15 ms check needs an unsaturated database, so SQLite runs slower.
    let rate = if target.starts_with("sqlite") {
        "60"
    } else {
        "150"
    };
    let (r, report_dir) = run_keep(
        target,
        &["--rate", rate, "--sessions", "8", "--duration", "4s"],
    );
    let ops = &r["operations"];
    let p50 = f(&ops["predict_one"]["response_time"]["p50_ms"]);
    assert!(
        (20.0..=35.0).contains(&p50),
        "predict_one p50 {p50} ms with a 20 ms endpoint"
    );
    let read_p50 = f(&ops["read_customer"]["response_time"]["p50_ms"]);
    assert!(
        read_p50 < 10.0,
        "plain reads do not wait for the model: {read_p50} ms"
    );

    // Rows the report says were inserted equal the rows added to the table.
    let inserted = u(&r["inserted_rows"]);
    let (single_inserts, batch_inserts) =
        (executed(&r, "insert_customer"), executed(&r, "score_new"));
    assert!(
        single_inserts > 10 && batch_inserts > 2,
        "{single_inserts} inserts, {batch_inserts} score_new"
    );
    assert_eq!(
        inserted,
        single_inserts + 10 * batch_inserts,
        "insert_customer adds 1 row, score_new 10"
    );
    let added = scalar(
        target,
        &format!("SELECT COUNT(*) FROM customers WHERE id > {ROWS}"),
    );
    assert_eq!(added as u64, inserted);
    // Every new and every updated row has a prediction that matches the model.
    assert_eq!(
        scalar(
            target,
            &format!(
                "SELECT COUNT(*) FROM customers WHERE id > {ROWS} AND churn_prediction IS NULL"
            )
        ),
        0
    );
    let scored = scalar(
        target,
        "SELECT COUNT(*) FROM customers WHERE predicted_at IS NOT NULL",
    );
    assert!(
        scored as u64 >= inserted + 5,
        "updates were scored too: {scored}"
    );
    let wrong = scalar(target, &format!("SELECT COUNT(*) FROM customers WHERE predicted_at IS NOT NULL AND churn_prediction <> {}", CALL.replace("will_churn(", "will_churn_model(")));
    assert_eq!(
        wrong, 0,
        "trigger and select-list predictions agree with the model"
    );
    // Requests counted by the stand-in: one per predict_one, insert, batch and score_new,
    // one per update that changed a feature (almost all of them).
    let calls = (requests(target) - before) as u64;
    let (predicted, updated, batches) = (
        executed(&r, "predict_one"),
        executed(&r, "update_usage"),
        executed(&r, "predict_batch"),
    );
    let want = predicted + single_inserts + updated + batches + batch_inserts;
    assert!(
        calls <= want && calls + updated / 5 >= want,
        "{calls} requests, want about {want}"
    );

    // The database's own counters are in the report: the stand-in's requests during the
    // run, and the server's view of the inserts.
    let c = &r["database_counters"];
    assert!(c.get("unavailable").is_none(), "{c:#}");
    assert!(
        c["samples"].as_array().unwrap().len() >= 5,
        "before, every interval, after"
    );
    assert_eq!(
        u(&c["deltas"]["standin_requests"]),
        calls,
        "sampled counters agree with the stand-in"
    );
    let server_inserts = if target.starts_with("sqlite") {
        "standin_requests"
    } else if target.starts_with("mysql") {
        "Com_insert"
    } else {
        "tup_inserted"
    };
    assert!(u(&c["deltas"][server_inserts]) >= single_inserts, "{c:#}");

    // `fleetload verify` agrees, and notices a wrong prediction and a lost row.
    let ok = verify(target, report_dir.path());
    assert_eq!(ok.code, Some(0), "{}\n{}", ok.stdout, ok.stderr);
    assert!(
        ok.stdout.contains(&format!(
            "report counted {inserted} inserted rows; the run's id ranges hold {inserted}"
        )),
        "{}",
        ok.stdout
    );
    let victim = scalar(
        target,
        &format!("SELECT MIN(id) FROM customers WHERE id > {ROWS}"),
    );
    exec(target, &format!("UPDATE customers SET churn_prediction = CASE WHEN churn_prediction = 'True.' THEN 'False.' ELSE 'True.' END WHERE id = {victim}"));
    let tampered = verify(target, report_dir.path());
    assert_eq!(tampered.code, Some(1), "{}", tampered.stdout);
    assert!(
        tampered
            .stdout
            .contains(&format!("customer {victim}: stored")),
        "{}",
        tampered.stdout
    );
    exec(
        target,
        &format!("DELETE FROM customers WHERE id = {victim}"),
    );
    let lost = verify(target, report_dir.path());
    assert!(
        lost.stdout.contains("1 rows are missing") && lost.stdout.contains("0 disagree"),
        "{}",
        lost.stdout
    );
    exec(target, &format!("DELETE FROM customers WHERE id > {ROWS}"));
    // The report of a run on another database is refused, naming both targets.
    let elsewhere = if target.starts_with("sqlite") {
        format!("{target}-other.db")
    } else {
        format!("{target}_other")
    };
    let o = verify(&elsewhere, report_dir.path());
    assert_ne!(o.code, Some(0));
    assert!(
        o.text().contains(&elsewhere) && o.text().contains(target),
        "{}",
        o.text()
    );

    // A second run inserts above the first run's ids: no collision, nothing lost.
    let r2 = run(
        target,
        &[
            "--rate",
            "100",
            "--sessions",
            "4",
            "--duration",
            "2s",
            "--mix",
            "insert_customer=1",
        ],
    );
    let second: u64 = r2["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| u(&w["executed"]["insert_customer"]["ok"]))
        .sum();
    assert_eq!(
        u(&r2["operations"]["insert_customer"]["error_total"]),
        0,
        "{:#}",
        r2["operations"]
    );
    assert_eq!(
        scalar(
            target,
            &format!("SELECT COUNT(*) FROM customers WHERE id > {ROWS}")
        ) as u64,
        second
    );
}

/// With capacity C and delay D, predict_one saturates near C / D per second and the
/// response time grows far beyond D.
fn capacity_saturates_like_an_endpoint(target: &str) {
    prepare(target, "20ms", 2);
    let r = run(
        target,
        &[
            "--mode",
            "closed",
            "--sessions",
            "6",
            "--duration",
            "3s",
            "--mix",
            "predict_one=1",
        ],
    );
    let op = &r["operations"]["predict_one"];
    let rate = f(&op["ok_per_s"]);
    assert!(
        (70.0..=105.0).contains(&rate),
        "{rate} ops/s, capacity 2 / 20 ms = 100/s"
    );
    let p50 = f(&op["response_time"]["p50_ms"]);
    assert!(
        p50 > 60.0,
        "12 sessions queue for 2 model slots: p50 {p50} ms"
    );
}

/// predict_batch of K rows is one request and K logical calls, as Aurora counts a batch.
fn a_batch_is_one_request_of_k_logical_calls(target: &str) {
    prepare(target, "2ms", 64);
    let (req, logical, single) = (
        counter(target, "requests"),
        counter(target, "logical"),
        counter(target, "single"),
    );
    let r = run(
        target,
        &[
            "--rate",
            "50",
            "--sessions",
            "2",
            "--duration",
            "2s",
            "--mix",
            "predict_batch=1",
            "--batch",
            "25",
        ],
    );
    let batches = executed(&r, "predict_batch") as i64;
    assert!(batches >= 90, "{batches}");
    assert_eq!(counter(target, "requests") - req, batches);
    assert_eq!(counter(target, "logical") - logical, 25 * batches);
    assert_eq!(
        counter(target, "single") - single,
        0,
        "a batch is not a single-row call"
    );
    assert!(f(&r["operations"]["predict_batch"]["response_time"]["p50_ms"]) >= 2.0);
}

#[test]
fn aurora_mode_is_refused_on_sqlite() {
    let out = fleetload(&[
        "prepare",
        "--target",
        "sqlite://x.db",
        "--scenario",
        "churn",
        "--ml",
        "aurora",
        "--ml-endpoint",
        "e",
    ]);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("`ml`") && out.stderr.contains("SQLite has only the stand-in"),
        "{}",
        out.stderr
    );
}

#[test]
fn aurora_mode_on_a_server_that_is_not_aurora_fails_with_a_hint() {
    let target = fresh_mysql("churn_aurora");
    let out = fleetload(&[
        "prepare",
        "--target",
        &target,
        "--password-env",
        PASSWORD_ENV,
        "--scenario",
        "churn",
        "--rows",
        "100",
        "--ml",
        "aurora",
        "--ml-endpoint",
        "auroraml-churn-endpoint",
    ]);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("AWS_SAGEMAKER_INVOKE_ENDPOINT")
            && out.stderr.contains("deploy/aurora/README.md"),
        "{}",
        out.stderr
    );
    let out = fleetload(&[
        "prepare",
        "--target",
        &target,
        "--scenario",
        "churn",
        "--ml",
        "aurora",
    ]);
    assert!(
        out.stderr.contains("`ml_endpoint` is required"),
        "{}",
        out.stderr
    );
}

/// `run --prepare`: the coordinator creates the table, each worker loads its own shard,
/// the coordinator installs the stand-in, then the run starts.
fn the_fleet_prepares_the_data_in_parallel(target: &str) {
    let dir = tempfile::tempdir().unwrap();
    let out = fleetload(&[
        "run",
        "--target",
        target,
        "--password-env",
        PASSWORD_ENV,
        "--scenario",
        "churn",
        "--rows",
        "6000",
        "--workers",
        "2",
        "--rate",
        "100",
        "--duration",
        "2s",
        "--prepare",
        "--ml-delay",
        "1ms",
        "--report-dir",
        dir.path().to_str().unwrap(),
    ]);
    out.assert_ok();
    let r = read_report(dir.path());
    assert_eq!(r["status"], "passed", "{r:#}");
    for w in r["workers"].as_array().unwrap() {
        let shard = u(&w["shard"]["last"]) - u(&w["shard"]["first"]) + 1;
        assert_eq!(
            u(&w["rows_loaded"]),
            shard,
            "each worker loaded exactly its shard"
        );
    }
    assert_eq!(
        scalar(target, "SELECT COUNT(*) FROM customers WHERE id <= 6000"),
        6000
    );
    assert_eq!(
        u(&r["operations"]["predict_one"]["error_total"]),
        0,
        "the stand-in was installed before the start"
    );
    let ok = verify(target, dir.path());
    assert_eq!(ok.code, Some(0), "{}", ok.stdout);
}

/// Stand-in settings named for a run take effect for that run (without --prepare),
/// and the report's effective plan records those in force.
fn stand_in_settings_named_for_a_run_take_effect(target: &str) {
    prepare(target, "1ms", 16);
    let r = run(
        target,
        &[
            "--mix",
            "predict_one=1",
            "--rate",
            "20",
            "--duration",
            "2s",
            "--sessions",
            "4",
            "--ml-delay",
            "40ms",
            "--ml-capacity",
            "3",
        ],
    );
    let p50 = f(&r["operations"]["predict_one"]["response_time"]["p50_ms"]);
    assert!(p50 >= 40.0, "p50 {p50} ms with a 40 ms stand-in");
    assert_eq!(r["plan"]["ml_delay"], "40ms", "{}", r["plan"]);
    assert_eq!(r["plan"]["ml_row_cost"], "0s", "in force, though not named");
    assert_eq!(u(&r["plan"]["ml_capacity"]), 3);
    let int = bigint(target);
    assert_eq!(
        scalar(target, &format!("SELECT CAST(overhead_ms AS {int}) * 1000 + CAST(capacity AS {int}) FROM fl_ml_config")),
        40_003
    );
    // Named for a scenario it does not apply to: refused, naming the key.
    let o = fleetload(&[
        "check",
        "--target",
        target,
        "--password-env",
        PASSWORD_ENV,
        "--scenario",
        "point_select",
        "--ml-delay",
        "5ms",
    ]);
    assert_ne!(o.code, Some(0));
    assert!(o.text().contains("ml_delay"), "{}", o.text());
}

/// Teardown of the built-in scenario removes what its prepare made: the table, the
/// triggers, the model's functions and the stand-in's configuration.
fn teardown_removes_what_prepare_made(target: &str) {
    prepare(target, "0ms", 4);
    let objects = |t: &str| -> i64 {
        if t.starts_with("postgres") {
            scalar(t, "SELECT CAST(count(*) AS BIGINT) FROM pg_proc WHERE proname IN ('will_churn', 'will_churn_model', 'fl_ml_request', 'customers_predict')")
                + scalar(t, "SELECT CAST(count(*) AS BIGINT) FROM pg_class WHERE relname IN ('customers', 'fl_ml_config', 'fl_ml_requests')")
        } else if t.starts_with("mysql") {
            scalar(t, "SELECT CAST(count(*) AS SIGNED) FROM information_schema.routines WHERE routine_schema = DATABASE() AND routine_name IN ('will_churn', 'will_churn_model', 'fl_ml_request')")
                + scalar(t, "SELECT CAST(count(*) AS SIGNED) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name IN ('customers', 'fl_ml_config')")
                + scalar(t, "SELECT CAST(count(*) AS SIGNED) FROM information_schema.triggers WHERE trigger_schema = DATABASE()")
        } else {
            scalar(t, "SELECT count(*) FROM sqlite_master WHERE name IN ('customers', 'fl_ml_config', 'customers_predict_insert', 'customers_predict_update')")
        }
    };
    assert!(objects(target) >= 2, "prepare made them");
    let o = fleetload(&[
        "teardown",
        "--target",
        target,
        "--password-env",
        PASSWORD_ENV,
        "--scenario",
        "churn",
    ]);
    o.assert_ok();
    assert!(!o.stdout.contains("ran 0 "), "{}", o.stdout);
    assert_eq!(objects(target), 0, "teardown left objects behind");
    // A second teardown finds nothing to remove and says so without failing.
    fleetload(&[
        "teardown",
        "--target",
        target,
        "--password-env",
        PASSWORD_ENV,
        "--scenario",
        "churn",
    ])
    .assert_ok();
}

// One test per check and target: MariaDB, PostgreSQL and SQLite (each in a database of
// its own, so they run in parallel).

on_every_target!(
    stand_in_agrees_with_the_model,
    triggers_fill_predictions_and_counts_match,
    a_batch_is_one_request_of_k_logical_calls,
    capacity_saturates_like_an_endpoint,
    the_fleet_prepares_the_data_in_parallel,
    stand_in_settings_named_for_a_run_take_effect,
    teardown_removes_what_prepare_made,
);
