//! The built-in scenarios as SQL: schema, bulk data and the operations, per dialect.
//!
//! `point_select` uses sysbench's `sbtest1` table exactly (same columns, types, index
//! and value shapes), so `sysbench oltp_point_select` runs on the table `fleetload
//! prepare` made and the other way round. `churn` uses the telco-churn `customers`
//! table of the Aurora ML scenario.

use super::{Attempt, CheckError, CheckFor, Executed, Keys, Workload};
use crate::session::{placeholders, Arg, Session};
use fleetload_common::churn::{self, Customer};
use fleetload_common::generator::Streams;
use fleetload_common::rng::Rng;
use fleetload_common::scenario::{Operation, Scenario};
use fleetload_common::target::Driver;
use std::fmt::Write;
use std::ops::RangeInclusive;

/// A scenario's statements, rendered once for one dialect, and the operation of each
/// mix slot.
#[derive(Debug, Clone)]
pub struct BuiltinWorkload {
    scenario: Scenario,
    /// The operation of each mix slot (empty until [`BuiltinWorkload::with_mix`]).
    ops: Vec<Operation>,
    seed: u64,
    point_select: String,
    read_customer: String,
    predict_one: String,
    read_prediction: String,
    insert_customer: String,
    update_usage: String,
    /// The stand-in's explicit batched request; `None` on Aurora, whose optimizer
    /// batches the function itself.
    ml_request: Option<String>,
    predict_batch: String,
    score_new: String,
    batch: u32,
}

impl BuiltinWorkload {
    pub fn new(driver: Driver, scenario: Scenario, seed: u64, batch: u32, aurora_ml: bool) -> Self {
        let model = if aurora_ml {
            "will_churn"
        } else {
            "will_churn_model"
        };
        let values = vec!["?"; CUSTOMER_COLUMNS.split(',').count()].join(", ");
        BuiltinWorkload {
            scenario,
            ops: Vec::new(),
            seed,
            point_select: placeholders(driver, "SELECT c FROM sbtest1 WHERE id=?"),
            read_customer: placeholders(driver, &format!("SELECT {CUSTOMER_COLUMNS}, churn_prediction, predicted_at FROM customers WHERE id=?")),
            predict_one: placeholders(driver, &format!("SELECT {} FROM customers WHERE id=?", crate::ml::call_over_columns("will_churn", ""))),
            read_prediction: placeholders(driver, "SELECT churn_prediction, predicted_at FROM customers WHERE id=?"),
            insert_customer: placeholders(driver, &format!("INSERT INTO customers({CUSTOMER_COLUMNS}) VALUES ({values})")),
            update_usage: placeholders(driver, "UPDATE customers SET day_mins=?, day_charge=?, custserv_calls=? WHERE id=?"),
            ml_request: (!aurora_ml).then(|| placeholders(driver, "SELECT fl_ml_request(?, 0)")),
            predict_batch: placeholders(driver, &format!("SELECT id, {} FROM customers WHERE id BETWEEN ? AND ?", crate::ml::call_over_columns(model, ""))),
            score_new: placeholders(
                driver,
                &format!(
                    "INSERT INTO customers({CUSTOMER_COLUMNS}, churn_prediction, predicted_at) SELECT ? + (c.id - ?) * ?, {}, {}, {} FROM customers c WHERE c.id BETWEEN ? AND ?",
                    CUSTOMER_COLUMNS.split(", ").skip(1).map(|col| format!("c.{col}")).collect::<Vec<_>>().join(", "),
                    crate::ml::call_over_columns(model, "c."),
                    match driver {
                        Driver::Postgres => "clock_timestamp()",
                        Driver::MySql => "NOW(6)",
                        Driver::Sqlite => "strftime('%Y-%m-%d %H:%M:%f', 'now')",
                    },
                ),
            ),
            batch,
        }
    }

    /// The operation of each mix slot, in order.
    pub fn with_mix(self, ops: Vec<Operation>) -> Self {
        BuiltinWorkload { ops, ..self }
    }

    /// The operation of each mix slot.
    pub fn ops(&self) -> &[Operation] {
        &self.ops
    }

