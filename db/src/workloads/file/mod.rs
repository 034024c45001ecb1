//! Scenario files at run time: statements compiled for one dialect and protocol, the
//! per-session generator state, transactions with deadlock retry, the pre-run check
//! against the server, and set-up, data load and tear-down.

use super::{Attempt, CheckError, CheckFor, Executed, Keys, OpFailure, Workload};
use crate::session::{classify, describe, Session};
use fleetload_common::generator::{Draw, Generator, Inputs, Streams};
use fleetload_common::outcome::ErrorClass;
use fleetload_common::rng::Rng;
use fleetload_common::scenario::OpName;
use fleetload_common::scenario_file::{FileOp, Param, Protocol, ScenarioFile, Statement};
use fleetload_common::split::Shard;
use fleetload_common::sqltext::ParsedSql;
use fleetload_common::target::Driver;
use fleetload_common::value::Arg;
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug, Clone)]
struct Compiled {
    parsed: ParsedSql,
    /// The prepared form, and the parameter (index into the operation's) per placeholder.
    sql: String,
    binds: Vec<usize>,
    /// Columns of its first row later statements take values from.
    capture: Vec<String>,
    /// The operation's `from` parameters this statement uses (indices), worked out
    /// once rather than on every execution.
    from_params: Vec<usize>,
    line: usize,
}

#[derive(Debug, Clone)]
struct CompiledOp {
    name: OpName,
    statements: Vec<Compiled>,
    params: Vec<Param>,
    transaction: bool,
    retry: u32,
}

/// A scenario file ready to run on one dialect, its operations in mix-slot order.
#[derive(Debug, Clone)]
pub struct FileWorkload {
    file: Arc<ScenarioFile>,
    driver: Driver,
    ops: Vec<CompiledOp>,
    /// The first value of every `sequence` parameter, by `(operation slot, parameter)`,
    /// once read from the table ([`FileWorkload::sequence_bases`]); 1 until then.
    bases: BTreeMap<(usize, usize), u64>,
}

/// What a scenario file cannot do on this database, naming the file, the line and
/// the operation, and what the server said.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("line {line}: no SQL for {driver}")]
    NoSql { line: usize, driver: &'static str },
    #[error("{origin} has no operation `{name}`")]
    NoOperation { origin: String, name: OpName },
    #[error("{origin}: operation `{name}`, {source}")]
    InOperation {
        origin: String,
        name: OpName,
        source: Box<FileError>,
    },
    #[error("{at} does not prepare on {driver}: {reason}")]
    DoesNotPrepare {
        at: String,
        driver: &'static str,
        reason: String,
    },
    #[error("{at} uses :{param} = from \"{column}\", but no earlier statement returns a column `{column}` (they return: {returned})")]
    NoSuchColumn {
        at: String,
        param: String,
        column: String,
        returned: String,
    },
    #[error("scenario file {origin}, line {line}: operation `{op}`, parameter `{param}`: cannot read {sql}: {reason}")]
    SequenceBase {
        origin: String,
        line: usize,
        op: OpName,
        param: String,
        sql: String,
        reason: String,
    },
    #[error("scenario file {origin}, line {line}: {what} statement failed: {reason}")]
    Statement {
        origin: String,
        line: usize,
        what: String,
        reason: String,
    },
    #[error("scenario file {origin}: [load] {source}")]
    Load {
        origin: String,
        source: Box<FileError>,
    },
    #[error("{doing} rows {first}..={last}: {reason}")]
    Batch {
        doing: &'static str,
        first: u64,
        last: u64,
        reason: String,
    },
    #[error("[load] row {row}: {reason}")]
    Value { row: u64, reason: String },
    #[error("scenario file {origin}, line {line}: [load] row {row} failed: {reason}")]
    Row {
        origin: String,
        line: usize,
        row: u64,
        reason: String,
    },
}

