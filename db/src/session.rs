//! One database session: a dedicated connection of one of sqlx's three drivers.
//!
//! Each session holds its own connection for the whole run. A shared pool would put pool
//! wait inside the measured latency and costs about 2.5× the client CPU per query (see
//! docs/performance.md), so the pool is deliberately not used. This is our own small
//! abstraction rather than sqlx's `Any` driver, which re-encodes every value.

use fleetload_aws::secret::SecretSource;
use fleetload_aws::token::Minter;
use fleetload_aws::Sensitive;
use fleetload_common::outcome::{classify_mysql, classify_sqlite, classify_sqlstate, ErrorClass};
use fleetload_common::target::Login;
use fleetload_common::target::{Driver, Target};
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlDatabaseError};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

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

/// Why a session could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot connect to {target} within {timeout:?}: the server did not answer in time; check the host, port and firewall")]
    Timeout { target: String, timeout: Duration },
    #[error("cannot connect to {target}: {message}")]
    Failed { target: String, message: String },
    #[error("{0}")]
    Password(String),
}

/// What a session logs in with, resolved on this host from the target's [`Login`]:
/// IAM tokens and secrets are fetched when a connection opens, never before, and never
/// leave this process except in the login itself.
///
/// [`Login`]: fleetload_common::target::Login
#[derive(Debug, Clone, Default)]
pub enum Credentials {
    #[default]
    None,
    Password(Sensitive),
    /// A fresh IAM token for every connection.
    Iam(Arc<Minter>),
    /// The password (and maybe the user) in a Secrets Manager secret, read again when a
    /// login is refused.
    Secret(Arc<SecretSource>),
}

impl Credentials {
    /// The credentials a target's login asks for on this host.
    ///
    /// # Errors
    /// The target names a password variable that is not set here.
    pub fn of(target: &Target) -> Result<Self, ConnectError> {
        Ok(match target.login() {
            Login::None => Credentials::None,
            Login::PasswordEnv(_) => match target.password().map_err(ConnectError::Password)? {
                Some(p) => Credentials::Password(Sensitive::new(p)),
                None => Credentials::None,
            },
            Login::Iam { region } => Credentials::Iam(Arc::new(Minter::new(region.clone()))),
            Login::Secret { id, region } => {
                Credentials::Secret(Arc::new(SecretSource::new(id.clone(), region.clone())))
            }
        })
    }
}

/// A login for one connection attempt: the user to log in as (`None`: the URL's) and
/// the password, with the secret's generation it came from.
struct LoginAttempt {
    user: Option<String>,
    password: Option<Sensitive>,
    secret_generation: Option<u64>,
}

/// How a session is opened: the target plus what the worker adds to it.
#[derive(Debug, Clone)]
pub struct ConnectSpec {
    pub target: Target,
    pub credentials: Credentials,
    pub timeout: Duration,
    /// Create an SQLite file when missing (only `prepare` does).
    pub create: bool,
    /// What the server shows as the client (PostgreSQL's `application_name`, in
    /// `pg_stat_activity`), unless the URL names one: a DBA sees which part of
    /// fleetload holds a connection.
    pub application: &'static str,
}

impl ConnectSpec {
    /// Build from a target, reading the password from this process's environment.
    ///
    /// # Errors
    /// The target names a password variable that is not set here.
    pub fn new(target: Target, timeout: Duration) -> Result<Self, ConnectError> {
        let credentials = Credentials::of(&target)?;
        Ok(ConnectSpec {
            target,
            credentials,
            timeout,
            create: false,
            application: "fleetload",
        })
    }

    /// Open one session.
    ///
    /// # Errors
    /// The server refused, did not answer in time, or the URL has bad options.
    pub async fn connect(&self) -> Result<Session, ConnectError> {
        // Boxed: one allocation per connection keeps the callers' futures shallow (the
        // AWS SDK's are deep).
        match tokio::time::timeout(self.timeout, Box::pin(self.log_in())).await {
            Ok(result) => result,
            Err(_) => Err(ConnectError::Timeout {
                target: self.target.to_string(),
                timeout: self.timeout,
            }),
        }
    }

    /// Log in; with a secret, once more with a newer read of it when the server refuses
    /// the login (the secret was rotated since this process read it).
    async fn log_in(&self) -> Result<Session, ConnectError> {
        let fail = |e: sqlx::Error| ConnectError::Failed {
            target: self.target.to_string(),
            message: describe(&e),
        };
        let first = self.login_attempt(None).await?;
        match self.open(&first).await {
            Err(e) if refused_login(&e) => match first.secret_generation {
                Some(seen) => {
                    let again = self.login_attempt(Some(seen)).await?;
                    self.open(&again).await.map_err(fail)
                }
                None => Err(fail(e)),
            },
            result => result.map_err(fail),
        }
    }