    pub fn scenario(&self) -> Scenario {
        self.scenario
    }

    /// The statements operation `op` runs, with sample arguments of the types it binds.
    fn statements(&self, op: Operation) -> Vec<(&str, Vec<Option<Arg>>)> {
        let id = || Some(Arg::Int(1));
        let customer = || {
            customer_args(&churn::customer(self.seed, 1))
                .into_iter()
                .map(Some)
                .collect()
        };
        match op {
            // Probed above, every table at once.
            Operation::NewOrder
            | Operation::Payment
            | Operation::OrderStatus
            | Operation::Delivery
            | Operation::StockLevel => Vec::new(),
            Operation::PointSelect => vec![(self.point_select.as_str(), vec![id()])],
            Operation::ReadCustomer => vec![(self.read_customer.as_str(), vec![id()])],
            Operation::PredictOne => vec![(self.predict_one.as_str(), vec![id()])],
            Operation::ReadPrediction => vec![(self.read_prediction.as_str(), vec![id()])],
            Operation::InsertCustomer => vec![(self.insert_customer.as_str(), customer())],
            Operation::UpdateUsage => vec![(
                self.update_usage.as_str(),
                vec![
                    Some(Arg::Real(1.0)),
                    Some(Arg::Real(1.0)),
                    Some(Arg::Int(1)),
                    id(),
                ],
            )],
            Operation::PredictBatch | Operation::ScoreNew => {
                let mut v = Vec::new();
                if let Some(r) = &self.ml_request {
                    v.push((r.as_str(), vec![id()]));
                }
                v.push(if op == Operation::PredictBatch {
                    (self.predict_batch.as_str(), vec![id(), id()])
                } else {
                    (self.score_new.as_str(), vec![id(), id(), id(), id(), id()])
                });
                v
            }
        }
    }

    /// The pre-flight a worker runs before it reports ready, and `fleetload check`:
    /// every statement of `ops` prepares on the server (the table, its columns and the
    /// model's functions exist), and the table holds keys up to `rows`.
    ///
    /// # Errors
    /// What is missing, and the `fleetload prepare` command that makes it.
    pub async fn check(
        &self,
        session: &mut Session,
        driver: Driver,
        ops: &[Operation],
        target: &str,
        rows: u64,
    ) -> Result<(), String> {
        let statements = ops.iter().map(|op| (*op, self.statements(*op)));
        check_scenario(session, self.scenario, driver, statements, target, rows).await
    }

