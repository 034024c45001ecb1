//! The plan: what to run, against what, how hard and for how long.
//!
//! A TOML file parses into [`RawPlan`] (every key optional, unknown keys refused); CLI
//! flags produce another `RawPlan` that [`RawPlan::overlay`] lays over the file; then
//! [`Plan::try_from`] validates everything at once, so an invalid plan cannot exist past
//! parsing. Every error names the key, the bad value and what is allowed.

use crate::profile::Profile;
use crate::scenario::{scenario_names, OpName, Scenario, ScenarioRef};
use crate::scenario_file::ScenarioFile;
use crate::target::Target;
use crate::threshold::Threshold;
use crate::PlanError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

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

/// How load is offered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LoadModel {
    /// Operations arrive at a cluster rate whatever the database does.
    Open {
        rate: f64,
        arrival: Arrival,
        max_backlog: Duration,
    },
    /// Every session runs operations back to back, with an optional pause.
    Closed { think_time: Duration },
}

pub use crate::schedule::Arrival;

/// Where the churn scenario's model runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MlMode {
    /// fleetload's in-database stand-in (MariaDB, PostgreSQL).
    StandIn,
    /// A real Aurora ML function backed by this SageMaker endpoint.
    Aurora { endpoint: String },
}

/// A validated plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub target: Target,
    pub scenario: ScenarioRef,
    pub mix: Vec<(OpName, u32)>,
    pub rows: u64,
    /// Whether the plan named `rows`; if not, a run on a built-in scenario takes the key
    /// space from the table (`fleetload prepare` made it).
    pub rows_given: bool,
    /// Rows per batched operation (predict_batch, score_new).
    pub batch: u32,
    /// Where the churn model runs.
    pub ml: MlMode,
    /// The stand-in's settings this plan names; the coordinator applies them before
    /// the start, and records those in force once it has.
    pub standin: StandIn,
    /// Sessions per worker.
    pub sessions: u32,
    pub load: LoadModel,
    pub duration: Duration,
    pub warmup: Duration,
    pub interval: Duration,
    pub seed: u64,
    pub op_timeout: Duration,
    pub connect_timeout: Duration,
    pub connect_rate: u32,
    /// Liveness lease between coordinator and workers.
    pub lease: Duration,
    /// What the coordinator does when a worker is lost mid-run.
    pub on_worker_loss: OnWorkerLoss,
    /// The load shape (empty: the constant `rate`, or every session, all run long).
    pub stages: Vec<Stage>,
    /// Whole-run thresholds.
    pub thresholds: Vec<Threshold>,
    /// Stop the run once a threshold fails, after this grace (from the measured start,
    /// or the stage's start for a stage's thresholds).
    pub abort_on_fail: Option<Duration>,
}

/// Settings of the churn scenario's ML stand-in that a plan names (`None`: as the
/// database has them, which `prepare` set).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StandIn {
    /// Fixed cost of each request (SageMaker's OverheadLatency).
    pub delay: Option<Duration>,
    /// Cost per row scored in a request.
    pub row_cost: Option<Duration>,
    /// Requests served at once across all sessions (model instances).
    pub capacity: Option<u32>,
}

impl StandIn {
    pub fn is_empty(&self) -> bool {
        self.delay.is_none() && self.row_cost.is_none() && self.capacity.is_none()
    }
}

/// Most requests the stand-in may serve at once.
pub const MAX_ML_CAPACITY: u32 = 10_000;

/// What a stage does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StageKind {
    Ramp,
    Hold,
    Step,
}

/// One validated stage, in cluster terms: operations per second (open loop) or active
/// sessions across the fleet (closed loop).
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub kind: StageKind,
    pub start: Duration,
    pub duration: Duration,
    /// The value at the stage's start (after a step) and at its end.
    pub from: f64,
    pub to: f64,
    pub thresholds: Vec<Threshold>,
}

impl Stage {
    pub fn describe(&self, unit: &str) -> String {
        let d = humantime::format_duration(self.duration);
        match self.kind {
            StageKind::Ramp => format!("ramp {} → {} {unit} over {d}", self.from, self.to),
            StageKind::Hold => format!("hold {} {unit} for {d}", self.to),
            StageKind::Step => format!("step to {} {unit}, hold {d}", self.to),
        }
    }
}

