//! fleetload's coordinator: admits workers over gRPC, assigns shards and rate shares,
//! starts them together, merges their HDR snapshots exactly and builds the report.
//!
//! # Layout
//! - `service`: the gRPC edge; validated events for the controller.
//! - `controller`: the run controller's pure core (events in, effects out).
//! - `shell`: its tokio shell (streams, timers, the target's work, the counter sampler).
//! - [`metrics`]: the Prometheus endpoint (counters of the merge, last-interval gauges).
//! - [`security`]: TLS, mutual TLS and the fleet token on the control channel.
//! - `counters`: the database's own counters, sampled during the run.
//! - `cloudwatch`: Aurora's and SageMaker's CloudWatch series for the run's window.
//! - [`ui`]: the live dashboard in the browser, with the controls.
//! - [`search`]: the capacity search, stepping the rate live.
//!
//! What a worker may send, the exact merge, the run record, checkpoints and the report
//! itself live in `fleetload_report`, below this crate.

mod cloudwatch;
mod controller;
mod counters;
mod error;
pub mod metrics;
pub mod search;
pub mod security;
mod service;
mod shell;
pub mod ui;

pub use controller::RunConfig;
pub use error::CoordinatorError;
pub use fleetload_report::{Report, RunStatus};
pub use shell::{CheckpointTo, CoordinatorConfig, Progress};

use fleetload_common::wire::FleetServer;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Serve the control channel on `listener` and run `config.plan` with
/// `config.workers` workers. Cancelling `shutdown` stops the fleet and still returns
/// the report of what ran (status `interrupted`).
///
/// # Errors
/// Workers are missing or fail before the start, or the service cannot run.
pub async fn run(
    listener: TcpListener,
    mut config: CoordinatorConfig,
    shutdown: CancellationToken,
) -> Result<Report, CoordinatorError> {
    config.listen_addr = listener.local_addr().ok();
    let (events_tx, events_rx) = tokio::sync::mpsc::channel(4096);
    if let Some(hub) = &config.ui {
        hub.attach(&events_tx);
    }
    let tasks = TaskTracker::new();
    let server_stop = CancellationToken::new();
    let events_tx_for_refusals = events_tx.clone();
    let service = service::FleetService::new(events_tx, tasks.clone(), server_stop.clone());
    let incoming = TcpListenerStream::new(listener);
    let stop = server_stop.clone();
    let mut builder = tonic::transport::Server::builder().tcp_nodelay(true);
    if let Some(tls) = config.security.tls() {
        builder = builder.tls_config(tls).map_err(CoordinatorError::Tls)?;
    }
    // Workers gzip their control stream (see `histogram::encode_for_wire`); an older
    // worker that does not is served all the same.
    let fleet = FleetServer::new(service)
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
        .max_decoding_message_size(security::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(security::MAX_MESSAGE_BYTES);
    let router = builder.add_service(tonic::service::interceptor::InterceptedService::new(
        fleet,
        config.security.authorize(Some(events_tx_for_refusals)),
    ));
    let server = tasks.spawn(async move {
        router
            .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
            .await
    });
    let result = shell::drive(config, events_rx, shutdown).await;
    // Give workers a moment to read their final Stop before the server goes away.
    tokio::time::sleep(Duration::from_millis(200)).await;
    server_stop.cancel();
    tasks.close();
    if tokio::time::timeout(Duration::from_secs(5), tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("control service did not stop within 5 s");
    }
    if let Ok(Ok(Err(e))) = tokio::time::timeout(Duration::from_millis(1), server).await {
        if result.is_ok() {
            return Err(CoordinatorError::Transport(e));
        }
    }
    result
}

/// An optional value as a log line shows it: the value, or `unknown` (never `Some(…)`).
pub(crate) fn shown<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref()
        .map_or_else(|| "unknown".to_string(), ToString::to_string)
}
