//! `fleetload prepare`: create a scenario's schema and load its rows, fast.
//!
//! Rows go in as multi-row INSERTs of generated literals (a thousand rows each) on
//! several sessions at once; SQLite, which serializes writers, gets one session. Every
//! row depends only on the seed and its id, so any split of the load gives the same
//! table.

use crate::connect::ConnectSpec;
use crate::session::{describe, Session};
use crate::workloads::builtin::{finish, insert_rows, schema};
use fleetload_common::scenario::Scenario;
use fleetload_common::scenario_ref::ScenarioRef;
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
    pub scenario: ScenarioRef,
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
    /// The table loaded (built-in scenarios) or the scenario file's name.
    pub table: String,
    pub rows: u64,
    pub elapsed: Duration,
}

/// Drop and recreate the scenario's table and load `rows` rows.
///
/// # Errors
/// The target cannot be reached or refuses the DDL or the rows.
pub async fn prepare(spec: &PrepareSpec) -> Result<Prepared, PrepareError> {
    let started = Instant::now();
    let fail = |message: String| PrepareError {
        target: spec.target.to_string(),
        message,
    };
    let mut first = create_schema(spec).await?;
    let driver = spec.target.driver();
    let sessions = if driver == Driver::Sqlite {
        1
    } else {
        spec.sessions.clamp(1, 16)
    };
    let connect = ConnectSpec::new(spec.target.clone(), spec.connect_timeout)
        .map_err(|e| fail(e.to_string()))?;
    let mut pool = Vec::with_capacity(sessions);
    for _ in 1..sessions.min(chunks(&spec.scenario, 1, spec.rows).max(1) as usize) {
        pool.push(connect.connect().await.map_err(|e| fail(e.to_string()))?);
    }
    pool.push(first);
    let (mut pool, loaded) = load_range(pool, &spec.scenario, spec.seed, spec.rows, 1..=spec.rows)
        .await
        .map_err(fail)?;
    first = pool
        .pop()
        .ok_or_else(|| fail("no loader session left".into()))?;
    for s in pool {
        s.close().await;
    }
    finish_prepare(spec, &mut first).await?;
    first.close().await;
    Ok(Prepared {
        table: match &spec.scenario {
            ScenarioRef::Builtin(s) => s.table().to_string(),
            ScenarioRef::File(f) => f.name.clone(),
        },
        rows: match &spec.scenario {
            ScenarioRef::File(f) if f.load.is_none() => 0,
            // Every table's rows: the catalogue and each warehouse's.
            ScenarioRef::Builtin(Scenario::Tpcc) => loaded + fleetload_common::tpcc::ITEMS,
            _ => spec.rows,
        },
        elapsed: started.elapsed(),
    })
}

/// Phase 1: connect (creating an SQLite file) and drop and recreate the table.
///
/// # Errors
/// The target cannot be reached or refuses the DDL.
pub async fn create_schema(spec: &PrepareSpec) -> Result<Session, PrepareError> {
    let fail = |message: String| PrepareError {
        target: spec.target.to_string(),
        message,
    };
    let mut connect = ConnectSpec::new(spec.target.clone(), spec.connect_timeout)
        .map_err(|e| fail(e.to_string()))?;
    connect.create = true;
    let mut session = connect.connect().await.map_err(|e| fail(e.to_string()))?;
    match &spec.scenario {
        ScenarioRef::Builtin(scenario) => {
            for stmt in schema(spec.target.driver(), *scenario) {
                session
                    .run_text(&stmt)
                    .await
                    .map_err(|e| fail(format!("{}: {stmt}", describe(&e))))?;
            }
            // TPC-C's item catalogue is the fleet's, loaded once here.
            if *scenario == Scenario::Tpcc {
                let items = crate::workloads::tpcc::load::items(spec.seed);
                run_batch(&mut session, spec.target.driver(), &items)
                    .await
                    .map_err(|e| fail(format!("loading the item catalogue: {e}")))?;
            }
        }
        ScenarioRef::File(file) => {
            crate::workloads::file::run_plain(&mut session, file, &file.setup, "[setup]")
                .await
                .map_err(|e| fail(e.to_string()))?;
        }
    }
    Ok(session)
}