/// Most stages a plan may have.
pub const MAX_STAGES: usize = 1000;

/// What the coordinator does when a worker is lost mid-run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnWorkerLoss {
    /// Give its keys and rate share to the survivors: the cluster keeps the planned rate.
    Rebalance,
    /// Go on with less.
    Continue,
    /// Stop the run.
    Abort,
}

impl OnWorkerLoss {
    pub fn name(self) -> &'static str {
        match self {
            OnWorkerLoss::Rebalance => "rebalance",
            OnWorkerLoss::Continue => "continue",
            OnWorkerLoss::Abort => "abort",
        }
    }
}

pub const DEFAULT_SESSIONS: u32 = 8;
pub const DEFAULT_BATCH: u32 = 10;
pub const MAX_BATCH: u32 = 10_000;
pub const DEFAULT_DURATION: Duration = Duration::from_secs(30);
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
pub const DEFAULT_SEED: u64 = 42;
pub const DEFAULT_MAX_BACKLOG: Duration = Duration::from_secs(5);
pub const DEFAULT_OP_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_CONNECT_RATE: u32 = 200;
pub const DEFAULT_LEASE: Duration = Duration::from_secs(5);
pub const MAX_SESSIONS: u32 = 20_000;
pub const MAX_RATE: f64 = 10_000_000.0;

fn duration(
    key: &'static str,
    raw: Option<&str>,
    default: Duration,
) -> Result<Duration, PlanError> {
    match raw {
        None => Ok(default),
        Some(s) => humantime::parse_duration(s.trim()).map_err(|e| {
            PlanError::invalid(
                key,
                format!("{s:?}"),
                format!("a duration like \"500ms\", \"30s\" or \"5m\" ({e})"),
            )
        }),
    }
}

fn within(
    key: &'static str,
    value: Duration,
    lo: Duration,
    hi: Duration,
) -> Result<Duration, PlanError> {
    if value < lo || value > hi {
        return Err(PlanError::invalid(
            key,
            humantime::format_duration(value),
            format!(
                "must be between {} and {}",
                humantime::format_duration(lo),
                humantime::format_duration(hi)
            ),
        ));
    }
    Ok(value)
}

impl TryFrom<RawPlan> for Plan {
    type Error = PlanError;

