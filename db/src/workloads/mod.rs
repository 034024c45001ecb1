//! What sessions run: one trait, [`Workload`], and a folder per kind of workload.
//!
//! - `builtin`: the built-in scenarios (point_select, churn) as SQL per dialect.
//! - `tpcc`: TPC-C's five transactions, with its schema, loader and consistency
//!   checks.
//! - `file`: scenario files at run time (compiled statements, per-session generator
//!   state, transactions with deadlock retry).
//! - `script` (next): sysbench-style Lua scripts.
//!
//! A kind checks the database before a run ([`Workload::check`]), gives a new session
//! its own state ([`Workload::session`]) and runs one operation of a mix slot on a
//! database session ([`Workload::execute`]); the worker's session loop around it is the
//! same for every kind, so pacing, recording, outages, reconnects and reports come with
//! any kind. Preparing the data through the fleet is still `crate::prepare`'s, by kind.
//!
//! **Sessions that are not `Send`.** The built-in and file kinds' futures are `Send`,
//! and the worker spawns their sessions on its multi-threaded runtime: `execute` is
//! declared as returning `impl Future` without a `Send` bound, and the worker spawns
//! each kind's sessions with its concrete type, where the compiler knows the future is
//! `Send`. A kind whose session state cannot leave its thread (a Lua state) runs its
//! sessions on a `LocalSet` per runtime thread instead (tokio-util's `LocalPoolHandle`):
//! each session stays on the thread it started on, and a thread runs many sessions,
//! each awaiting the database in turn.

pub mod builtin;
pub mod file;
pub mod tpcc;

use crate::session::{classify, describe, CaptureError, Session};
use fleetload_common::generator::Streams;
use fleetload_common::outcome::ErrorClass;
use fleetload_common::rng::Rng;
use fleetload_common::split::Shard;
use std::future::Future;

/// A kind of workload, as sessions run it.
pub trait Workload {
    /// One session's own state (a scenario file's generator streams; nothing for a
    /// built-in scenario).
    type Session;

    /// A new session's state; `streams` places its random and sequence streams in the
    /// fleet.
    fn session(&self, streams: Streams) -> Self::Session;

    /// Before a run, on one session: prepare every statement of the mix without running
    /// it, and check that the data the plan reads is there, so a missing table or a
    /// broken statement fails the run before the start, saying what to do.
    fn check(
        &self,
        db: &mut Session,
        plan: &CheckFor<'_>,
    ) -> impl Future<Output = Result<(), CheckError>>;

    /// Run the operation of mix slot `slot` once, with the retries it makes itself.
    fn execute(
        &self,
        db: &mut Session,
        slot: usize,
        state: &mut Self::Session,
        keys: &mut Keys,
        rng: &mut Rng,
    ) -> impl Future<Output = Attempt>;
}

/// What a check before a run needs of the plan.
#[derive(Debug, Clone, Copy)]
pub struct CheckFor<'a> {
    /// The target as the user wrote it (its password redacted), for the command the
    /// error suggests.
    pub target: &'a str,
    /// The key space the plan reads.
    pub rows: u64,
}

/// Why a workload cannot run on this database yet.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// A built-in scenario's statement does not prepare, or its table is missing,
    /// empty or smaller than the plan's key space; the message says how to prepare it.
    #[error("{0}")]
    Builtin(String),
    #[error(transparent)]
    File(#[from] file::FileError),
}

/// One operation's outcome: the deadlocks and serialization failures it retried past
/// (counted whether or not it then succeeded), and what it did or why it failed.
#[derive(Debug)]
pub struct Attempt {
    pub retries: u64,
    pub result: Result<Executed, OpFailure>,
}

impl Attempt {
    /// An operation that reports its retries in what it did (a built-in scenario's,
    /// TPC-C's transactions): none are counted when it failed.
    fn of_sql(result: Result<Executed, sqlx::Error>) -> Attempt {
        Attempt {
            retries: result.as_ref().map_or(0, |done| done.retries),
            result: result.map_err(OpFailure::Sql),
        }
    }
}

/// Where one session draws its keys: reads and updates from the worker's shard,
/// inserts from its own id sequence (`next_insert`, `next_insert + stride`, …), which
/// no other session of the run shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    pub shard: Shard,
    /// Ranges taken over from lost workers, drawn from as well.
    pub extra: Vec<Shard>,
    pub next_insert: u64,
    pub insert_stride: u64,
}

impl Keys {
    /// One of the session's ranges, in proportion to its size.
    pub(crate) fn pick(&self, rng: &mut Rng) -> Shard {
        if self.extra.is_empty() {
            return self.shard;
        }
        let total = self.shard.len() + self.extra.iter().map(Shard::len).sum::<u64>();
        let mut x = rng.range(1, total);
        for s in std::iter::once(&self.shard).chain(&self.extra) {
            if x <= s.len() {
                return *s;
            }
            x -= s.len();
        }
        self.shard
    }
}

/// What one operation did to the table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Executed {
    /// Rows it inserted.
    pub inserted: u64,
    /// Rows it read or updated of existing keys; `None` for operations that only insert.
    pub rows: Option<u64>,
    /// Deadlocks and serialization failures retried inside it (TPC-C's transactions).
    pub retries: u64,
    /// It ended in the rollback the scenario asks for (TPC-C New-Order's unused item).
    pub rolled_back: bool,
    /// It touched another worker's keys (TPC-C's remote warehouses).
    pub remote: bool,
}

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum OpFailure {
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    /// The data did not allow going on: no row to take a value from, or a column that
    /// cannot be passed on. The database did nothing wrong, so it counts as `other_sql`.
    #[error("{0}")]
    Data(String),
}

impl From<CaptureError> for OpFailure {
    fn from(e: CaptureError) -> Self {
        match e {
            CaptureError::Sql(e) => OpFailure::Sql(e),
            CaptureError::Column(m) => OpFailure::Data(m),
        }
    }
}

impl OpFailure {
    pub fn class(&self) -> ErrorClass {
        match self {
            OpFailure::Sql(e) => classify(e),
            OpFailure::Data(_) => ErrorClass::OtherSql,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            OpFailure::Sql(e) => describe(e),
            OpFailure::Data(m) => m.clone(),
        }
    }
}
