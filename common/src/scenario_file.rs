//! Scenario files: a team's own workload in TOML, without writing Rust.
//!
//! A file names operations (one statement, or several run as a transaction with a retry
//! policy), binds `:name` parameters from generators, weights the operations, and may
//! carry set-up SQL, a generated data load and tear-down SQL. Everything here is checked
//! when the file is read, before anything connects: each error names the file, the line
//! and the operation. What only the database can check (does the statement prepare?)
//! the worker checks before the run starts. docs/scenarios.md is the user's reference.

use crate::generator::{Generator, NAMES};
use crate::scenario::OpName;
use crate::sqltext::{self, ParsedSql};
use crate::target::Driver;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use toml::Spanned;

/// Largest scenario file accepted (it travels to every worker in the assignment).
pub const MAX_SOURCE_BYTES: usize = 256 * 1024;
const MAX_OPERATIONS: usize = 64;
const MAX_STATEMENTS: usize = 100;
const MAX_PARAMS: usize = 100;
const MAX_RETRIES: u32 = 100;
const DIALECTS: [Driver; 3] = [Driver::MySql, Driver::Postgres, Driver::Sqlite];

/// A problem with a scenario file: where it is and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("scenario file {origin}{}: {message}", line.map(|l| format!(", line {l}")).unwrap_or_default())]
pub struct ScenarioFileError {
    pub origin: String,
    pub line: Option<usize>,
    pub message: String,
}

/// How statements reach the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Prepared once per session, executed with bound values (COM_STMT_EXECUTE,
    /// PostgreSQL's extended protocol).
    Prepared,
    /// Values written into the SQL text, sent as a plain query every time (COM_QUERY,
    /// PostgreSQL's simple protocol): the server parses and plans each call.
    Text,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Prepared => "prepared",
            Protocol::Text => "text",
        }
    }
}

/// One statement, in one or more dialects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// Indexed as [`dialect_index`].
    sql: [Option<String>; 3],
    pub line: usize,
}

fn dialect_index(driver: Driver) -> usize {
    match driver {
        Driver::MySql => 0,
        Driver::Postgres => 1,
        Driver::Sqlite => 2,
    }
}

impl Statement {
    /// The SQL for `driver`, if the file gives one.
    pub fn sql(&self, driver: Driver) -> Option<&str> {
        self.sql[dialect_index(driver)].as_deref()
    }

    /// The SQL for `driver` with its parameters found (validated when the file was read).
    pub fn parsed(&self, driver: Driver) -> Option<ParsedSql> {
        self.sql(driver)
            .and_then(|s| sqltext::parse(driver, s).ok())
    }
}

/// A parameter and its generator.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub name: String,
    pub generator: Generator,
    pub line: usize,
}

/// One operation of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct FileOp {
    pub name: OpName,
    pub weight: u32,
    pub statements: Vec<Statement>,
    pub params: Vec<Param>,
    /// Run the statements between BEGIN and COMMIT.
    pub transaction: bool,
    /// Times a deadlock or serialization failure is retried before it counts as an error.
    pub retry: u32,
    /// Where it runs when the plan has a reader (`role = "read"`); default write.
    pub role: crate::scenario::Role,
    pub line: usize,
}

/// The generated data load: one statement run once per row, `batch` rows per transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Load {
    pub statement: Statement,
    pub params: Vec<Param>,
    pub batch: u32,
}

