//! Database passwords from AWS Secrets Manager.
//!
//! A secret is either RDS's JSON (`{"username": …, "password": …, …}`, what RDS-managed
//! and rotation-Lambda secrets hold) or a plain string, the password itself. A worker
//! reads it once, keeps it only in memory, and reads it again when the database refuses
//! a login: the secret was rotated. Sessions refused at the same moment share one read.

use crate::{AwsConfig, AwsError, Sensitive};
use tokio::sync::{Mutex, OnceCell};

/// What a secret gives a login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbSecret {
    /// The user, when the secret names one (it then wins over the URL's).
    pub username: Option<String>,
    pub password: Sensitive,
}

/// Read a secret's text as RDS's JSON or a plain password.
///
/// # Errors
/// JSON without a string `password`, or an empty secret.
pub fn parse(id: &str, text: &str) -> Result<DbSecret, AwsError> {
    let shape = |problem: &str| AwsError::SecretShape {
        id: id.to_string(),
        problem: problem.to_string(),
    };
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|_| shape("looks like JSON but does not parse; store RDS's form {\"username\": …, \"password\": …} or the password alone"))?;
        let password = value
            .get("password")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| shape("is JSON without a string \"password\" key; store RDS's form {\"username\": …, \"password\": …} or the password alone"))?;
        let username = value
            .get("username")
            .and_then(serde_json::Value::as_str)
            .filter(|u| !u.is_empty())
            .map(str::to_string);
        return Ok(DbSecret {
            username,
            password: Sensitive::new(password),
        });
    }
    if text.is_empty() {
        return Err(shape("is empty"));
    }
    Ok(DbSecret {
        username: None,
        password: Sensitive::new(text),
    })
}

/// One secret, read on demand and kept for this process. `generation` counts reads, so
/// a session refused with what it got from read `n` asks for a newer one and the
/// sessions refused alongside it get that same newer read.
#[derive(Debug)]
pub struct SecretSource {
    id: String,
    region: Option<String>,
    config: OnceCell<AwsConfig>,
    cache: Mutex<Option<(u64, DbSecret)>>,
}

impl SecretSource {
    /// A source for secret `id` (a name or an ARN); nothing is read until asked.
    pub fn new(id: String, region: Option<String>) -> Self {
        SecretSource {
            id,
            region,
            config: OnceCell::new(),
            cache: Mutex::new(None),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The secret as last read (reading it the first time), with its generation.
    ///
    /// # Errors
    /// It cannot be read or has no password.
    pub async fn current(&self) -> Result<(u64, DbSecret), AwsError> {
        let mut cache = self.cache.lock().await;
        if let Some(hit) = cache.as_ref() {
            return Ok(hit.clone());
        }
        let secret = self.read().await?;
        *cache = Some((1, secret.clone()));
        Ok((1, secret))
    }

    /// A read newer than generation `seen`: another session's, or a new one.
    ///
    /// # Errors
    /// It cannot be read or has no password.
    pub async fn refresh(&self, seen: u64) -> Result<(u64, DbSecret), AwsError> {
        let mut cache = self.cache.lock().await;
        if let Some(hit) = cache.as_ref().filter(|(g, _)| *g > seen) {
            return Ok(hit.clone());
        }
        let secret = self.read().await?;
        let generation = cache.as_ref().map_or(0, |(g, _)| *g) + 1;
        *cache = Some((generation, secret.clone()));
        tracing::info!(secret = %self.id, generation, "read the database secret again after a refused login");
        Ok((generation, secret))
    }

    async fn read(&self) -> Result<DbSecret, AwsError> {
        let config = self
            .config
            .get_or_try_init(|| crate::load(self.region.as_deref()))
            .await?;
        let client = aws_sdk_secretsmanager::Client::new(&config.sdk);
        let fail = |message: String| AwsError::Secret {
            id: self.id.clone(),
            message,
        };
        let out = client
            .get_secret_value()
            .secret_id(&self.id)
            .send()
            .await
            .map_err(|e| fail(crate::describe(&e)))?;
        match (out.secret_string(), out.secret_binary()) {
            (Some(text), _) => parse(&self.id, text),
            (None, Some(_)) => Err(AwsError::SecretShape {
                id: self.id.clone(),
                problem: "holds binary data; store the password as a string, or RDS's JSON".into(),
            }),
            (None, None) => Err(fail("the secret has no value".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rds_json_and_plain_passwords() {
        let s = parse(
            "x",
            r#"{"engine":"postgres","username":"app","password":"p\"w","host":"h"}"#,
        )
        .unwrap();
        assert_eq!(s.username.as_deref(), Some("app"));
        assert_eq!(s.password.expose(), "p\"w");
        let s = parse("x", "  plain secret ").unwrap();
        assert_eq!((s.username, s.password.expose()), (None, "  plain secret "));
        for (text, why) in [
            (r#"{"username":"app"}"#, "without a string \"password\""),
            ("{not json", "does not parse"),
            ("", "is empty"),
        ] {
            let e = parse("db/creds", text).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains("db/creds"), "{e}");
        }
        // An error never shows the secret's text.
        let e = parse("x", r#"{"username":"app","password":7,"note":"hunter2"}"#)
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }
}
