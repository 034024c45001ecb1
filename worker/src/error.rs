//! The worker's errors. Each says what failed and what to do about it.

use fleetload_common::WireError;

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("cannot reach the coordinator at {endpoint} within {waited:?}: {message}")]
    Dial {
        endpoint: String,
        waited: std::time::Duration,
        message: String,
    },
    #[error("TLS with the coordinator at {endpoint} failed: {message}")]
    Tls { endpoint: String, message: String },
    #[error("coordinator address {endpoint:?}: {message}")]
    Endpoint { endpoint: String, message: String },
    #[error("the coordinator refused this worker: {reason}")]
    Refused { reason: String },
    #[error("the coordinator sent an invalid assignment: {0}")]
    BadAssignment(#[from] WireError),
    #[error("protocol error: cannot encode a snapshot: {0}")]
    Encode(#[from] fleetload_common::histogram::HistogramError),
    #[error("the control stream to the coordinator broke: the coordinator closed the stream")]
    StreamClosed,
    /// The coordinator's status, and what it means here (TLS, token, version).
    #[error("the control stream to the coordinator broke: {explained}")]
    Status {
        explained: String,
        #[source]
        status: tonic::Status,
    },
    #[error("the control stream to the coordinator broke: {0}")]
    Connect(#[source] tonic::transport::Error),
    #[error("the control stream to the coordinator broke: rejoin timed out")]
    RejoinTimeout,
    /// This worker cannot run its share; the coordinator was told why.
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error("dead man's switch: {reason}; the load was stopped and {spooled} unacknowledged snapshots were written to {file}")]
    Orphaned {
        reason: String,
        spooled: usize,
        file: String,
    },
    #[error(transparent)]
    SpoolDir(#[from] fleetload_common::outdir::OutputDirError),
    #[error("stopped before the run started")]
    Cancelled,
}

/// Why this worker cannot run its share, between the assignment and Ready: what it
/// tells the coordinator, which fails the run with it.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("worker {worker} refuses the {what}: {reason}")]
    Refused {
        worker: String,
        /// `assignment` or `reader`.
        what: &'static str,
        reason: String,
    },
    #[error("worker {worker} accepts at most {max} sessions, the plan asks for {asked}")]
    TooManySessions {
        worker: String,
        max: u32,
        asked: u32,
    },
    #[error(transparent)]
    Login(#[from] fleetload_db::connect::ConnectError),
    #[error("session {index} of {count}: {reason}")]
    Session {
        index: u32,
        count: u32,
        reason: String,
    },
    #[error("reader {target}: {source}")]
    Reader {
        target: String,
        source: Box<SetupError>,
    },
    #[error("loading shard [{first}, {last}]: {reason}")]
    LoadShard {
        first: u64,
        last: u64,
        reason: String,
    },
    #[error("no session opened")]
    NoSession,
    #[error("cannot read the highest id of {table}: {reason}")]
    HighestId { table: &'static str, reason: String },
    #[error(transparent)]
    File(#[from] fleetload_db::workloads::file::FileError),
    /// The workload's check on the target (its statements, its table, its key space).
    #[error(transparent)]
    Check(#[from] fleetload_db::workloads::CheckError),
    #[error("{op} is not an operation of {scenario}")]
    NotAnOperation {
        op: fleetload_common::scenario::OpName,
        scenario: &'static str,
    },
    #[error("the coordinator sent an invalid assignment: {0}")]
    Assignment(WireError),
}