    /// Run one operation with keys from `keys`: the rows it inserted, and those it read
    /// or updated of existing keys.
    ///
    /// # Errors
    /// Whatever the database returns; the caller classifies it.
    pub async fn execute(
        &self,
        session: &mut Session,
        op: Operation,
        keys: &mut Keys,
        rng: &mut Rng,
    ) -> Result<Executed, sqlx::Error> {
        let shard = keys.pick(rng);
        let id = rng.range(shard.first, shard.last) as i64;
        // A batch of K rows inside the range (the whole range when it is smaller).
        let k = u64::from(self.batch).min(shard.len());
        let batch_first = rng.range(shard.first, shard.last - (k - 1)) as i64;
        let batch_last = batch_first + k as i64 - 1;
        let mut inserted = 0;
        let found = match op {
            // Run as transactions above.
            Operation::NewOrder
            | Operation::Payment
            | Operation::OrderStatus
            | Operation::Delivery
            | Operation::StockLevel => 0,
            Operation::PointSelect => session.fetch(&self.point_select, &[Arg::Int(id)]).await?,
            Operation::ReadCustomer => session.fetch(&self.read_customer, &[Arg::Int(id)]).await?,
            Operation::PredictOne => session.fetch(&self.predict_one, &[Arg::Int(id)]).await?,
            Operation::ReadPrediction => {
                session
                    .fetch(&self.read_prediction, &[Arg::Int(id)])
                    .await?
            }
            Operation::InsertCustomer => {
                let new_id = keys.next_insert;
                // The id is spent whether or not the insert succeeds: ids are never reused.
                keys.next_insert += keys.insert_stride;
                let args = customer_args(&churn::customer(self.seed, new_id));
                inserted = session.execute(&self.insert_customer, &args).await?;
                0
            }
            Operation::PredictBatch => {
                // One request for K rows, then the model over them (see `ml`).
                if let Some(request) = &self.ml_request {
                    session.fetch(request, &[Arg::Int(k as i64)]).await?;
                }
                session
                    .fetch(
                        &self.predict_batch,
                        &[Arg::Int(batch_first), Arg::Int(batch_last)],
                    )
                    .await?
            }
            Operation::ScoreNew => {
                // K new customers (copies of K existing ones under new ids), scored in
                // the select list as Aurora batches an INSERT … SELECT.
                let base = keys.next_insert;
                keys.next_insert += k * keys.insert_stride;
                if let Some(request) = &self.ml_request {
                    session.fetch(request, &[Arg::Int(k as i64)]).await?;
                }
                let args = [
                    Arg::Int(base as i64),
                    Arg::Int(batch_first),
                    Arg::Int(keys.insert_stride as i64),
                    Arg::Int(batch_first),
                    Arg::Int(batch_last),
                ];
                inserted = session.execute(&self.score_new, &args).await?;
                0
            }
            Operation::UpdateUsage => {
                let day_mins = (rng.normal(179.8, 54.5).clamp(0.0, 350.8) * 10.0).round() / 10.0;
                let day_charge = (day_mins * 0.17 * 100.0).round() / 100.0;
                let custserv = rng.range(0, 9) as i64;
                let args = [
                    Arg::Real(day_mins),
                    Arg::Real(day_charge),
                    Arg::Int(custserv),
                    Arg::Int(id),
                ];
                session.execute(&self.update_usage, &args).await? as usize
            }
        };
        Ok(Executed {
            inserted,
            // Inserts make new keys; every other operation targets existing ones.
            rows: (!matches!(op, Operation::InsertCustomer | Operation::ScoreNew))
                .then_some(found as u64),
            ..Executed::default()
        })
    }
}

const CUSTOMER_COLUMNS: &str = "id, state, account_length, area_code, phone, intl_plan, vmail_plan, vmail_message, day_mins, day_calls, day_charge, eve_mins, eve_calls, eve_charge, night_mins, night_calls, night_charge, intl_mins, intl_calls, intl_charge, custserv_calls, churn";

/// Statements that drop and create the scenario's schema.
pub fn schema(driver: Driver, scenario: Scenario) -> Vec<String> {
    if scenario == Scenario::Tpcc {
        return crate::workloads::tpcc::load::schema(driver);
    }
    let table = scenario.table();
    let mut ddl = vec![format!("DROP TABLE IF EXISTS {table}")];
    match scenario {
        Scenario::Tpcc => {}
        Scenario::PointSelect => {
            ddl.push(match driver {
                Driver::MySql => "CREATE TABLE sbtest1(id INTEGER NOT NULL AUTO_INCREMENT, k INTEGER DEFAULT '0' NOT NULL, c CHAR(120) DEFAULT '' NOT NULL, pad CHAR(60) DEFAULT '' NOT NULL, PRIMARY KEY (id)) ENGINE = InnoDB".into(),
                Driver::Postgres => "CREATE TABLE sbtest1(id SERIAL, k INTEGER DEFAULT '0' NOT NULL, c CHAR(120) DEFAULT '' NOT NULL, pad CHAR(60) DEFAULT '' NOT NULL, PRIMARY KEY (id))".into(),
                Driver::Sqlite => "CREATE TABLE sbtest1(id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, k INTEGER DEFAULT '0' NOT NULL, c CHAR(120) DEFAULT '' NOT NULL, pad CHAR(60) DEFAULT '' NOT NULL)".into(),
            });
        }
        Scenario::Churn => {
            let (id, real, ts) = match driver {
                Driver::MySql => ("BIGINT NOT NULL", "DOUBLE", "DATETIME(6)"),
                Driver::Postgres => ("BIGINT NOT NULL", "DOUBLE PRECISION", "TIMESTAMP(6)"),
                Driver::Sqlite => ("INTEGER NOT NULL", "REAL", "TEXT"),
            };
            ddl.push(format!(
                "CREATE TABLE customers(id {id} PRIMARY KEY, state CHAR(2) NOT NULL, account_length INTEGER NOT NULL, area_code INTEGER NOT NULL, phone VARCHAR(8) NOT NULL, intl_plan VARCHAR(3) NOT NULL, vmail_plan VARCHAR(3) NOT NULL, vmail_message INTEGER NOT NULL, day_mins {real} NOT NULL, day_calls INTEGER NOT NULL, day_charge {real} NOT NULL, eve_mins {real} NOT NULL, eve_calls INTEGER NOT NULL, eve_charge {real} NOT NULL, night_mins {real} NOT NULL, night_calls INTEGER NOT NULL, night_charge {real} NOT NULL, intl_mins {real} NOT NULL, intl_calls INTEGER NOT NULL, intl_charge {real} NOT NULL, custserv_calls INTEGER NOT NULL, churn VARCHAR(6) NOT NULL, churn_prediction VARCHAR(16) NULL, predicted_at {ts} NULL)"
            ));
        }
    }
    ddl
}

