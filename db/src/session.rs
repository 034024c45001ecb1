//! One database session: a dedicated connection of one of sqlx's three drivers.
//!
//! Each session holds its own connection for the whole run. A shared pool would put pool
//! wait inside the measured latency and costs about 2.5× the client CPU per query (see
//! docs/performance.md), so the pool is deliberately not used. This is our own small
//! abstraction rather than sqlx's `Any` driver, which re-encodes every value.

use fleetload_common::outcome::{classify_mysql, classify_sqlite, classify_sqlstate, ErrorClass};
use fleetload_common::target::Driver;
use sqlx::mysql::{MySqlConnection, MySqlDatabaseError};
use sqlx::postgres::PgConnection;
use sqlx::sqlite::SqliteConnection;
use sqlx::Connection;

pub use fleetload_common::value::Arg;

/// An open connection.
#[derive(Debug)]
pub enum Session {
    MySql(MySqlConnection),
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

/// A server instance as a session sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub name: String,
    pub read_only: bool,
}

macro_rules! bind_all {
    ($q:expr, $args:expr) => {{
        let mut q = $q;
        for a in $args {
            q = match a {
                Arg::Int(v) => q.bind(*v),
                Arg::Real(v) => q.bind(*v),
                Arg::Text(v) => q.bind(v.as_str()),
                Arg::Timestamp(micros) => q.bind(timestamp(*micros)),
            };
        }
        q
    }};
}

fn timestamp(micros: i64) -> chrono::NaiveDateTime {
    chrono::DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .naive_utc()
}

/// A column value as an [`Arg`], whatever its SQL type: integers, floats, text and
/// timestamps; anything else is refused by name.
macro_rules! column_arg {
    ($row:expr, $i:expr) => {{
        use sqlx::{Column, Row, TypeInfo, ValueRef};
        let row = $row;
        let i = $i;
        if row.try_get_raw(i).map(|v| v.is_null()).unwrap_or(false) {
            Err(format!("column `{}` is NULL", row.columns()[i].name()))
        } else if let Ok(v) = row.try_get::<i64, _>(i) {
            Ok(Arg::Int(v))
        } else if let Ok(v) = row.try_get::<i32, _>(i) {
            Ok(Arg::Int(i64::from(v)))
        } else if let Ok(v) = row.try_get::<i16, _>(i) {
            Ok(Arg::Int(i64::from(v)))
        } else if let Ok(v) = row.try_get::<f64, _>(i) {
            Ok(Arg::Real(v))
        } else if let Ok(v) = row.try_get::<f32, _>(i) {
            Ok(Arg::Real(f64::from(v)))
        } else if let Ok(v) = row.try_get::<String, _>(i) {
            Ok(Arg::Text(v))
        } else if let Ok(v) = row.try_get::<chrono::NaiveDateTime, _>(i) {
            Ok(Arg::Timestamp(v.and_utc().timestamp_micros()))
        } else {
            Err(format!(
                "column `{}` has type {}, which fleetload cannot pass on; CAST it to an integer, a float or text",
                row.columns()[i].name(),
                row.columns()[i].type_info().name()
            ))
        }
    }};
}

/// Take the named columns of a statement's first row into `out` (names compared without
/// case, as SQL does).
macro_rules! capture {
    ($rows:expr, $names:expr, $out:expr) => {{
        use sqlx::{Column, Row};
        if let Some(row) = $rows.first() {
            for name in $names {
                if let Some(c) = row
                    .columns()
                    .iter()
                    .find(|c| c.name().eq_ignore_ascii_case(name))
                {
                    let value = column_arg!(row, c.ordinal()).map_err(CaptureError::Column)?;
                    $out.retain(|(n, _): &(String, Arg)| !n.eq_ignore_ascii_case(name));
                    $out.push((name.clone(), value));
                }
            }
        }
        Ok::<usize, CaptureError>($rows.len())
    }};
}

/// Why a statement whose columns were wanted failed.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    /// A returned column cannot be taken as a parameter value.
    #[error("{0}")]
    Column(String),
}

impl Session {
    /// The driver this session speaks.
    pub fn driver(&self) -> Driver {
        match self {
            Session::MySql(_) => Driver::MySql,
            Session::Postgres(_) => Driver::Postgres,
            Session::Sqlite(_) => Driver::Sqlite,
        }
    }

