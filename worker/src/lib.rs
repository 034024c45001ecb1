//! fleetload's worker: opens dedicated database sessions, offers load on the fleet's
//! schedule and streams one HDR snapshot per interval to the coordinator.
//!
//! # Layout
//! - `shell`: the worker's shell: the control stream (join, assignment, start,
//!   snapshots, done) around the pure `link`.
//! - [`config`]: who this worker is and how it dials, and its clock.
//! - `sessions`: the open- and closed-loop session loops and the work they run.
//! - `pacer`: releases open-loop operations at their intended start.
//! - [`security`]: TLS and token for the control channel; which targets it may load.
//! - `recorder`: per-interval stats that sessions record into.
//! - `events`: what sessions and the stall watcher (`stall`) saw happen, for the
//!   next snapshot.
//! - `timer`: a sub-millisecond timer inside the runtime (Linux timerfd).

pub mod config;
mod dispatch;
mod error;
mod events;
mod launch;
mod link;
mod pacer;
mod recorder;
pub mod security;
mod sessions;
mod shell;
mod stall;
mod stream;
mod timer;

pub use config::WorkerConfig;
pub use error::WorkerError;
pub use shell::{run, WorkerSummary};
