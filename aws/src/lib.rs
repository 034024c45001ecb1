//! AWS around the database: what a worker needs to log in to Aurora without a static
//! password (IAM database tokens, Secrets Manager) and what the coordinator reads of the
//! server side while a run runs (CloudWatch metrics of Aurora and SageMaker).
//!
//! Every call goes through the official SDK's standard credential chain (environment,
//! shared profile and SSO, web identity for Kubernetes service accounts, the EC2 or ECS
//! role) and honours `AWS_ENDPOINT_URL`, which is how the tests point it at a local
//! moto server. No value this crate returns prints a credential, token or secret:
//! those travel as [`Sensitive`].

pub mod cloudwatch;
mod config;
pub mod secret;
pub mod token;

pub use config::{load, AwsConfig};

use std::fmt;

/// A credential, token or secret: its `Debug` and `Display` print `***`, so no log line,
/// error or report can show it by accident. [`Sensitive::expose`] is the one way in.
#[derive(Clone, PartialEq, Eq)]
pub struct Sensitive(String);

impl Sensitive {
    pub fn new(value: impl Into<String>) -> Self {
        Sensitive(value.into())
    }

    /// The value itself, for the one place that must send it (a connection's login).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Sensitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Why an AWS step failed. Messages name what to fix and never carry a credential.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error("no AWS region: set `region` in the plan (or AWS_REGION on this host)")]
    NoRegion,
    #[error("no AWS credentials on this host ({0}); fleetload looks in the environment (AWS_ACCESS_KEY_ID), the shared profile (~/.aws, AWS_PROFILE), web identity (a Kubernetes service account with IRSA) and the EC2/ECS role")]
    NoCredentials(String),
    #[error("cannot sign an IAM database token: {0}")]
    Signing(String),
    #[error("Secrets Manager: cannot read secret {id:?}: {message}")]
    Secret { id: String, message: String },
    #[error("Secrets Manager: secret {id:?} {problem}")]
    SecretShape { id: String, problem: String },
    #[error("CloudWatch: {0}")]
    CloudWatch(String),
    #[error("FLEETLOAD_AWS_SIGNING_TIME={value:?} is not a time: write RFC 3339, e.g. 2026-12-05T10:00:00Z")]
    SigningTime { value: String },
}

/// The message of an SDK error with its causes, which the SDK's `Display` leaves out
/// ("dispatch failure" alone tells a user nothing).
pub(crate) fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    let mut depth = 0;
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
        depth += 1;
        if depth > 8 {
            break;
        }
    }
    text
}
