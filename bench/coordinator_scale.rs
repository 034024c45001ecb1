//! Coordinator merge scale: start the real `fleetload coordinator` process and play N
//! workers against it over real loopback sockets, each speaking the real protocol and
//! sending one snapshot of 5 operations (HDR histograms of realistic spread) per 1 s
//! interval. Prints the coordinator's CPU (share of one core) and peak memory over the
//! run, how long after the run's end the report was written, and whether the report's
//! cluster percentiles equal those of one histogram fed every sample sent. A benchmark:
//! it prints figures, it asserts nothing.
//!
//!   cargo run --release --example coordinator_scale -- 1000 [SECONDS] [gzip|deflate] [CHECKPOINT]
//!
//! With `viewers=N` in place of CHECKPOINT the run is made twice too, without the
//! dashboard and then with `--ui-listen` and N viewers reading its event stream.
//!
//! With CHECKPOINT (e.g. `1s`) the run is made twice in one session, first without
//! checkpoints (the baseline) and then writing report.partial.json every CHECKPOINT,
//! and the cost of the checkpoints is printed as a ratio of the two.
//!
//! `gzip` (the default) sends what a worker sends: plain V2 histograms on a gzipped
//! stream; `deflate` sends each histogram V2+deflate on a plain stream, as workers did
//! before, so both costs can be measured in one session.

use fleetload_common::histogram::{encode, encode_for_wire, merge, new_latency, record, Latency};
use fleetload_common::rng::Rng;
use fleetload_proto::v1 as pb;
use fleetload_proto::v1::coordinator_message::Msg as In;
use fleetload_proto::v1::worker_message::Msg as Out;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

const OPS: [&str; 5] = [
    "read_customer",
    "predict_one",
    "read_prediction",
    "update_usage",
    "predict_batch",
];
const SAMPLES_PER_OP: u64 = 10;

/// How the simulated workers encode their snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    Gzip,
    Deflate,
}

impl Wire {
    fn encode(self, h: &Latency) -> Result<Vec<u8>, String> {
        match self {
            Wire::Gzip => encode_for_wire(h),
            Wire::Deflate => encode(h),
        }
        .map_err(|e| e.to_string())
    }
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<&str> = after.split_whitespace().collect();
    f.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
}

fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// A latency a database would plausibly give: mostly 0.2–2 ms, a long tail to ~1 s.
fn sample(rng: &mut Rng, op: usize) -> Duration {
    let base = 200.0 * (1.0 + op as f64);
    let tail = if rng.chance(0.01) {
        1000.0 * rng.next_f64() * 300.0
    } else {
        0.0
    };
    Duration::from_micros((base * (1.0 + 4.0 * rng.next_f64()) + tail) as u64)
}