    /// Run one statement of a scenario file and keep the `capture` columns of its first
    /// row in `out`; returns the rows it gave. Prepared: `sql` has placeholders and
    /// `args` are bound (the statement is prepared once per connection and cached).
    /// Text: `sql` already holds the values and goes as a plain query, so the server
    /// parses it every time.
    ///
    /// # Errors
    /// Whatever the database returns, or a captured column of a type that cannot be
    /// passed on.
    pub async fn run_statement(
        &mut self,
        sql: &str,
        args: &[Arg],
        prepared: bool,
        capture: &[String],
        out: &mut Vec<(String, Arg)>,
    ) -> Result<usize, CaptureError> {
        use sqlx::Executor;
        macro_rules! go {
            ($c:expr) => {{
                let rows = if prepared {
                    bind_all!(sqlx::query(sql), args)
                        .fetch_all(&mut *$c)
                        .await?
                } else {
                    $c.fetch_all(sql).await?
                };
                capture!(rows, capture, out)
            }};
        }
        match self {
            Session::MySql(c) => go!(c),
            Session::Postgres(c) => go!(c),
            Session::Sqlite(c) => go!(c),
        }
    }

    /// Prepare `sql` without running it, and return the names of the columns it would
    /// return: how a scenario file's statements are checked before a run. `params` gives
    /// a value of the type each placeholder will be bound with (`None`: unknown, let the
    /// server infer it); PostgreSQL checks the statement with those types, so a value of
    /// the wrong type for its column fails here rather than in every operation.
    ///
    /// The statement cache is cleared afterwards: the server may have inferred other
    /// types than the run binds.
    ///
    /// # Errors
    /// The server cannot prepare it (syntax, unknown table or column, types).
    pub async fn describe_columns(
        &mut self,
        sql: &str,
        params: &[Option<Arg>],
    ) -> Result<Vec<String>, sqlx::Error> {
        use sqlx::{Column, Executor, Statement};
        let names = match self {
            Session::MySql(c) => c
                .prepare(sql)
                .await?
                .columns()
                .iter()
                .map(|c| c.name().to_string())
                .collect(),
            Session::Postgres(c) => {
                use sqlx::postgres::{types::Oid, PgTypeInfo, Postgres};
                use sqlx::Type;
                let types: Vec<PgTypeInfo> = params
                    .iter()
                    .map(|p| match p {
                        Some(Arg::Int(_)) => <i64 as Type<Postgres>>::type_info(),
                        Some(Arg::Real(_)) => <f64 as Type<Postgres>>::type_info(),
                        Some(Arg::Text(_)) => <&str as Type<Postgres>>::type_info(),
                        Some(Arg::Timestamp(_)) => {
                            <chrono::NaiveDateTime as Type<Postgres>>::type_info()
                        }
                        // 705 is PostgreSQL's `unknown`: the server infers the type.
                        None => PgTypeInfo::with_oid(Oid(705)),
                    })
                    .collect();
                c.prepare_with(sql, &types)
                    .await?
                    .columns()
                    .iter()
                    .map(|c| c.name().to_string())
                    .collect()
            }
            Session::Sqlite(c) => c
                .prepare(sql)
                .await?
                .columns()
                .iter()
                .map(|c| c.name().to_string())
                .collect(),
        };
        match self {
            Session::MySql(c) => c.clear_cached_statements().await?,
            Session::Postgres(c) => c.clear_cached_statements().await?,
            Session::Sqlite(c) => c.clear_cached_statements().await?,
        }
        Ok(names)
    }

    /// The first `columns` columns of a prepared query's first row as [`Arg`]s (the
    /// others are fetched and left: decimals, say); `None` without a row.
    ///
    /// # Errors
    /// Whatever the database returns, or one of those columns is NULL or of a type that
    /// cannot be taken as a value.
    pub async fn first_row(
        &mut self,
        sql: &str,
        args: &[Arg],
        columns: usize,
    ) -> Result<Option<Vec<Arg>>, CaptureError> {
        macro_rules! go {
            ($c:expr) => {{
                use sqlx::Row;
                match bind_all!(sqlx::query(sql), args)
                    .fetch_optional(&mut *$c)
                    .await?
                {
                    None => None,
                    Some(row) => Some(
                        (0..row.len().min(columns))
                            .map(|i| column_arg!(&row, i))
                            .collect::<Result<Vec<Arg>, String>>()
                            .map_err(CaptureError::Column)?,
                    ),
                }
            }};
        }
        Ok(match self {
            Session::MySql(c) => go!(c),
            Session::Postgres(c) => go!(c),
            Session::Sqlite(c) => go!(c),
        })
    }

