//! Wire cost: bytes of one operation's snapshot (3 histograms, V2+deflate, plus the
//! message's fields) for typical and worst-case latency spreads, and the control
//! stream's rate per worker at 5 operations and a 1 s interval. Prints figures.
//!
//!   cargo run --release --example wire_cost

use fleetload_common::histogram::{encode, new_latency, record};
use fleetload_common::rng::Rng;
use fleetload_proto::v1 as pb;
use prost::Message;
use std::time::Duration;

fn op_bytes(samples: usize, spread: impl Fn(&mut Rng) -> Duration) -> usize {
    let mut rng = Rng::new(7);
    let (mut resp, mut svc, mut lag) = (new_latency(), new_latency(), new_latency());
    for _ in 0..samples {
        let d = spread(&mut rng);
        record(&mut resp, d);
        record(&mut svc, d.mul_f64(0.9));
        record(&mut lag, Duration::from_micros(rng.range(5, 200)));
    }
    pb::OperationSnapshot {
        name: "predict_one".into(),
        ok: samples as u64,
        errors: vec![0, 0, 0, 1],
        response_time: encode(&resp).unwrap_or_default(),
        service_time: encode(&svc).unwrap_or_default(),
        schedule_lag: encode(&lag).unwrap_or_default(),
        ..Default::default()
    }
    .encoded_len()
}

/// A latency distribution to sample from.
type Spread = Box<dyn Fn(&mut Rng) -> Duration>;

fn main() {
    let cases: [(&str, usize, Spread); 5] = [
        ("idle (1 op)", 1, Box::new(|_| Duration::from_micros(800))),
        (
            "typical: 1 000 ops, 0.3–3 ms",
            1_000,
            Box::new(|r: &mut Rng| Duration::from_micros(r.range(300, 3_000))),
        ),
        (
            "busy: 20 000 ops, 0.2–20 ms + 1 % tail to 2 s",
            20_000,
            Box::new(|r: &mut Rng| {
                Duration::from_micros(if r.chance(0.01) {
                    r.range(20_000, 2_000_000)
                } else {
                    r.range(200, 20_000)
                })
            }),
        ),
        (
            "worst: 100 000 ops log-uniform 1 µs – 1 h",
            100_000,
            Box::new(|r: &mut Rng| Duration::from_micros((10f64.powf(r.next_f64() * 9.55)) as u64)),
        ),
        (
            "worst: 1 000 000 ops log-uniform 1 µs – 1 h",
            1_000_000,
            Box::new(|r: &mut Rng| Duration::from_micros((10f64.powf(r.next_f64() * 9.55)) as u64)),
        ),
    ];
    println!(
        "{:<48} {:>12} {:>22}",
        "one operation, one interval", "bytes", "5 ops at 1 s: bytes/s"
    );
    for (name, n, f) in cases {
        let b = op_bytes(n, f);
        println!("{name:<48} {b:>12} {:>22}", b * 5 + 60);
    }
    println!("(+ an Ack of ~10 bytes per snapshot the other way; heartbeats only when idle)");
}
