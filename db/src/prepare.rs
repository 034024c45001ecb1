//! `fleetload prepare`: create a scenario's schema and load its rows, fast.
//!
//! Rows go in as multi-row INSERTs of generated literals (a thousand rows each) on
//! several sessions at once; SQLite, which serializes writers, gets one session. Every
//! row depends only on the seed and its id, so any split of the load gives the same
//! table.

use crate::session::{describe, ConnectSpec, Session};
use crate::workload::{finish, insert_rows, schema};
use fleetload_common::scenario::Scenario;
use fleetload_common::target::{Driver, Target};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CHUNK_ROWS: u64 = 1000;

/// Why a prepare failed.
#[derive(Debug, thiserror::Error)]
#[error("prepare failed on {target}: {message}")]
pub struct PrepareError {
    pub target: String,
    pub message: String,
}

/// What to prepare.
#[derive(Debug, Clone)]
pub struct PrepareSpec {
    pub target: Target,
    pub scenario: Scenario,
    pub rows: u64,
    pub seed: u64,
    pub sessions: usize,
    pub connect_timeout: Duration,
    /// The ML stand-in (churn scenario on MySQL and PostgreSQL).
    pub ml: crate::ml::MlSettings,
    /// Create a real Aurora ML function for this SageMaker endpoint instead.
    pub aurora_endpoint: Option<String>,
    /// MAX_BATCH_SIZE / max_rows_per_batch of the Aurora function.
    pub batch: u32,
}

/// What a prepare did.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub table: &'static str,
    pub rows: u64,
    pub elapsed: Duration,
}

/// Drop and recreate the scenario's table and load `rows` rows.
///
/// # Errors
/// The target cannot be reached or refuses the DDL or the rows.
pub async fn prepare(spec: &PrepareSpec) -> Result<Prepared, PrepareError> {
    let started = Instant::now();
    let driver = spec.target.driver();
    let fail = |message: String| PrepareError {
        target: spec.target.to_string(),
        message,
    };
    let mut connect = ConnectSpec::new(spec.target.clone(), spec.connect_timeout)
        .map_err(|e| fail(e.to_string()))?;
    connect.create = true;
    let mut first = connect.connect().await.map_err(|e| fail(e.to_string()))?;
    for stmt in schema(driver, spec.scenario) {
        first
            .run_text(&stmt)
            .await
            .map_err(|e| fail(format!("{}: {stmt}", describe(&e))))?;
    }
    let sessions = if driver == Driver::Sqlite {
        1
    } else {
        spec.sessions.clamp(1, 16)
    };
    let chunks = spec.rows.div_ceil(CHUNK_ROWS);
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let mut pool = vec![first];
    for _ in 1..sessions.min(chunks.max(1) as usize) {
        pool.push(connect.connect().await.map_err(|e| fail(e.to_string()))?);
    }
    for mut session in pool {
        let next = Arc::clone(&next);
        let (scenario, seed, rows) = (spec.scenario, spec.seed, spec.rows);
        tasks.spawn(async move {
            loop {
                let chunk = next.fetch_add(1, Ordering::Relaxed);
                if chunk >= chunks {
                    return Ok::<Session, String>(session);
                }
                let first_id = chunk * CHUNK_ROWS + 1;
                let last_id = (first_id + CHUNK_ROWS - 1).min(rows);
                let sql = insert_rows(scenario, seed, rows, first_id..=last_id);
                session.run_text(&sql).await.map_err(|e| {
                    format!("loading rows {first_id}..={last_id}: {}", describe(&e))
                })?;
            }
        });
    }
    let mut last = None;
    let mut error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(session)) => last = Some(session),
            Ok(Err(e)) => error = error.or(Some(e)),
            Err(e) => error = error.or(Some(format!("loader task failed: {e}"))),
        }
    }
    if let Some(e) = error {
        return Err(fail(e));
    }
    let mut session = last.ok_or_else(|| fail("no loader session finished".into()))?;
    for stmt in finish(driver, spec.scenario, spec.rows) {
        session
            .run_text(&stmt)
            .await
            .map_err(|e| fail(format!("{}: {stmt}", describe(&e))))?;
    }
    if spec.scenario == fleetload_common::scenario::Scenario::Churn {
        // After the load: the bulk insert must not call the model row by row.
        let (ml, hint) = match &spec.aurora_endpoint {
            Some(endpoint) => (
                crate::ml::install_aurora(driver, endpoint, spec.batch),
                "; --ml aurora needs an Aurora MySQL or Aurora PostgreSQL cluster with Aurora ML set up (deploy/aurora/README.md); elsewhere use --ml standin",
            ),
            None => (crate::ml::install(driver, spec.ml), ""),
        };
        if driver == Driver::Sqlite {
            let database = std::path::PathBuf::from(
                spec.target
                    .url()
                    .trim_start_matches("sqlite://")
                    .split('?')
                    .next()
                    .unwrap_or_default(),
            );
            crate::sqlite_ml::Endpoint::new(&database, spec.ml)
                .reset_counters()
                .map_err(|e| fail(format!("cannot reset the ML stand-in's counters: {e}")))?;
        }
        for stmt in ml {
            session
                .run_text(&stmt)
                .await
                .map_err(|e| fail(format!("{}{hint}: {stmt}", describe(&e))))?;
        }
    }
    let table = spec.scenario.table();
    let count = session
        .scalar_i64(&format!("SELECT COUNT(*) FROM {table}"))
        .await
        .map_err(|e| fail(describe(&e)))?;
    session.close().await;
    if u64::try_from(count).ok() != Some(spec.rows) {
        return Err(fail(format!(
            "{table} has {count} rows after loading {}",
            spec.rows
        )));
    }
    Ok(Prepared {
        table,
        rows: spec.rows,
        elapsed: started.elapsed(),
    })
}
