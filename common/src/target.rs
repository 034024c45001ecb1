//! Database targets. A target URL never carries a password: the password lives in an
//! environment variable that each worker reads itself, so it is never printed, written
//! to a report or sent over the control channel.

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

/// A validated database target: driver, URL without password, and where the password is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    driver: Driver,
    url: String,
    password_env: Option<String>,
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
        if let Some(env) = &password_env {
            if env.is_empty() || !env.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(PlanError::invalid(
                    "password_env",
                    env,
                    "the name of an environment variable (letters, digits, _)",
                ));
            }
        }
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
        Ok(Target {
            driver,
            url: raw.to_string(),
            password_env,
        })
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
        self.password_env.as_deref()
    }

    /// The password from this process's environment, if the target names a variable.
    ///
    /// # Errors
    /// The named variable is not set (or not Unicode).
    pub fn password(&self) -> Result<Option<String>, String> {
        match &self.password_env {
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