fn compile(driver: Driver, s: &Statement, params: &[Param]) -> Result<Compiled, FileError> {
    let parsed = s.parsed(driver).ok_or(FileError::NoSql {
        line: s.line,
        driver: driver.name(),
    })?;
    let names: Vec<String> = params.iter().map(|p| p.name.clone()).collect();
    let (sql, binds) = parsed.placeholders(driver, &names);
    let used = parsed.names();
    let from_params = params
        .iter()
        .enumerate()
        .filter(|(_, p)| {
            matches!(p.generator, Generator::From { .. }) && used.contains(&p.name.as_str())
        })
        .map(|(i, _)| i)
        .collect();
    Ok(Compiled {
        parsed,
        sql,
        binds,
        capture: Vec::new(),
        from_params,
        line: s.line,
    })
}

fn compile_op(driver: Driver, op: &FileOp) -> Result<CompiledOp, FileError> {
    let mut statements = op
        .statements
        .iter()
        .map(|s| compile(driver, s, &op.params))
        .collect::<Result<Vec<_>, _>>()?;
    // Every earlier statement keeps the columns later `from` parameters name; the
    // latest one that returns the column wins at run time.
    let wanted: Vec<String> = op
        .params
        .iter()
        .filter_map(|p| match &p.generator {
            Generator::From { column } => Some(column.clone()),
            _ => None,
        })
        .collect();
    let n = statements.len();
    for s in statements.iter_mut().take(n.saturating_sub(1)) {
        s.capture = wanted.clone();
    }
    Ok(CompiledOp {
        name: op.name.clone(),
        statements,
        params: op.params.clone(),
        transaction: op.transaction,
        retry: op.retry,
    })
}

/// One session's state for a scenario file: a draw per parameter of every operation.
#[derive(Debug)]
pub struct FileSession {
    draws: Vec<Vec<Draw>>,
    args: Vec<Arg>,
    values: Vec<Arg>,
    captured: Vec<(String, Arg)>,
    ranges: Vec<Shard>,
}