/// A validated scenario file.
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioFile {
    pub name: String,
    /// Where it was read from, as the user gave it: for messages.
    pub origin: String,
    /// The text, sent to workers, which parse and check it again.
    pub source: String,
    pub protocol: Protocol,
    /// The key space `[1, rows]` when the plan names none.
    pub rows: Option<u64>,
    pub setup: Vec<Statement>,
    pub load: Option<Load>,
    pub teardown: Vec<Statement>,
    pub operations: Vec<FileOp>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    name: Option<Spanned<String>>,
    protocol: Option<Spanned<String>>,
    rows: Option<Spanned<u64>>,
    setup: Option<RawStatements>,
    load: Option<Spanned<RawLoad>>,
    teardown: Option<RawStatements>,
    #[serde(default)]
    operation: Vec<Spanned<RawOperation>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStatements {
    sql: Spanned<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLoad {
    sql: Spanned<toml::Value>,
    #[serde(default)]
    params: BTreeMap<String, Spanned<toml::Value>>,
    batch: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOperation {
    name: Spanned<String>,
    weight: Option<u32>,
    sql: Spanned<toml::Value>,
    #[serde(default)]
    params: BTreeMap<String, Spanned<toml::Value>>,
    transaction: Option<bool>,
    retry: Option<u32>,
    role: Option<crate::scenario::Role>,
}

/// Where parameters may be used, which decides the generators allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Operation,
    Load,
}

struct Reader<'a> {
    origin: &'a str,
    source: &'a str,
}

impl Reader<'_> {
    fn line(&self, offset: usize) -> usize {
        self.source[..offset.min(self.source.len())]
            .bytes()
            .filter(|b| *b == b'\n')
            .count()
            + 1
    }

    fn err(&self, offset: usize, message: impl Into<String>) -> ScenarioFileError {
        ScenarioFileError {
            origin: self.origin.to_string(),
            line: Some(self.line(offset)),
            message: message.into(),
        }
    }
}

