//! fleetload's database side, shared by the worker (load), the coordinator (counters)
//! and the CLI (prepare).
//!
//! # Layout
//! - [`session`]: one connection of one of sqlx's drivers, and error classification.
//! - [`connect`]: opening one: the target's options and its login (password, IAM token,
//!   Secrets Manager secret).
//! - [`workloads`]: what sessions run, one trait and a folder per kind: the built-in
//!   scenarios as SQL per dialect (`builtin`), TPC-C (`tpcc`), scenario files (`file`).
//! - [`ml`]: the in-database stand-in for the Aurora ML churn endpoint.
//! - [`prepare`](mod@prepare): schema creation and fast data loading.
//! - [`verify`]: checks a churn table against the model and a run report.
//! - [`counters`]: the database's own counters (global status, pg_stat_*, stand-in).

pub mod connect;
pub mod counters;
pub mod ml;
pub mod prepare;
pub mod session;
mod sqlite_ml;
pub mod verify;
pub mod workloads;

pub use prepare::{prepare, PrepareError, PrepareSpec, Prepared};
