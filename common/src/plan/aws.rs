//! The plan's AWS keys: how workers log in (`auth`, `password_secret`, `region`) and
//! which CloudWatch series the report carries (`[cloudwatch]`).

use crate::target::Login;
use crate::PlanError;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How workers log in, as a plan names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AuthKind {
    /// A password: from `password_env`, `password_secret`, or none.
    Password,
    /// IAM database authentication: a fresh token for every connection.
    Iam,
}

/// The `[cloudwatch]` table as written (or `--cloudwatch key=value,…`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawCloudWatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub db_cluster: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub db_instances: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sagemaker_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<String>,
}

const CLOUDWATCH_FLAG: &str = "write --cloudwatch db_cluster=NAME,db_instance=NAME,sagemaker_endpoint=NAME,variant=NAME,period=60s,region=REGION (any of them; db_instance repeatable)";

impl RawCloudWatch {
    /// Parse the CLI form `key=value,key=value`.
    ///
    /// # Errors
    /// A part is not `key=value` or names an unknown key.
    pub fn from_flag(text: &str) -> Result<RawCloudWatch, String> {
        let mut raw = RawCloudWatch::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part.split_once('=').ok_or_else(|| {
                format!("--cloudwatch {text:?}: {part:?} is not key=value; {CLOUDWATCH_FLAG}")
            })?;
            let value = value.trim().to_string();
            match key.trim() {
                "region" => raw.region = Some(value),
                "db_cluster" => raw.db_cluster = Some(value),
                "db_instance" | "db_instances" => raw.db_instances.push(value),
                "sagemaker_endpoint" => raw.sagemaker_endpoint = Some(value),
                "variant" => raw.variant = Some(value),
                "period" => raw.period = Some(value),
                other => {
                    return Err(format!(
                        "--cloudwatch {text:?}: unknown key {other:?}; {CLOUDWATCH_FLAG}"
                    ))
                }
            }
        }
        Ok(raw)
    }
}

/// What the coordinator reads from CloudWatch for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudWatchPlan {
    /// `None`: the plan's `region`, else the coordinator's AWS configuration.
    pub region: Option<String>,
    pub db_cluster: Option<String>,
    pub db_instances: Vec<String>,
    pub sagemaker_endpoint: Option<String>,
    pub variant: String,
    pub period: Duration,
}

impl CloudWatchPlan {
    pub fn to_raw(&self) -> RawCloudWatch {
        RawCloudWatch {
            region: self.region.clone(),
            db_cluster: self.db_cluster.clone(),
            db_instances: self.db_instances.clone(),
            sagemaker_endpoint: self.sagemaker_endpoint.clone(),
            variant: Some(self.variant.clone()),
            period: Some(humantime::format_duration(self.period).to_string()),
        }
    }
}

/// CloudWatch's name rules for the identifiers a plan gives (RDS identifiers and
/// SageMaker names: letters, digits, `-`; we also let `_` and `.` through).
fn identifier(key: &'static str, value: &str) -> Result<String, PlanError> {
    if value.is_empty()
        || value.len() > 255
        || !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(PlanError::invalid(
            key,
            format!("{value:?}"),
            "a cluster, instance or endpoint identifier (letters, digits, -)",
        ));
    }
    Ok(value.to_string())
}

fn region(key: &'static str, value: &str) -> Result<String, PlanError> {
    crate::target::check_region(key, value)?;
    Ok(value.to_string())
}

