//! The control stream's I/O: dial the coordinator, say hello, send and receive typed
//! messages (the envelopes are converted by `fleetload_common::wire`), and one rejoin
//! attempt.

use crate::error::{SetupError, WorkerError};
use crate::security::ClientSecurity;
use fleetload_common::wire::{
    from_coordinator, to_coordinator, CoordinatorMessage, FromWorker, Hello, Rejoin, ToWorker,
    WorkerMessage,
};
use fleetload_common::WireError;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

/// One control stream.
pub(crate) struct Control {
    tx: mpsc::Sender<WorkerMessage>,
    inbound: tonic::Streaming<CoordinatorMessage>,
}

impl Control {
    pub(crate) async fn send(&self, msg: &FromWorker) -> Result<(), WorkerError> {
        let wire = to_coordinator(msg)?;
        self.tx
            .send(wire)
            .await
            .map_err(|_| WorkerError::StreamClosed)
    }

    /// The next message, or why it is invalid (the stream goes on); `Err` when the
    /// stream ended.
    pub(crate) async fn recv(&mut self) -> Result<Result<ToWorker, WireError>, WorkerError> {
        match self.inbound.message().await {
            Ok(Some(m)) => Ok(from_coordinator(m)),
            Ok(None) => Err(WorkerError::StreamClosed),
            Err(status) => Err(WorkerError::Status {
                explained: status.message().to_string(),
                status,
            }),
        }
    }

    /// Tell the coordinator why this worker cannot go on, then give it a moment to read.
    pub(crate) async fn fail(&mut self, why: SetupError) -> WorkerError {
        let _ = self.send(&FromWorker::Failure(why.to_string())).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.recv()).await;
        WorkerError::Setup(why)
    }
}

/// Dial `endpoint`, retrying until `timeout` while nobody listens; a certificate
/// problem ends it at once.
pub(crate) async fn dial(
    endpoint: &str,
    security: &ClientSecurity,
    timeout: Duration,
    shutdown: &CancellationToken,
) -> Result<tonic::transport::Channel, WorkerError> {
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        return Err(WorkerError::Endpoint {
            endpoint: endpoint.into(),
            message: "the address has no http:// or https:// scheme; use http://HOST:PORT (https:// with TLS)".into(),
        });
    }
    let ep = security
        .endpoint(endpoint)
        .map_err(|message| WorkerError::Endpoint {
            endpoint: endpoint.into(),
            message,
        })?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true);
    let started = Instant::now();
    loop {
        match ep.connect().await {
            Ok(channel) => return Ok(channel),
            // A certificate problem does not go away by waiting: say so at once.
            Err(e) if crate::security::is_certificate_error(&crate::security::error_chain(&e)) => {
                return Err(WorkerError::Tls {
                    endpoint: endpoint.into(),
                    message: crate::security::explain_connect_error(&e, endpoint),
                });
            }
            Err(e) if started.elapsed() >= timeout => {
                return Err(WorkerError::Dial {
                    endpoint: endpoint.into(),
                    waited: timeout,
                    message: crate::security::explain_connect_error(&e, endpoint),
                });
            }
            Err(_) => {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                    _ = shutdown.cancelled() => return Err(WorkerError::Cancelled),
                }
            }
        }
    }
}

/// Open the control stream on `channel` and say hello.
pub(crate) async fn open(
    channel: tonic::transport::Channel,
    endpoint: &str,
    security: &ClientSecurity,
    hello: &Hello,
) -> Result<Control, WorkerError> {
    let mut client = security.client(channel);
    // Room for a lease's worth of resent snapshots without blocking the sender.
    let (tx, rx) = mpsc::channel(256);
    let first = to_coordinator(&FromWorker::Hello(hello.clone()))?;
    tx.send(first)
        .await
        .map_err(|_| WorkerError::StreamClosed)?;
    let inbound = client
        .control(ReceiverStream::new(rx))
        .await
        .map_err(|s| match s.code() {
            tonic::Code::Unauthenticated => WorkerError::Refused {
                reason: s.message().to_string(),
            },
            _ => WorkerError::Status {
                explained: security.explain_stream_error(&s, endpoint),
                status: s,
            },
        })?
        .into_inner();
    Ok(Control { tx, inbound })
}

/// Where and as whom a worker redials.
pub(crate) struct RejoinTo<'a> {
    pub(crate) endpoint: &'a str,
    pub(crate) hello: &'a Hello,
    pub(crate) security: &'a ClientSecurity,
}

/// What one rejoin attempt came to.
pub(crate) enum Rejoined {
    /// The new stream, and the highest sequence the coordinator said it holds.
    Back(Box<Control>, Option<u64>),
    Refused(String),
}

/// Dial the coordinator again claiming slot `claim`, within two seconds.
pub(crate) async fn rejoin(to: &RejoinTo<'_>, claim: Rejoin) -> Result<Rejoined, WorkerError> {
    let attempt = async {
        let ep = to
            .security
            .endpoint(to.endpoint)
            .map_err(|message| WorkerError::Endpoint {
                endpoint: to.endpoint.into(),
                message,
            })?
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true);
        let channel = ep.connect().await.map_err(WorkerError::Connect)?;
        let mut hello = to.hello.clone();
        hello.rejoin = Some(claim);
        let mut control = open(channel, to.endpoint, to.security, &hello).await?;
        match control.recv().await? {
            Ok(ToWorker::Refused { reason }) => Ok(Rejoined::Refused(reason)),
            Ok(ToWorker::Ack { sequence }) => Ok(Rejoined::Back(Box::new(control), Some(sequence))),
            _ => Ok(Rejoined::Back(Box::new(control), None)),
        }
    };
    tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .unwrap_or(Err(WorkerError::RejoinTimeout))
}