async fn worker(
    endpoint: String,
    seed: u64,
    expected: Arc<Mutex<Vec<Latency>>>,
    wire: Wire,
) -> Result<(), String> {
    let endpoint = tonic::transport::Endpoint::from_shared(endpoint)
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(30));
    // The coordinator may still be starting: a few tries, a quarter second apart.
    let mut tries = 0;
    let channel = loop {
        match endpoint.connect().await {
            Ok(c) => break c,
            Err(e) if tries >= 40 => return Err(e.to_string()),
            Err(_) => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    };
    let mut client = pb::fleet_client::FleetClient::new(channel);
    if wire == Wire::Gzip {
        client = client.send_compressed(tonic::codec::CompressionEncoding::Gzip);
    }
    let (tx, rx) = mpsc::channel(64);
    let send = |m: Out| {
        let tx = tx.clone();
        async move {
            tx.send(pb::WorkerMessage { msg: Some(m) })
                .await
                .map_err(|e| e.to_string())
        }
    };
    send(Out::Hello(pb::Hello {
        protocol_version: fleetload_proto::PROTOCOL_VERSION,
        name: format!("sim-{seed}"),
        host: "bench".into(),
        cores: 1,
        max_sessions: 100,
        capacity: 1.0,
        ..Default::default()
    }))
    .await?;
    let mut inbound = client
        .control(ReceiverStream::new(rx))
        .await
        .map_err(|e| e.to_string())?
        .into_inner();
    let (mut run_id, mut index, mut duration_ms, mut insert_id_base) = (String::new(), 0, 0, 0);
    let start = loop {
        let Some(m) = inbound.message().await.map_err(|e| e.to_string())? else {
            return Err("closed".into());
        };
        match m.msg {
            Some(In::Assignment(a)) => {
                run_id = a.run_id;
                index = a.worker_index;
                duration_ms = a.duration_millis;
                insert_id_base = a.insert_id_base;
                send(Out::Ready(pb::Ready {
                    sessions_open: 1,
                    rows_loaded: 0,
                    spool: String::new(),
                }))
                .await?;
            }
            Some(In::TimeProbe(p)) => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos() as i64;
                send(Out::TimeEcho(pb::TimeEcho {
                    id: p.id,
                    coordinator_send_unix_nanos: p.coordinator_send_unix_nanos,
                    worker_receive_unix_nanos: now,
                    worker_send_unix_nanos: now,
                }))
                .await?;
            }
            Some(In::Start(s)) => break s.start_unix_nanos,
            Some(In::Stop(s)) => return Err(s.reason),
            _ => {}
        }
    };
    // Drain the coordinator's messages (acks, heartbeats) in the background.
    let drain = tokio::spawn(async move { while let Ok(Some(_)) = inbound.message().await {} });
    let mut rng = Rng::new(seed);
    let intervals = duration_ms / 1000;
    let wall_start = UNIX_EPOCH + Duration::from_nanos(start as u64);
    let mut totals = vec![0u64; OPS.len()];
    for k in 0..intervals {
        let due = wall_start + Duration::from_millis((k + 1) * 1000 + rng.range(0, 50));
        if let Ok(wait) = due.duration_since(SystemTime::now()) {
            tokio::time::sleep(wait).await;
        }
        let mut operations = Vec::with_capacity(OPS.len());
        for (i, name) in OPS.iter().enumerate() {
            let (mut h, mut service, mut lag) = (new_latency(), new_latency(), new_latency());
            for _ in 0..SAMPLES_PER_OP {
                let d = sample(&mut rng, i);
                record(&mut h, d);
                record(&mut service, d.mul_f64(0.9));
                record(&mut lag, Duration::from_micros(rng.range(5, 60)));
            }
            if let Ok(mut e) = expected.lock() {
                merge(&mut e[i], &h);
            }
            totals[i] += SAMPLES_PER_OP;
            operations.push(pb::OperationSnapshot {
                name: (*name).into(),
                ok: SAMPLES_PER_OP,
                response_time: wire.encode(&h)?,
                service_time: wire.encode(&service)?,
                schedule_lag: wire.encode(&lag)?,
                ..Default::default()
            });
        }
        send(Out::Snapshot(pb::Snapshot {
            run_id: run_id.clone(),
            worker_index: index,
            sequence: k,
            interval_index: k,
            operations,
            events: vec![],
        }))
        .await?;
    }
    send(Out::Done(pb::Done {
        run_id,
        worker_index: index,
        snapshots_sent: intervals,
        totals: OPS
            .iter()
            .zip(&totals)
            .map(|(n, t)| pb::OperationTotals {
                name: (*n).into(),
                ok: *t,
                ..Default::default()
            })
            .collect(),
        insert_id_base,
        ..Default::default()
    }))
    .await?;
    let _ = tokio::time::timeout(Duration::from_secs(60), drain).await;
    Ok(())
}