/// Chunks of the load of keys `first..=last`: a thousand rows each, or for TPC-C a
/// warehouse's units (its stock slices and districts).
fn chunks(scenario: &ScenarioRef, first: u64, last: u64) -> u64 {
    if last < first {
        return 0;
    }
    match scenario {
        ScenarioRef::Builtin(Scenario::Tpcc) => {
            (last - first + 1) * crate::workloads::tpcc::load::UNITS_PER_WAREHOUSE
        }
        _ => (last - first + 1).div_ceil(CHUNK_ROWS),
    }
}

/// Run statements of generated rows as one transaction (SQLite commits each statement
/// to disk otherwise); the rows they inserted. On SQLite, whose one writer at a time may
/// be another worker's loader for longer than the busy timeout, a locked database is
/// waited for again (a few times).
async fn run_batch(session: &mut Session, driver: Driver, stmts: &[String]) -> Result<u64, String> {
    let mut tries = 0;
    loop {
        match run_batch_once(session, driver, stmts).await {
            Err(e) if driver == Driver::Sqlite && e.contains("locked") && tries < 20 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            result => return result,
        }
    }
}

async fn run_batch_once(
    session: &mut Session,
    driver: Driver,
    stmts: &[String],
) -> Result<u64, String> {
    let wrap = driver == Driver::Sqlite;
    if wrap {
        session
            .run_text("BEGIN IMMEDIATE")
            .await
            .map_err(|e| describe(&e))?;
    }
    let mut rows = 0;
    for stmt in stmts {
        match session.run_text(stmt).await {
            Ok(n) => rows += n,
            Err(e) => {
                if wrap {
                    let _ = session.run_text("ROLLBACK").await;
                }
                return Err(describe(&e));
            }
        }
    }
    if wrap {
        session.run_text("COMMIT").await.map_err(|e| describe(&e))?;
    }
    Ok(rows)
}

/// Phase 2: load rows `ids` (of a table of `rows` rows; TPC-C: warehouses) on all
/// `sessions` at once, in chunks; returns the sessions and the rows inserted. Workers
/// load their own shard this way.
///
/// # Errors
/// A chunk failed; the message names its ids.
pub async fn load_range(
    sessions: Vec<Session>,
    scenario: &ScenarioRef,
    seed: u64,
    rows: u64,
    ids: std::ops::RangeInclusive<u64>,
) -> Result<(Vec<Session>, u64), String> {
    let (first, last) = (*ids.start(), *ids.end());
    let chunks = chunks(scenario, first, last);
    if let ScenarioRef::File(f) = scenario {
        if f.load.is_none() {
            return Ok((sessions, 0));
        }
    }
    let next = Arc::new(AtomicU64::new(0));
    let loaded = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for mut session in sessions {
        let next = Arc::clone(&next);
        let loaded = Arc::clone(&loaded);
        let scenario = scenario.clone();
        tasks.spawn(async move {
            loop {
                let chunk = next.fetch_add(1, Ordering::Relaxed);
                if chunk >= chunks {
                    return Ok::<Session, String>(session);
                }
                if let ScenarioRef::Builtin(Scenario::Tpcc) = &scenario {
                    let units = crate::workloads::tpcc::load::UNITS_PER_WAREHOUSE;
                    let (w, unit) = (first + chunk / units, chunk % units);
                    let driver = session.driver();
                    let stmts = crate::workloads::tpcc::load::unit(seed, w, unit);
                    let n = run_batch(&mut session, driver, &stmts)
                        .await
                        .map_err(|e| format!("loading warehouse {w} (part {unit}): {e}"))?;
                    loaded.fetch_add(n, Ordering::Relaxed);
                    continue;
                }
                let from = first + chunk * CHUNK_ROWS;
                let to = (from + CHUNK_ROWS - 1).min(last);
                loaded.fetch_add(to - from + 1, Ordering::Relaxed);
                match &scenario {
                    ScenarioRef::Builtin(s) => {
                        let sql = insert_rows(*s, seed, rows, from..=to);
                        if let Err(e) = session.run_text(&sql).await {
                            return Err(format!("loading rows {from}..={to}: {}", describe(&e)));
                        }
                    }
                    ScenarioRef::File(f) => {
                        crate::workloads::file::load_rows(&mut session, f, seed, from..=to)
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                }
            }
        });
    }
    let mut back = Vec::new();
    let mut error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(session)) => back.push(session),
            Ok(Err(e)) => error = error.or(Some(e)),
            Err(e) => error = error.or(Some(format!("loader task failed: {e}"))),
        }
    }
    match error {
        Some(e) => Err(e),
        None => Ok((back, loaded.load(Ordering::Relaxed))),
    }
}