    /// The first column of every row of a prepared query.
    ///
    /// # Errors
    /// As [`Session::first_row`].
    pub async fn first_column(
        &mut self,
        sql: &str,
        args: &[Arg],
    ) -> Result<Vec<Arg>, CaptureError> {
        macro_rules! go {
            ($c:expr) => {{
                bind_all!(sqlx::query(sql), args)
                    .fetch_all(&mut *$c)
                    .await?
                    .iter()
                    .map(|row| column_arg!(row, 0))
                    .collect::<Result<Vec<Arg>, String>>()
                    .map_err(CaptureError::Column)?
            }};
        }
        Ok(match self {
            Session::MySql(c) => go!(c),
            Session::Postgres(c) => go!(c),
            Session::Sqlite(c) => go!(c),
        })
    }

    /// Run a prepared (cached per connection) query and return how many rows it gave.
    ///
    /// # Errors
    /// Whatever the database or the connection returns.
    pub async fn fetch(&mut self, sql: &str, args: &[Arg]) -> Result<usize, sqlx::Error> {
        use futures_util::TryStreamExt;
        // Counted as they stream: no vector of rows is built only to take its length.
        macro_rules! count {
            ($c:expr) => {{
                let mut rows = bind_all!(sqlx::query(sql), args).fetch(&mut *$c);
                let mut n = 0;
                while rows.try_next().await?.is_some() {
                    n += 1;
                }
                n
            }};
        }
        Ok(match self {
            Session::MySql(c) => count!(c),
            Session::Postgres(c) => count!(c),
            Session::Sqlite(c) => count!(c),
        })
    }

    /// Run a prepared statement and return the rows it affected.
    ///
    /// # Errors
    /// Whatever the database or the connection returns.
    pub async fn execute(&mut self, sql: &str, args: &[Arg]) -> Result<u64, sqlx::Error> {
        Ok(match self {
            Session::MySql(c) => bind_all!(sqlx::query(sql), args)
                .execute(c)
                .await?
                .rows_affected(),
            Session::Postgres(c) => bind_all!(sqlx::query(sql), args)
                .execute(c)
                .await?
                .rows_affected(),
            Session::Sqlite(c) => bind_all!(sqlx::query(sql), args)
                .execute(c)
                .await?
                .rows_affected(),
        })
    }

    /// Run SQL text as it is (unprepared): DDL and bulk loads.
    ///
    /// # Errors
    /// Whatever the database or the connection returns.
    pub async fn run_text(&mut self, sql: &str) -> Result<u64, sqlx::Error> {
        use sqlx::Executor;
        Ok(match self {
            Session::MySql(c) => c.execute(sql).await?.rows_affected(),
            Session::Postgres(c) => c.execute(sql).await?.rows_affected(),
            Session::Sqlite(c) => c.execute(sql).await?.rows_affected(),
        })
    }

    /// Which server instance this session is connected to, and whether it is read-only
    /// (a replica, or a demoted writer): asked once per connection, so the report can
    /// say which instance served what and which was the writer before and after a
    /// failover. On Aurora, its instance identifier; elsewhere `address:port` as the
    /// server sees itself (behind a proxy or DNS name, the real instance). `None` on
    /// SQLite, or when the server will not say.
    pub async fn instance(&mut self) -> Option<Instance> {
        match self {
            Session::Postgres(c) => {
                let (addr, ro): (String, bool) = sqlx::query_as(
                    "SELECT COALESCE(host(inet_server_addr()), 'local') || ':' || COALESCE(inet_server_port()::text, ''), \
                     pg_is_in_recovery() OR current_setting('default_transaction_read_only') = 'on'",
                )
                .fetch_one(&mut *c)
                .await
                .ok()?;
                let aurora: Option<String> =
                    sqlx::query_scalar("SELECT aurora_db_instance_identifier()::text")
                        .fetch_one(&mut *c)
                        .await
                        .ok();
                Some(Instance {
                    name: aurora.unwrap_or(addr),
                    read_only: ro,
                })
            }
            Session::MySql(c) => {
                let (addr, ro): (String, i64) = sqlx::query_as(
                    "SELECT CONCAT(@@hostname, ':', @@port), CAST(@@read_only OR @@innodb_read_only AS SIGNED)",
                )
                .fetch_one(&mut *c)
                .await
                .ok()?;
                let aurora: Option<String> =
                    sqlx::query_scalar("SELECT CAST(@@aurora_server_id AS CHAR)")
                        .fetch_one(&mut *c)
                        .await
                        .ok();
                Some(Instance {
                    name: aurora.unwrap_or(addr),
                    read_only: ro != 0,
                })
            }
            Session::Sqlite(_) => None,
        }
    }

