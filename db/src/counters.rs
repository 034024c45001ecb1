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

/// Read the counters once.
pub async fn sample(session: &mut Session, driver: Driver) -> Counters {
    let mut out = Counters::new();
    match driver {
        Driver::MySql => {
            let wanted = MYSQL_STATUS.map(|v| format!("'{v}'")).join(", ");
            let sql = format!("SHOW GLOBAL STATUS WHERE Variable_name IN ({wanted}) OR Variable_name LIKE 'Aurora\\_ml\\_%'");
            if let Ok(rows) = session.text_pairs(&sql).await {
                for (name, value) in rows {
                    if let Ok(v) = value.trim().parse::<i64>() {
                        out.insert(name, v);
                    }
                }
            }
        }
        Driver::Postgres => {
            let queries = [
                "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, deadlocks FROM pg_stat_database WHERE datname = current_database()",
                "SELECT count(*) FILTER (WHERE state = 'active') AS sessions_active, count(*) AS sessions_total FROM pg_stat_activity WHERE datname = current_database()",
            ];
            for q in queries {
                if let Ok(values) = session.named_i64(q).await {
                    out.extend(values);
                }
            }
        }
        Driver::Sqlite => {}
    }
    for (name, sql) in crate::ml::counters(driver) {
        if let Ok(v) = session.scalar_i64(sql).await {
            out.insert(name.to_string(), v);
        }
    }
    out
}