/// What one run measured.
struct Figures {
    cpu: f64,
    rss: f64,
    report_after: Duration,
    checkpoint_bytes: u64,
    /// The fewest bytes a dashboard viewer received.
    viewer_bytes: u64,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let workers: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100);
    let secs: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10);
    let wire = match args.get(3).map(String::as_str) {
        None | Some("gzip") => Wire::Gzip,
        Some("deflate") => Wire::Deflate,
        Some(other) => panic!("wire encoding {other:?}: use gzip or deflate"),
    };
    match args.get(4) {
        None => {
            run(workers, secs, wire, "0s", 0);
        }
        Some(v) if v.starts_with("viewers=") => {
            let n: usize = v["viewers=".len()..].parse().expect("viewers=N");
            let base = run(workers, secs, wire, "0s", 0);
            let with = run(workers, secs, wire, "0s", n);
            println!(
                "{n} dashboard viewers: coordinator CPU ×{:.2} ({:+.1} points of a core), peak RSS ×{:.2}, each viewer received {:.0} KB",
                with.cpu / base.cpu.max(0.1),
                with.cpu - base.cpu,
                with.rss / base.rss.max(0.1),
                with.viewer_bytes as f64 / 1e3
            );
        }
        Some(every) => {
            let base = run(workers, secs, wire, "0s", 0);
            let with = run(workers, secs, wire, every, 0);
            println!(
                "checkpoint every {every}: coordinator CPU ×{:.2} ({:+.1} points of a core), peak RSS ×{:.2}, report {:.0} ms after the run instead of {:.0} ms (the final checkpoint), report.partial.json {:.1} MB",
                with.cpu / base.cpu.max(0.1),
                with.cpu - base.cpu,
                with.rss / base.rss.max(0.1),
                with.report_after.as_secs_f64() * 1000.0,
                base.report_after.as_secs_f64() * 1000.0,
                with.checkpoint_bytes as f64 / 1e6
            );
        }
    }
}

/// A dashboard viewer: read the event stream until it ends; returns the bytes read.
async fn view(addr: String) -> u64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(&addr).await else {
        return 0;
    };
    let req = format!("GET /events HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return 0;
    }
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(120), s.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    total
}

