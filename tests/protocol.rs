//! The wire contract at the coordinator's edge, over a real loopback socket: what a
//! worker of another version, or a worker sending garbage, gets back.

mod common;

use fleetload_common::plan::{Plan, RawPlan};
use fleetload_coordinator::{CoordinatorConfig, CoordinatorError};
use fleetload_proto::v1 as pb;
use fleetload_proto::v1::worker_message::Msg;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

fn plan(dir: &std::path::Path) -> Plan {
    Plan::try_from(RawPlan {
        target: Some(format!("sqlite://{}", dir.join("p.db").display())),
        rate: Some(10.0),
        duration: Some("1s".into()),
        ..RawPlan::default()
    })
    .unwrap()
}

fn hello(version: u32) -> pb::WorkerMessage {
    pb::WorkerMessage {
        msg: Some(Msg::Hello(pb::Hello {
            protocol_version: version,
            name: "probe".into(),
            host: "h".into(),
            cores: 1,
            max_sessions: 10,
            capacity: 1.0,
            ..Default::default()
        })),
    }
}

async fn start(
    workers: usize,
    join: Duration,
) -> (
    String,
    tokio::task::JoinHandle<Result<fleetload_coordinator::Report, CoordinatorError>>,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let mut config = CoordinatorConfig::new(plan(dir.path()), workers);
    config.run.join_timeout = join;
    let handle = tokio::spawn(fleetload_coordinator::run(
        listener,
        config,
        CancellationToken::new(),
    ));
    (endpoint, handle, dir)
}