/// Validate `[cloudwatch]`.
///
/// # Errors
/// Nothing to read, a bad identifier, or a period CloudWatch has no data at.
pub(super) fn cloudwatch(
    raw: Option<&RawCloudWatch>,
    plan_region: Option<&str>,
) -> Result<Option<CloudWatchPlan>, PlanError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    if raw.db_cluster.is_none() && raw.db_instances.is_empty() && raw.sagemaker_endpoint.is_none() {
        return Err(PlanError::invalid(
            "cloudwatch",
            "a table without a source",
            "name db_cluster, db_instances and/or sagemaker_endpoint to read",
        ));
    }
    if raw.variant.is_some() && raw.sagemaker_endpoint.is_none() {
        return Err(PlanError::invalid(
            "cloudwatch.variant",
            raw.variant.clone().unwrap_or_default(),
            "only used with sagemaker_endpoint",
        ));
    }
    let period = match raw.period.as_deref() {
        None => Duration::from_secs(60),
        Some(text) => humantime::parse_duration(text.trim()).map_err(|e| {
            PlanError::invalid(
                "cloudwatch.period",
                format!("{text:?}"),
                format!("a duration like \"60s\" ({e})"),
            )
        })?,
    };
    let secs = period.as_secs();
    if period.subsec_nanos() != 0
        || !(matches!(secs, 1 | 5 | 10 | 30) || (secs >= 60 && secs % 60 == 0 && secs <= 86_400))
    {
        return Err(PlanError::invalid(
            "cloudwatch.period",
            humantime::format_duration(period),
            "1s, 5s, 10s or 30s (high-resolution metrics only), or a whole number of minutes; Aurora and SageMaker publish every 60s",
        ));
    }
    let mut instances = Vec::new();
    for i in &raw.db_instances {
        let i = identifier("cloudwatch.db_instances", i)?;
        if !instances.contains(&i) {
            instances.push(i);
        }
    }
    Ok(Some(CloudWatchPlan {
        region: match raw.region.as_deref().or(plan_region) {
            Some(r) => Some(region("cloudwatch.region", r)?),
            None => None,
        },
        db_cluster: raw
            .db_cluster
            .as_deref()
            .map(|c| identifier("cloudwatch.db_cluster", c))
            .transpose()?,
        db_instances: instances,
        sagemaker_endpoint: raw
            .sagemaker_endpoint
            .as_deref()
            .map(|e| identifier("cloudwatch.sagemaker_endpoint", e))
            .transpose()?,
        variant: match raw.variant.as_deref() {
            Some(v) => identifier("cloudwatch.variant", v)?,
            None => "AllTraffic".to_string(),
        },
        period,
    }))
}

/// How workers log in, from `auth`, `password_env`, `password_secret` and `region`.
///
/// # Errors
/// Two sources of one password, IAM with a password, or a region nothing uses.
pub(super) fn login(
    auth: Option<AuthKind>,
    password_env: Option<&str>,
    password_secret: Option<&str>,
    plan_region: Option<&str>,
    cloudwatch: bool,
) -> Result<Login, PlanError> {
    let region = plan_region.map(|r| region("region", r)).transpose()?;
    let login = match (auth.unwrap_or(AuthKind::Password), password_env, password_secret) {
        (AuthKind::Iam, Some(_), _) | (AuthKind::Iam, _, Some(_)) => {
            return Err(PlanError::invalid(
                "auth",
                "\"iam\"",
                "IAM authentication mints a token for every connection instead of a password: drop password_env and password_secret",
            ))
        }
        (AuthKind::Iam, None, None) => Login::Iam { region },
        (AuthKind::Password, Some(_), Some(_)) => {
            return Err(PlanError::invalid(
                "password_secret",
                password_secret.unwrap_or_default(),
                "the plan also names password_env: keep one source of the password",
            ))
        }
        (AuthKind::Password, None, Some(id)) => Login::Secret { id: id.to_string(), region },
        (AuthKind::Password, Some(env), None) => {
            if plan_region.is_some() && !cloudwatch {
                return Err(unused_region());
            }
            Login::PasswordEnv(env.to_string())
        }
        (AuthKind::Password, None, None) => {
            if plan_region.is_some() && !cloudwatch {
                return Err(unused_region());
            }
            Login::None
        }
    };
    Ok(login)
}

fn unused_region() -> PlanError {
    PlanError::invalid(
        "region",
        "set",
        "the region is for auth = \"iam\", password_secret and [cloudwatch], and the plan uses none of them",
    )
}