fn run(workers: usize, secs: u64, wire: Wire, checkpoint: &str, viewers: usize) -> Figures {
    let bin = std::env::var("FLEETLOAD_BIN").unwrap_or_else(|_| "target/release/fleetload".into());
    let dir = tempfile::tempdir().expect("temp dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let plan = dir.path().join("plan.toml");
    std::fs::write(
        &plan,
        format!(
            "target = \"sqlite://{}\"\nscenario = \"churn\"\nrows = {}\nrate = {}\nduration = \"{secs}s\"\ninterval = \"1s\"\nlease = \"60s\"\ncheckpoint = \"{checkpoint}\"\n[mix]\n{}\n",
            dir.path().join("none.db").display(),
            (workers * 10).max(100_000),
            workers * 10,
            OPS.iter().map(|o| format!("{o} = 1")).collect::<Vec<_>>().join("\n")
        ),
    )
    .expect("plan");
    let report = dir.path().join("report");
    let ui_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let ui_addr = format!("127.0.0.1:{ui_port}");
    let ui_args: Vec<String> = if viewers > 0 {
        vec![
            "--ui-listen".into(),
            ui_addr.clone(),
            "--ui-hold".into(),
            "0s".into(),
        ]
    } else {
        Vec::new()
    };
    let mut coordinator = std::process::Command::new(&bin)
        .args([
            "coordinator",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--plan",
            plan.to_str().unwrap_or_default(),
            "--workers",
            &workers.to_string(),
            "--join-timeout",
            "300s",
            "--report-dir",
            report.to_str().unwrap_or_default(),
        ])
        .args(ui_args)
        .env("FLEETLOAD_LOG", "error")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin}: {e}; build it with cargo build --release"));
    let pid = coordinator.id();
    std::thread::sleep(Duration::from_millis(500));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let expected = Arc::new(Mutex::new(
        (0..OPS.len()).map(|_| new_latency()).collect::<Vec<_>>(),
    ));
    let endpoint = format!("http://127.0.0.1:{port}");
    let viewing: Vec<_> = (0..viewers)
        .map(|_| rt.spawn(view(ui_addr.clone())))
        .collect();
    let joined = Instant::now();
    let handles: Vec<_> = (0..workers)
        .map(|i| {
            rt.spawn(worker(
                endpoint.clone(),
                i as u64 + 1,
                Arc::clone(&expected),
                wire,
            ))
        })
        .collect();
    // Wait for the start (the first snapshot's interval), then measure over the run.
    let ticks_per_s = 100.0; // Linux USER_HZ
    std::thread::sleep(Duration::from_secs(2));
    let (cpu0, t0) = (cpu_ticks(pid), Instant::now());
    std::thread::sleep(Duration::from_secs(secs.saturating_sub(2).max(1)));
    let (cpu1, t1) = (cpu_ticks(pid), Instant::now());
    let rss = peak_rss_mb(pid);
    let run_end = Instant::now();
    let mut failed = 0;
    for h in handles {
        if !matches!(rt.block_on(h), Ok(Ok(()))) {
            failed += 1;
        }
    }
    let report_json = report.join("report.json");
    while !report_json.exists() && run_end.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let report_after = run_end.elapsed();
    let _ = coordinator.wait();
    let cpu = (cpu1 - cpu0) as f64 / ticks_per_s / (t1 - t0).as_secs_f64() * 100.0;
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report_json).unwrap_or_default())
            .unwrap_or_default();
    let mut equal = true;
    let expected = expected.lock().map(|e| e.clone()).unwrap_or_default();
    for (i, op) in OPS.iter().enumerate() {
        let got = &r["operations"][op]["response_time"];
        for (key, q) in [("p50_ms", 0.5), ("p99_ms", 0.99), ("p999_ms", 0.999)] {
            let want = expected[i].value_at_quantile(q) as f64 / 1000.0;
            if got[key].as_f64() != Some(want) {
                equal = false;
                eprintln!("{op} {key}: report {} vs all samples {want}", got[key]);
            }
        }
    }
    let snapshots = workers as u64 * secs;
    // The simulated workers share this host's clock: every offset estimated is error.
    let clocks: Vec<(f64, f64)> = r["workers"]
        .as_array()
        .map(|ws| {
            ws.iter()
                .filter_map(|w| {
                    Some((
                        w["clock_offset_ms"].as_f64()?.abs(),
                        w["clock_rtt_ms"].as_f64()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    println!(
        "clocks: {} estimated, largest offset error {:.3} ms, largest probe round trip {:.3} ms, start skew {}",
        clocks.len(),
        clocks.iter().map(|c| c.0).fold(0.0, f64::max),
        clocks.iter().map(|c| c.1).fold(0.0, f64::max),
        r["start_skew_ms"].as_f64().map_or("n/a".into(), |s| format!("{s:.3} ms"))
    );
    let viewer_bytes = viewing
        .into_iter()
        .map(|h| rt.block_on(h).unwrap_or(0))
        .min()
        .unwrap_or(0);
    let checkpoint_bytes =
        std::fs::metadata(report.join("report.partial.json")).map_or(0, |m| m.len());
    println!(
        "checkpoint {checkpoint:>4}  workers {workers:>5}  wire {wire:?}  snapshots {snapshots:>7} ({} ops each)  coordinator CPU {cpu:>6.1}% of one core  peak RSS {rss:>7.1} MB  report {:>6.0} ms after the run  joined in {:.1}s  failed workers {failed}  cluster percentiles equal all-sample ones: {}",
        OPS.len(),
        report_after.as_secs_f64() * 1000.0,
        (t0 - joined).as_secs_f64(),
        if equal { "yes" } else { "NO" }
    );
    Figures {
        cpu,
        rss,
        report_after,
        checkpoint_bytes,
        viewer_bytes,
    }
}
