//! The database's own counters, sampled during a run so the report shows what the
//! server saw next to what the clients measured.
//!
//! MySQL/MariaDB/Aurora MySQL: a few `SHOW GLOBAL STATUS` variables and every
//! `Aurora_ml_*` one the server has. PostgreSQL: `pg_stat_database` for the target
//! database and session counts from `pg_stat_activity`. Both: the ML stand-in's
//! request counters when it is installed. A counter the server does not have, or that
//! cannot be read, is simply absent: never an error.

use crate::session::Session;
use fleetload_common::target::Driver;
use std::collections::BTreeMap;

pub use fleetload_common::tpcc::NEW_ORDERS_COUNTER as TPCC_NEW_ORDERS;

/// Counter name → value at one instant.
pub type Counters = BTreeMap<String, i64>;

/// The `SHOW GLOBAL STATUS` variables kept (besides every `Aurora_ml_*`).
pub const MYSQL_STATUS: [&str; 7] = [
    "Questions",
    "Com_select",
    "Com_insert",
    "Com_update",
    "Threads_running",
    "Threads_connected",
    "Innodb_row_lock_waits",
];

/// Counters that are levels, not totals: shown as they stand, never as deltas.
pub const GAUGES: [&str; 4] = [
    "Threads_running",
    "Threads_connected",
    "sessions_active",
    "sessions_total",
];

/// Whether `name` is a level (see [`GAUGES`]) rather than a total that only grows.
pub fn is_gauge(name: &str) -> bool {
    GAUGES.contains(&name)
}

/// Read the counters once.
///
/// # Errors
/// The server's own counters could not be read at all (a lost connection, most
/// likely): the caller reconnects, and shows the time without samples as a gap.
/// `extra`: the scenario's own counters, (name, query of one integer): the ML
/// stand-in's request counters when a run uses it (a database where churn was prepared
/// once still has them; other runs leave them out), TPC-C's committed New-Orders.
pub async fn sample(
    session: &mut Session,
    driver: Driver,
    extra: &[(&'static str, &'static str)],
) -> Result<Counters, String> {
    let mut out = Counters::new();
    let mut failed: Option<String> = None;
    match driver {
        Driver::MySql => {
            let wanted = MYSQL_STATUS.map(|v| format!("'{v}'")).join(", ");
            let sql = format!("SHOW GLOBAL STATUS WHERE Variable_name IN ({wanted}) OR Variable_name LIKE 'Aurora\\_ml\\_%'");
            match session.text_pairs(&sql).await {
                Ok(rows) => {
                    for (name, value) in rows {
                        if let Ok(v) = value.trim().parse::<i64>() {
                            out.insert(name, v);
                        }
                    }
                }
                Err(e) => failed = Some(crate::session::describe(&e)),
            }
        }
        Driver::Postgres => {
            let queries = [
                "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, deadlocks FROM pg_stat_database WHERE datname = current_database()",
                "SELECT count(*) FILTER (WHERE state = 'active') AS sessions_active, count(*) AS sessions_total FROM pg_stat_activity WHERE datname = current_database()",
            ];
            for q in queries {
                match session.named_i64(q).await {
                    Ok(values) => out.extend(values),
                    Err(e) => failed = Some(crate::session::describe(&e)),
                }
            }
        }
        Driver::Sqlite => {}
    }
    for (name, sql) in extra {
        if let Ok(v) = session.scalar_i64(sql).await {
            out.insert((*name).to_string(), v);
        }
    }
    match failed {
        Some(e) if out.is_empty() => Err(e),
        _ => Ok(out),
    }
}
