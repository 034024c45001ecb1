//! Errors of this crate: a bad plan (named key, bad value, what is allowed) and a bad
//! wire message (named field and why).

use std::path::PathBuf;

/// A plan that cannot run. Every variant names the key and says what would be accepted.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("cannot read plan file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("plan file {path} is not valid: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("plan key `{key}` = {value}: {allowed}")]
    Invalid {
        key: &'static str,
        value: String,
        allowed: String,
    },
    /// The file's error is part of this message, not a cause below it: printed as a
    /// chain it would read twice.
    #[error("plan key `scenario`: {0}")]
    Scenario(crate::scenario_file::ScenarioFileError),
    #[error("plan key `{key}` is required: {hint}")]
    Missing {
        key: &'static str,
        hint: &'static str,
    },
}

impl From<crate::scenario_file::ScenarioFileError> for PlanError {
    fn from(e: crate::scenario_file::ScenarioFileError) -> Self {
        PlanError::Scenario(e)
    }
}

impl PlanError {
    pub(crate) fn invalid(
        key: &'static str,
        value: impl ToString,
        allowed: impl Into<String>,
    ) -> Self {
        PlanError::Invalid {
            key,
            value: value.to_string(),
            allowed: allowed.into(),
        }
    }
}

/// A wire message that does not describe a valid domain value.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("message field `{field}` is missing")]
    Missing { field: &'static str },
    #[error("message field `{field}` is invalid: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("histogram in `{field}` is invalid: {source}")]
    Histogram {
        field: &'static str,
        source: crate::histogram::HistogramError,
    },
}

impl WireError {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        WireError::Invalid {
            field,
            reason: reason.into(),
        }
    }
}
