//! A worker holding the fleet token, or a buggy build, sends the impossible next to a
//! real worker: a real coordinator process, a real worker process and a hand-built
//! client over real loopback sockets. The coordinator must stay up and end on time,
//! keep the real worker's counts exact, hold no impossible value in its report, keep its
//! memory bounded, count every refusal by class, and keep a running slot for its holder.

mod common;

use common::*;
use fleetload_proto::v1 as pb;
use fleetload_proto::v1::coordinator_message::Msg as FromCoordinator;
use fleetload_proto::v1::worker_message::Msg;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

fn hello(name: &str, rejoin: Option<(&str, u32, &str)>) -> pb::WorkerMessage {
    pb::WorkerMessage {
        msg: Some(Msg::Hello(pb::Hello {
            protocol_version: fleetload_proto::PROTOCOL_VERSION,
            name: name.into(),
            host: "mallory-host".into(),
            cores: 1,
            max_sessions: 10,
            capacity: 1.0,
            rejoin_run_id: rejoin.map(|r| r.0.to_string()).unwrap_or_default(),
            rejoin_worker_index: rejoin.map_or(0, |r| r.1),
            rejoin_secret: rejoin.map(|r| r.2.to_string()).unwrap_or_default(),
            rejoin_spool: String::new(),
        })),
    }
}

/// A histogram of `n` values of `us` microseconds, as a worker puts it on the wire.
fn hist(us: u64, n: u64) -> Vec<u8> {
    let mut h = fleetload_common::histogram::new_latency();
    if n > 0 {
        h.record_n(us, n).unwrap();
    }
    fleetload_common::histogram::encode(&h).unwrap()
}

struct Snap<'a> {
    run_id: &'a str,
    slot: u32,
    sequence: u64,
    interval: u64,
    op: &'a str,
    ok: u64,
    us: u64,
}

impl Snap<'_> {
    fn msg(&self) -> pb::WorkerMessage {
        pb::WorkerMessage {
            msg: Some(Msg::Snapshot(pb::Snapshot {
                run_id: self.run_id.into(),
                worker_index: self.slot,
                sequence: self.sequence,
                interval_index: self.interval,
                operations: vec![pb::OperationSnapshot {
                    name: self.op.into(),
                    ok: self.ok,
                    errors: vec![0; 5],
                    response_time: hist(self.us, self.ok),
                    service_time: hist(self.us, self.ok),
                    schedule_lag: hist(1, 0),
                    ..Default::default()
                }],
                events: vec![],
            })),
        }
    }
}

fn done(run_id: &str, slot: u32, ok: u64, insert_id_base: u64) -> pb::WorkerMessage {
    pb::WorkerMessage {
        msg: Some(Msg::Done(pb::Done {
            run_id: run_id.into(),
            worker_index: slot,
            snapshots_sent: 1,
            totals: vec![pb::OperationTotals {
                name: "point_select".into(),
                ok,
                errors: vec![0; 5],
                ..Default::default()
            }],
            insert_id_base,
            ..Default::default()
        })),
    }
}

async fn dial(
    addr: &str,
    first: pb::WorkerMessage,
) -> Option<(
    mpsc::Sender<pb::WorkerMessage>,
    tonic::Streaming<pb::CoordinatorMessage>,
)> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .ok()?
        .connect()
        .await
        .ok()?;
    open(channel, first).await
}

/// A control stream on `channel` whose first message is `first`.
async fn open(
    channel: tonic::transport::Channel,
    first: pb::WorkerMessage,
) -> Option<(
    mpsc::Sender<pb::WorkerMessage>,
    tonic::Streaming<pb::CoordinatorMessage>,
)> {
    let mut client = pb::fleet_client::FleetClient::new(channel);
    let (tx, rx) = mpsc::channel(4096);
    tx.send(first).await.ok()?;
    let inbound = client
        .control(ReceiverStream::new(rx))
        .await
        .ok()?
        .into_inner();
    Some((tx, inbound))
}

