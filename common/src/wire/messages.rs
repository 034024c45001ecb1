//! The control stream's messages, both ways, as domain types, and the one place they
//! are converted from and to prost. The coordinator's service and the worker's link
//! hand the envelopes ([`WorkerMessage`], [`CoordinatorMessage`]) to these functions
//! and never look inside.

use super::*;
use crate::histogram::HistogramError;
use serde::{Deserialize, Serialize};

pub use fleetload_proto::v1::fleet_client::FleetClient;
pub use fleetload_proto::v1::fleet_server::{Fleet, FleetServer};
pub use fleetload_proto::v1::{
    CommandReply as WireCommandReply, CommandRequest, CoordinatorMessage, WorkerMessage,
};

/// Longest failure message a worker may send, in characters.
pub const MAX_FAILURE: usize = 4096;
/// Longest reason a `ctl stop` may carry, in characters.
pub const MAX_STOP_REASON: usize = 512;

/// What a coordinator says to a worker.
#[derive(Debug, Clone, PartialEq)]
pub enum ToWorker {
    Assignment(Box<Assignment>),
    /// The run's start instant on the worker's own clock, Unix nanoseconds.
    Start {
        start_unix_nanos: i64,
    },
    Stop {
        reason: String,
    },
    /// The coordinator holds every snapshot up to this sequence.
    Ack {
        sequence: u64,
    },
    Rebalance(Rebalance),
    Refused {
        reason: String,
    },
    TimeProbe {
        id: u64,
        coordinator_send_unix_nanos: i64,
    },
    Heartbeat,
}

/// A worker's new load: its whole profile from the run start, and the key ranges it
/// took over from lost workers. Checked for shape here; against the worker's
/// assignment (its key space, its sessions) by the worker.
#[derive(Debug, Clone, PartialEq)]
pub struct Rebalance {
    pub extra: Vec<Shard>,
    /// `None`: the load is unchanged (closed loop running every session).
    pub profile: Option<Profile>,
}

/// What a worker says to the coordinator.
#[derive(Debug, Clone)]
pub enum FromWorker {
    /// Only as the first message of a stream.
    Hello(Hello),
    Ready {
        sessions: u32,
        rows_loaded: u64,
        /// Where it spools what it cannot deliver ("" if it does not say).
        spool: String,
    },
    Snapshot(Box<Snapshot>),
    Done(Box<Done>),
    Failure(String),
    /// Nothing to say, but alive.
    Heartbeat,
    TimeEcho(TimeEcho),
}

/// The answer to a clock probe: the probe's send time on the coordinator's clock and
/// the worker's clock when it arrived and when the echo left, Unix nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEcho {
    pub id: u64,
    pub coordinator_send: i64,
    pub worker_receive: i64,
    pub worker_send: i64,
    /// When the coordinator's service read it off the stream (Unix nanoseconds): set
    /// there, not on the wire, so the round trip does not include the time the echo
    /// waited for the controller behind other workers' snapshots.
    pub coordinator_receive: Option<i64>,
}

/// A live-control command (`fleetload ctl`).
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Status,
    /// Cluster ops/s (open loop) or active sessions (closed loop), from the next interval.
    SetRate(f64),
    Pause,
    Resume,
    Stop(String),
}

/// The coordinator's answer to a command.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandReply {
    pub ok: bool,
    pub message: String,
    /// Only for `status`.
    pub status: Option<LiveStatus>,
}

impl CommandReply {
    pub fn ok(message: impl Into<String>) -> Self {
        CommandReply {
            ok: true,
            message: message.into(),
            status: None,
        }
    }

    pub fn refused(message: impl Into<String>) -> Self {
        CommandReply {
            ok: false,
            message: message.into(),
            status: None,
        }
    }
}

