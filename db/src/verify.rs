//! `fleetload verify`: after a churn load, check what the database holds against what
//! the model and the report say.
//!
//! 1. Every row with a prediction (loaded rows the run updated, inserted rows) holds the
//!    label the model gives for its current features. The model is computed here in
//!    Rust, independently of the database's function.
//! 2. The rows in the run's insert id ranges (from the report) number exactly what the
//!    report counted as inserted.

use crate::connect::ConnectSpec;
use crate::session::{describe, Session};
use fleetload_common::churn::{self, Customer};
use fleetload_common::target::{Driver, Target};
use std::time::Duration;

/// The ids one worker inserted: `first, first + stride, …` up to `last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InsertRange {
    pub first: u64,
    pub last: u64,
    pub stride: u64,
}

/// A stored prediction that disagrees with the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub id: i64,
    pub stored: String,
    pub model: &'static str,
}

/// What verify found.
#[derive(Debug, Clone, Default)]
pub struct Findings {
    pub scored_rows: u64,
    pub mismatches: Vec<Mismatch>,
    pub inserted_found: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot verify {target}: {message}")]
pub struct VerifyError {
    pub target: String,
    pub message: String,
}

const FEATURE_ROW: usize = 16;

macro_rules! scored_rows {
    ($conn:expr, $sql:expr) => {{
        use sqlx::Row;
        let rows = sqlx::query($sql).fetch_all($conn).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let yes = |s: String| s.trim() == "yes";
            let c = Customer {
                id: u64::try_from(r.try_get::<i64, _>(0)?).unwrap_or(0),
                state: "",
                account_length: r.try_get(2)?,
                area_code: r.try_get(3)?,
                phone: String::new(),
                intl_plan: yes(r.try_get(4)?),
                vmail_plan: yes(r.try_get(5)?),
                vmail_message: r.try_get(6)?,
                day_mins: r.try_get(7)?,
                day_calls: r.try_get(8)?,
                day_charge: 0.0,
                eve_mins: r.try_get(9)?,
                eve_calls: r.try_get(10)?,
                eve_charge: 0.0,
                night_mins: r.try_get(11)?,
                night_calls: r.try_get(12)?,
                night_charge: 0.0,
                intl_mins: r.try_get(13)?,
                intl_calls: r.try_get(14)?,
                intl_charge: 0.0,
                custserv_calls: r.try_get(15)?,
                churn: false,
            };
            let stored: Option<String> = r.try_get(FEATURE_ROW)?;
            out.push((c, stored.unwrap_or_default()));
        }
        out
    }};
}

async fn scored(
    session: &mut Session,
    driver: Driver,
) -> Result<Vec<(Customer, String)>, sqlx::Error> {
    let int = match driver {
        Driver::MySql => "SIGNED",
        Driver::Postgres => "BIGINT",
        Driver::Sqlite => "INTEGER",
    };
    let i = |c: &str| format!("CAST({c} AS {int})");
    let sql = format!(
        "SELECT {}, state, {}, {}, intl_plan, vmail_plan, {}, day_mins, {}, eve_mins, {}, night_mins, {}, intl_mins, {}, {}, churn_prediction FROM customers WHERE predicted_at IS NOT NULL",
        i("id"), i("account_length"), i("area_code"), i("vmail_message"), i("day_calls"), i("eve_calls"), i("night_calls"), i("intl_calls"), i("custserv_calls")
    );
    Ok(match session {
        Session::MySql(c) => scored_rows!(c, sql.as_str()),
        Session::Postgres(c) => scored_rows!(c, sql.as_str()),
        Session::Sqlite(c) => scored_rows!(c, sql.as_str()),
    })
}

/// Check the churn table at `target` against the model and the run's insert ranges.
///
/// # Errors
/// The database cannot be reached or the churn table cannot be read.
pub async fn verify(
    target: &Target,
    timeout: Duration,
    ranges: &[InsertRange],
) -> Result<Findings, VerifyError> {
    let fail = |message: String| VerifyError {
        target: target.to_string(),
        message,
    };
    let mut session = ConnectSpec::new(target.clone(), timeout)
        .map_err(|e| fail(e.to_string()))?
        .connect()
        .await
        .map_err(|e| fail(e.to_string()))?;
    let rows = scored(&mut session, target.driver())
        .await
        .map_err(|e| fail(format!("reading customers: {}", describe(&e))))?;
    let mut findings = Findings {
        scored_rows: rows.len() as u64,
        ..Findings::default()
    };
    for (c, stored) in rows {
        let model = churn::label(churn::predict(&c));
        if stored != model {
            findings.mismatches.push(Mismatch {
                id: c.id as i64,
                stored,
                model,
            });
        }
    }
    for r in ranges {
        let sql = format!(
            "SELECT COUNT(*) FROM customers WHERE id BETWEEN {} AND {} AND (id - {}) % {} = 0",
            r.first,
            r.last,
            r.first,
            r.stride.max(1)
        );
        let n = session
            .scalar_i64(&sql)
            .await
            .map_err(|e| fail(format!("counting inserted rows: {}", describe(&e))))?;
        findings.inserted_found += u64::try_from(n).unwrap_or(0);
    }
    session.close().await;
    Ok(findings)
}