    /// A single integer from a query, e.g. `SELECT COUNT(*) …`.
    ///
    /// # Errors
    /// Whatever the database returns, or a query that yields no row.
    pub async fn scalar_i64(&mut self, sql: &str) -> Result<i64, sqlx::Error> {
        Ok(match self {
            Session::MySql(c) => sqlx::query_scalar::<_, i64>(sql).fetch_one(c).await?,
            Session::Postgres(c) => sqlx::query_scalar::<_, i64>(sql).fetch_one(c).await?,
            Session::Sqlite(c) => sqlx::query_scalar::<_, i64>(sql).fetch_one(c).await?,
        })
    }

    /// Rows of two text columns (e.g. `SHOW GLOBAL STATUS`).
    ///
    /// # Errors
    /// Whatever the database returns.
    pub async fn text_pairs(&mut self, sql: &str) -> Result<Vec<(String, String)>, sqlx::Error> {
        Ok(match self {
            Session::MySql(c) => {
                sqlx::query_as::<_, (String, String)>(sql)
                    .fetch_all(c)
                    .await?
            }
            Session::Postgres(c) => {
                sqlx::query_as::<_, (String, String)>(sql)
                    .fetch_all(c)
                    .await?
            }
            Session::Sqlite(c) => {
                sqlx::query_as::<_, (String, String)>(sql)
                    .fetch_all(c)
                    .await?
            }
        })
    }

    /// The first row's columns as `(name, BIGINT)`; columns of other types are skipped.
    ///
    /// # Errors
    /// Whatever the database returns, or a query that yields no row.
    pub async fn named_i64(&mut self, sql: &str) -> Result<Vec<(String, i64)>, sqlx::Error> {
        use sqlx::{Column, Row};
        macro_rules! named {
            ($row:expr) => {{
                let row = $row;
                row.columns()
                    .iter()
                    .filter_map(|c| {
                        row.try_get::<i64, _>(c.ordinal())
                            .ok()
                            .map(|v| (c.name().to_string(), v))
                    })
                    .collect()
            }};
        }
        Ok(match self {
            Session::MySql(c) => named!(sqlx::query(sql).fetch_one(c).await?),
            Session::Postgres(c) => named!(sqlx::query(sql).fetch_one(c).await?),
            Session::Sqlite(c) => named!(sqlx::query(sql).fetch_one(c).await?),
        })
    }

    /// Close the connection politely (a dropped one is closed too, abruptly).
    pub async fn close(self) {
        let _ = match self {
            Session::MySql(c) => c.close().await,
            Session::Postgres(c) => c.close().await,
            Session::Sqlite(c) => c.close().await,
        };
    }
}

/// The error class of a failed operation.
pub fn classify(err: &sqlx::Error) -> ErrorClass {
    match err {
        sqlx::Error::Database(db) => {
            if let Some(my) = db.try_downcast_ref::<MySqlDatabaseError>() {
                return classify_mysql(my.number(), my.code());
            }
            let code = db.code().unwrap_or_default();
            if db
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .is_some()
            {
                classify_sqlstate(&code)
            } else if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                classify_sqlite(&code)
            } else {
                ErrorClass::OtherSql
            }
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => ErrorClass::ConnectionLost,
        _ => ErrorClass::OtherSql,
    }
}

/// A one-line description of a database error for people.
pub fn describe(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Database(db) => match db.code() {
            Some(code) => format!("{} (code {code})", db.message()),
            None => db.message().to_string(),
        },
        other => other.to_string(),
    }
}

/// Rewrite `?` placeholders as `$1, $2, …` for PostgreSQL.
pub fn placeholders(driver: Driver, sql: &str) -> String {
    if driver != Driver::Postgres {
        return sql.to_string();
    }
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for ch in sql.chars() {
        if ch == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(ch);
        }
    }
    out
}
