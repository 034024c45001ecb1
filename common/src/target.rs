//! Database targets. A target URL never carries a password: a worker logs in with one
//! from an environment variable it reads itself, an IAM token it mints, or a Secrets
//! Manager secret it reads ([`Login`]), so none is ever printed, written to a report or
//! sent over the control channel.

use crate::PlanError;
use serde::Serialize;
use std::fmt;

/// Which driver a target needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    MySql,
    Postgres,
    Sqlite,
}

impl Driver {
    pub fn name(self) -> &'static str {
        match self {
            Driver::MySql => "mysql",
            Driver::Postgres => "postgres",
            Driver::Sqlite => "sqlite",
        }
    }
}

/// How a worker logs in: only where the credential comes from, never the credential.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Login {
    /// No password (trust or peer authentication, SQLite).
    #[default]
    None,
    /// The password is in this environment variable of each worker's host.
    PasswordEnv(String),
    /// IAM database authentication: a fresh token for every connection, from the AWS
    /// credential chain (`region`: the plan's, else the chain's). Needs TLS.
    Iam { region: Option<String> },
    /// The password (and maybe the user) is in this Secrets Manager secret.
    Secret { id: String, region: Option<String> },
}

impl Login {
    /// The AWS region the login names, if any.
    pub fn region(&self) -> Option<&str> {
        match self {
            Login::Iam { region } | Login::Secret { region, .. } => region.as_deref(),
            Login::None | Login::PasswordEnv(_) => None,
        }
    }
}

/// A validated database target: driver, URL without password, and how to log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    driver: Driver,
    url: String,
    login: Login,
}

const URL_FORMS: &str = "use mysql://USER@HOST:PORT/DB, postgres://USER@HOST:PORT/DB or sqlite://PATH (password in the environment variable named by password_env)";

impl Target {
    /// Parse and validate a target URL.
    ///
    /// # Errors
    /// An unknown scheme, a missing host or database, an in-memory SQLite database (which
    /// workers in other processes cannot share) or a password written into the URL.
    pub fn parse(raw: &str, password_env: Option<String>) -> Result<Self, PlanError> {
        let bad =
            |why: &str| PlanError::invalid("target", redact(raw), format!("{why}; {URL_FORMS}"));
        let (scheme, rest) = raw.split_once("://").ok_or_else(|| bad("not a URL"))?;
        let driver = match scheme {
            "mysql" | "mariadb" => Driver::MySql,
            "postgres" | "postgresql" => Driver::Postgres,
            "sqlite" => Driver::Sqlite,
            other => return Err(bad(&format!("unknown scheme `{other}`"))),
        };
        match driver {
            Driver::Sqlite => {
                let path = rest.split('?').next().unwrap_or_default();
                if path.is_empty() || rest.contains(":memory:") || rest.contains("mode=memory") {
                    return Err(bad("SQLite needs a file path that every worker can open (in-memory databases are private to one process)"));
                }
            }
            Driver::MySql | Driver::Postgres => {
                let parsed = url::Url::parse(raw).map_err(|e| bad(&e.to_string()))?;
                if parsed.password().is_some() {
                    return Err(bad("the URL contains a password; remove it and set password_env (the variable's value is read by each worker and never printed)"));
                }
                if parsed.host_str().is_none_or(str::is_empty) {
                    return Err(bad("the URL has no host"));
                }
                if parsed.path().trim_start_matches('/').is_empty() {
                    return Err(bad("the URL names no database"));
                }
            }
        }
        Target {
            driver,
            url: raw.to_string(),
            login: Login::None,
        }
        .with_login(match password_env {
            Some(env) => Login::PasswordEnv(env),
            None => Login::None,
        })
    }

