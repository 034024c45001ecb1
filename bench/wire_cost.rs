//! Wire cost: bytes per second of a worker's control stream at 5 operations and a 1 s
//! interval, for typical and worst-case latency spreads, in two encodings side by side:
//!
//! * before: each histogram V2+deflate on its own, the message uncompressed;
//! * now: each histogram plain V2, the whole message gzipped by gRPC (what a worker
//!   sends since the control stream is compressed), 5 bytes of gRPC framing included.
//!
//!   cargo run --release --example wire_cost

use fleetload_common::histogram::{encode, encode_for_wire, new_latency, record, Latency};
use fleetload_common::rng::Rng;
use fleetload_proto::v1 as pb;
use prost::Message;
use std::io::Write;
use std::time::Duration;

/// How a case's latencies are drawn.
type Spread = Box<dyn Fn(&mut Rng) -> Duration>;

struct Case {
    name: &'static str,
    /// Operations per second of each of the 5 operations.
    per_op: usize,
    spread: Spread,
    /// Closed loop: service time equals response time and there is no schedule lag.
    closed: bool,
}

/// One operation's three histograms for one interval.
fn histograms(case: &Case, rng: &mut Rng) -> [Latency; 3] {
    let (mut resp, mut svc, mut lag) = (new_latency(), new_latency(), new_latency());
    for _ in 0..case.per_op {
        let service = (case.spread)(rng);
        if case.closed {
            record(&mut resp, service);
            record(&mut svc, service);
        } else {
            let late = Duration::from_micros(rng.range(5, 60));
            record(&mut resp, service + late);
            record(&mut svc, service);
            record(&mut lag, late);
        }
    }
    [resp, svc, lag]
}

fn snapshot(ops: &[[Latency; 3]], enc: fn(&Latency) -> Vec<u8>) -> pb::Snapshot {
    let names = [
        "point_select",
        "predict_one",
        "predict_batch",
        "read_customer",
        "score_new",
    ];
    pb::Snapshot {
        run_id: "run-20261127-070000-1a2b".into(),
        worker_index: 17,
        sequence: 1234,
        interval_index: 1234,
        operations: ops
            .iter()
            .zip(names)
            .map(|([r, s, l], name)| pb::OperationSnapshot {
                name: name.into(),
                ok: r.len(),
                errors: vec![0, 0, 0, 1],
                response_time: enc(r),
                service_time: enc(s),
                schedule_lag: enc(l),
                ..Default::default()
            })
            .collect(),
        events: vec![],
    }
}

fn gzip(bytes: &[u8]) -> usize {
    // tonic compresses each message with gzip at level 6.
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    z.write_all(bytes).expect("gzip to memory");
    z.finish().expect("gzip to memory").len()
}

/// A log-normal latency around `median_us` (Box–Muller).
fn lognormal(r: &mut Rng, median_us: f64, sigma: f64) -> Duration {
    let (u1, u2) = (r.next_f64().max(1e-12), r.next_f64());
    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    Duration::from_micros((median_us * (sigma * z).exp()) as u64)
}

fn main() {
    let lognormal_1ms: fn(&mut Rng) -> Duration = |r| lognormal(r, 1_000.0, 0.5);
    let log_uniform: fn(&mut Rng) -> Duration =
        |r| Duration::from_micros(10f64.powf(r.next_f64() * 9.55) as u64);
    let case = |name, per_op, spread: Spread, closed| Case {
        name,
        per_op,
        spread,
        closed,
    };
    let cases = [
        case("idle: 1 op/s", 1, Box::new(lognormal_1ms), false),
        case(
            "log-normal 1 ms (σ 0.5), 100/s",
            100,
            Box::new(lognormal_1ms),
            false,
        ),
        case(
            "log-normal 0.2 ms (σ 0.3), 1 000/s",
            1_000,
            Box::new(|r: &mut Rng| lognormal(r, 200.0, 0.3)),
            false,
        ),
        case(
            "log-normal 1 ms (σ 0.5), 1 000/s",
            1_000,
            Box::new(lognormal_1ms),
            false,
        ),
        case("same, closed loop", 1_000, Box::new(lognormal_1ms), true),
        case(
            "uniform 0.3–3 ms, 1 000/s",
            1_000,
            Box::new(|r: &mut Rng| Duration::from_micros(r.range(300, 3_000))),
            false,
        ),
        case(
            "log-normal 1 ms (σ 0.5), 5 000/s",
            5_000,
            Box::new(lognormal_1ms),
            false,
        ),
        case(
            "busy: 0.2–20 ms + 1 % to 2 s, 20 000/s",
            20_000,
            Box::new(|r: &mut Rng| {
                Duration::from_micros(if r.chance(0.01) {
                    r.range(20_000, 2_000_000)
                } else {
                    r.range(200, 20_000)
                })
            }),
            false,
        ),
        case(
            "worst: log-uniform 1 µs – 1 h, 100 000/s",
            100_000,
            Box::new(log_uniform),
            false,
        ),
    ];
    println!(
        "control stream of one worker, 5 operations, one snapshot per second (bytes/s)\n{:<44} {:>16} {:>16} {:>7}",
        "latencies of each operation", "V2+deflate each", "V2, gzip stream", "ratio"
    );
    for case in &cases {
        let mut rng = Rng::new(7);
        let ops: Vec<[Latency; 3]> = (0..5).map(|_| histograms(case, &mut rng)).collect();
        let before = snapshot(&ops, |h| encode(h).unwrap_or_default()).encoded_len() + 5;
        let now =
            gzip(&snapshot(&ops, |h| encode_for_wire(h).unwrap_or_default()).encode_to_vec()) + 5;
        println!(
            "{:<44} {before:>16} {now:>16} {:>7.2}",
            case.name,
            now as f64 / before as f64
        );
    }
    println!("(+ an Ack of ~10 bytes per snapshot the other way; heartbeats only when idle)");
}
