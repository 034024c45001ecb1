//! The coordinator's errors: why a run could not happen, naming workers and counts.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    #[error("only {joined} of {expected} workers joined within {waited:?}{names}{refused}; start the missing workers with `fleetload worker --coordinator {dial}`, or lower --workers")]
    WorkersMissing {
        joined: usize,
        expected: usize,
        waited: Duration,
        names: String,
        /// Who was refused and why ("; 2 refused: …"), or nothing.
        refused: String,
        /// Where workers dial this coordinator.
        dial: String,
    },
    #[error("worker {worker} cannot run its share: {message}")]
    WorkerFailed { worker: String, message: String },
    #[error("worker {worker} disconnected {phase}")]
    WorkerLost { worker: String, phase: &'static str },
    #[error(
        "worker {worker} did not report ready within {waited:?} (opening {sessions} sessions)"
    )]
    ReadyTimeout {
        worker: String,
        waited: Duration,
        sessions: u32,
    },
    #[error("cannot split the work: {0}")]
    Split(#[from] fleetload_common::split::SplitError),
    #[error("cannot set up TLS on the control channel: {0}")]
    Tls(#[source] tonic::transport::Error),
    #[error("cannot serve the control channel: {0}")]
    Transport(#[source] tonic::transport::Error),
    #[error("cannot serve the control channel: the control service stopped")]
    ServiceStopped,
    #[error("cannot serve the control channel: no randomness for a resume secret: {0}")]
    Randomness(#[source] getrandom::Error),
    #[error(transparent)]
    Prepare(#[from] fleetload_db::prepare::PrepareError),
    #[error("cannot set the ML stand-in's settings on {target}: {reason}; install it with `fleetload prepare --scenario churn --target {target}`")]
    StandIn { target: String, reason: String },
    #[error("the plan cannot run on this fleet: the stages ask for {most} active sessions, but {workers} workers × {sessions} sessions open only {open}; raise `sessions` or add workers")]
    TooFewSessions {
        most: f64,
        workers: u64,
        sessions: u32,
        open: u64,
    },
    #[error("{message} (the coordinator looked before assigning the workers; give `rows` if only the workers can reach the database)")]
    TargetSilent { message: String },
    #[error("interrupted before the run started")]
    Cancelled,
}