    /// The same target with another way to log in, checked against it: a variable name
    /// that is one, IAM only with TLS to a server, a secret id Secrets Manager takes.
    ///
    /// # Errors
    /// The login does not fit the target; the message names the key to change.
    pub fn with_login(self, login: Login) -> Result<Self, PlanError> {
        match &login {
            Login::None => {}
            Login::PasswordEnv(env) => {
                if env.is_empty() || !env.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(PlanError::invalid(
                        "password_env",
                        env,
                        "the name of an environment variable (letters, digits, _)",
                    ));
                }
            }
            Login::Iam { .. } => {
                if self.driver == Driver::Sqlite {
                    return Err(PlanError::invalid(
                        "auth",
                        "\"iam\"",
                        "IAM authentication is for Aurora and RDS servers; an SQLite file has no login",
                    ));
                }
                if !self.requires_tls() {
                    let flag = match self.driver {
                        Driver::MySql => "?ssl-mode=REQUIRED (or VERIFY_IDENTITY)",
                        _ => "?sslmode=require (or verify-full)",
                    };
                    return Err(PlanError::invalid(
                        "auth",
                        "\"iam\"",
                        format!("IAM authentication sends its token as the password, so it needs TLS to the database: add {flag} to {}", self.url),
                    ));
                }
            }
            Login::Secret { id, .. } => {
                if self.driver == Driver::Sqlite {
                    return Err(PlanError::invalid(
                        "password_secret",
                        id,
                        "a Secrets Manager secret is a server's login; an SQLite file has none",
                    ));
                }
                if id.is_empty() || id.len() > 2048 || id.chars().any(char::is_whitespace) {
                    return Err(PlanError::invalid(
                        "password_secret",
                        id,
                        "a secret's name or ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME), without spaces",
                    ));
                }
            }
        }
        if let Some(region) = login.region() {
            check_region("region", region)?;
        }
        Ok(Target { login, ..self })
    }

    /// Whether the URL makes the driver refuse a connection without TLS.
    pub fn requires_tls(&self) -> bool {
        let Ok(u) = url::Url::parse(&self.url) else {
            return false;
        };
        u.query_pairs().any(|(k, v)| {
            matches!(k.as_ref(), "sslmode" | "ssl-mode")
                && matches!(
                    v.to_ascii_lowercase().replace('_', "-").as_str(),
                    "require" | "required" | "verify-ca" | "verify-full" | "verify-identity"
                )
        })
    }

    pub fn login(&self) -> &Login {
        &self.login
    }

    pub fn driver(&self) -> Driver {
        self.driver
    }

    /// The database file of an SQLite target.
    pub fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        (self.driver == Driver::Sqlite).then(|| {
            std::path::PathBuf::from(
                self.url
                    .trim_start_matches("sqlite://")
                    .split('?')
                    .next()
                    .unwrap_or_default(),
            )
        })
    }

    /// The URL; it never contains a password.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Host (lower case) and port of a server target, with the driver's default port.
    pub fn host_port(&self) -> Option<(String, u16)> {
        let default = match self.driver {
            Driver::MySql => 3306,
            Driver::Postgres => 5432,
            Driver::Sqlite => return None,
        };
        let u = url::Url::parse(&self.url).ok()?;
        let host = u
            .host_str()?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        Some((host, u.port().unwrap_or(default)))
    }

    pub fn password_env(&self) -> Option<&str> {
        match &self.login {
            Login::PasswordEnv(env) => Some(env),
            _ => None,
        }
    }

    /// The user the URL names (percent-decoded), if any.
    pub fn user(&self) -> Option<String> {
        let u = url::Url::parse(&self.url).ok()?;
        (!u.username().is_empty()).then(|| {
            url::form_urlencoded::parse(format!("u={}", u.username()).as_bytes())
                .next()
                .map_or_else(|| u.username().to_string(), |(_, v)| v.into_owned())
        })
    }

    /// The password from this process's environment, if the target names a variable.
    ///
    /// # Errors
    /// The named variable is not set (or not Unicode).
    pub fn password(&self) -> Result<Option<String>, String> {
        match self.password_env() {
            None => Ok(None),
            Some(name) => std::env::var(name).map(Some).map_err(|_| {
                format!("environment variable {name} (password_env) is not set on this host; export it before starting the worker")
            }),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

/// `url` verifying its server against the CA bundle `ca` (the plan's `tls_ca`): the
/// driver's CA parameter added (`ssl-ca` for MySQL, `sslrootcert` for PostgreSQL) and,
/// when the URL names no TLS mode, the mode that checks the certificate and the host
/// name (`VERIFY_IDENTITY`, `verify-full`). One key for every engine, so a plan can
/// name the RDS bundle once.
///
/// # Errors
/// SQLite (no TLS), a URL naming another CA file, or a mode that would not verify.
pub fn with_tls_ca(url: &str, ca: &str, key: &'static str) -> Result<String, PlanError> {
    let bad = |why: String| PlanError::invalid("tls_ca", format!("{ca:?}"), why);
    if ca.trim().is_empty() {
        return Err(bad(
            "the path of a PEM CA bundle, e.g. /etc/ssl/rds/global-bundle.pem".into(),
        ));
    }
    let (ca_param, mode_param, verify_modes, strict): (_, _, &[&str], _) =
        match url.split_once("://").map(|(s, _)| s) {
            Some("mysql" | "mariadb") => (
                "ssl-ca",
                "ssl-mode",
                &["verify_ca", "verify_identity"],
                "VERIFY_IDENTITY",
            ),
            Some("postgres" | "postgresql") => (
                "sslrootcert",
                "sslmode",
                &["verify-ca", "verify-full"],
                "verify-full",
            ),
            _ => {
                return Err(bad(format!(
                    "{key} {}: only MySQL and PostgreSQL targets use TLS; drop tls_ca",
                    redact(url)
                )))
            }
        };
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let params: Vec<(&str, &str)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    let mut out = url.to_string();
    let mut sep = match (url.contains('?'), query.is_empty()) {
        (false, _) => "?",
        (true, true) => "",
        (true, false) => "&",
    };
    match params.iter().find(|(k, _)| *k == ca_param) {
        Some((_, v)) if *v == ca => {}
        Some((_, v)) => {
            return Err(bad(format!(
                "{key} already names {ca_param}={v}; keep one CA: drop tls_ca or {ca_param} from the URL"
            )))
        }
        None => {
            out.push_str(&format!("{sep}{ca_param}={ca}"));
            sep = "&";
        }
    }
    match params.iter().find(|(k, _)| *k == mode_param) {
        Some((_, v)) if verify_modes.contains(&v.to_ascii_lowercase().as_str()) => {}
        Some((_, v)) => {
            return Err(bad(format!(
                "{key} has {mode_param}={v}, which does not check the certificate against the CA; use {mode_param}={strict} or leave it out"
            )))
        }
        None => out.push_str(&format!("{sep}{mode_param}={strict}")),
    }
    Ok(out)
}

/// An AWS region's name as `key` gives it: lower-case letters, digits and `-`.
///
/// # Errors
/// Anything else, naming `key`.
pub fn check_region(key: &'static str, value: &str) -> Result<(), PlanError> {
    if value.is_empty()
        || value.len() > 32
        || !value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(PlanError::invalid(
            key,
            format!("{value:?}"),
            "an AWS region such as us-east-1",
        ));
    }
    Ok(())
}

/// Replace any password in a URL-like string with `***`, for messages about bad input.
pub fn redact(raw: &str) -> String {
    let Some((scheme, rest)) = raw.split_once("://") else {
        return raw.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rfind('@') {
        Some(at) => {
            let (userinfo, host) = authority.split_at(at);
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{scheme}://{user}:***{host}{tail}"),
                None => raw.to_string(),
            }
        }
        None => raw.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_three_drivers() {
        let t = Target::parse("mysql://root@127.0.0.1:3306/test", None).unwrap();
        assert_eq!(t.driver(), Driver::MySql);
        let t = Target::parse("postgres://postgres@127.0.0.1/test", Some("PGPASS".into())).unwrap();
        assert_eq!(t.driver(), Driver::Postgres);
        assert_eq!(t.password_env(), Some("PGPASS"));
        let t = Target::parse("sqlite:///tmp/x.db", None).unwrap();
        assert_eq!(t.driver(), Driver::Sqlite);
    }

    #[test]
    fn refuses_passwords_and_never_echoes_them() {
        let err = Target::parse("mysql://root:hunter2@db/test", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("password"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("root:***@db"), "{err}");
    }

    #[test]
    fn refuses_bad_urls_with_a_reason() {
        for (url, why) in [
            ("oracle://x/y", "unknown scheme"),
            ("localhost:3306", "not a URL"),
            ("mysql://root@127.0.0.1:3306", "no database"),
            ("sqlite://:memory:", "in-memory"),
        ] {
            let err = Target::parse(url, None).unwrap_err().to_string();
            assert!(err.contains(why), "{url}: {err}");
        }
        let err = Target::parse("mysql://a@b/c", Some("bad name".into()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("password_env"), "{err}");
    }
}

#[cfg(test)]
mod login_tests {
    use super::*;

    #[test]
    fn iam_needs_a_server_and_tls_and_says_which_flag() {
        let iam = || Login::Iam {
            region: Some("us-east-1".into()),
        };
        let pg = Target::parse("postgres://app@db.example/test", None).unwrap();
        let e = pg.with_login(iam()).unwrap_err().to_string();
        assert!(e.contains("sslmode=require") && e.contains("TLS"), "{e}");
        let my = Target::parse("mysql://app@db.example/test?ssl-mode=PREFERRED", None).unwrap();
        let e = my.with_login(iam()).unwrap_err().to_string();
        assert!(e.contains("ssl-mode=REQUIRED"), "{e}");
        for url in [
            "postgres://app@db/test?sslmode=require",
            "postgres://app@db/test?sslmode=verify-full&sslrootcert=/ca.pem",
            "mysql://app@db/test?ssl-mode=VERIFY_IDENTITY",
            "mysql://app@db/test?ssl-mode=required",
        ] {
            let t = Target::parse(url, None).unwrap().with_login(iam()).unwrap();
            assert_eq!(t.login().region(), Some("us-east-1"), "{url}");
        }
        let e = Target::parse("sqlite:///tmp/x.db", None)
            .unwrap()
            .with_login(iam())
            .unwrap_err()
            .to_string();
        assert!(e.contains("SQLite"), "{e}");
        let e = Target::parse("postgres://a@db/t?sslmode=require", None)
            .unwrap()
            .with_login(Login::Iam {
                region: Some("US East".into()),
            })
            .unwrap_err()
            .to_string();
        assert!(e.contains("region"), "{e}");
    }

    #[test]
    fn a_secret_is_named_not_given_and_the_user_is_read_from_the_url() {
        let t = Target::parse("postgres://app%40corp@db/test", None).unwrap();
        assert_eq!(t.user().as_deref(), Some("app@corp"));
        let e = t
            .clone()
            .with_login(Login::Secret {
                id: "has space".into(),
                region: None,
            })
            .unwrap_err()
            .to_string();
        assert!(e.contains("password_secret"), "{e}");
        let t = t
            .with_login(Login::Secret {
                id: "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf".into(),
                region: None,
            })
            .unwrap();
        assert_eq!(t.password_env(), None);
    }

    #[test]
    fn tls_ca_adds_the_drivers_ca_and_a_verifying_mode_once() {
        let ca = "/etc/ssl/rds/global-bundle.pem";
        assert_eq!(
            with_tls_ca("mysql://u@h:3306/db", ca, "target").unwrap(),
            format!("mysql://u@h:3306/db?ssl-ca={ca}&ssl-mode=VERIFY_IDENTITY")
        );
        let pg = with_tls_ca("postgres://u@h/db?application_name=x", ca, "target").unwrap();
        assert_eq!(
            pg,
            format!("postgres://u@h/db?application_name=x&sslrootcert={ca}&sslmode=verify-full")
        );
        // Idempotent: the effective plan's URL read back with the same key.
        assert_eq!(with_tls_ca(&pg, ca, "target").unwrap(), pg);
        assert!(Target::parse(&pg, None).is_ok());
        let e = with_tls_ca("postgres://u@h/db?sslmode=prefer", ca, "target")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("sslmode=prefer") && e.contains("verify-full"),
            "{e}"
        );
        let e = with_tls_ca("mysql://u@h/db?ssl-ca=/other.pem", ca, "reader")
            .unwrap_err()
            .to_string();
        assert!(e.contains("reader already names ssl-ca=/other.pem"), "{e}");
        let e = with_tls_ca("sqlite://x.db", ca, "target")
            .unwrap_err()
            .to_string();
        assert!(e.contains("only MySQL and PostgreSQL"), "{e}");
    }
}
