//! The local stand-in for an Aurora ML endpoint: `will_churn(<15 features>)` inside the
//! database, with the same SQL shape as Aurora's alias function.
//!
//! It computes the fixed churn model of `fleetload_common::churn` (so a label can be
//! checked from Rust), and behaves like an endpoint under stress: every request costs a
//! per-request overhead plus a per-row cost (`SLEEP` / `pg_sleep`), and at most
//! `capacity` requests run at once across all sessions (named locks in MariaDB,
//! advisory locks in PostgreSQL), so the database saturates the way a deployment with
//! few model instances does. Requests, logical calls and single-row calls are counted
//! in sequences, which are non-transactional: counting takes no row lock, so it does
//! not serialize callers (a counter table would, since MariaDB pre-locks a function's
//! tables for the whole calling statement).
//!
//! The endpoint is split in two: `fl_ml_request(rows, single)` is one request (wait for a
//! slot, pay overhead + rows x row cost, count it) and `will_churn_model(...)` is the
//! pure model. `will_churn` is one single-row request plus the model. MariaDB and
//! PostgreSQL cannot batch a function over a result set as Aurora's optimizer does, so
//! the batched operations make one request for their K rows, then score them with the
//! model: the same cost and the same counters as Aurora's batched path.
//!
//! BEFORE INSERT and BEFORE UPDATE triggers fill `churn_prediction` and `predicted_at`,
//! one single-row call per row, as Aurora evaluates a function in a trigger.

use fleetload_common::target::Driver;
use std::time::Duration;

/// How the stand-in endpoint behaves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MlSettings {
    /// Fixed cost of each request (SageMaker's OverheadLatency).
    pub overhead: Duration,
    /// Cost per row scored in a request (ModelLatency per row).
    pub row_cost: Duration,
    /// Requests served at once across all sessions (model instances).
    pub capacity: u32,
}

impl Default for MlSettings {
    fn default() -> Self {
        MlSettings {
            overhead: Duration::from_millis(5),
            row_cost: Duration::ZERO,
            capacity: 16,
        }
    }
}

/// The fifteen model inputs, in the order of the Aurora ML labs' `will_churn`.
pub const FEATURES: [&str; 15] = [
    "state",
    "account_length",
    "area_code",
    "intl_plan",
    "vmail_plan",
    "vmail_message",
    "day_mins",
    "day_calls",
    "eve_mins",
    "eve_calls",
    "night_mins",
    "night_calls",
    "intl_mins",
    "intl_calls",
    "custserv_calls",
];