    fn try_from(raw: RawPlan) -> Result<Self, PlanError> {
        let target_url = raw.target.as_deref().ok_or(PlanError::Missing {
            key: "target",
            hint: "e.g. --target mysql://root@127.0.0.1:3306/test, postgres://postgres@127.0.0.1/test or sqlite://fleetload.db",
        })?;
        let target = Target::parse(target_url, raw.password_env.clone())?;

        let scenario_name = raw.scenario.as_deref().unwrap_or("point_select");
        let scenario = if is_scenario_file(scenario_name) {
            let file = ScenarioFile::from_file(Path::new(scenario_name))?;
            file.check_dialect(target.driver())?;
            ScenarioRef::File(std::sync::Arc::new(file))
        } else {
            ScenarioRef::Builtin(Scenario::from_name(scenario_name).ok_or_else(|| {
                PlanError::invalid(
                    "scenario",
                    format!("{scenario_name:?}"),
                    format!(
                        "one of: {}, or the path of a scenario file ending in .toml",
                        scenario_names()
                    ),
                )
            })?)
        };

        let mix = match &raw.mix {
            None => scenario.default_mix(),
            Some(m) => {
                let mut mix = Vec::new();
                let operations = scenario.operations();
                for (name, weight) in m {
                    let op = operations
                        .iter()
                        .find(|op| op.as_str() == name)
                        .cloned()
                        .ok_or_else(|| {
                            let names: Vec<_> = operations.iter().map(OpName::as_str).collect();
                            PlanError::invalid(
                                "mix",
                                format!("{name:?}"),
                                format!(
                                    "scenario {} has the operations: {}",
                                    scenario.name(),
                                    names.join(", ")
                                ),
                            )
                        })?;
                    if *weight > 0 {
                        mix.push((op, *weight));
                    }
                }
                if mix.is_empty() {
                    return Err(PlanError::invalid(
                        "mix",
                        format!("{m:?}"),
                        "at least one operation needs a weight above 0",
                    ));
                }
                mix
            }
        };

        let rows = raw.rows.unwrap_or_else(|| scenario.default_rows());
        if !(1..=10_000_000_000).contains(&rows) {
            return Err(PlanError::invalid(
                "rows",
                rows,
                "between 1 and 10000000000",
            ));
        }
        let batch = raw.batch.unwrap_or(DEFAULT_BATCH);
        if !(1..=MAX_BATCH).contains(&batch) {
            return Err(PlanError::invalid("batch", batch, format!("rows per batched model request, between 1 and {MAX_BATCH} (Aurora's MAX_BATCH_SIZE default is 10000)")));
        }
        let ml = match (raw.ml.as_deref().unwrap_or("standin"), &raw.ml_endpoint) {
            ("standin", None) => MlMode::StandIn,
            ("standin", Some(e)) => return Err(PlanError::invalid("ml_endpoint", format!("{e:?}"), "only used with ml = \"aurora\"")),
            ("aurora", _) if target.driver() == crate::target::Driver::Sqlite => {
                return Err(PlanError::invalid("ml", "\"aurora\"", "Aurora ML needs an Aurora MySQL or Aurora PostgreSQL target; SQLite has only the stand-in"))
            }
            ("aurora", Some(e)) if !e.is_empty() && e.len() <= 63 && e.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') => {
                MlMode::Aurora { endpoint: e.clone() }
            }
            ("aurora", Some(e)) => return Err(PlanError::invalid("ml_endpoint", format!("{e:?}"), "a SageMaker endpoint name: 1 to 63 letters, digits and hyphens")),
            ("aurora", None) => return Err(PlanError::Missing { key: "ml_endpoint", hint: "ml = \"aurora\" needs the SageMaker endpoint name, e.g. --ml-endpoint auroraml-churn-endpoint" }),
            (other, _) => return Err(PlanError::invalid("ml", format!("{other:?}"), "\"standin\" (fleetload's in-database endpoint) or \"aurora\" (a real Aurora ML function)")),
        };
        let standin = StandIn {
            delay: raw
                .ml_delay
                .as_deref()
                .map(|d| {
                    within(
                        "ml_delay",
                        duration("ml_delay", Some(d), Duration::ZERO)?,
                        Duration::ZERO,
                        Duration::from_secs(60),
                    )
                })
                .transpose()?,
            row_cost: raw
                .ml_row_cost
                .as_deref()
                .map(|d| {
                    within(
                        "ml_row_cost",
                        duration("ml_row_cost", Some(d), Duration::ZERO)?,
                        Duration::ZERO,
                        Duration::from_secs(10),
                    )
                })
                .transpose()?,
            capacity: match raw.ml_capacity {
                Some(c) if !(1..=MAX_ML_CAPACITY).contains(&c) => {
                    return Err(PlanError::invalid(
                        "ml_capacity",
                        c,
                        format!("requests served at once, between 1 and {MAX_ML_CAPACITY}"),
                    ))
                }
                c => c,
            },
        };
        if !standin.is_empty() {
            let churn = matches!(
                &scenario,
                ScenarioRef::Builtin(crate::scenario::Scenario::Churn)
            );
            let key = if raw.ml_delay.is_some() {
                "ml_delay"
            } else if raw.ml_row_cost.is_some() {
                "ml_row_cost"
            } else {
                "ml_capacity"
            };
            if !churn || !matches!(ml, MlMode::StandIn) {
                return Err(PlanError::invalid(key, "set", "the ML stand-in's settings apply to the churn scenario with ml = \"standin\"; leave them out here"));
            }
        }
        let sessions = raw.sessions.unwrap_or(DEFAULT_SESSIONS);
        if !(1..=MAX_SESSIONS).contains(&sessions) {
            return Err(PlanError::invalid(
                "sessions",
                sessions,
                format!("between 1 and {MAX_SESSIONS} sessions per worker"),
            ));
        }