impl ScenarioFile {
    /// Read and check a scenario file.
    ///
    /// # Errors
    /// The file cannot be read or is not a valid scenario.
    pub fn from_file(path: &Path) -> Result<Self, ScenarioFileError> {
        let origin = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|e| ScenarioFileError {
            origin: origin.clone(),
            line: None,
            message: format!("cannot read it: {e}"),
        })?;
        if meta.len() > MAX_SOURCE_BYTES as u64 {
            return Err(ScenarioFileError {
                origin,
                line: None,
                message: format!(
                    "{} bytes; a scenario file may have at most {MAX_SOURCE_BYTES}",
                    meta.len()
                ),
            });
        }
        let source = std::fs::read_to_string(path).map_err(|e| ScenarioFileError {
            origin: origin.clone(),
            line: None,
            message: format!("cannot read it: {e}"),
        })?;
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("custom")
            .to_string();
        Self::parse(&origin, &stem, &source)
    }

    /// Check a scenario file's text. `default_name` names it when the file does not.
    ///
    /// # Errors
    /// The text is not a valid scenario; the message names the line and the operation.
    pub fn parse(
        origin: &str,
        default_name: &str,
        source: &str,
    ) -> Result<Self, ScenarioFileError> {
        let r = Reader { origin, source };
        if source.len() > MAX_SOURCE_BYTES {
            return Err(ScenarioFileError {
                origin: origin.to_string(),
                line: None,
                message: format!(
                    "{} bytes; a scenario file may have at most {MAX_SOURCE_BYTES}",
                    source.len()
                ),
            });
        }
        let raw: RawFile = toml::from_str(source).map_err(|e| ScenarioFileError {
            origin: origin.to_string(),
            line: e.span().map(|s| r.line(s.start)),
            message: e.message().trim_end().to_string(),
        })?;

        let name = match &raw.name {
            Some(n) => {
                let ok = !n.get_ref().is_empty()
                    && n.get_ref().len() <= 64
                    && n.get_ref()
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                if !ok {
                    return Err(r.err(
                        n.span().start,
                        format!("name = {:?}: 1 to 64 letters, digits, _ and -", n.get_ref()),
                    ));
                }
                n.get_ref().clone()
            }
            None => default_name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .take(64)
                .collect(),
        };
        let protocol = match &raw.protocol {
            None => Protocol::Prepared,
            Some(p) => match p.get_ref().as_str() {
                "prepared" => Protocol::Prepared,
                "text" => Protocol::Text,
                other => {
                    return Err(r.err(
                        p.span().start,
                        format!("protocol = {other:?}: use \"prepared\" or \"text\""),
                    ))
                }
            },
        };
        let rows = match &raw.rows {
            Some(n) if !(1..=10_000_000_000).contains(n.get_ref()) => {
                return Err(r.err(
                    n.span().start,
                    format!("rows = {}: between 1 and 10000000000", n.get_ref()),
                ))
            }
            n => n.as_ref().map(|n| *n.get_ref()),
        };
        let setup = match &raw.setup {
            Some(s) => r.plain_statements("[setup]", &s.sql)?,
            None => Vec::new(),
        };
        let teardown = match &raw.teardown {
            Some(s) => r.plain_statements("[teardown]", &s.sql)?,
            None => Vec::new(),
        };
        let load = match &raw.load {
            Some(l) => Some(r.load(l)?),
            None => None,
        };
        if raw.operation.is_empty() {
            return Err(ScenarioFileError {
                origin: origin.to_string(),
                line: None,
                message: "no operations: add at least one [[operation]] with a name and sql".into(),
            });
        }
        if raw.operation.len() > MAX_OPERATIONS {
            return Err(r.err(
                raw.operation[MAX_OPERATIONS].span().start,
                format!("more than {MAX_OPERATIONS} operations"),
            ));
        }
        let mut operations: Vec<FileOp> = Vec::new();
        for op in &raw.operation {
            let op = r.operation(op)?;
            if operations.iter().any(|o| o.name == op.name) {
                return Err(
                    r.err_line(op.line, format!("operation `{}` is defined twice", op.name))
                );
            }
            operations.push(op);
        }
        if operations.iter().all(|o| o.weight == 0) {
            return Err(ScenarioFileError {
                origin: origin.to_string(),
                line: Some(operations[0].line),
                message: "every operation has weight 0: give at least one a weight above 0".into(),
            });
        }
        Ok(ScenarioFile {
            name,
            origin: origin.to_string(),
            source: source.to_string(),
            protocol,
            rows,
            setup,
            load,
            teardown,
            operations,
        })
    }

    /// Check that every statement a run needs has SQL for `driver`.
    ///
    /// # Errors
    /// An operation or the load lacks this dialect.
    pub fn check_dialect(&self, driver: Driver) -> Result<(), ScenarioFileError> {
        let missing = |what: String, line: usize| ScenarioFileError {
            origin: self.origin.clone(),
            line: Some(line),
            message: format!(
                "{what} has no SQL for {0}: add {0} = \"…\" beside the other dialects",
                driver.name()
            ),
        };
        for op in &self.operations {
            for (i, s) in op.statements.iter().enumerate() {
                if s.sql(driver).is_none() {
                    return Err(missing(
                        format!("operation `{}`, statement {}", op.name, i + 1),
                        s.line,
                    ));
                }
            }
        }
        if let Some(load) = &self.load {
            if load.statement.sql(driver).is_none() {
                return Err(missing("[load]".into(), load.statement.line));
            }
        }
        Ok(())
    }

    pub fn operation(&self, name: &OpName) -> Option<&FileOp> {
        self.operations.iter().find(|o| &o.name == name)
    }
}