    /// The user and password for one attempt; `refresh_after`: the secret's generation
    /// that was refused.
    async fn login_attempt(
        &self,
        refresh_after: Option<u64>,
    ) -> Result<LoginAttempt, ConnectError> {
        let aws = |e: fleetload_aws::AwsError| ConnectError::Failed {
            target: self.target.to_string(),
            message: e.to_string(),
        };
        Ok(match &self.credentials {
            Credentials::None => LoginAttempt {
                user: None,
                password: None,
                secret_generation: None,
            },
            Credentials::Password(p) => LoginAttempt {
                user: None,
                password: Some(p.clone()),
                secret_generation: None,
            },
            Credentials::Iam(minter) => {
                let (host, port) = self
                    .target
                    .host_port()
                    .ok_or_else(|| ConnectError::Failed {
                        target: self.target.to_string(),
                        message: "IAM authentication needs a server's host and port".into(),
                    })?;
                let user = self.target.user().ok_or_else(|| ConnectError::Failed {
                    target: self.target.to_string(),
                    message: "IAM authentication needs the database user in the URL (USER@HOST)"
                        .into(),
                })?;
                let token = minter.mint(&host, port, &user).await.map_err(aws)?;
                LoginAttempt {
                    user: None,
                    password: Some(token),
                    secret_generation: None,
                }
            }
            Credentials::Secret(source) => {
                let (generation, secret) = match refresh_after {
                    None => source.current().await,
                    Some(seen) => source.refresh(seen).await,
                }
                .map_err(aws)?;
                LoginAttempt {
                    user: secret.username,
                    password: Some(secret.password),
                    secret_generation: Some(generation),
                }
            }
        })
    }

    async fn open(&self, login: &LoginAttempt) -> Result<Session, sqlx::Error> {
        let url = self.target.url();
        let iam = matches!(self.credentials, Credentials::Iam(_));
        let opening = async {
            Ok::<_, sqlx::Error>(match self.target.driver() {
                Driver::MySql => {
                    let mut o = MySqlConnectOptions::from_str(url)?;
                    if let Some(u) = &login.user {
                        o = o.username(u);
                    }
                    if let Some(p) = &login.password {
                        o = o.password(p.expose());
                    }
                    // Aurora MySQL takes the IAM token through the cleartext plugin;
                    // the plan's check made sure the URL requires TLS.
                    if iam {
                        o = o.enable_cleartext_plugin(true);
                    }
                    Session::MySql(o.disable_statement_logging().connect().await?)
                }
                Driver::Postgres => {
                    let mut o = PgConnectOptions::from_str(url)?;
                    if let Some(u) = &login.user {
                        o = o.username(u);
                    }
                    if let Some(p) = &login.password {
                        o = o.password(p.expose());
                    }
                    if o.get_application_name().is_none() {
                        o = o.application_name(self.application);
                    }
                    Session::Postgres(o.disable_statement_logging().connect().await?)
                }
                Driver::Sqlite => {
                    let mut o = SqliteConnectOptions::from_str(url)?
                        .create_if_missing(self.create)
                        .busy_timeout(Duration::from_secs(5))
                        .disable_statement_logging();
                    // WAL is a property of the file: `prepare` sets it once. Setting it
                    // on every connect needs a write lock, and sessions opening at the
                    // same moment then fail with "database is locked".
                    if self.create {
                        o = o
                            .journal_mode(SqliteJournalMode::Wal)
                            .synchronous(SqliteSynchronous::Normal);
                    }
                    let database = o.get_filename().to_path_buf();
                    if !self.create && !database.exists() {
                        return Err(sqlx::Error::Configuration(
                            format!(
                                "there is no SQLite file at {}; `fleetload prepare --target {url}` creates it and loads the scenario's table",
                                database.display()
                            )
                            .into(),
                        ));
                    }
                    let mut conn = o.connect().await?;
                    register_ml(&mut conn, &database).await?;
                    Session::Sqlite(conn)
                }
            })
        };
        opening.await
    }
}

/// Whether the server refused the login itself (a wrong password, a rotated secret, an
/// expired or unauthorised IAM token), as opposed to any other failure.
fn refused_login(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            matches!(db.code().as_deref(), Some("28P01" | "28000"))
                || db
                    .try_downcast_ref::<MySqlDatabaseError>()
                    .is_some_and(|m| m.number() == 1045)
        }
        _ => false,
    }
}

/// Give an SQLite connection the ML stand-in's functions, configured from the
/// `fl_ml_config` table that `prepare` writes (defaults before it exists).
async fn register_ml(
    conn: &mut SqliteConnection,
    database: &std::path::Path,
) -> Result<(), sqlx::Error> {
    let row: Option<(f64, f64, i64)> =
        sqlx::query_as("SELECT overhead_ms, row_cost_ms, capacity FROM fl_ml_config WHERE id = 1")
            .fetch_optional(&mut *conn)
            .await
            .ok()
            .flatten();
    let settings = row.map_or_else(
        crate::ml::MlSettings::default,
        |(overhead, row_cost, capacity)| crate::ml::MlSettings {
            overhead: Duration::from_secs_f64(overhead.max(0.0) / 1000.0),
            row_cost: Duration::from_secs_f64(row_cost.max(0.0) / 1000.0),
            capacity: u32::try_from(capacity).unwrap_or(1).max(1),
        },
    );
    let endpoint = crate::sqlite_ml::Endpoint::new(database, settings);
    let mut handle = conn.lock_handle().await?;
    crate::sqlite_ml::register(handle.as_raw_handle(), &endpoint).map_err(|rc| {
        sqlx::Error::Protocol(format!(
            "cannot register the ML stand-in's functions (SQLite result code {rc})"
        ))
    })
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

    /// Run a prepared (cached per connection) query and return how many rows it gave.
    ///
    /// # Errors
    /// Whatever the database or the connection returns.
    pub async fn fetch(&mut self, sql: &str, args: &[Arg]) -> Result<usize, sqlx::Error> {
        Ok(match self {
            Session::MySql(c) => bind_all!(sqlx::query(sql), args).fetch_all(c).await?.len(),
            Session::Postgres(c) => bind_all!(sqlx::query(sql), args).fetch_all(c).await?.len(),
            Session::Sqlite(c) => bind_all!(sqlx::query(sql), args).fetch_all(c).await?.len(),
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