/// Statements that run after the rows are loaded (indexes, sequences, statistics).
pub fn finish(driver: Driver, scenario: Scenario, rows: u64) -> Vec<String> {
    match (scenario, driver) {
        (Scenario::PointSelect, Driver::Postgres) => vec![
            "CREATE INDEX k_1 ON sbtest1(k)".into(),
            // Explicit ids do not advance the sequence; sysbench's inserts would collide.
            format!("SELECT setval('sbtest1_id_seq', {rows})"),
            "ANALYZE sbtest1".into(),
        ],
        (Scenario::PointSelect, Driver::MySql) => vec![
            "CREATE INDEX k_1 ON sbtest1(k)".into(),
            "ANALYZE TABLE sbtest1".into(),
        ],
        (Scenario::PointSelect, Driver::Sqlite) => vec![
            "CREATE INDEX k_1 ON sbtest1(k)".into(),
            "ANALYZE sbtest1".into(),
        ],
        (Scenario::Churn, Driver::MySql) => vec!["ANALYZE TABLE customers".into()],
        (Scenario::Churn, _) => vec!["ANALYZE customers".into()],
        (Scenario::Tpcc, _) => crate::workloads::tpcc::load::indexes(driver),
    }
}

fn sysbench_digits(rng: &mut Rng, groups: usize, out: &mut String) {
    for g in 0..groups {
        if g > 0 {
            out.push('-');
        }
        for _ in 0..11 {
            out.push(char::from(b'0' + rng.range(0, 9) as u8));
        }
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// A customer as bound arguments, in `CUSTOMER_COLUMNS` order.
pub fn customer_args(c: &Customer) -> Vec<Arg> {
    vec![
        Arg::Int(c.id as i64),
        Arg::Text(c.state.to_string()),
        Arg::Int(c.account_length),
        Arg::Int(c.area_code),
        Arg::Text(c.phone.clone()),
        Arg::Text(yes_no(c.intl_plan).to_string()),
        Arg::Text(yes_no(c.vmail_plan).to_string()),
        Arg::Int(c.vmail_message),
        Arg::Real(c.day_mins),
        Arg::Int(c.day_calls),
        Arg::Real(c.day_charge),
        Arg::Real(c.eve_mins),
        Arg::Int(c.eve_calls),
        Arg::Real(c.eve_charge),
        Arg::Real(c.night_mins),
        Arg::Int(c.night_calls),
        Arg::Real(c.night_charge),
        Arg::Real(c.intl_mins),
        Arg::Int(c.intl_calls),
        Arg::Real(c.intl_charge),
        Arg::Int(c.custserv_calls),
        Arg::Text(churn::label(c.churn).to_string()),
    ]
}

fn customer_values(c: &Customer, out: &mut String) {
    let _ = write!(
        out,
        "({},'{}',{},{},'{}','{}','{}',{},{},{},{},{},{},{},{},{},{},{},{},{},{},'{}')",
        c.id,
        c.state,
        c.account_length,
        c.area_code,
        c.phone,
        yes_no(c.intl_plan),
        yes_no(c.vmail_plan),
        c.vmail_message,
        c.day_mins,
        c.day_calls,
        c.day_charge,
        c.eve_mins,
        c.eve_calls,
        c.eve_charge,
        c.night_mins,
        c.night_calls,
        c.night_charge,
        c.intl_mins,
        c.intl_calls,
        c.intl_charge,
        c.custserv_calls,
        churn::label(c.churn)
    );
}

/// One multi-row INSERT of rows `ids`, as SQL text (empty for TPC-C, which loads by
/// warehouse units: `tpcc::load::unit`). Values are generated here (digits,
/// fixed words), never taken from input, so literal SQL is safe and avoids the
/// bound-parameter limits of the drivers.
pub fn insert_rows(scenario: Scenario, seed: u64, rows: u64, ids: RangeInclusive<u64>) -> String {
    let mut sql = String::with_capacity(256 * (ids.end() - ids.start() + 1) as usize);
    match scenario {
        // Loaded by warehouse units instead (`tpcc::load::unit`).
        Scenario::Tpcc => {}
        Scenario::PointSelect => {
            sql.push_str("INSERT INTO sbtest1(id, k, c, pad) VALUES ");
            for id in ids {
                let mut rng = Rng::for_stream(seed, &[0x5B, id]);
                if !sql.ends_with(' ') {
                    sql.push(',');
                }
                let _ = write!(sql, "({id},{},'", rng.range(1, rows));
                sysbench_digits(&mut rng, 10, &mut sql);
                sql.push_str("','");
                sysbench_digits(&mut rng, 5, &mut sql);
                sql.push_str("')");
            }
        }
        Scenario::Churn => {
            let _ = write!(sql, "INSERT INTO customers({CUSTOMER_COLUMNS}) VALUES ");
            for id in ids {
                if !sql.ends_with(' ') {
                    sql.push(',');
                }
                customer_values(&churn::customer(seed, id), &mut sql);
            }
        }
    }
    sql
}

/// The highest id of the scenario's table: its key space, as `prepare` made it.
///
/// # Errors
/// The table cannot be read.
pub async fn key_space(session: &mut Session, scenario: Scenario) -> Result<Option<u64>, String> {
    let table = scenario.table();
    let int = match session {
        Session::MySql(_) => "SIGNED",
        _ => "BIGINT",
    };
    let id = if scenario == Scenario::Tpcc {
        "w_id"
    } else {
        "id"
    };
    let highest = session
        .scalar_i64(&format!(
            "SELECT CAST(COALESCE(MAX({id}), 0) AS {int}) FROM {table}"
        ))
        .await
        .map_err(|e| {
            format!(
                "cannot read the highest id of `{table}`: {}",
                crate::session::describe(&e)
            )
        })?;
    Ok(u64::try_from(highest).ok())
}

/// A built-in scenario's pre-flight (TPC-C's too): every statement of every operation
/// prepares on the server, and the table holds keys up to `rows`.
///
/// # Errors
/// What is missing, and the `fleetload prepare` command that makes it.
pub(crate) async fn check_scenario<'a>(
    session: &mut Session,
    scenario: Scenario,
    driver: Driver,
    statements: impl Iterator<Item = (Operation, Vec<(&'a str, Vec<Option<Arg>>)>)>,
    target: &str,
    rows: u64,
) -> Result<(), String> {
    let name = scenario.name();
    let table = scenario.table();
    let prepare =
        format!("run `fleetload prepare --target {target} --scenario {name} --rows {rows}` first");
    let what = match scenario {
        Scenario::PointSelect => format!("the table `{table}` is"),
        Scenario::Tpcc => "the TPC-C tables are".to_string(),
        Scenario::Churn => {
            format!("the table `{table}` or the model's functions (will_churn, fl_ml_*) are")
        }
    };
    for (op, list) in statements {
        for (sql, params) in list {
            session.describe_columns(sql, &params).await.map_err(|e| {
                format!(
                    "scenario {name}, operation {}: its statement does not prepare on {}: {}; {what} missing or differ: {prepare}",
                    op.name(),
                    driver.name(),
                    crate::session::describe(&e)
                )
            })?;
        }
    }
    let highest = key_space(session, scenario).await?;
    match highest {
        None | Some(0) => Err(format!("the table `{table}` is empty: {prepare}")),
        Some(n) if n < rows => Err(format!(
            "the plan reads keys 1..={rows} but `{table}` holds ids up to {n}: most reads would find nothing; give --rows {n} (or leave rows out: the run then takes the table's), or {prepare}"
        )),
        Some(_) => Ok(()),
    }
}

/// A built-in scenario's session keeps nothing of its own: its keys and its random
/// stream are the session loop's.
impl Workload for BuiltinWorkload {
    type Session = ();

    fn session(&self, _streams: Streams) -> Self::Session {}

    async fn check(&self, db: &mut Session, plan: &CheckFor<'_>) -> Result<(), CheckError> {
        let driver = db.driver();
        self.check(db, driver, &self.ops, plan.target, plan.rows)
            .await
            .map_err(CheckError::Builtin)
    }

    async fn execute(
        &self,
        db: &mut Session,
        slot: usize,
        _state: &mut (),
        keys: &mut Keys,
        rng: &mut Rng,
    ) -> Attempt {
        Attempt::of_sql(self.execute(db, self.ops[slot], keys, rng).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetload_common::split::Shard;

    #[test]
    fn sysbench_rows_have_sysbench_shapes() {
        let sql = insert_rows(Scenario::PointSelect, 1, 100, 1..=2);
        assert!(sql.starts_with("INSERT INTO sbtest1(id, k, c, pad) VALUES (1,"));
        let first = sql.split("),(").next().unwrap();
        let c = first.split('\'').nth(1).unwrap();
        assert_eq!(c.len(), 119);
        assert_eq!(c.matches('-').count(), 9);
        assert_eq!(
            insert_rows(Scenario::PointSelect, 1, 100, 1..=2),
            sql,
            "deterministic"
        );
    }

    #[test]
    fn postgres_gets_numbered_placeholders() {
        let w = BuiltinWorkload::new(Driver::Postgres, Scenario::PointSelect, 1, 10, false);
        assert_eq!(w.point_select, "SELECT c FROM sbtest1 WHERE id=$1");
        let w = BuiltinWorkload::new(Driver::MySql, Scenario::PointSelect, 1, 10, false);
        assert_eq!(w.point_select, "SELECT c FROM sbtest1 WHERE id=?");
    }

    #[test]
    fn aurora_batches_in_one_statement_and_the_stand_in_asks_explicitly() {
        let aurora = BuiltinWorkload::new(Driver::MySql, Scenario::Churn, 1, 10, true);
        assert!(aurora.ml_request.is_none());
        assert!(aurora
            .predict_batch
            .starts_with("SELECT id, will_churn(state,"));
        assert!(aurora.score_new.contains("will_churn(c.state,"));
        let local = BuiltinWorkload::new(Driver::Postgres, Scenario::Churn, 1, 10, false);
        assert_eq!(
            local.ml_request.as_deref(),
            Some("SELECT fl_ml_request($1, 0)")
        );
        assert!(
            local.predict_batch.contains("will_churn_model(")
                && local.predict_batch.ends_with("BETWEEN $1 AND $2")
        );
    }

    #[test]
    fn keys_are_drawn_from_every_range_in_proportion() {
        let keys = Keys {
            shard: Shard {
                first: 1,
                last: 100,
            },
            extra: vec![Shard {
                first: 1001,
                last: 1300,
            }],
            next_insert: 0,
            insert_stride: 1,
        };
        let mut rng = Rng::new(9);
        let extra = (0..10_000)
            .filter(|_| keys.pick(&mut rng).first == 1001)
            .count();
        assert!(
            (7_200..7_800).contains(&extra),
            "{extra} of 10000 from the range 3x larger"
        );
    }
}
