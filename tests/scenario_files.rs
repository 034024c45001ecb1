//! Scenario files end to end: users' own SQL, generators, transactions and retries,
//! both protocols, set-up and load, checks before the run, on real servers.

mod common;
use common::*;
use std::path::Path;

const ROWS: u64 = 500;

/// The type to CAST to for a BIGINT result on each server.
fn int_type(target: &str) -> &'static str {
    if target.starts_with("mysql") {
        "SIGNED"
    } else {
        sqlite_or(target, "INTEGER", "BIGINT")
    }
}

fn sqlite_or(target: &str, sqlite: &'static str, other: &'static str) -> &'static str {
    if target.starts_with("sqlite") {
        sqlite
    } else {
        other
    }
}

/// A bank: accounts loaded by generators, transfers that read a row and update two
/// (a transaction whose second statement takes its id from the first), an audit insert
/// with a sequence, a timestamp and weighted picks, and zipfian lookups.
fn bank_file(dir: &Path, protocol: &str) -> std::path::PathBuf {
    let text = format!(
        r#"
name = "bank"
protocol = "{protocol}"
rows = {ROWS}

[setup]
sql = [
  "DROP TABLE IF EXISTS ledger",
  "DROP TABLE IF EXISTS accounts",
  "CREATE TABLE accounts(id BIGINT NOT NULL PRIMARY KEY, balance BIGINT NOT NULL, owner VARCHAR(20) NOT NULL)",
  {{ mysql = "CREATE TABLE ledger(id BIGINT NOT NULL PRIMARY KEY, account BIGINT NOT NULL, amount DOUBLE NOT NULL, kind VARCHAR(10) NOT NULL, at DATETIME(6) NOT NULL)", postgres = "CREATE TABLE ledger(id BIGINT NOT NULL PRIMARY KEY, account BIGINT NOT NULL, amount DOUBLE PRECISION NOT NULL, kind VARCHAR(10) NOT NULL, at TIMESTAMP NOT NULL)", sqlite = "CREATE TABLE ledger(id INTEGER NOT NULL PRIMARY KEY, account INTEGER NOT NULL, amount REAL NOT NULL, kind TEXT NOT NULL, at TEXT NOT NULL)" }},
]

[load]
sql = "INSERT INTO accounts(id, balance, owner) VALUES (:id, :balance, :owner)"
batch = 100
params.id = {{ gen = "row" }}
params.balance = {{ gen = "int", min = 1000, max = 1000 }}
params.owner = {{ gen = "string", min_len = 4, max_len = 12 }}

[teardown]
sql = ["DROP TABLE ledger", "DROP TABLE accounts"]

[[operation]]
name = "transfer"
weight = 3
retry = 5
sql = [
  "SELECT id AS src_id, balance FROM accounts WHERE id = :src",
  "UPDATE accounts SET balance = balance - :amount WHERE id = :from_id",
  "UPDATE accounts SET balance = balance + :amount WHERE id = :dst",
]
params.src = {{ gen = "shard" }}
params.from_id = {{ from = "src_id" }}
params.dst = {{ gen = "zipf", s = 1.1 }}
params.amount = {{ gen = "int", min = 1, max = 10 }}

[[operation]]
name = "audit"
weight = 2
sql = "INSERT INTO ledger(id, account, amount, kind, at) VALUES (:id, :account, :amount, :kind, :at)"
params.id = {{ gen = "sequence", above_max = "ledger.id" }}
params.account = {{ gen = "scrambled_zipf", min = 1, max = {ROWS} }}
params.amount = {{ gen = "normal", mean = 50.0, stddev = 10.0, min = 0.0, decimals = 2 }}
params.kind = {{ gen = "pick", values = ["credit", "debit"], weights = [3, 1] }}
params.at = {{ gen = "now" }}

[[operation]]
name = "lookup"
weight = 1
sql = "SELECT balance FROM accounts WHERE id = :id"
params.id = {{ gen = "zipf", min = 1, max = {ROWS} }}
"#
    );
    let path = dir.join(format!("bank_{protocol}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn run_file(target: &str, file: &Path, extra: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec![
        "run",
        "--target",
        target,
        "--password-env",
        PASSWORD_ENV,
        "--scenario",
        file.to_str().unwrap(),
        "--report-dir",
        dir.path().to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = fleetload(&args);
    out.assert_ok();
    read_report(dir.path())
}

fn executed_ok(r: &serde_json::Value, op: &str) -> u64 {
    r["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| u(&w["executed"][op]["ok"]))
        .sum()
}

/// The fleet prepares the bank through the file's [setup] and [load], runs it over the
/// prepared protocol and then again over the text protocol, and the tables add up:
/// transfers conserve money, every audit insert is one ledger row with an id no other
/// session of either run used, and the generators' values land where they should.
fn a_custom_bank_runs_on_both_protocols_and_its_tables_add_up(target: &str) {
    let files = tempfile::tempdir().unwrap();
    let prepared = bank_file(files.path(), "prepared");
    let text = bank_file(files.path(), "text");
    let common = [
        "--workers",
        "3",
        "--sessions",
        "2",
        "--rate",
        "150",
        "--duration",
        "3s",
    ];
    let mut first = vec!["--prepare"];
    first.extend_from_slice(&common);
    let r1 = run_file(target, &prepared, &first);
    let r2 = run_file(target, &text, &common);
    for r in [&r1, &r2] {
        assert_eq!(r["status"], "passed", "{r:#}");
        for op in ["transfer", "audit", "lookup"] {
            let s = &r["operations"][op];
            assert_eq!(u(&s["error_total"]), 0, "{op}: {s:#}");
            assert!(u(&s["count"]) > 0, "{op} never ran: {s:#}");
        }
    }
    assert_eq!(
        scalar(target, "SELECT COUNT(*) FROM accounts"),
        ROWS as i64,
        "the fleet loaded every row once"
    );
    assert_eq!(
        scalar(
            target,
            &format!(
                "SELECT CAST(SUM(balance) AS {}) FROM accounts",
                int_type(target)
            )
        ),
        1000 * ROWS as i64,
        "transfers move money, never create or lose it"
    );
    assert!(
        scalar(
            target,
            "SELECT COUNT(*) FROM accounts WHERE balance <> 1000"
        ) > 0,
        "transfers changed balances"
    );
    let audits = executed_ok(&r1, "audit") + executed_ok(&r2, "audit");
    assert_eq!(
        scalar(target, "SELECT COUNT(*) FROM ledger") as u64,
        audits,
        "one ledger row per successful audit, across both runs"
    );
    assert_eq!(
        scalar(
            target,
            &format!(
                "SELECT COUNT(*) FROM ledger WHERE account < 1 OR account > {ROWS} OR amount < 0"
            )
        ),
        0,
        "generated values stay in their ranges"
    );
    let credit = scalar(target, "SELECT COUNT(*) FROM ledger WHERE kind = 'credit'");
    let debit = scalar(target, "SELECT COUNT(*) FROM ledger WHERE kind = 'debit'");
    assert_eq!(credit + debit, audits as i64);
    assert!(
        credit > debit,
        "weights 3:1 gave {credit} credit, {debit} debit"
    );
    let recent = match sqlite_or(target, "sqlite", "server") {
        "sqlite" => "SELECT COUNT(*) FROM ledger WHERE at > '2026-01-01'",
        _ => "SELECT COUNT(*) FROM ledger WHERE at > '2026-01-01 00:00:00'",
    };
    assert_eq!(
        scalar(target, recent) as u64,
        audits,
        "now stamps every row"
    );

    // Teardown drops what setup made.
    fleetload(&[
        "teardown",
        "--target",
        target,
        "--password-env",
        PASSWORD_ENV,
        "--scenario",
        text.to_str().unwrap(),
    ])
    .assert_ok();
    let gone = std::panic::catch_unwind(|| scalar(target, "SELECT COUNT(*) FROM ledger"));
    assert!(gone.is_err(), "ledger still exists after teardown");
}

on_every_target!(a_custom_bank_runs_on_both_protocols_and_its_tables_add_up);

/// Two transactions lock two rows in opposite orders with a pause between: the servers
/// detect deadlocks, fleetload rolls back and retries, counts every retry, and only
/// committed transactions count as successes: both rows were incremented exactly once per
/// successful operation.
fn a_forced_deadlock_is_retried_and_counted(target: &str, duration: &str) {
    let files = tempfile::tempdir().unwrap();
    let file = files.path().join("deadlock.toml");
    std::fs::write(
        &file,
        r#"
rows = 2
[setup]
sql = ["DROP TABLE IF EXISTS pair", "CREATE TABLE pair(id INTEGER NOT NULL PRIMARY KEY, v INTEGER NOT NULL)", "INSERT INTO pair VALUES (1, 0), (2, 0)"]

[[operation]]
name = "one_then_two"
retry = 20
sql = [
  "UPDATE pair SET v = v + 1 WHERE id = 1",
  { mysql = "SELECT SLEEP(0.02)", postgres = "SELECT pg_sleep(0.02)" },
  "UPDATE pair SET v = v + 1 WHERE id = 2",
]

[[operation]]
name = "two_then_one"
retry = 20
sql = [
  "UPDATE pair SET v = v + 1 WHERE id = 2",
  { mysql = "SELECT SLEEP(0.02)", postgres = "SELECT pg_sleep(0.02)" },
  "UPDATE pair SET v = v + 1 WHERE id = 1",
]
"#,
    )
    .unwrap();
    let r = run_file(
        target,
        &file,
        &[
            "--prepare",
            "--workers",
            "1",
            "--sessions",
            "4",
            "--duration",
            duration,
        ],
    );
    let retries: u64 = ["one_then_two", "two_then_one"]
        .iter()
        .map(|op| r["operations"][op]["retries"].as_u64().unwrap_or(0))
        .sum();
    assert!(
        retries > 0,
        "no deadlock was retried: {:#}",
        r["operations"]
    );
    let ok = executed_ok(&r, "one_then_two") + executed_ok(&r, "two_then_one");
    assert!(ok > 0);
    let executed_retries: u64 = r["workers"][0]["executed"]
        .as_object()
        .unwrap()
        .values()
        .map(|e| e["retries"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(
        executed_retries, retries,
        "the merge counts every retry once"
    );
    for id in [1, 2] {
        assert_eq!(
            scalar(
                target,
                &format!(
                    "SELECT CAST(v AS {}) FROM pair WHERE id = {id}",
                    int_type(target)
                )
            ) as u64,
            ok,
            "row {id}: one increment per committed transaction, none from rolled-back attempts"
        );
    }
}

#[test]
fn a_forced_deadlock_is_retried_and_counted_on_mariadb() {
    a_forced_deadlock_is_retried_and_counted(&fresh_mysql("deadlock"), "3s");
}

#[test]
fn a_forced_deadlock_is_retried_and_counted_on_postgres() {
    // PostgreSQL looks for deadlocks after deadlock_timeout (1 s).
    a_forced_deadlock_is_retried_and_counted(&fresh_pg("deadlock"), "5s");
}

/// A statement the server cannot prepare stops the run before any load, naming the
/// file, the line and the operation; `fleetload check` says the same without a run.
#[test]
fn a_statement_that_does_not_prepare_fails_before_the_load_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let target = sqlite(dir.path());
    let file = dir.path().join("broken.toml");
    std::fs::write(
        &file,
        "rows = 10\n[setup]\nsql = \"CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER)\"\n\n[[operation]]\nname = \"good\"\nsql = \"SELECT v FROM t WHERE id = :id\"\nparams.id = { gen = \"shard\" }\n\n[[operation]]\nname = \"bad\"\nsql = \"SELECT nosuchcolumn FROM t WHERE id = :id\"\nparams.id = { gen = \"shard\" }\n",
    )
    .unwrap();
    let reports = tempfile::tempdir().unwrap();
    let out = fleetload(&[
        "run",
        "--target",
        &target,
        "--scenario",
        file.to_str().unwrap(),
        "--prepare",
        "--duration",
        "2s",
        "--report-dir",
        reports.path().to_str().unwrap(),
    ]);
    assert_ne!(out.code, Some(0));
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(
        all.contains("broken.toml, line 12")
            && all.contains("operation `bad`")
            && all.contains("nosuchcolumn"),
        "{all}"
    );
    let check = fleetload(&[
        "check",
        "--target",
        &target,
        "--scenario",
        file.to_str().unwrap(),
    ]);
    assert_ne!(check.code, Some(0));
    assert!(
        check.stderr.contains("line 12") && check.stderr.contains("operation `bad`"),
        "{}",
        check.stderr
    );
}

/// A file that is wrong in itself is refused when the plan is read, before anything
/// connects, with the line and what to do.
#[test]
fn a_malformed_file_is_refused_before_anything_connects() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("typo.toml");
    std::fs::write(
        &file,
        "[[operation]]\nname = \"read\"\nsql = \"SELECT 1 WHERE 1 = :id\"\nparams.id = { gen = \"shrad\" }\n",
    )
    .unwrap();
    // Nothing listens on this port: a connection attempt would fail differently.
    let out = fleetload(&[
        "check",
        "--target",
        "mysql://nobody@127.0.0.1:1/none",
        "--scenario",
        file.to_str().unwrap(),
    ]);
    assert_ne!(out.code, Some(0));
    assert!(
        out.stderr.contains("typo.toml, line 4")
            && out.stderr.contains("parameter `id`")
            && out.stderr.contains("unknown generator \"shrad\""),
        "{}",
        out.stderr
    );
    assert_eq!(
        out.stderr.matches("unknown generator").count(),
        1,
        "said once: {}",
        out.stderr
    );
}

/// The built-in scenarios written as scenario files run as the built-ins do.
#[test]
fn the_shipped_point_select_and_churn_files_run() {
    let dir = tempfile::tempdir().unwrap();
    let target = sqlite(dir.path());
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/scenarios");
    let r = run_file(
        &target,
        &examples.join("point_select.toml"),
        &["--prepare", "--rate", "100", "--duration", "2s"],
    );
    assert_eq!(r["status"], "passed");
    assert_eq!(u(&r["operations"]["point_select"]["error_total"]), 0);
    assert!(u(&r["operations"]["point_select"]["count"]) >= 190);

    fleetload(&[
        "prepare",
        "--target",
        &target,
        "--scenario",
        "churn",
        "--rows",
        "1000",
    ])
    .assert_ok();
    let r = run_file(
        &target,
        &examples.join("churn.toml"),
        &["--rows", "1000", "--rate", "100", "--duration", "2s"],
    );
    assert_eq!(r["status"], "passed");
    for op in [
        "read_customer",
        "predict_one",
        "read_prediction",
        "update_usage",
    ] {
        assert_eq!(
            u(&r["operations"][op]["error_total"]),
            0,
            "{op}: {:#}",
            r["operations"][op]
        );
        assert!(u(&r["operations"][op]["count"]) > 0, "{op}");
    }
}