/// Phase 3: indexes and statistics, the ML stand-in or Aurora function (churn), and a
/// check that the table holds exactly `rows` rows.
///
/// # Errors
/// A statement fails or the row count is wrong.
pub async fn finish_prepare(spec: &PrepareSpec, session: &mut Session) -> Result<(), PrepareError> {
    let driver = spec.target.driver();
    let fail = |message: String| PrepareError {
        target: spec.target.to_string(),
        message,
    };
    // A scenario file's set-up is all it asks for; its rows are what its statements made.
    let ScenarioRef::Builtin(scenario) = &spec.scenario else {
        return Ok(());
    };
    let scenario = *scenario;
    for stmt in finish(driver, scenario, spec.rows) {
        session
            .run_text(&stmt)
            .await
            .map_err(|e| fail(format!("{}: {stmt}", describe(&e))))?;
    }
    if scenario == Scenario::Churn {
        // After the load: the bulk insert must not call the model row by row.
        let (ml, hint) = match &spec.aurora_endpoint {
            Some(endpoint) => (
                crate::ml::install_aurora(driver, endpoint, spec.batch),
                "; --ml aurora needs an Aurora MySQL or Aurora PostgreSQL cluster with Aurora ML set up (deploy/aurora/README.md); elsewhere use --ml standin",
            ),
            None => (crate::ml::install(driver, spec.ml), ""),
        };
        if let Some(database) = spec.target.sqlite_path() {
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
    let table = scenario.table();
    let count = session
        .scalar_i64(&format!("SELECT COUNT(*) FROM {table}"))
        .await
        .map_err(|e| fail(describe(&e)))?;
    if u64::try_from(count).ok() != Some(spec.rows) {
        return Err(fail(format!(
            "{table} has {count} rows after loading {}",
            spec.rows
        )));
    }
    Ok(())
}

/// What removes a built-in scenario's objects: the model's triggers and functions,
/// the stand-in's configuration and counters, then the table. Every statement tolerates
/// an object that is already gone, so a teardown can run twice.
pub fn builtin_teardown(
    driver: Driver,
    scenario: Scenario,
    aurora_endpoint: Option<&str>,
) -> Vec<String> {
    let mut drops: Vec<String> = Vec::new();
    if scenario == Scenario::Churn {
        let made = match aurora_endpoint {
            Some(e) => crate::ml::install_aurora(driver, e, 1),
            None => crate::ml::install(driver, crate::ml::MlSettings::default()),
        };
        for q in made {
            if q.trim_start().to_ascii_uppercase().starts_with("DROP") && !drops.contains(&q) {
                drops.push(q);
            }
        }
    }
    drops.push(format!("DROP TABLE IF EXISTS {}", scenario.table()));
    drops
}

/// Remove what `prepare` made: a scenario file's `[teardown]`, or a built-in scenario's
/// table, triggers and functions (and the SQLite stand-in's counter file). Returns the
/// statements run.
///
/// # Errors
/// The target cannot be reached or a statement fails.
pub async fn teardown(spec: &PrepareSpec) -> Result<usize, PrepareError> {
    let fail = |message: String| PrepareError {
        target: spec.target.to_string(),
        message,
    };
    let connect = ConnectSpec::new(spec.target.clone(), spec.connect_timeout)
        .map_err(|e| fail(e.to_string()))?;
    let mut session = connect.connect().await.map_err(|e| fail(e.to_string()))?;
    let ran = match &spec.scenario {
        ScenarioRef::File(file) => {
            crate::workloads::file::run_plain(&mut session, file, &file.teardown, "[teardown]")
                .await
                .map_err(|e| fail(e.to_string()))?
        }
        ScenarioRef::Builtin(scenario) => {
            let driver = spec.target.driver();
            let drops = builtin_teardown(driver, *scenario, spec.aurora_endpoint.as_deref());
            for q in &drops {
                session
                    .run_text(q)
                    .await
                    .map_err(|e| fail(format!("{q}: {}", describe(&e))))?;
            }
            if let (Driver::Sqlite, Some(database)) = (driver, spec.target.sqlite_path()) {
                crate::sqlite_ml::Endpoint::new(&database, crate::ml::MlSettings::default())
                    .reset_counters()
                    .map_err(|e| fail(format!("cannot remove the stand-in's counter file: {e}")))?;
            }
            drops.len()
        }
    };
    session.close().await;
    Ok(ran)
}
