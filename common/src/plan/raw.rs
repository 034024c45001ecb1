//! The plan as written: a TOML file or CLI flags, every key optional, unknown keys
//! refused. Validation into a [`super::Plan`] is `validate`'s job.

use crate::PlanError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// A plan as written: every key optional. Field names are the TOML keys and, with `-`
/// for `_`, the CLI flags.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawPlan {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scenario: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mix: Option<BTreeMap<String, u32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ml: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ml_endpoint: Option<String>,
    /// The stand-in endpoint's fixed cost per request (churn, `ml = "standin"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ml_delay: Option<String>,
    /// The stand-in's cost per row scored in a request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ml_row_cost: Option<String>,
    /// Requests the stand-in serves at once, across all sessions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ml_capacity: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arrival: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub think_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_backlog: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub op_timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_rate: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_worker_loss: Option<String>,
    /// Load shape: `[[stage]]` tables (`ramp`/`to`, `hold`, `step`/`hold`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<Vec<RawStage>>,
    /// Whole-run thresholds, e.g. `["predict_one.p99 < 50ms", "error_rate < 0.5%"]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thresholds: Option<Vec<String>>,
    /// Stop the run when a threshold fails (after `abort_grace`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abort_on_fail: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abort_grace: Option<String>,
}

/// One stage as written: exactly one of `ramp` (with `to`), `hold`, or `step` (with an
/// optional `hold` after it).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawStage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ramp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thresholds: Option<Vec<String>>,
}

impl RawStage {
    /// Parse the CLI form: `ramp:60s:5000`, `hold:2m`, `step:8000` or `step:8000:60s`.
    ///
    /// # Errors
    /// The text is not one of those forms.
    pub fn from_flag(text: &str) -> Result<RawStage, String> {
        let parts: Vec<&str> = text.split(':').map(str::trim).collect();
        let num = |s: &str| {
            s.parse::<f64>()
                .map_err(|_| format!("--stage {text:?}: {s:?} is not a number"))
        };
        Ok(match parts.as_slice() {
            ["ramp", d, to] => RawStage { ramp: Some((*d).into()), to: Some(num(to)?), ..RawStage::default() },
            ["hold", d] => RawStage { hold: Some((*d).into()), ..RawStage::default() },
            ["step", to] => RawStage { step: Some(num(to)?), ..RawStage::default() },
            ["step", to, d] => RawStage { step: Some(num(to)?), hold: Some((*d).into()), ..RawStage::default() },
            _ => return Err(format!("--stage {text:?}: write ramp:DURATION:TO, hold:DURATION, step:TO or step:TO:DURATION")),
        })
    }
}

macro_rules! overlay_fields {
    ($base:ident, $top:ident, $($f:ident),*) => { $( if $top.$f.is_some() { $base.$f = $top.$f; } )* };
}

impl RawPlan {
    /// Read and parse a TOML plan file.
    ///
    /// # Errors
    /// The file cannot be read, is not TOML, or has an unknown key or a value of the
    /// wrong type (the message names the key and line).
    pub fn from_file(path: &Path) -> Result<Self, PlanError> {
        let text = std::fs::read_to_string(path).map_err(|source| PlanError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut raw = Self::from_toml(&text).map_err(|message| PlanError::Syntax {
            path: path.to_path_buf(),
            message,
        })?;
        // A scenario file named in a plan file is found beside the plan, wherever the
        // command runs from.
        if let Some(s) = &raw.scenario {
            let file = Path::new(s);
            if is_scenario_file(s) && file.is_relative() {
                if let Some(dir) = path.parent() {
                    raw.scenario = Some(dir.join(file).display().to_string());
                }
            }
        }
        Ok(raw)
    }

    /// Parse TOML text.
    ///
    /// # Errors
    /// The text is not a valid plan; the message says where and why.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())
    }

    /// Lay `top` (e.g. CLI flags) over `self`: every key `top` sets wins.
    pub fn overlay(mut self, top: RawPlan) -> RawPlan {
        overlay_fields!(
            self,
            top,
            target,
            password_env,
            scenario,
            rows,
            mix,
            batch,
            ml,
            ml_endpoint,
            ml_delay,
            ml_row_cost,
            ml_capacity,
            sessions,
            mode,
            rate,
            arrival,
            think_time,
            max_backlog,
            duration,
            warmup,
            interval,
            seed,
            op_timeout,
            connect_timeout,
            connect_rate,
            lease,
            on_worker_loss,
            stage,
            thresholds,
            abort_on_fail,
            abort_grace
        );
        self
    }
}

/// Whether a `scenario` value names a file rather than a built-in scenario.
pub fn is_scenario_file(value: &str) -> bool {
    value.ends_with(".toml")
}
