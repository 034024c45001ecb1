//! fleetload's worker: opens dedicated database sessions, offers load on the fleet's
//! schedule and streams one HDR snapshot per interval to the coordinator.
//!
//! # Layout
//! - [`client`]: the control stream (join, assignment, start, snapshots, done).
//! - [`load`]: the open- and closed-loop session loops.
//! - [`pacer`]: releases open-loop operations at their intended start.
//! - [`recorder`]: per-interval stats that sessions record into.
//! - [`timer`]: a sub-millisecond timer inside the runtime (Linux timerfd).
//! - [`session`]: one connection of one of sqlx's drivers, and error classification.
//! - [`workload`]: the built-in scenarios as SQL per dialect.
//! - [`ml`]: the in-database stand-in for the Aurora ML churn endpoint.
//! - [`prepare`]: schema creation and fast data loading.

pub mod client;
pub mod error;
pub mod load;
pub mod ml;
pub mod pacer;
pub mod prepare;
pub mod recorder;
pub mod session;
pub mod timer;
pub mod workload;

pub use client::{run, WorkerConfig, WorkerSummary};
pub use error::WorkerError;
pub use prepare::{prepare, PrepareSpec, Prepared};