impl FileWorkload {
    /// Compile `file`'s operations named in `mix` (in that order: one per mix slot).
    ///
    /// # Errors
    /// A mix name the file does not define, or a statement without SQL for `driver`.
    pub fn new(file: Arc<ScenarioFile>, driver: Driver, mix: &[OpName]) -> Result<Self, FileError> {
        let ops = mix
            .iter()
            .map(|name| {
                let op = file.operation(name).ok_or_else(|| FileError::NoOperation {
                    origin: file.origin.to_string(),
                    name: name.clone(),
                })?;
                compile_op(driver, op).map_err(|e| FileError::InOperation {
                    origin: file.origin.to_string(),
                    name: name.clone(),
                    source: Box::new(e),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(FileWorkload {
            file,
            driver,
            ops,
            bases: BTreeMap::new(),
        })
    }

    pub fn file(&self) -> &ScenarioFile {
        &self.file
    }

    /// Prepare every statement on `session` without running it, and check that each
    /// `from` parameter names a column an earlier statement returns. Run before any load
    /// starts, so a broken file fails the run with its line instead of a wall of errors.
    ///
    /// # Errors
    /// The first statement the server refuses, named by file, line and operation.
    pub async fn check(&self, session: &mut Session) -> Result<(), FileError> {
        for op in &self.ops {
            let mut returned: Vec<String> = Vec::new();
            for (i, s) in op.statements.iter().enumerate() {
                let at = format!(
                    "scenario file {}, line {}: operation `{}`, statement {}",
                    self.file.origin,
                    s.line,
                    op.name,
                    i + 1
                );
                // Text protocol statements are checked in their prepared form: the same
                // SQL with placeholders (of types the server infers, as it does for
                // literals) where the literals will go.
                let text = self.file.protocol == Protocol::Text;
                let params: Vec<Option<Arg>> = s
                    .binds
                    .iter()
                    .map(|b| {
                        if text {
                            None
                        } else {
                            sample(&op.params[*b].generator)
                        }
                    })
                    .collect();
                let columns = session
                    .describe_columns(&s.sql, &params)
                    .await
                    .map_err(|e| FileError::DoesNotPrepare {
                        at: at.clone(),
                        driver: self.driver.name(),
                        reason: describe(&e),
                    })?;
                for p in s.from_params.iter().map(|&i| &op.params[i]) {
                    if let Generator::From { column } = &p.generator {
                        if !returned.iter().any(|c| c.eq_ignore_ascii_case(column)) {
                            return Err(FileError::NoSuchColumn {
                                at,
                                param: p.name.clone(),
                                column: column.clone(),
                                returned: if returned.is_empty() {
                                    "nothing".to_string()
                                } else {
                                    returned.join(", ")
                                },
                            });
                        }
                    }
                }
                returned.extend(columns);
            }
        }
        Ok(())
    }

    /// The first value of every `sequence` parameter, by `(operation slot, parameter)`:
    /// its `start`, or one above the current maximum of its `above_max` column when that
    /// is higher.
    ///
    /// # Errors
    /// The maximum cannot be read.
    pub async fn sequence_bases(
        &self,
        session: &mut Session,
    ) -> Result<BTreeMap<(usize, usize), u64>, FileError> {
        let mut maxima: BTreeMap<(String, String), u64> = BTreeMap::new();
        let mut bases = BTreeMap::new();
        for (slot, op) in self.ops.iter().enumerate() {
            for (i, p) in op.params.iter().enumerate() {
                let Generator::Sequence { start, above_max } = &p.generator else {
                    continue;
                };
                let mut base = *start;
                if let Some((table, column)) = above_max {
                    let key = (table.clone(), column.clone());
                    let max = match maxima.get(&key) {
                        Some(m) => *m,
                        None => {
                            let sql = format!("SELECT COALESCE(MAX({column}), 0) FROM {table}");
                            let m = session.scalar_i64(&sql).await.map_err(|e| {
                                FileError::SequenceBase {
                                    origin: self.file.origin.to_string(),
                                    line: p.line,
                                    op: op.name.clone(),
                                    param: p.name.clone(),
                                    sql: sql.clone(),
                                    reason: describe(&e),
                                }
                            })?;
                            let m = u64::try_from(m).unwrap_or(0);
                            maxima.insert(key, m);
                            m
                        }
                    };
                    base = base.max(max.saturating_add(1));
                }
                bases.insert((slot, i), base);
            }
        }
        Ok(bases)
    }

    /// Sequences start at these values (see [`FileWorkload::sequence_bases`]).
    pub fn set_bases(&mut self, bases: BTreeMap<(usize, usize), u64>) {
        self.bases = bases;
    }

    /// A session's generator state.
    fn new_session(&self, streams: Streams) -> FileSession {
        let bases = &self.bases;
        FileSession {
            draws: self
                .ops
                .iter()
                .enumerate()
                .map(|(slot, op)| {
                    op.params
                        .iter()
                        .enumerate()
                        .map(|(i, p)| {
                            Draw::new(
                                p.generator.clone(),
                                streams,
                                bases.get(&(slot, i)).copied().unwrap_or(1),
                            )
                        })
                        .collect()
                })
                .collect(),
            args: Vec::new(),
            values: Vec::new(),
            captured: Vec::new(),
            ranges: Vec::new(),
        }
    }

    /// Run the operation of mix slot `slot` once: its statements (in a transaction when
    /// it has several), retrying the whole transaction on a deadlock or serialization
    /// failure as often as the file allows; the last failure once no retry is left.
    async fn run_op(
        &self,
        session: &mut Session,
        slot: usize,
        state: &mut FileSession,
        keys: &Keys,
        rng: &mut Rng,
    ) -> Attempt {
        let op = &self.ops[slot];
        state.ranges.clear();
        state.ranges.push(keys.shard);
        state.ranges.extend_from_slice(&keys.extra);
        let mut retries = 0;
        loop {
            let result = self.attempt(session, op, slot, state, rng).await;
            match result {
                Err(OpFailure::Sql(e))
                    if classify(&e) == ErrorClass::Deadlock && retries < u64::from(op.retry) =>
                {
                    retries += 1;
                }
                other => {
                    return Attempt {
                        retries,
                        result: other.map(|()| Executed {
                            retries,
                            ..Executed::default()
                        }),
                    }
                }
            }
        }
    }

    async fn attempt(
        &self,
        session: &mut Session,
        op: &CompiledOp,
        slot: usize,
        state: &mut FileSession,
        rng: &mut Rng,
    ) -> Result<(), OpFailure> {
        if op.transaction {
            session.run_text(begin(self.driver)).await?;
        }
        let result = self.statements(session, op, slot, state, rng).await;
        if op.transaction {
            match &result {
                Ok(()) => {
                    session.run_text("COMMIT").await?;
                }
                Err(e) => {
                    // A broken connection is dropped by the caller; otherwise leave the
                    // session clean for the next operation.
                    if !e.class().needs_reconnect() {
                        let _ = session.run_text("ROLLBACK").await;
                    }
                }
            }
        }
        result
    }

    async fn statements(
        &self,
        session: &mut Session,
        op: &CompiledOp,
        slot: usize,
        state: &mut FileSession,
        rng: &mut Rng,
    ) -> Result<(), OpFailure> {
        let now_micros = now_micros();
        state.captured.clear();
        // Values other than `from` are drawn once per execution: a name used twice
        // binds the same value.
        state.values.clear();
        for (i, d) in state.draws[slot].iter_mut().enumerate() {
            let v = if matches!(op.params[i].generator, Generator::From { .. }) {
                Arg::Int(0)
            } else {
                d.next(
                    rng,
                    &Inputs {
                        ranges: &state.ranges,
                        row: 0,
                        now_micros,
                        captured: &[],
                    },
                )
                .map_err(OpFailure::Data)?
            };
            state.values.push(v);
        }
        let prepared = self.file.protocol == Protocol::Prepared;
        for s in &op.statements {
            // `from` values as they stand after the previous statements.
            for &i in &s.from_params {
                state.values[i] = state.draws[slot][i]
                    .next(
                        rng,
                        &Inputs {
                            ranges: &state.ranges,
                            row: 0,
                            now_micros,
                            captured: &state.captured,
                        },
                    )
                    .map_err(OpFailure::Data)?;
            }
            if prepared {
                state.args.clear();
                state
                    .args
                    .extend(s.binds.iter().map(|b| state.values[*b].clone()));
                session
                    .run_statement(&s.sql, &state.args, true, &s.capture, &mut state.captured)
                    .await?;
            } else {
                let values = &state.values;
                let sql = s.parsed.render(self.driver, |name| {
                    let i = op.params.iter().position(|p| p.name == name).unwrap_or(0);
                    &values[i]
                });
                session
                    .run_statement(&sql, &[], false, &s.capture, &mut state.captured)
                    .await?;
            }
        }
        Ok(())
    }
}

/// A value of the type a generator binds, for checking statements; `None` when only
/// the run knows (`from`), or when the values of a `pick` differ in type.
fn sample(g: &Generator) -> Option<Arg> {
    match g {
        Generator::Int { .. }
        | Generator::Shard
        | Generator::Zipf { .. }
        | Generator::Sequence { .. }
        | Generator::Row => Some(Arg::Int(0)),
        Generator::Float { .. } | Generator::Normal { .. } => Some(Arg::Real(0.0)),
        Generator::Text { .. } => Some(Arg::Text(String::new())),
        Generator::Now => Some(Arg::Timestamp(0)),
        Generator::Pick { values, .. } => {
            let first = values.first()?;
            values
                .iter()
                .all(|v| std::mem::discriminant(v) == std::mem::discriminant(first))
                .then(|| first.clone())
        }
        Generator::From { .. } => None,
    }
}

/// How a transaction starts. SQLite takes its write lock at the start (IMMEDIATE): a
/// deferred transaction that reads and then writes cannot upgrade while another
/// session writes, and SQLite then fails it at once instead of waiting (the busy
/// timeout does not apply), so every write transaction would risk an error.
fn begin(driver: Driver) -> &'static str {
    match driver {
        Driver::MySql => "START TRANSACTION",
        Driver::Postgres => "BEGIN",
        Driver::Sqlite => "BEGIN IMMEDIATE",
    }
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Run the file's `[setup]` (or `[teardown]`) statements for this dialect, in order.
/// Statements written only for other dialects are skipped.
///
/// # Errors
/// The first statement that fails, with its line.
pub async fn run_plain(
    session: &mut Session,
    file: &ScenarioFile,
    statements: &[Statement],
    what: &str,
) -> Result<usize, FileError> {
    let driver = session_driver(session);
    let mut ran = 0;
    for s in statements {
        let Some(sql) = s.sql(driver) else { continue };
        session
            .run_text(sql)
            .await
            .map_err(|e| FileError::Statement {
                origin: file.origin.to_string(),
                line: s.line,
                what: what.to_string(),
                reason: describe(&e),
            })?;
        ran += 1;
    }
    Ok(ran)
}

fn session_driver(session: &Session) -> Driver {
    match session {
        Session::MySql(_) => Driver::MySql,
        Session::Postgres(_) => Driver::Postgres,
        Session::Sqlite(_) => Driver::Sqlite,
    }
}

/// Load rows `ids` of the file's `[load]` on one session: the statement once per row,
/// `batch` rows per transaction. Every row's values depend only on the seed and the row
/// number, so any split of the load across sessions and workers gives the same data.
///
/// # Errors
/// A row failed; the message names it and the line.
pub async fn load_rows(
    session: &mut Session,
    file: &ScenarioFile,
    seed: u64,
    ids: std::ops::RangeInclusive<u64>,
) -> Result<u64, FileError> {
    let Some(load) = &file.load else { return Ok(0) };
    let driver = session_driver(session);
    let compiled = compile(driver, &load.statement, &load.params).map_err(|e| FileError::Load {
        origin: file.origin.to_string(),
        source: Box::new(e),
    })?;
    let streams = Streams {
        worker_index: 0,
        fleet: 1,
        session: 0,
        sessions: 1,
    };
    let mut draws: Vec<Draw> = load
        .params
        .iter()
        .map(|p| Draw::new(p.generator.clone(), streams, 1))
        .collect();
    let now = now_micros();
    let mut loaded = 0;
    let mut args = Vec::with_capacity(compiled.binds.len());
    let mut values = Vec::with_capacity(draws.len());
    let mut none = Vec::new();
    let (first, last) = (*ids.start(), *ids.end());
    let mut row = first;
    while row <= last {
        let end = (row + u64::from(load.batch) - 1).min(last);
        session
            .run_text(begin(driver))
            .await
            .map_err(|e| FileError::Batch {
                doing: "loading",
                first: row,
                last: end,
                reason: describe(&e),
            })?;
        for r in row..=end {
            let mut rng = Rng::for_stream(seed, &[0x10AD, r]);
            values.clear();
            for d in &mut draws {
                values.push(
                    d.next(
                        &mut rng,
                        &Inputs {
                            ranges: &[],
                            row: r,
                            now_micros: now,
                            captured: &[],
                        },
                    )
                    .map_err(|e| FileError::Value {
                        row: r,
                        reason: e.to_string(),
                    })?,
                );
            }
            args.clear();
            args.extend(compiled.binds.iter().map(|b| values[*b].clone()));
            session
                .run_statement(&compiled.sql, &args, true, &[], &mut none)
                .await
                .map_err(|e| FileError::Row {
                    origin: file.origin.to_string(),
                    line: compiled.line,
                    row: r,
                    reason: e.to_string(),
                })?;
            loaded += 1;
        }
        session
            .run_text("COMMIT")
            .await
            .map_err(|e| FileError::Batch {
                doing: "committing",
                first: row,
                last: end,
                reason: describe(&e),
            })?;
        row = end + 1;
    }
    Ok(loaded)
}
/// A scenario file's session keeps a draw per parameter of every operation.
impl Workload for FileWorkload {
    type Session = FileSession;

    fn session(&self, streams: Streams) -> FileSession {
        self.new_session(streams)
    }

    async fn check(&self, db: &mut Session, _plan: &CheckFor<'_>) -> Result<(), CheckError> {
        Ok(self.check(db).await?)
    }

    fn execute(
        &self,
        db: &mut Session,
        slot: usize,
        state: &mut FileSession,
        keys: &mut Keys,
        rng: &mut Rng,
    ) -> impl std::future::Future<Output = Attempt> {
        self.run_op(db, slot, state, keys, rng)
    }
}
