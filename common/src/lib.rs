//! Types both sides of fleetload share.
//!
//! # Layout
//! - [`plan`]: the TOML plan, its CLI overrides and the validated [`plan::Plan`].
//! - [`target`]: database target URLs (driver, redaction, password from the environment).
//! - [`scenario`]: the built-in scenarios and their operations.
//! - [`scenario_ref`]: a run's workload, a built-in scenario or a scenario file.
//! - [`scenario_file`]: users' own workloads (TOML scenario files), checked on reading.
//! - [`generator`]: the parameter generators of scenario files and their per-session state.
//! - [`sqltext`]: `:name` parameters in scenario SQL and each driver's placeholders.
//! - [`value`]: values bound to statements, and their SQL literals for the text protocol.
//! - [`profile`]: load shapes (piecewise-linear rate or sessions over time).
//! - [`schedule`]: open-loop intended start times, rate changes rebase the schedule.
//! - [`split`]: key-space shards and the cluster rate split across workers.
//! - [`intervals`]: which interval a moment of the run belongs to (one rule for the worker).
//! - [`histogram`]: the one set of histogram bounds and the V2+deflate codec.
//! - [`stats`]: per-operation counts and histograms, and their exact merge.
//! - [`outcome`]: error classes.
//! - [`outdir`]: output directories (spools, reports) created and checked before a run.
//! - [`churn`]: the telco-churn row generator and the deterministic churn model.
//! - [`threshold`]: SLO thresholds such as `predict_one.p99 < 50ms`.
//! - [`wire`]: conversions between the generated proto types and these domain types.
//! - [`rng`]: a small, stable, seedable generator (the same seed gives the same data on
//!   every version and platform, which `rand`'s generators do not promise).

pub mod churn;
mod error;
pub mod events;
pub mod generator;
pub mod histogram;
pub mod intervals;
pub mod outcome;
pub mod outdir;
pub mod plan;
pub mod profile;
pub mod rng;
pub mod scenario;
pub mod scenario_file;
pub mod scenario_ref;
pub mod schedule;
pub mod split;
pub mod spool;
pub mod sqltext;
pub mod stats;
pub mod target;
pub mod threshold;
pub mod tpcc;
pub mod value;
pub mod wire;

pub use error::{PlanError, WireError};