/// The model's linear term over columns or parameters named `p(feature)`, term by term
/// in the order of `churn::linear_term`, with double-precision constants, so the
/// database computes the same double as Rust does.
fn linear_term(driver: Driver, p: impl Fn(&str) -> String) -> String {
    let c = |x: &str| match driver {
        Driver::Postgres => format!("CAST({x} AS DOUBLE PRECISION)"),
        _ => format!("{x}e0"),
    };
    let yes = |f: &str| format!("(CASE WHEN {} = 'yes' THEN 1 ELSE 0 END)", p(f));
    format!(
        "(((((((((({} + {} * {}) - {} * {}) + {} * {}) + {} * {}) + {} * {}) + {} * {}) - {} * {}) + {} * {}) - {} * {}))",
        c("-8.6"),
        c("2.1"), yes("intl_plan"),
        c("1.1"), yes("vmail_plan"),
        c("0.0153"), p("day_mins"),
        c("0.0071"), p("eve_mins"),
        c("0.0036"), p("night_mins"),
        c("0.09"), p("intl_mins"),
        c("0.08"), p("intl_calls"),
        c("0.62"), p("custserv_calls"),
        c("0.004"), p("vmail_message"),
    )
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Statements that (re)create the stand-in and its triggers. Run them after the rows are
/// loaded, so the bulk load does not call the model.
pub fn install(driver: Driver, s: MlSettings) -> Vec<String> {
    match driver {
        Driver::MySql => mysql(s),
        Driver::Postgres => postgres(s),
        Driver::Sqlite => sqlite(s),
    }
}

/// SQLite: the functions are Rust (`sqlite_ml`), registered on every connection; here
/// only their configuration and the triggers. SQLite cannot assign `NEW` in a BEFORE
/// trigger, so AFTER triggers update the row they fired for.
fn sqlite(s: MlSettings) -> Vec<String> {
    let new = FEATURES.map(|f| format!("NEW.{f}")).join(", ");
    let now = "strftime('%Y-%m-%d %H:%M:%f', 'now')";
    let mut ddl = vec![
        "DROP TRIGGER IF EXISTS customers_predict_insert".to_string(),
        "DROP TRIGGER IF EXISTS customers_predict_update".to_string(),
    ];
    ddl.extend(common_objects(Driver::Sqlite, s));
    ddl.extend([
        format!("CREATE TRIGGER customers_predict_insert AFTER INSERT ON customers FOR EACH ROW WHEN NEW.churn_prediction IS NULL BEGIN UPDATE customers SET churn_prediction = will_churn({new}), predicted_at = {now} WHERE id = NEW.id; END"),
        format!(
            "CREATE TRIGGER customers_predict_update AFTER UPDATE OF {} ON customers FOR EACH ROW BEGIN UPDATE customers SET churn_prediction = will_churn({new}), predicted_at = {now} WHERE id = NEW.id; END",
            FEATURES.join(", ")
        ),
    ]);
    ddl
}

fn mysql(s: MlSettings) -> Vec<String> {
    let params = "state VARCHAR(2048), account_length BIGINT, area_code BIGINT, intl_plan VARCHAR(2048), vmail_plan VARCHAR(2048), vmail_message BIGINT, day_mins DOUBLE, day_calls BIGINT, eve_mins DOUBLE, eve_calls BIGINT, night_mins DOUBLE, night_calls BIGINT, intl_mins DOUBLE, intl_calls BIGINT, custserv_calls BIGINT";
    let z = linear_term(Driver::MySql, |f| f.to_string());
    let mut ddl: Vec<String> = [
        "DROP TRIGGER IF EXISTS customers_predict_insert",
        "DROP TRIGGER IF EXISTS customers_predict_update",
        "DROP FUNCTION IF EXISTS will_churn",
        "DROP FUNCTION IF EXISTS will_churn_model",
        "DROP FUNCTION IF EXISTS fl_ml_request",
    ]
    .map(String::from)
    .to_vec();
    ddl.extend(common_objects(Driver::MySql, s));
    ddl.extend([
        // One request to the endpoint for `nrows` rows: wait for a free model slot,
        // pay overhead + nrows x row cost, count it.
        "CREATE FUNCTION fl_ml_request(nrows BIGINT, single BIGINT) RETURNS BIGINT NOT DETERMINISTIC MODIFIES SQL DATA
BEGIN
  DECLARE cap INT;
  DECLARE cost DOUBLE;
  DECLARE slot INT DEFAULT 0;
  DECLARE got INT DEFAULT 0;
  DECLARE i BIGINT DEFAULT 0;
  DECLARE n BIGINT;
  SELECT capacity, overhead_ms + nrows * row_cost_ms INTO cap, cost FROM fl_ml_config WHERE id = 1;
  WHILE got = 0 DO
    SET slot = 0;
    WHILE slot < cap AND got = 0 DO
      SET got = IFNULL(GET_LOCK(CONCAT(DATABASE(), '.fl_ml_', slot), 0), 0);
      IF got = 0 THEN SET slot = slot + 1; END IF;
    END WHILE;
    IF got = 0 THEN
      SET slot = FLOOR(RAND() * cap);
      SET got = IFNULL(GET_LOCK(CONCAT(DATABASE(), '.fl_ml_', slot), 1), 0);
    END IF;
  END WHILE;
  DO SLEEP(cost / 1000);
  SET n = NEXTVAL(fl_ml_requests);
  WHILE i < nrows DO
    SET n = NEXTVAL(fl_ml_logical);
    SET i = i + 1;
  END WHILE;
  IF single = 1 THEN SET n = NEXTVAL(fl_ml_single); END IF;
  DO RELEASE_LOCK(CONCAT(DATABASE(), '.fl_ml_', slot));
  RETURN nrows;
END"
        .to_string(),
        format!("CREATE FUNCTION will_churn_model({params}) RETURNS VARCHAR(16) CHARSET utf8mb4 DETERMINISTIC NO SQL RETURN IF({z} >= 0, 'True.', 'False.')"),
        format!(
            "CREATE FUNCTION will_churn({params}) RETURNS VARCHAR(2048) CHARSET utf8mb4 NOT DETERMINISTIC MODIFIES SQL DATA
BEGIN
  DECLARE r BIGINT;
  SET r = fl_ml_request(1, 1);
  RETURN will_churn_model({});
END",
            FEATURES.join(", ")
        ),
    ]);
    ddl.extend(mysql_triggers());
    ddl
}

/// BEFORE INSERT / BEFORE UPDATE triggers calling `will_churn`, one call per row.
fn mysql_triggers() -> Vec<String> {
    let new = |prefix: &str| FEATURES.map(|f| format!("{prefix}.{f}")).join(", ");
    let changed = FEATURES
        .map(|f| format!("NEW.{f} <=> OLD.{f}"))
        .join(" AND ");
    vec![
        format!(
            "CREATE TRIGGER customers_predict_insert BEFORE INSERT ON customers FOR EACH ROW
BEGIN
  IF NEW.churn_prediction IS NULL THEN
    SET NEW.churn_prediction = will_churn({}), NEW.predicted_at = NOW(6);
  END IF;
END",
            new("NEW")
        ),
        format!(
            "CREATE TRIGGER customers_predict_update BEFORE UPDATE ON customers FOR EACH ROW
BEGIN
  IF NOT ({changed}) THEN
    SET NEW.churn_prediction = will_churn({}), NEW.predicted_at = NOW(6);
  END IF;
END",
            new("NEW")
        ),
    ]
}

/// The configuration table and the counter sequences, the same in both dialects.
fn common_objects(driver: Driver, s: MlSettings) -> Vec<String> {
    let real = if driver == Driver::Postgres {
        "DOUBLE PRECISION"
    } else {
        "DOUBLE"
    };
    let cache = if driver == Driver::MySql {
        " NOCACHE"
    } else {
        ""
    };
    let mut ddl = vec![
        "DROP TABLE IF EXISTS fl_ml_config".to_string(),
        format!("CREATE TABLE fl_ml_config(id INT PRIMARY KEY, overhead_ms {real} NOT NULL, row_cost_ms {real} NOT NULL, capacity INT NOT NULL)"),
        format!("INSERT INTO fl_ml_config VALUES (1, {}, {}, {})", ms(s.overhead), ms(s.row_cost), s.capacity),
    ];
    if driver != Driver::Sqlite {
        // SQLite's stand-in counts in a file beside the database (`sqlite_ml`).
        for seq in ["fl_ml_requests", "fl_ml_logical", "fl_ml_single"] {
            ddl.push(format!("DROP SEQUENCE IF EXISTS {seq}"));
            ddl.push(format!(
                "CREATE SEQUENCE {seq} START WITH 1 INCREMENT BY 1{cache}"
            ));
        }
    }
    ddl
}

fn postgres(s: MlSettings) -> Vec<String> {
    let types = "TEXT, BIGINT, BIGINT, TEXT, TEXT, BIGINT, DOUBLE PRECISION, BIGINT, DOUBLE PRECISION, BIGINT, DOUBLE PRECISION, BIGINT, DOUBLE PRECISION, BIGINT, BIGINT";
    let params = "state TEXT, account_length BIGINT, area_code BIGINT, intl_plan TEXT, vmail_plan TEXT, vmail_message BIGINT, day_mins DOUBLE PRECISION, day_calls BIGINT, eve_mins DOUBLE PRECISION, eve_calls BIGINT, night_mins DOUBLE PRECISION, night_calls BIGINT, intl_mins DOUBLE PRECISION, intl_calls BIGINT, custserv_calls BIGINT";
    let z = linear_term(Driver::Postgres, |f| format!("will_churn_model.{f}"));
    let mut ddl = vec![
        "DROP TRIGGER IF EXISTS customers_predict_insert ON customers".to_string(),
        "DROP TRIGGER IF EXISTS customers_predict_update ON customers".to_string(),
        "DROP FUNCTION IF EXISTS customers_predict()".to_string(),
        format!("DROP FUNCTION IF EXISTS will_churn({types})"),
        format!("DROP FUNCTION IF EXISTS will_churn_model({types})"),
        "DROP FUNCTION IF EXISTS fl_ml_request(BIGINT, BIGINT)".to_string(),
    ];
    ddl.extend(common_objects(Driver::Postgres, s));
    ddl.extend([
        // Session-level advisory locks (key space 17996): a cancelled call's lock goes
        // with its connection, which fleetload drops after a timeout.
        "CREATE FUNCTION fl_ml_request(nrows BIGINT, single BIGINT) RETURNS BIGINT LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
  cap INT;
  cost DOUBLE PRECISION;
  slot INT := -1;
BEGIN
  SELECT c.capacity, c.overhead_ms + nrows * c.row_cost_ms INTO cap, cost FROM fl_ml_config c WHERE c.id = 1;
  FOR s IN 0 .. cap - 1 LOOP
    IF pg_try_advisory_lock(17996, s) THEN slot := s; EXIT; END IF;
  END LOOP;
  IF slot < 0 THEN
    slot := floor(random() * cap)::INT;
    PERFORM pg_advisory_lock(17996, slot);
  END IF;
  PERFORM pg_sleep(cost / 1000.0);
  PERFORM nextval('fl_ml_requests');
  PERFORM nextval('fl_ml_logical') FROM generate_series(1, nrows);
  IF single = 1 THEN PERFORM nextval('fl_ml_single'); END IF;
  PERFORM pg_advisory_unlock(17996, slot);
  RETURN nrows;
END
$fn$"
        .to_string(),
        format!("CREATE FUNCTION will_churn_model({params}) RETURNS VARCHAR LANGUAGE sql IMMUTABLE AS $fn$ SELECT CASE WHEN {z} >= 0 THEN 'True.' ELSE 'False.' END $fn$"),
        format!(
            "CREATE FUNCTION will_churn({params}) RETURNS VARCHAR LANGUAGE plpgsql VOLATILE AS $fn$
BEGIN
  PERFORM fl_ml_request(1, 1);
  RETURN will_churn_model({});
END
$fn$",
            FEATURES.map(|f| format!("will_churn.{f}")).join(", ")
        ),
    ]);
    ddl.extend(postgres_triggers());
    ddl
}

/// The trigger function and BEFORE INSERT / BEFORE UPDATE OF <features> triggers.
fn postgres_triggers() -> Vec<String> {
    let new = FEATURES.map(|f| format!("NEW.{f}")).join(", ");
    vec![
        format!(
            "CREATE FUNCTION customers_predict() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  IF TG_OP = 'UPDATE' OR NEW.churn_prediction IS NULL THEN
    NEW.churn_prediction := will_churn({new});
    NEW.predicted_at := clock_timestamp();
  END IF;
  RETURN NEW;
END
$fn$"
        ),
        "CREATE TRIGGER customers_predict_insert BEFORE INSERT ON customers FOR EACH ROW EXECUTE FUNCTION customers_predict()".to_string(),
        format!(
            "CREATE TRIGGER customers_predict_update BEFORE UPDATE OF {} ON customers FOR EACH ROW EXECUTE FUNCTION customers_predict()",
            FEATURES.join(", ")
        ),
    ]
}

/// Statements that create `will_churn` as a real Aurora ML function backed by the
/// SageMaker endpoint `endpoint`, and the same triggers as the stand-in. Aurora only: the
/// alias syntax and `aws_ml` exist nowhere else. The cluster needs the IAM role and
/// parameter group of `deploy/aurora/README.md` first.
pub fn install_aurora(driver: Driver, endpoint: &str, max_batch: u32) -> Vec<String> {
    match driver {
        Driver::MySql => {
            let mut ddl = vec![
                "DROP TRIGGER IF EXISTS customers_predict_insert".to_string(),
                "DROP TRIGGER IF EXISTS customers_predict_update".to_string(),
                "DROP FUNCTION IF EXISTS will_churn".to_string(),
                format!(
                    "CREATE FUNCTION will_churn(state VARCHAR(2048), account_length BIGINT, area_code BIGINT, intl_plan VARCHAR(2048), vmail_plan VARCHAR(2048), vmail_message BIGINT, day_mins DOUBLE, day_calls BIGINT, eve_mins DOUBLE, eve_calls BIGINT, night_mins DOUBLE, night_calls BIGINT, intl_mins DOUBLE, intl_calls BIGINT, custserv_calls BIGINT) RETURNS VARCHAR(2048) CHARSET utf8mb4 ALIAS AWS_SAGEMAKER_INVOKE_ENDPOINT ENDPOINT NAME '{endpoint}' MAX_BATCH_SIZE {max_batch}"
                ),
            ];
            ddl.extend(mysql_triggers());
            ddl
        }
        Driver::Postgres => {
            let args = FEATURES.join(", ");
            let mut ddl = vec![
                "CREATE EXTENSION IF NOT EXISTS aws_ml CASCADE".to_string(),
                "DROP TRIGGER IF EXISTS customers_predict_insert ON customers".to_string(),
                "DROP TRIGGER IF EXISTS customers_predict_update ON customers".to_string(),
                "DROP FUNCTION IF EXISTS customers_predict()".to_string(),
                format!(
                    "CREATE OR REPLACE FUNCTION will_churn(state TEXT, account_length BIGINT, area_code BIGINT, intl_plan TEXT, vmail_plan TEXT, vmail_message BIGINT, day_mins DOUBLE PRECISION, day_calls BIGINT, eve_mins DOUBLE PRECISION, eve_calls BIGINT, night_mins DOUBLE PRECISION, night_calls BIGINT, intl_mins DOUBLE PRECISION, intl_calls BIGINT, custserv_calls BIGINT, max_rows_per_batch INT DEFAULT {max_batch}) RETURNS VARCHAR LANGUAGE SQL PARALLEL SAFE STABLE COST 5000 AS $fn$ SELECT aws_sagemaker.invoke_endpoint('{endpoint}', max_rows_per_batch, {args})::VARCHAR $fn$"
                ),
            ];
            ddl.extend(postgres_triggers());
            ddl
        }
        Driver::Sqlite => Vec::new(),
    }
}

/// The stand-in's counters, as `(name, SQL returning one BIGINT)`.
pub fn counters(driver: Driver) -> Vec<(&'static str, &'static str)> {
    match driver {
        Driver::MySql => vec![
            (
                "standin_requests",
                "SELECT CAST(next_not_cached_value - 1 AS SIGNED) FROM fl_ml_requests",
            ),
            (
                "standin_logical",
                "SELECT CAST(next_not_cached_value - 1 AS SIGNED) FROM fl_ml_logical",
            ),
            (
                "standin_single",
                "SELECT CAST(next_not_cached_value - 1 AS SIGNED) FROM fl_ml_single",
            ),
        ],
        Driver::Postgres => vec![
            (
                "standin_requests",
                "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM fl_ml_requests",
            ),
            (
                "standin_logical",
                "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM fl_ml_logical",
            ),
            (
                "standin_single",
                "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM fl_ml_single",
            ),
        ],
        Driver::Sqlite => vec![
            ("standin_requests", "SELECT fl_ml_counter('requests')"),
            ("standin_logical", "SELECT fl_ml_counter('logical')"),
            ("standin_single", "SELECT fl_ml_counter('single')"),
        ],
    }
}

/// A call of `function` over a row's feature columns (with an optional table alias).
pub fn call_over_columns(function: &str, alias: &str) -> String {
    format!(
        "{function}({})",
        FEATURES.map(|f| format!("{alias}{f}")).join(", ")
    )
}

/// Set the stand-in's settings a plan names (the others stay as they are) and return
/// those in force. Its functions read `fl_ml_config` on every request (MySQL,
/// PostgreSQL) or when a session opens (SQLite), so this takes effect for a run when it
/// is done before the workers open their sessions.
///
/// # Errors
/// The stand-in is not installed (no `fl_ml_config`), or the database refused.
pub async fn configure(
    session: &mut crate::session::Session,
    driver: Driver,
    named: &fleetload_common::plan::StandIn,
) -> Result<MlSettings, String> {
    let mut set = Vec::new();
    if let Some(d) = named.delay {
        set.push(format!("overhead_ms = {}", ms(d)));
    }
    if let Some(d) = named.row_cost {
        set.push(format!("row_cost_ms = {}", ms(d)));
    }
    if let Some(c) = named.capacity {
        set.push(format!("capacity = {c}"));
    }
    if !set.is_empty() {
        session
            .run_text(&format!(
                "UPDATE fl_ml_config SET {} WHERE id = 1",
                set.join(", ")
            ))
            .await
            .map_err(|e| crate::session::describe(&e))?;
    }
    let int = if driver == Driver::MySql {
        "SIGNED"
    } else {
        "BIGINT"
    };
    let row = session
        .named_i64(&format!(
            "SELECT CAST(ROUND(overhead_ms * 1000) AS {int}) AS overhead_us, CAST(ROUND(row_cost_ms * 1000) AS {int}) AS row_cost_us, CAST(capacity AS {int}) AS capacity FROM fl_ml_config WHERE id = 1"
        ))
        .await
        .map_err(|e| crate::session::describe(&e))?;
    let get = |name: &str| row.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
    match (get("overhead_us"), get("row_cost_us"), get("capacity")) {
        (Some(o), Some(r), Some(c)) => Ok(MlSettings {
            overhead: Duration::from_micros(u64::try_from(o).unwrap_or(0)),
            row_cost: Duration::from_micros(u64::try_from(r).unwrap_or(0)),
            capacity: u32::try_from(c).unwrap_or(1).max(1),
        }),
        _ => Err("fl_ml_config has no settings row".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalize(s: &str) -> String {
        s.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn aurora_functions_have_the_documented_shape() {
        let my = install_aurora(Driver::MySql, "auroraml-churn-endpoint", 100).join(";\n");
        assert!(my.contains("RETURNS VARCHAR(2048) CHARSET utf8mb4 ALIAS AWS_SAGEMAKER_INVOKE_ENDPOINT ENDPOINT NAME 'auroraml-churn-endpoint' MAX_BATCH_SIZE 100"));
        assert!(my.contains("CREATE TRIGGER customers_predict_insert BEFORE INSERT"));
        assert!(!my.contains("fl_ml_"), "no stand-in objects on Aurora");
        let pg = install_aurora(Driver::Postgres, "auroraml-churn-endpoint", 100).join(";\n");
        assert!(pg.contains("CREATE EXTENSION IF NOT EXISTS aws_ml CASCADE"));
        assert!(pg.contains("aws_sagemaker.invoke_endpoint('auroraml-churn-endpoint', max_rows_per_batch, state, account_length"));
        assert!(pg.contains("max_rows_per_batch INT DEFAULT 100"));
    }

    /// deploy/aurora/*.sql is exactly what `prepare --ml aurora` runs. Regenerate with
    /// FLEETLOAD_BLESS=1 cargo test -p fleetload-db deploy_sql.
    #[test]
    fn deploy_sql_matches_what_prepare_runs() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/aurora");
        for (driver, file) in [
            (Driver::MySql, "aurora-mysql.sql"),
            (Driver::Postgres, "aurora-postgresql.sql"),
        ] {
            let statements = install_aurora(driver, "auroraml-churn-endpoint", 100);
            let path = dir.join(file);
            if std::env::var_os("FLEETLOAD_BLESS").is_some() {
                let header = "-- Generated from fleetload-db's ml::install_aurora (endpoint auroraml-churn-endpoint,\n-- batch 100); `fleetload prepare --scenario churn --ml aurora --ml-endpoint NAME` runs the\n-- same statements. The customers table comes first: `fleetload prepare` creates and loads it.\n";
                let delimiter = if driver == Driver::MySql {
                    "DELIMITER //\n"
                } else {
                    ""
                };
                let end = if driver == Driver::MySql { "//" } else { ";" };
                let body: Vec<String> = statements.iter().map(|s| format!("{s}{end}\n")).collect();
                let tail = if driver == Driver::MySql {
                    "DELIMITER ;\n"
                } else {
                    ""
                };
                std::fs::write(
                    &path,
                    format!("{header}{delimiter}{}{tail}", body.join("\n")),
                )
                .unwrap();
            }
            let text = normalize(
                &std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display())),
            );
            for s in statements {
                assert!(text.contains(&normalize(&s)), "{file} lacks: {s}");
            }
        }
    }
}