        let mode =
            raw.mode
                .as_deref()
                .unwrap_or(if raw.rate.is_some() { "open" } else { "closed" });
        let staged = raw.stage.as_ref().is_some_and(|s| !s.is_empty());
        let load = match mode {
            "open" => {
                let rate = match (raw.rate, staged) {
                    (Some(r), _) => r,
                    // Stages without a starting rate start from 0.
                    (None, true) => 0.0,
                    (None, false) => {
                        return Err(PlanError::Missing {
                            key: "rate",
                            hint: "open-loop load needs a cluster rate in operations per second, e.g. --rate 2000 (or mode = \"closed\")",
                        })
                    }
                };
                if !rate.is_finite() || rate < 0.0 || (rate == 0.0 && !staged) || rate > MAX_RATE {
                    return Err(PlanError::invalid("rate", rate, format!("operations per second across the cluster, above 0 and at most {MAX_RATE}")));
                }
                if raw.think_time.is_some() {
                    return Err(PlanError::invalid(
                        "think_time",
                        raw.think_time.clone().unwrap_or_default(),
                        "only closed-loop load has a think time; drop it or set mode = \"closed\"",
                    ));
                }
                let max_backlog = within(
                    "max_backlog",
                    duration(
                        "max_backlog",
                        raw.max_backlog.as_deref(),
                        DEFAULT_MAX_BACKLOG,
                    )?,
                    Duration::from_millis(10),
                    Duration::from_secs(3600),
                )?;
                let arrival = match raw.arrival.as_deref().unwrap_or("uniform") {
                    "uniform" => Arrival::Uniform,
                    "poisson" => Arrival::Poisson,
                    other => {
                        return Err(PlanError::invalid(
                            "arrival",
                            format!("{other:?}"),
                            "\"uniform\" (evenly spaced) or \"poisson\" (exponential gaps, like sysbench --rate and pgbench -R)",
                        ))
                    }
                };
                LoadModel::Open {
                    rate,
                    arrival,
                    max_backlog,
                }
            }
            "closed" => {
                if let Some(rate) = raw.rate {
                    return Err(PlanError::invalid(
                        "rate",
                        rate,
                        "closed-loop load has no rate; drop it or set mode = \"open\"",
                    ));
                }
                let think_time = within(
                    "think_time",
                    duration("think_time", raw.think_time.as_deref(), Duration::ZERO)?,
                    Duration::ZERO,
                    Duration::from_secs(3600),
                )?;
                LoadModel::Closed { think_time }
            }
            other => {
                return Err(PlanError::invalid(
                    "mode",
                    format!("{other:?}"),
                    "\"open\" (a cluster rate) or \"closed\" (sessions back to back)",
                ))
            }
        };

