//! The plan: what to run, against what, how hard and for how long.
//!
//! A TOML file parses into [`RawPlan`] (every key optional, unknown keys refused); CLI
//! flags produce another `RawPlan` that [`RawPlan::overlay`] lays over the file; then
//! [`Plan::try_from`] validates everything at once, so an invalid plan cannot exist past
//! parsing. Every error names the key, the bad value and what is allowed.

use crate::profile::Profile;
use crate::scenario::{scenario_names, OpName, Scenario};
use crate::scenario_file::ScenarioFile;
use crate::scenario_ref::ScenarioRef;
use crate::target::Target;
use crate::threshold::Threshold;
use crate::PlanError;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

mod aws;
pub mod bounds;
mod raw;
mod validate;

pub use aws::{AuthKind, CloudWatchPlan, RawCloudWatch};
pub use raw::{is_scenario_file, RawPlan, RawStage};

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

/// How load is offered, as a plan names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A cluster rate, whatever the database does.
    Open,
    /// Sessions back to back.
    Closed,
}

/// Where the churn model runs, as a plan names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum MlKind {
    /// fleetload's in-database endpoint.
    Standin,
    /// A real Aurora ML function.
    Aurora,
}

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
    /// The writer (and, without a reader, everything).
    pub target: Target,
    /// The reader endpoint and its sessions per worker, when the plan names one.
    pub reader: Option<Reader>,
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
    /// Reconnect a session after this long (with jitter); `None`: keep connections.
    pub max_connection_age: Option<Duration>,
    /// What the coordinator does when a worker is lost mid-run.
    pub on_worker_loss: OnWorkerLoss,
    /// How often the coordinator writes report.partial.json (`None`: never).
    pub checkpoint: Option<Duration>,
    /// How long after the planned end a worker that lost its coordinator keeps trying
    /// to rejoin (`None`: it stops and spools after a lease).
    pub rejoin: Option<Duration>,
    /// Open loop: the most a worker sends while catching up on a stall of its own, as a
    /// multiple of its rate (`None`: burst).
    pub catch_up: Option<f64>,
    /// The load shape (empty: the constant `rate`, or every session, all run long).
    pub stages: Vec<Stage>,
    /// Whole-run thresholds.
    pub thresholds: Vec<Threshold>,
    /// TPC-C in closed loop: the specification's keying and think times per session.
    pub tpcc_wait: bool,
    /// CloudWatch series the report carries (`None`: none).
    pub cloudwatch: Option<CloudWatchPlan>,
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

/// A cluster's reader endpoint: read operations run on its own sessions.
#[derive(Debug, Clone, PartialEq)]
pub struct Reader {
    pub target: Target,
    pub sessions: u32,
}

impl Plan {
    /// The first id the worker in slot `i` inserts: above the prepared rows, and then
    /// every `stride`-th id (one per slot), so no two workers take the same id.
    pub fn insert_id_base(&self, i: usize) -> u64 {
        self.rows + 1 + i as u64
    }

    /// Sessions per worker over both endpoints.
    pub fn all_sessions(&self) -> u32 {
        self.sessions
            .saturating_add(self.reader.as_ref().map_or(0, |r| r.sessions))
    }

    /// Each operation of the mix's role, in mix order.
    pub fn roles(&self) -> Vec<crate::scenario::Role> {
        self.mix
            .iter()
            .map(|(op, _)| self.scenario.role_of(op))
            .collect()
    }
}

/// Most stages a plan may have.
pub const MAX_STAGES: usize = 1000;

/// What a worker does with the arrivals it missed while it stalled itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum CatchUp {
    /// At most `catch_up_factor` times the worker's rate until it is back on schedule.
    Pace,
    /// All at once.
    Burst,
}

/// What the coordinator does when a worker is lost mid-run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
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
pub const DEFAULT_CHECKPOINT: Duration = Duration::from_secs(10);
pub const DEFAULT_CATCH_UP_FACTOR: f64 = 2.0;
pub const MAX_SESSIONS: u32 = 20_000;
pub const MAX_RATE: f64 = 10_000_000.0;

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

    /// A short fingerprint of the effective plan (FNV-1a over its JSON): a worker's
    /// spool and the coordinator's checkpoint both name it, so `report recover` never
    /// mixes the data of two different plans.
    pub fn hash(&self) -> String {
        let text = serde_json::to_vec(&self.effective()).unwrap_or_default();
        let h = text.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        });
        format!("{h:016x}")
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
                Mode::Open,
                Some(rate),
                Some(arrival),
                None,
                Some(fmt(max_backlog)),
            ),
            LoadModel::Closed { think_time } => {
                (Mode::Closed, None, None, Some(fmt(think_time)), None)
            }
        };
        RawPlan {
            target: Some(self.target.url().to_string()),
            reader: self.reader.as_ref().map(|r| r.target.url().to_string()),
            reader_sessions: self.reader.as_ref().map(|r| r.sessions),
            password_env: self.target.password_env().map(str::to_string),
            auth: matches!(self.target.login(), crate::target::Login::Iam { .. })
                .then_some(AuthKind::Iam),
            password_secret: match self.target.login() {
                crate::target::Login::Secret { id, .. } => Some(id.clone()),
                _ => None,
            },
            region: self.target.login().region().map(str::to_string),
            // Folded into the target's and reader's URLs above.
            tls_ca: None,
            cloudwatch: self.cloudwatch.as_ref().map(CloudWatchPlan::to_raw),
            scenario: Some(match &self.scenario {
                ScenarioRef::Builtin(s) => s.name().to_string(),
                ScenarioRef::File(f) => f.origin.clone(),
            }),
            rows: Some(self.rows),
            warehouses: None,
            tpcc_wait: self.tpcc_wait.then_some(true),
            mix: Some(
                self.mix
                    .iter()
                    .map(|(op, w)| (op.name().to_string(), *w))
                    .collect(),
            ),
            batch: Some(self.batch),
            ml: Some(match self.ml {
                MlMode::StandIn => MlKind::Standin,
                MlMode::Aurora { .. } => MlKind::Aurora,
            }),
            ml_endpoint: match &self.ml {
                MlMode::StandIn => None,
                MlMode::Aurora { endpoint } => Some(endpoint.clone()),
            },
            ml_delay: self.standin.delay.map(fmt),
            ml_row_cost: self.standin.row_cost.map(fmt),
            ml_capacity: self.standin.capacity,
            sessions: Some(self.sessions),
            mode: Some(mode),
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
            max_connection_age: self.max_connection_age.map(fmt),
            on_worker_loss: Some(self.on_worker_loss),
            checkpoint: Some(self.checkpoint.map_or_else(|| "0s".to_string(), fmt)),
            rejoin: Some(self.rejoin.map_or_else(|| "off".to_string(), fmt)),
            catch_up: matches!(self.load, LoadModel::Open { .. }).then_some(
                if self.catch_up.is_some() {
                    CatchUp::Pace
                } else {
                    CatchUp::Burst
                },
            ),
            catch_up_factor: self.catch_up,
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