fn vm_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_worker_cannot_hang_inflate_corrupt_or_take_over_a_run() {
    let site = Site::new(1000, &[]);
    let mut coordinator = site.coordinator(
        &[
            "--workers",
            "2",
            "--rate",
            "40",
            "--duration",
            "5s",
            "--interval",
            "500ms",
            "--sessions",
            "2",
            "--warmup",
            "0s",
        ],
        &[],
    );
    let pid = coordinator.id();
    let worker = site.worker(&[]);

    // Join as "mallory", a worker that holds the token (none is set here) and lies.
    let mut joined = None;
    for _ in 0..50 {
        if let Some(j) = dial(&site.addr, hello("mallory", None)).await {
            joined = Some(j);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (tx, mut inbound) = joined.expect("the coordinator listens");
    let a = loop {
        match inbound.message().await.unwrap().unwrap().msg {
            Some(FromCoordinator::Assignment(a)) => break a,
            Some(FromCoordinator::Refused(r)) => panic!("refused: {}", r.reason),
            _ => {}
        }
    };
    let (run_id, mine) = (a.run_id.clone(), a.worker_index);
    let other = 1 - mine;
    assert_eq!(a.resume_secret.len(), 32, "a 128-bit secret per slot");
    // Clock echoes with worker times 0, -1, i64::MIN/MAX, then honest ones.
    ready_until_start(&tx, &mut inbound, |id, now| match id {
        0 => (0, 0),
        1 => (-1, -1),
        2 => (i64::MIN, i64::MAX),
        3 => (i64::MAX, i64::MAX),
        _ => (now, now),
    })
    .await;
    let started = Instant::now();
    // Drain what the coordinator sends from now on.
    let drain = tokio::spawn(async move { while let Ok(Some(_)) = inbound.message().await {} });
    let rss_before = vm_kb(pid, "VmRSS:");

    let snap = |sequence, interval, op, ok, us| {
        Snap {
            run_id: &run_id,
            slot: mine,
            sequence,
            interval,
            op,
            ok,
            us,
        }
        .msg()
    };
    let mut hostile = vec![
        // One honest snapshot: 3 operations in interval 0.
        snap(0, 0, "point_select", 3, 800),
        // ok = 2^62 at 1 ms, and four of them (their sums once wrapped to 0).
        snap(1, 0, "point_select", 1 << 62, 1000),
        snap(1, 1, "point_select", 1 << 62, 1000),
        snap(2, 2, "point_select", 1 << 62, 1000),
        snap(3, 3, "point_select", 1 << 62, 1000),
        // Intervals far outside the run, and a sequence number of 2^63.
        snap(1, 1_000_000, "point_select", 1, 1000),
        snap(1, 1 << 40, "point_select", 1, 1000),
        snap(1, u64::MAX, "point_select", 1, 1000),
        snap(1 << 63, 1, "point_select", 1, 1000),
        // An operation that is not in the plan.
        snap(1, 1, "predict_one", 1, 1000),
        // A latency of 3000 s in a run that has lasted a second.
        snap(1, 1, "point_select", 1, 3_000_000_000),
        // The other worker's slot, and another run.
        Snap {
            run_id: &run_id,
            slot: other,
            sequence: 5,
            interval: 1,
            op: "point_select",
            ok: 7,
            us: 1000,
        }
        .msg(),
        Snap {
            run_id: "run-elsewhere",
            slot: mine,
            sequence: 1,
            interval: 1,
            op: "point_select",
            ok: 7,
            us: 1000,
        }
        .msg(),
        // A clock echo when it pleases, with impossible times.
        pb::WorkerMessage {
            msg: Some(Msg::TimeEcho(pb::TimeEcho {
                id: 0,
                coordinator_send_unix_nanos: 0,
                worker_receive_unix_nanos: i64::MAX,
                worker_send_unix_nanos: i64::MIN,
            })),
        },
        // The other worker's Done mid-run, with ok = 2^62; and one for another run.
        done(&run_id, other, 1 << 62, 1001 + u64::from(other)),
        done("run-elsewhere", mine, 3, 1001 + u64::from(mine)),
    ];
    // 3 000 small snapshots for intervals that do not exist: memory must not grow.
    for k in 0..3000u64 {
        hostile.push(snap(10 + k, 1_000 + k * 7919, "point_select", 0, 1));
    }
    for m in hostile {
        tx.send(m).await.unwrap();
    }

    // Take the real worker's slot: a rejoin with its run id and index, but no secret.
    for guess in ["", "00000000000000000000000000000000"] {
        let (_tx2, mut in2) = dial(
            &site.addr,
            hello("mallory-2", Some((&run_id, other, guess))),
        )
        .await
        .expect("the coordinator answers");
        match in2.message().await.unwrap().and_then(|m| m.msg) {
            Some(FromCoordinator::Refused(r)) => {
                assert!(r.reason.contains("resume secret"), "{}", r.reason);
            }
            m => panic!("a rejoin without the slot's secret was taken: {m:?}"),
        }
    }

    // Stay alive until the run's end, then the honest Done for what was accepted.
    while started.elapsed() < Duration::from_millis(5200) {
        tx.send(pb::WorkerMessage {
            msg: Some(Msg::Heartbeat(pb::Heartbeat {})),
        })
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let rss_after = vm_kb(pid, "VmRSS:");
    tx.send(done(&run_id, mine, 3, 1001 + u64::from(mine)))
        .await
        .unwrap();

    let status = tokio::task::spawn_blocking(move || {
        let s = wait_within(&mut coordinator, Duration::from_secs(30));
        (s, coordinator)
    })
    .await
    .unwrap();
    let (status, coordinator) = status;
    assert!(status.is_some(), "the coordinator ended on time");
    let (_, log) = output(coordinator);
    let (wcode, wlog) = output(worker);
    assert_eq!(wcode, Some(0), "{wlog}");
    drop(tx);
    drain.abort();

    // Every report file is there.
    for f in [
        "report.json",
        "report.txt",
        "report.csv",
        "report.hlog",
        "report.html",
    ] {
        assert!(
            site.report_dir().join(f).exists(),
            "{f} missing; log:\n{log}"
        );
    }
    let r = site.report();
    assert_eq!(r["status"], "passed", "{log}");
    assert_eq!(
        r["verification"]["merged_equals_executed"], true,
        "{}",
        r["verification"]
    );

    // The real worker's counts are exact, and the cluster holds them plus mallory's 3.
    let workers = r["workers"].as_array().unwrap();
    let real = workers.iter().find(|w| w["name"] != "mallory").unwrap();
    let evil = workers.iter().find(|w| w["name"] == "mallory").unwrap();
    let executed = u(&real["executed"]["point_select"]["ok"]);
    assert!(executed > 50, "{real}");
    assert_eq!(u(&real["operations"]["point_select"]["count"]), executed);
    let cluster = u(&r["operations"]["point_select"]["count"]);
    assert!(
        cluster <= executed + 3,
        "cluster {cluster}, executed {executed} + 3"
    );

    // No impossible value anywhere: intervals within the run, sane latencies and clocks.
    let intervals = r["intervals"].as_array().unwrap();
    assert!(
        intervals.len() <= 10,
        "{} intervals in a 5 s run of 500 ms",
        intervals.len()
    );
    for i in intervals {
        assert!(f(&i["start_s"]) < 5.0, "{i}");
    }
    assert!(f(&r["operations"]["point_select"]["response_time"]["max_ms"]) < 5_000.0);
    assert!(f(&r["operations"]["point_select"]["ok_per_s"]) < 1_000.0);
    for w in workers {
        if let Some(offset) = w["clock_offset_ms"].as_f64() {
            assert!(offset.abs() < 1_000.0, "{w}");
        }
        if let Some(delay) = w["start_delay_ms"].as_f64() {
            assert!(delay.abs() < 1_000.0, "{w}");
        }
    }

    // Each kind of lie is counted on mallory's slot by class; the claim on the real
    // worker's slot is counted there.
    let by = &evil["rejected_by_reason"];
    for class in [
        "impossible_count",
        "interval_out_of_range",
        "sequence_out_of_range",
        "unknown_operation",
        "impossible_latency",
        "wrong_slot",
        "wrong_run",
        "clock",
    ] {
        assert!(u(&by[class]) >= 1, "{class} not counted: {by}");
    }
    assert!(u(&evil["rejected_messages"]) >= 3000, "{evil}");
    assert_eq!(u(&real["rejected_by_reason"]["rejoin"]), 2, "{real}");
    assert!(
        log.contains("mallory-2"),
        "refusals name the claimant:\n{log}"
    );
    assert_eq!(
        log.matches("class=interval_out_of_range").count(),
        1,
        "logged once per class:\n{log}"
    );

    // Memory: 3 000 lies cost nothing that stays.
    assert!(
        rss_after < rss_before + 30_000,
        "coordinator RSS grew from {rss_before} KB to {rss_after} KB"
    );
}

/// Dial over mutual TLS with the client certificate `id` (PEM paths).
async fn dial_tls(
    addr: &str,
    ca: &std::path::Path,
    id: &(std::path::PathBuf, std::path::PathBuf),
    first: pb::WorkerMessage,
) -> Option<(
    mpsc::Sender<pb::WorkerMessage>,
    tonic::Streaming<pb::CoordinatorMessage>,
)> {
    use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(std::fs::read(ca).ok()?))
        .identity(Identity::from_pem(
            std::fs::read(&id.0).ok()?,
            std::fs::read(&id.1).ok()?,
        ))
        .domain_name("localhost");
    let channel = Channel::from_shared(format!("https://{addr}"))
        .ok()?
        .tls_config(tls)
        .ok()?
        .connect()
        .await
        .ok()?;
    open(channel, first).await
}

/// Under mutual TLS a slot belongs to the certificate that took it: even with the
/// slot's resume secret, another certificate of the same fleet cannot rejoin it; the
/// holder can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_mutual_tls_a_slot_is_bound_to_the_certificate_that_took_it() {
    let site = Site::new(100, &[]);
    let pki = pki(site.dir.path(), "fleet", &["localhost", "127.0.0.1"]);
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let coordinator = site.coordinator(
        &[
            "--tls-cert",
            &s(&pki.server.0),
            "--tls-key",
            &s(&pki.server.1),
            "--tls-client-ca",
            &s(&pki.ca),
            "--workers",
            "1",
            "--rate",
            "10",
            "--duration",
            "3s",
            "--interval",
            "500ms",
            "--warmup",
            "0s",
        ],
        &[],
    );
    let mut joined = None;
    for _ in 0..50 {
        if let Some(j) = dial_tls(&site.addr, &pki.ca, &pki.client, hello("holder", None)).await {
            joined = Some(j);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (tx, mut inbound) = joined.expect("the coordinator listens");
    let a = loop {
        if let Some(FromCoordinator::Assignment(a)) = inbound.message().await.unwrap().unwrap().msg
        {
            break a;
        }
    };
    ready_until_start(&tx, &mut inbound, |_, now| (now, now)).await;
    let claim = Some((a.run_id.as_str(), a.worker_index, a.resume_secret.as_str()));
    // Another certificate of the same CA, with the right secret: refused.
    let (_t, mut other) = dial_tls(&site.addr, &pki.ca, &pki.client2, hello("thief", claim))
        .await
        .expect("the handshake itself passes: same CA");
    match other.message().await.unwrap().and_then(|m| m.msg) {
        Some(FromCoordinator::Refused(r)) => {
            assert!(r.reason.contains("certificate"), "{}", r.reason);
        }
        m => panic!("another certificate took the slot: {m:?}"),
    }
    // The holder's certificate and secret: back in its slot.
    let (tx2, mut back) = dial_tls(&site.addr, &pki.ca, &pki.client, hello("holder", claim))
        .await
        .unwrap();
    match back.message().await.unwrap().and_then(|m| m.msg) {
        Some(FromCoordinator::Heartbeat(_) | FromCoordinator::Ack(_)) => {}
        m => panic!("the holder was not taken back: {m:?}"),
    }
    drop(tx);
    let one = Snap {
        run_id: &a.run_id,
        slot: a.worker_index,
        sequence: 0,
        interval: 0,
        op: "point_select",
        ok: 1,
        us: 900,
    };
    tx2.send(one.msg()).await.unwrap();
    tx2.send(done(
        &a.run_id,
        a.worker_index,
        1,
        101 + u64::from(a.worker_index),
    ))
    .await
    .unwrap();
    let (code, log) = output(coordinator);
    assert_eq!(code, Some(0), "{log}");
    let r = site.report();
    assert_eq!(
        u(&r["workers"][0]["rejected_by_reason"]["rejoin"]),
        1,
        "{}",
        r["workers"][0]
    );
    assert!(
        log.contains("thief"),
        "the refused claim names the claimant:\n{log}"
    );
}
