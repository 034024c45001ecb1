//! Opening a session: the target, the login (a password, an IAM token minted for this
//! connection, a Secrets Manager secret read again after a refused login) and the
//! driver's options.

use crate::session::{describe, Session};
use fleetload_aws::secret::SecretSource;
use fleetload_aws::token::Minter;
use fleetload_aws::Sensitive;
use fleetload_common::target::Login;
use fleetload_common::target::{Driver, Target};
use sqlx::mysql::{MySqlConnectOptions, MySqlDatabaseError};
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous};
use sqlx::ConnectOptions;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// The port a target names, for hints.
fn port_of(target: &Target) -> Option<u16> {
    target.host_port().map(|(_, p)| p)
}

/// A MySQL server speaks first; a PostgreSQL server waits for the client. A MySQL
/// client that hears nothing may be talking to PostgreSQL.
fn silence_hint(target: &Target) -> String {
    match (target.driver(), port_of(target)) {
        (Driver::MySql, Some(5432)) => "; port 5432 is PostgreSQL's, which waits for the client to speak first as a MySQL server never does: for PostgreSQL write postgres://".into(),
        (Driver::MySql, _) => "; a server that accepts the connection but sends no greeting is not MySQL (PostgreSQL waits for the client to speak first): is the port or the scheme wrong?".into(),
        _ => String::new(),
    }
}

/// A connection error, naming the protocol that answered when it was not the URL's.
fn describe_connect(e: &sqlx::Error, target: &Target) -> String {
    let text = describe(e);
    let at = target
        .host_port()
        .map_or_else(String::new, |(h, p)| format!(" on {h}:{p}"));
    match target.driver() {
        // PostgreSQL answers the TLS request with 'S' or 'N'; a MySQL or MariaDB server
        // sends its greeting packet instead (its first byte is the packet's length).
        Driver::Postgres if text.contains("unexpected response from SSLRequest") => {
            let byte = text
                .split("SSLRequest: ")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .unwrap_or("?");
            let mysql = if port_of(target) == Some(3306) {
                "port 3306 is MySQL's: for MySQL or MariaDB write mysql://"
            } else {
                "a MySQL or MariaDB server answers this way: is the port or the scheme wrong?"
            };
            format!("the server{at} does not speak PostgreSQL: it answered the opening TLS request with byte {byte} where PostgreSQL answers 'S' or 'N'; {mysql}")
        }
        Driver::Postgres if matches!(e, sqlx::Error::Protocol(_)) => format!(
            "the server{at} does not speak PostgreSQL's protocol ({text}); {}",
            if port_of(target) == Some(3306) {
                "port 3306 is MySQL's: for MySQL or MariaDB write mysql://"
            } else {
                "is the port or the scheme wrong? (MySQL, MariaDB: mysql://)"
            }
        ),
        Driver::MySql if matches!(e, sqlx::Error::Protocol(_)) => format!(
            "the server{at} does not speak MySQL's protocol ({text}); is the port or the scheme wrong? (PostgreSQL: postgres://)"
        ),
        _ => text,
    }
}

/// Why a session could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot connect to {target} within {timeout:?}: the server did not answer in time; check the host, port and firewall{hint}")]
    Timeout {
        target: String,
        timeout: Duration,
        /// What else a silent server may mean for this driver.
        hint: String,
    },
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
                hint: silence_hint(&self.target),
            }),
        }
    }

    /// Log in; with a secret, once more with a newer read of it when the server refuses
    /// the login (the secret was rotated since this process read it).
    async fn log_in(&self) -> Result<Session, ConnectError> {
        let fail = |e: sqlx::Error| ConnectError::Failed {
            target: self.target.to_string(),
            message: describe_connect(&e, &self.target),
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