impl Reader<'_> {
    fn err_line(&self, line: usize, message: impl Into<String>) -> ScenarioFileError {
        ScenarioFileError {
            origin: self.origin.to_string(),
            line: Some(line),
            message: message.into(),
        }
    }

    /// A statement list: one statement, a table of dialects, or a list of those.
    fn statements(
        &self,
        what: &str,
        value: &Spanned<toml::Value>,
    ) -> Result<Vec<Statement>, ScenarioFileError> {
        let line = self.line(value.span().start);
        let one = |v: &toml::Value, n: usize| -> Result<Statement, ScenarioFileError> {
            let label = if n == 0 {
                what.to_string()
            } else {
                format!("{what}, statement {n}")
            };
            let mut sql: [Option<String>; 3] = [None, None, None];
            match v {
                toml::Value::String(s) => {
                    for d in DIALECTS {
                        sql[dialect_index(d)] = Some(s.clone());
                    }
                }
                toml::Value::Table(t) => {
                    for (k, v) in t {
                        let d = match k.as_str() {
                            "mysql" | "mariadb" => Driver::MySql,
                            "postgres" | "postgresql" => Driver::Postgres,
                            "sqlite" => Driver::Sqlite,
                            other => {
                                return Err(self.err_line(
                                    line,
                                    format!("{label}: unknown dialect `{other}`; use mysql, postgres or sqlite"),
                                ))
                            }
                        };
                        let Some(s) = v.as_str() else {
                            return Err(self.err_line(
                                line,
                                format!("{label}: {k} must be a string of SQL"),
                            ));
                        };
                        sql[dialect_index(d)] = Some(s.to_string());
                    }
                    if sql.iter().all(Option::is_none) {
                        return Err(self.err_line(line, format!("{label}: the dialect table is empty")));
                    }
                }
                _ => {
                    return Err(self.err_line(
                        line,
                        format!("{label}: sql must be a string, a table {{ mysql = \"…\", postgres = \"…\", sqlite = \"…\" }}, or a list of those"),
                    ))
                }
            }
            for (d, s) in DIALECTS.iter().zip(&sql) {
                if let Some(s) = s {
                    if s.trim().is_empty() {
                        return Err(
                            self.err_line(line, format!("{label}: the {} SQL is empty", d.name()))
                        );
                    }
                    sqltext::parse(*d, s)
                        .map_err(|e| self.err_line(line, format!("{label} ({}): {e}", d.name())))?;
                }
            }
            Ok(Statement { sql, line })
        };
        match value.get_ref() {
            toml::Value::Array(items) => {
                if items.is_empty() {
                    return Err(self.err_line(line, format!("{what}: sql is an empty list")));
                }
                if items.len() > MAX_STATEMENTS {
                    return Err(self.err_line(
                        line,
                        format!("{what}: more than {MAX_STATEMENTS} statements"),
                    ));
                }
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| one(v, i + 1))
                    .collect()
            }
            v => Ok(vec![one(v, 0)?]),
        }
    }

    /// Set-up or tear-down statements: no parameters.
    fn plain_statements(
        &self,
        what: &str,
        value: &Spanned<toml::Value>,
    ) -> Result<Vec<Statement>, ScenarioFileError> {
        let statements = self.statements(what, value)?;
        for s in &statements {
            for d in DIALECTS {
                if let Some(p) = s.parsed(d) {
                    if let Some(n) = p.names().first() {
                        return Err(self.err_line(
                            s.line,
                            format!("{what} statements take no parameters, but one uses :{n}"),
                        ));
                    }
                }
            }
        }
        Ok(statements)
    }

    fn load(&self, l: &Spanned<RawLoad>) -> Result<Load, ScenarioFileError> {
        let raw = l.get_ref();
        let statements = self.statements("[load]", &raw.sql)?;
        let params = self.params("[load]", &raw.params, Place::Load)?;
        self.check_uses("[load]", &statements, &params)?;
        let Ok([statement]) = <[Statement; 1]>::try_from(statements) else {
            return Err(self.err(
                raw.sql.span().start,
                "[load]: sql must be one INSERT statement, run once per row",
            ));
        };
        let batch = raw.batch.unwrap_or(1000);
        if !(1..=100_000).contains(&batch) {
            return Err(self.err(
                l.span().start,
                format!("[load] batch = {batch}: rows per transaction, between 1 and 100000"),
            ));
        }
        Ok(Load {
            statement,
            params,
            batch,
        })
    }

    fn operation(&self, op: &Spanned<RawOperation>) -> Result<FileOp, ScenarioFileError> {
        let raw = op.get_ref();
        let line = self.line(op.span().start);
        let name =
            OpName::new(raw.name.get_ref()).map_err(|e| self.err(raw.name.span().start, e))?;
        let what = format!("operation `{name}`");
        let statements = self.statements(&what, &raw.sql)?;
        let params = self.params(&what, &raw.params, Place::Operation)?;
        self.check_uses(&what, &statements, &params)?;
        // A `from` value must come from a statement before the first one that uses it.
        for p in &params {
            if let Generator::From { .. } = p.generator {
                let first_use = statements.iter().position(|s| {
                    DIALECTS
                        .iter()
                        .filter_map(|d| s.parsed(*d))
                        .any(|ps| ps.names().contains(&p.name.as_str()))
                });
                if first_use == Some(0) {
                    return Err(self.err_line(
                        p.line,
                        format!("{what}: parameter `{}` takes a value from an earlier statement, but the first statement uses it; move the statement that returns it before", p.name),
                    ));
                }
            }
        }
        let retry = raw.retry.unwrap_or(0);
        if retry > MAX_RETRIES {
            return Err(self.err_line(
                line,
                format!("{what}: retry = {retry}: at most {MAX_RETRIES}"),
            ));
        }
        Ok(FileOp {
            name,
            weight: raw.weight.unwrap_or(1),
            transaction: raw.transaction.unwrap_or(statements.len() > 1),
            statements,
            params,
            retry,
            role: raw.role.unwrap_or(crate::scenario::Role::Write),
            line,
        })
    }

    /// Every parameter a statement uses is defined, and every defined one is used.
    fn check_uses(
        &self,
        what: &str,
        statements: &[Statement],
        params: &[Param],
    ) -> Result<(), ScenarioFileError> {
        let mut used: Vec<String> = Vec::new();
        for (i, s) in statements.iter().enumerate() {
            for d in DIALECTS {
                let Some(parsed) = s.parsed(d) else { continue };
                for n in parsed.names() {
                    if !params.iter().any(|p| p.name == n) {
                        let label = if statements.len() > 1 {
                            format!("{what}, statement {}", i + 1)
                        } else {
                            what.to_string()
                        };
                        return Err(self.err_line(
                            s.line,
                            format!("{label} ({}) uses :{n}, which is not defined: add params.{n} = {{ gen = \"…\" }}", d.name()),
                        ));
                    }
                    if !used.iter().any(|u| u == n) {
                        used.push(n.to_string());
                    }
                }
            }
        }
        if let Some(p) = params.iter().find(|p| !used.contains(&p.name)) {
            return Err(self.err_line(
                p.line,
                format!("{what}: parameter `{}` is defined but no statement uses :{}; remove it or use it", p.name, p.name),
            ));
        }
        Ok(())
    }

    fn params(
        &self,
        what: &str,
        raw: &BTreeMap<String, Spanned<toml::Value>>,
        place: Place,
    ) -> Result<Vec<Param>, ScenarioFileError> {
        if raw.len() > MAX_PARAMS {
            return Err(ScenarioFileError {
                origin: self.origin.to_string(),
                line: None,
                message: format!("{what}: more than {MAX_PARAMS} parameters"),
            });
        }
        let mut out = Vec::with_capacity(raw.len());
        for (name, value) in raw {
            let line = self.line(value.span().start);
            let here = |m: String| self.err_line(line, format!("{what}, parameter `{name}`: {m}"));
            let ident = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ident {
                return Err(here(
                    "a parameter name is letters, digits and _, starting with a letter".into(),
                ));
            }
            let toml::Value::Table(t) = value.get_ref() else {
                return Err(here(format!(
                    "must be a table such as {{ gen = \"int\", min = 1, max = 100 }}; generators: {NAMES}"
                )));
            };
            let generator = Generator::from_table(t).map_err(|e| here(e.to_string()))?;
            match (&generator, place) {
                (Generator::Row, Place::Operation) => return Err(here(
                    "`row` numbers the rows of [load]; in an operation use shard, zipf or sequence"
                        .into(),
                )),
                (
                    Generator::Shard | Generator::Sequence { .. } | Generator::From { .. },
                    Place::Load,
                ) => {
                    return Err(here(format!(
                        "`{}` is for operations; [load] numbers its rows with gen = \"row\"",
                        generator.name()
                    )))
                }
                (Generator::Zipf { range: None, .. }, Place::Load) => {
                    return Err(here(
                        "zipf in [load] needs min and max (there is no worker shard while loading)"
                            .into(),
                    ))
                }
                _ => {}
            }
            out.push(Param {
                name: name.clone(),
                generator,
                line,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
