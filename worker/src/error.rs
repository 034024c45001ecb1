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
    #[error("{0}")]
    Database(String),
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