/// Join as a well-behaved worker; returns the sending half and the coordinator's stream.
async fn join(
    endpoint: String,
) -> (
    mpsc::Sender<pb::WorkerMessage>,
    tonic::Streaming<pb::CoordinatorMessage>,
) {
    let mut client = pb::fleet_client::FleetClient::connect(endpoint)
        .await
        .unwrap();
    let (tx, rx) = mpsc::channel(4);
    tx.send(hello(fleetload_proto::PROTOCOL_VERSION))
        .await
        .unwrap();
    let inbound = client
        .control(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    (tx, inbound)
}

#[tokio::test]
async fn another_protocol_version_is_refused_naming_both_versions() {
    let (endpoint, coordinator, _dir) = start(1, Duration::from_secs(2)).await;
    let mut client = pb::fleet_client::FleetClient::connect(endpoint)
        .await
        .unwrap();
    let (tx, rx) = mpsc::channel(4);
    tx.send(hello(fleetload_proto::PROTOCOL_VERSION + 6))
        .await
        .unwrap();
    let status = client.control(ReceiverStream::new(rx)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    let msg = status.message();
    assert!(
        msg.contains(&format!(
            "version {}",
            fleetload_proto::PROTOCOL_VERSION + 6
        )) && msg.contains(&format!("version {}", fleetload_proto::PROTOCOL_VERSION)),
        "{msg}"
    );
    // The refused worker did not count: the run still lacks its one worker.
    let err = coordinator.await.unwrap().unwrap_err();
    assert!(
        matches!(
            err,
            CoordinatorError::WorkersMissing {
                joined: 0,
                expected: 1,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_first_message_that_is_not_hello_is_refused() {
    let (endpoint, coordinator, _dir) = start(1, Duration::from_secs(1)).await;
    let mut client = pb::fleet_client::FleetClient::connect(endpoint)
        .await
        .unwrap();
    let (tx, rx) = mpsc::channel(4);
    tx.send(pb::WorkerMessage {
        msg: Some(Msg::Ready(pb::Ready {
            sessions_open: 1,
            rows_loaded: 0,
            spool: String::new(),
        })),
    })
    .await
    .unwrap();
    let status = client.control(ReceiverStream::new(rx)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("hello"), "{}", status.message());
    assert!(coordinator.await.unwrap().is_err());
}

#[tokio::test]
async fn a_worker_that_fails_its_assignment_aborts_the_run_with_its_message() {
    let (endpoint, coordinator, _dir) = start(1, Duration::from_secs(5)).await;
    let (tx, mut inbound) = join(endpoint).await;
    let first = inbound.message().await.unwrap().unwrap();
    let Some(pb::coordinator_message::Msg::Assignment(a)) = first.msg else {
        panic!("expected an assignment, got {first:?}")
    };
    assert_eq!(
        a.shard,
        Some(pb::Shard {
            first: 1,
            last: 10_000
        })
    );
    // The database refused this worker: it says so instead of Ready.
    tx.send(pb::WorkerMessage {
        msg: Some(Msg::Failure(pb::Failure {
            message: "disk on fire".into(),
        })),
    })
    .await
    .unwrap();
    let err = coordinator.await.unwrap().unwrap_err();
    assert!(
        err.to_string().contains("probe") && err.to_string().contains("disk on fire"),
        "{err}"
    );
    // The worker is told to stop, with the reason.
    let stop = inbound.message().await.unwrap().unwrap();
    assert!(
        matches!(stop.msg, Some(pb::coordinator_message::Msg::Stop(ref s)) if s.reason.contains("disk on fire")),
        "{stop:?}"
    );
}

#[tokio::test]
async fn a_snapshot_with_a_corrupt_histogram_is_a_protocol_error_not_a_crash() {
    let (endpoint, coordinator, _dir) = start(1, Duration::from_secs(5)).await;
    let (tx, mut inbound) = join(endpoint).await;
    let _assignment = inbound.message().await.unwrap().unwrap();
    let op = pb::OperationSnapshot {
        name: "point_select".into(),
        ok: 1,
        response_time: vec![0xde, 0xad, 0xbe, 0xef],
        ..Default::default()
    };
    let snapshot = pb::Snapshot {
        run_id: "x".into(),
        operations: vec![op],
        ..Default::default()
    };
    tx.send(pb::WorkerMessage {
        msg: Some(Msg::Snapshot(snapshot)),
    })
    .await
    .unwrap();
    let err = coordinator.await.unwrap().unwrap_err().to_string();
    assert!(
        err.contains("protocol error") && err.contains("snapshot.response_time"),
        "{err}"
    );
}

fn snapshot(run_id: &str, sequence: u64, response_time: Vec<u8>, ok: u64) -> pb::WorkerMessage {
    let empty =
        fleetload_common::histogram::encode(&fleetload_common::histogram::new_latency()).unwrap();
    pb::WorkerMessage {
        msg: Some(Msg::Snapshot(pb::Snapshot {
            run_id: run_id.into(),
            worker_index: 0,
            sequence,
            // Every snapshot claims interval 0: the run lasts one interval.
            interval_index: 0,
            operations: vec![pb::OperationSnapshot {
                name: "point_select".into(),
                ok,
                // A worker records a service time with every response time.
                service_time: response_time.clone(),
                response_time,
                schedule_lag: empty,
                ..Default::default()
            }],
            events: vec![],
        })),
    }
}

/// During a run, malformed snapshots (truncated deflate, foreign histogram bounds) are
/// refused and counted, a snapshot for a sequence already held is ignored, and the run
/// goes on to an exact report of what was valid.
#[tokio::test]
async fn malformed_snapshots_during_a_run_are_refused_counted_and_the_run_goes_on() {
    use hdrhistogram::serialization::Serializer;
    let (endpoint, coordinator, _dir) = start(1, Duration::from_secs(5)).await;
    let (tx, mut inbound) = join(endpoint).await;
    let (run_id, insert_id_base) = loop {
        let m = inbound.message().await.unwrap().unwrap();
        if let Some(pb::coordinator_message::Msg::Assignment(a)) = m.msg {
            break (a.run_id, a.insert_id_base);
        }
    };
    common::ready_until_start(&tx, &mut inbound, |_, now| (now, now)).await;
    let mut h = fleetload_common::histogram::new_latency();
    fleetload_common::histogram::record(&mut h, Duration::from_micros(300));
    let good = fleetload_common::histogram::encode(&h).unwrap();
    let mut foreign = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 1000, 2).unwrap();
    foreign.record(300).unwrap();
    let mut foreign_bytes = Vec::new();
    hdrhistogram::serialization::V2DeflateSerializer::new()
        .serialize(&foreign, &mut foreign_bytes)
        .unwrap();
    tx.send(snapshot(&run_id, 0, good.clone(), 1))
        .await
        .unwrap();
    tx.send(snapshot(&run_id, 1, good[..good.len() / 2].to_vec(), 1))
        .await
        .unwrap();
    tx.send(snapshot(&run_id, 1, foreign_bytes, 1))
        .await
        .unwrap();
    tx.send(snapshot(&run_id, 0, good.clone(), 1))
        .await
        .unwrap();
    tx.send(pb::WorkerMessage {
        msg: Some(Msg::Done(pb::Done {
            run_id: run_id.clone(),
            worker_index: 0,
            snapshots_sent: 1,
            totals: vec![pb::OperationTotals {
                name: "point_select".into(),
                ok: 1,
                ..Default::default()
            }],
            insert_id_base,
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    let report = coordinator.await.unwrap().unwrap();
    let w = &report.workers[0];
    assert_eq!(w.rejected_messages, 2, "{:?}", w.rejected_samples);
    assert!(
        w.rejected_samples
            .iter()
            .any(|s| s.contains("response_time")),
        "{:?}",
        w.rejected_samples
    );
    assert_eq!(w.duplicate_snapshots, 1);
    assert_eq!(
        report.status,
        fleetload_coordinator::RunStatus::Passed,
        "{:?}",
        report.failures
    );
    assert_eq!(report.verification.merged_equals_executed, Some(true));
}

/// Workers gzip their control stream. A message that inflates past the 4 MB limit (a
/// "zip bomb": 16 MB of one byte, a few KB on the wire) ends that worker's stream
/// without the coordinator inflating it all; the coordinator stays up and names the
/// worker and the limit.
#[tokio::test]
async fn a_compressed_message_that_inflates_past_the_limit_is_refused() {
    let (endpoint, coordinator, _dir) = start(1, Duration::from_secs(3)).await;
    let mut client = pb::fleet_client::FleetClient::connect(endpoint)
        .await
        .unwrap()
        .send_compressed(tonic::codec::CompressionEncoding::Gzip);
    let (tx, rx) = mpsc::channel(4);
    tx.send(hello(fleetload_proto::PROTOCOL_VERSION))
        .await
        .unwrap();
    let mut inbound = client
        .control(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let assignment = inbound.message().await.unwrap().unwrap();
    assert!(
        matches!(
            assignment.msg,
            Some(pb::coordinator_message::Msg::Assignment(_))
        ),
        "a gzip-compressed Hello is read like any other"
    );
    let bomb = pb::WorkerMessage {
        msg: Some(Msg::Failure(pb::Failure {
            message: "x".repeat(16 << 20),
        })),
    };
    tx.send(bomb).await.unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(30), coordinator)
        .await
        .expect("the coordinator ends by itself")
        .unwrap();
    let message = match outcome {
        Ok(report) => format!("{:?} {:?}", report.status, report.failures),
        Err(e) => e.to_string(),
    };
    assert!(
        message.contains("worker probe")
            && message.contains("size limit, of 4194304 bytes, exceeded while decompressing"),
        "{message}"
    );
    assert!(
        !message.contains(&"x".repeat(100)),
        "the bomb's content never reaches the report"
    );
}

/// The coordinator checks a set-rate's value itself: a client other than `fleetload
/// ctl` (whose flag parser refuses a negative number first) gets a clear refusal.
#[tokio::test]
async fn set_rate_out_of_range_is_refused_by_the_coordinator() {
    let (endpoint, coordinator, _dir) = start(1, Duration::from_secs(3)).await;
    let mut client = pb::fleet_client::FleetClient::connect(endpoint)
        .await
        .unwrap();
    for value in [-5.0, f64::NAN, f64::INFINITY, 1e12] {
        let status = client
            .command(pb::CommandRequest {
                command: Some(pb::command_request::Command::SetRate(pb::SetRateCommand {
                    value,
                })),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{value}");
        assert!(
            status.message().contains("between 0 and"),
            "{}",
            status.message()
        );
    }
    // The coordinator is still waiting for its worker, and gives up as it should.
    assert!(coordinator.await.unwrap().is_err());
}