/// A running run as `fleetload ctl status` shows it (JSON; see docs/control.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveStatus {
    pub run_id: String,
    /// `running` or `paused`.
    pub state: String,
    pub elapsed_s: f64,
    pub duration_s: f64,
    /// The target URL, password redacted.
    pub target: String,
    pub scenario: String,
    /// `ops/s` or `sessions`.
    pub unit: String,
    /// The cluster's planned load now, in `unit`.
    pub planned_now: Option<f64>,
    pub workers: Vec<WorkerStatus>,
    pub last_interval: Option<IntervalStatus>,
    pub changes: Vec<StatusChange>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerStatus {
    pub name: String,
    pub state: String,
    pub share: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntervalStatus {
    pub ok_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
    pub dropped: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusChange {
    pub t_s: f64,
    pub event: String,
}

/// Encode a message for a worker.
pub fn to_worker(msg: &ToWorker) -> CoordinatorMessage {
    use pb::coordinator_message::Msg;
    let msg = match msg {
        ToWorker::Assignment(a) => Msg::Assignment(pb::Assignment::from(&**a)),
        ToWorker::Start { start_unix_nanos } => Msg::Start(pb::Start {
            start_unix_nanos: *start_unix_nanos,
        }),
        ToWorker::Stop { reason } => Msg::Stop(pb::Stop {
            reason: reason.clone(),
        }),
        ToWorker::Ack { sequence } => Msg::Ack(pb::Ack {
            sequence: *sequence,
        }),
        ToWorker::Rebalance(r) => Msg::Rebalance(pb::Rebalance {
            extra_shards: r.extra.iter().map(shard_to_wire).collect(),
            profile: r.profile.as_ref().map(profile_points).unwrap_or_default(),
        }),
        ToWorker::Refused { reason } => Msg::Refused(pb::Refused {
            reason: reason.clone(),
        }),
        ToWorker::TimeProbe {
            id,
            coordinator_send_unix_nanos,
        } => Msg::TimeProbe(pb::TimeProbe {
            id: *id,
            coordinator_send_unix_nanos: *coordinator_send_unix_nanos,
        }),
        ToWorker::Heartbeat => Msg::Heartbeat(pb::Heartbeat {}),
    };
    CoordinatorMessage { msg: Some(msg) }
}

/// Decode a message from the coordinator, checking every field.
///
/// # Errors
/// An empty message, or a field out of bounds (named in the error).
pub fn from_coordinator(msg: CoordinatorMessage) -> Result<ToWorker, WireError> {
    use pb::coordinator_message::Msg;
    Ok(match msg.msg.ok_or(WireError::Missing { field: "msg" })? {
        Msg::Assignment(a) => ToWorker::Assignment(Box::new(Assignment::try_from(a)?)),
        Msg::Start(s) => ToWorker::Start {
            start_unix_nanos: s.start_unix_nanos,
        },
        Msg::Stop(s) => ToWorker::Stop {
            reason: text("stop.reason", s.reason, MAX_FAILURE)?,
        },
        Msg::Ack(a) => ToWorker::Ack {
            sequence: a.sequence,
        },
        Msg::Rebalance(r) => ToWorker::Rebalance(Rebalance::try_from(r)?),
        Msg::Refused(r) => ToWorker::Refused {
            reason: text("refused.reason", r.reason, MAX_FAILURE)?,
        },
        Msg::TimeProbe(p) => ToWorker::TimeProbe {
            id: p.id,
            coordinator_send_unix_nanos: p.coordinator_send_unix_nanos,
        },
        Msg::Heartbeat(_) => ToWorker::Heartbeat,
    })
}

impl TryFrom<pb::Rebalance> for Rebalance {
    type Error = WireError;
    fn try_from(r: pb::Rebalance) -> Result<Self, WireError> {
        if r.extra_shards.len() > MAX_EXTRA_SHARDS {
            return Err(WireError::invalid(
                "rebalance.extra_shards",
                format!(
                    "{} ranges, at most {MAX_EXTRA_SHARDS}",
                    r.extra_shards.len()
                ),
            ));
        }
        let mut extra = Vec::with_capacity(r.extra_shards.len());
        for s in &r.extra_shards {
            if s.first == 0 || s.first > s.last {
                return Err(WireError::invalid(
                    "rebalance.extra_shards",
                    format!("[{}, {}] is not a key range", s.first, s.last),
                ));
            }
            extra.push(Shard {
                first: s.first,
                last: s.last,
            });
        }
        let profile = if r.profile.is_empty() {
            None
        } else {
            Some(profile_from("rebalance.profile", &r.profile, MAX_RATE)?)
        };
        Ok(Rebalance { extra, profile })
    }
}

/// Most key ranges one rebalance may hand a worker (one per lost worker and range).
const MAX_EXTRA_SHARDS: usize = 4096;

fn shard_to_wire(s: &Shard) -> pb::Shard {
    pb::Shard {
        first: s.first,
        last: s.last,
    }
}

/// Encode a message for the coordinator.
///
/// # Errors
/// A snapshot's histogram cannot be serialized (a bug, not a runtime condition).
pub fn to_coordinator(msg: &FromWorker) -> Result<WorkerMessage, HistogramError> {
    use pb::worker_message::Msg;
    let msg = match msg {
        FromWorker::Hello(h) => Msg::Hello(pb::Hello::from(h)),
        FromWorker::Ready {
            sessions,
            rows_loaded,
            spool,
        } => Msg::Ready(pb::Ready {
            sessions_open: *sessions,
            rows_loaded: *rows_loaded,
            spool: spool.clone(),
        }),
        FromWorker::Snapshot(s) => Msg::Snapshot(s.to_proto()?),
        FromWorker::Done(d) => Msg::Done(pb::Done::from(&**d)),
        FromWorker::Failure(message) => Msg::Failure(pb::Failure {
            message: message.clone(),
        }),
        FromWorker::Heartbeat => Msg::Heartbeat(pb::Heartbeat {}),
        FromWorker::TimeEcho(e) => Msg::TimeEcho(pb::TimeEcho {
            id: e.id,
            coordinator_send_unix_nanos: e.coordinator_send,
            worker_receive_unix_nanos: e.worker_receive,
            worker_send_unix_nanos: e.worker_send,
        }),
    };
    Ok(WorkerMessage { msg: Some(msg) })
}

/// Decode a message from a worker, checking every field.
///
/// # Errors
/// An empty message, or a field out of bounds (named in the error).
pub fn from_worker(msg: WorkerMessage) -> Result<FromWorker, WireError> {
    use pb::worker_message::Msg;
    Ok(match msg.msg.ok_or(WireError::Missing { field: "msg" })? {
        Msg::Hello(h) => FromWorker::Hello(Hello::try_from(h)?),
        Msg::Ready(r) => FromWorker::Ready {
            sessions: r.sessions_open,
            rows_loaded: r.rows_loaded,
            spool: super::text("ready.spool", r.spool, super::MAX_PATH)?,
        },
        Msg::Snapshot(s) => FromWorker::Snapshot(Box::new(Snapshot::try_from(s)?)),
        Msg::Done(d) => FromWorker::Done(Box::new(Done::try_from(d)?)),
        Msg::Failure(f) => FromWorker::Failure(f.message.chars().take(MAX_FAILURE).collect()),
        Msg::Heartbeat(_) => FromWorker::Heartbeat,
        Msg::TimeEcho(e) => FromWorker::TimeEcho(TimeEcho {
            id: e.id,
            coordinator_send: e.coordinator_send_unix_nanos,
            worker_receive: e.worker_receive_unix_nanos,
            worker_send: e.worker_send_unix_nanos,
            coordinator_receive: None,
        }),
    })
}

/// Encode a `ctl` command.
pub fn command_request(command: &Command) -> CommandRequest {
    use pb::command_request::Command as C;
    let command = match command {
        Command::Status => C::Status(pb::StatusCommand {}),
        Command::SetRate(value) => C::SetRate(pb::SetRateCommand { value: *value }),
        Command::Pause => C::Pause(pb::PauseCommand {}),
        Command::Resume => C::Resume(pb::ResumeCommand {}),
        Command::Stop(reason) => C::Stop(pb::StopCommand {
            reason: reason.clone(),
        }),
    };
    CommandRequest {
        command: Some(command),
    }
}

/// Decode a `ctl` command, checking its value.
///
/// # Errors
/// An empty command, or a rate that is not a number between 0 and the most allowed.
pub fn command_from(request: CommandRequest) -> Result<Command, WireError> {
    use pb::command_request::Command as C;
    Ok(
        match request
            .command
            .ok_or(WireError::Missing { field: "command" })?
        {
            C::Status(_) => Command::Status,
            C::SetRate(r) => {
                if !r.value.is_finite() || r.value < 0.0 || r.value > MAX_RATE {
                    return Err(WireError::invalid(
                        "set-rate",
                        format!("{}: give a number between 0 and {MAX_RATE}", r.value),
                    ));
                }
                Command::SetRate(r.value)
            }
            C::Pause(_) => Command::Pause,
            C::Resume(_) => Command::Resume,
            C::Stop(s) => Command::Stop(s.reason.chars().take(MAX_STOP_REASON).collect()),
        },
    )
}

/// Encode the answer to a command.
pub fn command_reply(reply: &CommandReply) -> WireCommandReply {
    WireCommandReply {
        ok: reply.ok,
        message: reply.message.clone(),
        status_json: reply
            .status
            .as_ref()
            .and_then(|s| serde_json::to_string(s).ok())
            .unwrap_or_default(),
    }
}

/// Decode the answer to a command.
///
/// # Errors
/// A status that is not the JSON of a [`LiveStatus`].
pub fn reply_from(reply: WireCommandReply) -> Result<CommandReply, WireError> {
    let status = if reply.status_json.is_empty() {
        None
    } else {
        Some(
            serde_json::from_str(&reply.status_json)
                .map_err(|e| WireError::invalid("command_reply.status_json", e.to_string()))?,
        )
    };
    Ok(CommandReply {
        ok: reply.ok,
        message: reply.message,
        status,
    })
}
