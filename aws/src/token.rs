//! IAM database authentication tokens for Aurora and RDS.
//!
//! A token is a SigV4-presigned `GET https://HOST:PORT/?Action=connect&DBUser=USER` for
//! the `rds-db` service, without its scheme, used as the password. It is checked only
//! when a connection logs in and lives 15 minutes, so a worker mints one for every
//! physical connection it opens and never keeps one: a session reconnecting an hour into
//! a run (`max_connection_age`, a failover) gets a fresh one. The bytes match botocore's
//! `generate_db_auth_token` (tested side by side), so what works with the AWS CLI works
//! here.

use crate::{AwsConfig, AwsError, Sensitive};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use std::time::{Duration, SystemTime};

/// How long a token is valid: RDS's fixed 15 minutes.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(900);

/// Sign as if the clock read this (RFC 3339): for comparing tokens with another
/// implementation, and for tests that set a user's password to a known token.
pub const SIGNING_TIME_ENV: &str = "FLEETLOAD_AWS_SIGNING_TIME";

/// What a token is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest<'a> {
    pub host: &'a str,
    pub port: u16,
    pub user: &'a str,
    pub region: &'a str,
}

/// The token for `request`, signed with `credentials` at `time`.
///
/// # Errors
/// The host or user cannot form a URL, or signing failed.
pub fn auth_token(
    credentials: &Credentials,
    request: &TokenRequest<'_>,
    time: SystemTime,
) -> Result<Sensitive, AwsError> {
    let fail = |e: &dyn std::fmt::Display| AwsError::Signing(e.to_string());
    let identity: Identity = credentials.clone().into();
    let mut settings = SigningSettings::default();
    settings.expires_in = Some(TOKEN_LIFETIME);
    settings.signature_location = SignatureLocation::QueryParams;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(request.region)
        .name("rds-db")
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| fail(&e))?;
    let host = if request.host.contains(':') {
        format!("[{}]", request.host)
    } else {
        request.host.to_string()
    };
    let operation = format!("Action=connect&DBUser={}", percent_encode(request.user));
    let url = format!("https://{host}:{}/?{operation}", request.port);
    let signable = SignableRequest::new("GET", &url, std::iter::empty(), SignableBody::Bytes(&[]))
        .map_err(|e| fail(&e))?;
    let (instructions, _) = sign(signable, &params.into())
        .map_err(|e| fail(&e))?
        .into_parts();
    let signed: Vec<(&str, &str)> = instructions
        .params()
        .iter()
        .map(|(k, v)| (*k, v.as_ref()))
        .collect();
    // botocore's order: the operation's parameters, then the authentication ones in the
    // order it writes them, then the signature.
    let mut token = format!("{host}:{}/?{operation}", request.port);
    for name in [
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Security-Token",
        "X-Amz-Signature",
    ] {
        if let Some((_, value)) = signed.iter().find(|(k, _)| *k == name) {
            token.push('&');
            token.push_str(name);
            token.push('=');
            token.push_str(&percent_encode(value));
        }
    }
    Ok(Sensitive::new(token))
}

/// SigV4's URI encoding: everything but `A-Z a-z 0-9 - _ . ~` as `%XX`.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The signing time: now, unless [`SIGNING_TIME_ENV`] fixes it.
///
/// # Errors
/// The variable is set but is not an RFC 3339 time.
pub fn signing_time() -> Result<SystemTime, AwsError> {
    match std::env::var(SIGNING_TIME_ENV) {
        Err(_) => Ok(SystemTime::now()),
        Ok(value) => chrono::DateTime::parse_from_rfc3339(value.trim())
            .map(SystemTime::from)
            .map_err(|_| AwsError::SigningTime { value }),
    }
}

/// Mints tokens for one process from the credential chain; cheap to share.
#[derive(Debug)]
pub struct Minter {
    region: Option<String>,
    config: tokio::sync::OnceCell<AwsConfig>,
}

impl Minter {
    /// A minter for `region` (`None`: the chain's region). Nothing is loaded until the
    /// first token.
    pub fn new(region: Option<String>) -> Self {
        Minter {
            region,
            config: tokio::sync::OnceCell::new(),
        }
    }

    /// A fresh token for one connection.
    ///
    /// # Errors
    /// No region or credentials, or signing failed.
    pub async fn mint(&self, host: &str, port: u16, user: &str) -> Result<Sensitive, AwsError> {
        let config = self
            .config
            .get_or_try_init(|| crate::load(self.region.as_deref()))
            .await?;
        let region = config.region().ok_or(AwsError::NoRegion)?;
        let credentials = config.credentials().await?;
        auth_token(
            &credentials,
            &TokenRequest {
                host,
                port,
                user,
                region,
            },
            signing_time()?,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_a_presigned_connect_url_without_its_scheme() {
        let creds = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
            None,
            "test",
        );
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_930_000);
        let request = TokenRequest {
            host: "db.cluster-x.us-east-1.rds.amazonaws.com",
            port: 5432,
            user: "app user",
            region: "us-east-1",
        };
        let token = auth_token(&creds, &request, time).unwrap();
        let t = token.expose();
        assert!(t.starts_with("db.cluster-x.us-east-1.rds.amazonaws.com:5432/?Action=connect&DBUser=app%20user&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20251205%2Fus-east-1%2Frds-db%2Faws4_request&X-Amz-Date=20251205T102000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature="), "{t}");
        assert_eq!(format!("{token:?} {token}"), "*** ***");
        // The same inputs give the same token; another second, another one.
        assert_eq!(auth_token(&creds, &request, time).unwrap(), token);
        assert_ne!(
            auth_token(&creds, &request, time + Duration::from_secs(1)).unwrap(),
            token
        );
    }
}