        let interval = within(
            "interval",
            duration("interval", raw.interval.as_deref(), DEFAULT_INTERVAL)?,
            Duration::from_millis(100),
            Duration::from_secs(600),
        )?;
        let operation_names: Vec<String> = mix.iter().map(|(o, _)| o.to_string()).collect();
        let op_refs: Vec<&str> = operation_names.iter().map(String::as_str).collect();
        let thresholds_of =
            |key: &'static str, list: &Option<Vec<String>>| -> Result<Vec<Threshold>, PlanError> {
                let list = list.as_deref().unwrap_or_default();
                if list.len() > 100 {
                    return Err(PlanError::invalid(
                        key,
                        format!("{} thresholds", list.len()),
                        "at most 100",
                    ));
                }
                list.iter()
                    .map(|t| {
                        Threshold::parse(t, &op_refs)
                            .map_err(|e| PlanError::invalid(key, format!("{t:?}"), e))
                    })
                    .collect()
            };
        let thresholds = thresholds_of("thresholds", &raw.thresholds)?;
        let (start_value, unit_max) = match load {
            LoadModel::Open { rate, .. } => (rate, MAX_RATE),
            LoadModel::Closed { .. } => (0.0, f64::from(MAX_SESSIONS) * 10_000.0),
        };
        let mut stages = Vec::new();
        let mut at = Duration::ZERO;
        let mut current = start_value;
        let raw_stages = raw.stage.as_deref().unwrap_or_default();
        if raw_stages.len() > MAX_STAGES {
            return Err(PlanError::invalid(
                "stage",
                format!("{} stages", raw_stages.len()),
                format!("at most {MAX_STAGES}"),
            ));
        }
        for (i, st) in raw_stages.iter().enumerate() {
            let n = i + 1;
            let value = |v: f64| -> Result<f64, PlanError> {
                if v.is_finite() && (0.0..=unit_max).contains(&v) {
                    Ok(v)
                } else {
                    Err(PlanError::invalid(
                        "stage",
                        format!("stage {n}: {v}"),
                        format!("a value between 0 and {unit_max}"),
                    ))
                }
            };
            let dur = |d: &Option<String>| -> Result<Duration, PlanError> {
                match d {
                    None => Ok(Duration::ZERO),
                    Some(text) => humantime::parse_duration(text.trim()).map_err(|e| {
                        PlanError::invalid(
                            "stage",
                            format!("stage {n}: {text:?}"),
                            format!("a duration like \"30s\" or \"5m\" ({e})"),
                        )
                    }),
                }
            };
            let (kind, from, to, length) = match (st.ramp.as_ref(), st.step, st.hold.as_ref()) {
                (Some(_), None, None) => {
                    let to = value(st.to.ok_or_else(|| PlanError::invalid("stage", format!("stage {n}: ramp without `to`"), "a ramp needs the value it ramps to, e.g. { ramp = \"60s\", to = 5000 }"))?)?;
                    (StageKind::Ramp, current, to, dur(&st.ramp)?)
                }
                (None, Some(step), hold) => {
                    if st.to.is_some() {
                        return Err(PlanError::invalid("stage", format!("stage {n}"), "a step names its value in `step`; `to` belongs to ramps"));
                    }
                    let v = value(step)?;
                    (StageKind::Step, v, v, dur(&hold.cloned())?)
                }
                (None, None, Some(hold)) => {
                    if st.to.is_some() {
                        return Err(PlanError::invalid("stage", format!("stage {n}"), "a hold keeps the current value; use a step or a ramp to change it"));
                    }
                    (StageKind::Hold, current, current, dur(&Some(hold.clone()))?)
                }
                _ => {
                    return Err(PlanError::invalid(
                        "stage",
                        format!("stage {n}"),
                        "give exactly one of { ramp = \"60s\", to = 5000 }, { hold = \"2m\" } or { step = 8000, hold = \"1m\" }",
                    ))
                }
            };
            stages.push(Stage {
                kind,
                start: at,
                duration: length,
                from,
                to,
                thresholds: thresholds_of("stage", &st.thresholds)?,
            });
            at += length;
            current = to;
        }
        let run_time = if stages.is_empty() {
            within(
                "duration",
                duration("duration", raw.duration.as_deref(), DEFAULT_DURATION)?,
                interval,
                Duration::from_secs(7 * 86_400),
            )?
        } else {
            if let Some(d) = raw.duration.as_deref() {
                let given = duration("duration", Some(d), DEFAULT_DURATION)?;
                if given != at {
                    return Err(PlanError::invalid("duration", d, format!("the stages last {}; drop `duration` (it is the stages' sum) or make them add up", humantime::format_duration(at))));
                }
            }
            if matches!(load, LoadModel::Open { .. })
                && stages.iter().all(|s| s.to == 0.0)
                && start_value == 0.0
            {
                return Err(PlanError::invalid(
                    "stage",
                    "every rate 0",
                    "at least one stage must offer load",
                ));
            }
            within("stage", at, interval, Duration::from_secs(7 * 86_400))?
        };
        let warmup = duration("warmup", raw.warmup.as_deref(), Duration::ZERO)?;
        if warmup >= run_time {
            return Err(PlanError::invalid(
                "warmup",
                humantime::format_duration(warmup),
                format!(
                    "must be shorter than the duration ({})",
                    humantime::format_duration(run_time)
                ),
            ));
        }
        if warmup.as_nanos() % interval.as_nanos() != 0 {
            return Err(PlanError::invalid("warmup", humantime::format_duration(warmup), format!("must be a whole number of intervals ({} each), so intervals are either warm-up or measured", humantime::format_duration(interval))));
        }
        let op_timeout = within(
            "op_timeout",
            duration("op_timeout", raw.op_timeout.as_deref(), DEFAULT_OP_TIMEOUT)?,
            Duration::from_millis(1),
            Duration::from_secs(3600),
        )?;
        let connect_timeout = within(
            "connect_timeout",
            duration(
                "connect_timeout",
                raw.connect_timeout.as_deref(),
                DEFAULT_CONNECT_TIMEOUT,
            )?,
            Duration::from_millis(100),
            Duration::from_secs(600),
        )?;
        let lease = within(
            "lease",
            duration("lease", raw.lease.as_deref(), DEFAULT_LEASE)?,
            Duration::from_millis(500),
            Duration::from_secs(600),
        )?;
        let on_worker_loss = match raw.on_worker_loss.as_deref().unwrap_or("rebalance") {
            "rebalance" => OnWorkerLoss::Rebalance,
            "continue" => OnWorkerLoss::Continue,
            "abort" => OnWorkerLoss::Abort,
            other => return Err(PlanError::invalid("on_worker_loss", format!("{other:?}"), "\"rebalance\" (survivors take over its keys and rate), \"continue\" (go on with less) or \"abort\" (stop the run)")),
        };
        let connect_rate = raw.connect_rate.unwrap_or(DEFAULT_CONNECT_RATE);
        if connect_rate == 0 {
            return Err(PlanError::invalid(
                "connect_rate",
                connect_rate,
                "sessions opened per second per worker, at least 1",
            ));
        }

        Ok(Plan {
            target,
            scenario,
            mix,
            rows,
            rows_given: raw.rows.is_some(),
            batch,
            ml,
            standin,
            sessions,
            load,
            duration: run_time,
            warmup,
            interval,
            seed: raw.seed.unwrap_or(DEFAULT_SEED),
            op_timeout,
            connect_timeout,
            connect_rate,
            lease,
            on_worker_loss,
            stages,
            thresholds,
            abort_on_fail: match raw.abort_on_fail {
                Some(true) => Some(within(
                    "abort_grace",
                    duration(
                        "abort_grace",
                        raw.abort_grace.as_deref(),
                        Duration::from_secs(10),
                    )?,
                    Duration::ZERO,
                    Duration::from_secs(86_400),
                )?),
                _ if raw.abort_grace.is_some() => {
                    return Err(PlanError::invalid(
                        "abort_grace",
                        raw.abort_grace.clone().unwrap_or_default(),
                        "only used with abort_on_fail = true",
                    ))
                }
                _ => None,
            },
        })
    }
}

