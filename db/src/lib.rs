//! fleetload's database side, shared by the worker (load), the coordinator (counters)
//! and the CLI (prepare).
//!
//! # Layout
//! - [`session`]: one connection of one of sqlx's drivers, and error classification.
//! - [`connect`]: opening one: the target's options and its login (password, IAM token,
//!   Secrets Manager secret).
//! - [`workload`]: the built-in scenarios as SQL per dialect.
//! - [`scenario_file`]: scenario files at run time: compiled statements, transactions with
//!   retry, the pre-run check, set-up, load and tear-down.
//! - [`ml`]: the in-database stand-in for the Aurora ML churn endpoint.
//! - [`prepare`](mod@prepare): schema creation and fast data loading.
//! - [`verify`]: checks a churn table against the model and a run report.
//! - [`counters`]: the database's own counters (global status, pg_stat_*, stand-in).
//! - [`tpcc`]: TPC-C's schema, population, transactions and consistency conditions.

pub mod connect;
pub mod counters;
pub mod ml;
pub mod prepare;
pub mod scenario_file;
pub mod session;
mod sqlite_ml;
pub mod tpcc;
pub mod verify;
pub mod workload;

pub use prepare::{prepare, PrepareError, PrepareSpec, Prepared};