impl Plan {
    /// The cluster's load over time: operations per second (open loop) or active
    /// sessions across the fleet (closed loop; `None` without stages: every session).
    pub fn cluster_profile(&self) -> Option<Profile> {
        let start = match self.load {
            LoadModel::Open { rate, .. } => rate,
            LoadModel::Closed { .. } if self.stages.is_empty() => return None,
            LoadModel::Closed { .. } => 0.0,
        };
        let mut points = vec![(0.0, start)];
        for s in &self.stages {
            let (t0, t1) = (s.start.as_secs_f64(), (s.start + s.duration).as_secs_f64());
            match s.kind {
                StageKind::Step => {
                    points.push((t0, s.to));
                    points.push((t1, s.to));
                }
                StageKind::Ramp | StageKind::Hold => points.push((t1, s.to)),
            }
        }
        points.dedup();
        Profile::from_points(points).ok()
    }

    /// The effective plan as a raw plan, every key filled in. It holds no secret (URLs
    /// never carry passwords), so it can go into a report as it is.
    pub fn effective(&self) -> RawPlan {
        let fmt = |d: Duration| humantime::format_duration(d).to_string();
        let (mode, rate, arrival, think_time, max_backlog) = match self.load {
            LoadModel::Open {
                rate,
                arrival,
                max_backlog,
            } => (
                "open",
                Some(rate),
                Some(arrival.name().to_string()),
                None,
                Some(fmt(max_backlog)),
            ),
            LoadModel::Closed { think_time } => ("closed", None, None, Some(fmt(think_time)), None),
        };
        RawPlan {
            target: Some(self.target.url().to_string()),
            password_env: self.target.password_env().map(str::to_string),
            scenario: Some(match &self.scenario {
                ScenarioRef::Builtin(s) => s.name().to_string(),
                ScenarioRef::File(f) => f.origin.clone(),
            }),
            rows: Some(self.rows),
            mix: Some(
                self.mix
                    .iter()
                    .map(|(op, w)| (op.name().to_string(), *w))
                    .collect(),
            ),
            batch: Some(self.batch),
            ml: Some(
                match self.ml {
                    MlMode::StandIn => "standin",
                    MlMode::Aurora { .. } => "aurora",
                }
                .to_string(),
            ),
            ml_endpoint: match &self.ml {
                MlMode::StandIn => None,
                MlMode::Aurora { endpoint } => Some(endpoint.clone()),
            },
            ml_delay: self.standin.delay.map(fmt),
            ml_row_cost: self.standin.row_cost.map(fmt),
            ml_capacity: self.standin.capacity,
            sessions: Some(self.sessions),
            mode: Some(mode.to_string()),
            rate,
            arrival,
            think_time,
            max_backlog,
            duration: Some(fmt(self.duration)),
            warmup: Some(fmt(self.warmup)),
            interval: Some(fmt(self.interval)),
            seed: Some(self.seed),
            op_timeout: Some(fmt(self.op_timeout)),
            connect_timeout: Some(fmt(self.connect_timeout)),
            connect_rate: Some(self.connect_rate),
            lease: Some(fmt(self.lease)),
            on_worker_loss: Some(self.on_worker_loss.name().to_string()),
            stage: (!self.stages.is_empty()).then(|| {
                self.stages
                    .iter()
                    .map(|s| {
                        let d = Some(humantime::format_duration(s.duration).to_string());
                        let thresholds = (!s.thresholds.is_empty())
                            .then(|| s.thresholds.iter().map(|t| t.text.clone()).collect());
                        match s.kind {
                            StageKind::Ramp => RawStage {
                                ramp: d,
                                to: Some(s.to),
                                thresholds,
                                ..RawStage::default()
                            },
                            StageKind::Hold => RawStage {
                                hold: d,
                                thresholds,
                                ..RawStage::default()
                            },
                            StageKind::Step => RawStage {
                                step: Some(s.to),
                                hold: d,
                                thresholds,
                                ..RawStage::default()
                            },
                        }
                    })
                    .collect()
            }),
            thresholds: (!self.thresholds.is_empty())
                .then(|| self.thresholds.iter().map(|t| t.text.clone()).collect()),
            abort_on_fail: self.abort_on_fail.map(|_| true),
            abort_grace: self
                .abort_on_fail
                .map(|g| humantime::format_duration(g).to_string()),
        }
    }

    /// Number of snapshot intervals in the run (the last may be shorter).
    pub fn interval_count(&self) -> u64 {
        interval_count(self.duration, self.interval)
    }
}

/// Number of intervals of length `interval` needed to cover `duration`.
pub fn interval_count(duration: Duration, interval: Duration) -> u64 {
    let d = duration.as_nanos();
    let i = interval.as_nanos().max(1);
    u64::try_from(d.div_ceil(i)).unwrap_or(u64::MAX).max(1)
}

/// Parse a CLI mix such as `point_select=3,read_customer=1`.
///
/// # Errors
/// An entry is not `NAME=WEIGHT` with a whole-number weight.
pub fn parse_mix(s: &str) -> Result<BTreeMap<String, u32>, String> {
    let mut mix = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, weight) = part.split_once('=').unwrap_or((part, "1"));
        let weight: u32 = weight.trim().parse().map_err(|_| {
            format!("mix entry {part:?}: the weight must be a whole number, e.g. point_select=3")
        })?;
        mix.insert(name.trim().to_string(), weight);
    }
    Ok(mix)
}

#[cfg(test)]
mod tests;
