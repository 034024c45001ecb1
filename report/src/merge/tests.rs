//! The merge's exactness: duplicates, warm-up, packing, late snapshots, bounds.
use super::*;
use fleetload_common::histogram::record;
use fleetload_common::scenario::Operation;
use std::time::Duration;

fn snap(worker: u32, seq: u64, interval: u64, values_us: &[u64]) -> Snapshot {
    let mut s = OpStats::default();
    for v in values_us {
        record(&mut s.response, Duration::from_micros(*v));
        record(&mut s.service, Duration::from_micros(*v));
    }
    s.ok = values_us.len() as u64;
    Snapshot {
        run_id: "r".into(),
        worker_index: worker,
        sequence: seq,
        interval_index: interval,
        operations: vec![(Operation::PointSelect.into(), s)],
        events: Vec::new(),
    }
}

#[test]
fn merge_is_exact_ignores_duplicates_and_leaves_out_warmup() {
    let mut m = Merge::new(vec![Operation::PointSelect.into()], 1);
    assert_eq!(m.add(&snap(0, 0, 0, &[9_000; 10])).unwrap(), Accepted::New);
    assert_eq!(
        m.add(&snap(0, 1, 1, &[100, 200, 300])).unwrap(),
        Accepted::New
    );
    assert_eq!(m.add(&snap(1, 0, 0, &[9_000; 5])).unwrap(), Accepted::New);
    assert_eq!(m.add(&snap(1, 1, 1, &[400, 500])).unwrap(), Accepted::New);
    assert_eq!(
        m.add(&snap(1, 1, 1, &[400, 500])).unwrap(),
        Accepted::Duplicate
    );
    let total = &m.cluster_measured()[0];
    assert_eq!(
        total.ok, 5,
        "warm-up interval 0 left out, duplicate ignored"
    );
    assert!(total.response.max() < 1_000);
    let mut all = fleetload_common::histogram::new_latency();
    for v in [100u64, 200, 300, 400, 500] {
        all.record(v).unwrap();
    }
    assert_eq!(
        total.response.value_at_quantile(0.5),
        all.value_at_quantile(0.5)
    );
    assert_eq!(
        m.workers[&1].received[0].ok, 7,
        "warm-up still counted against the worker's own totals"
    );
    assert_eq!(m.workers[&1].duplicates, 1);
    assert_eq!(m.workers[&1].contiguous(), Some(1));
}

/// Packing is exact and a late snapshot still lands: what the report depends on.
#[test]
fn packed_intervals_read_back_exactly_and_take_late_snapshots() {
    let mut m = Merge::new(vec![Operation::PointSelect.into()], 0);
    let mut rng = fleetload_common::rng::Rng::new(9);
    for w in 0..50u32 {
        let values: Vec<u64> = (0..40).map(|_| 1 + rng.range(200, 300_000)).collect();
        m.add(&snap(w, 0, 0, &values)).unwrap();
    }
    let before = m.intervals[&0].cluster().into_owned();
    let briefs = m.intervals[&0].per_worker().into_owned();
    let open_bytes = before[0].response.distinct_values() * 8 * 3;
    m.pack(0);
    let agg = &m.intervals[&0];
    assert!(matches!(agg.held, Held::Packed { .. }));
    let after = agg.cluster();
    assert_eq!(after[0].ok, 2_000);
    assert_eq!(after[0].response, before[0].response);
    assert_eq!(after[0].service, before[0].service);
    assert_eq!(agg.per_worker().as_ref(), &briefs);
    assert_eq!(agg.workers_reporting(), 50);
    let Held::Packed { cluster, .. } = &agg.held else {
        unreachable!()
    };
    assert!(
        cluster[0].encoded_len() * 4 < open_bytes,
        "packed {} bytes vs {open_bytes} open",
        cluster[0].encoded_len()
    );
    // A late snapshot unpacks the interval; the next pack packs it again.
    m.intervals.get_mut(&0).unwrap().closed = true;
    m.add(&snap(50, 0, 0, &[7_000_000])).unwrap();
    assert_eq!(m.intervals[&0].late, 1);
    assert_eq!(m.intervals[&0].cluster()[0].ok, 2_001);
    assert!(m.intervals[&0].cluster()[0].response.max() >= 7_000_000);
    m.add(&snap(0, 1, 1, &[100])).unwrap();
    m.pack(1);
    assert!(matches!(m.intervals[&0].held, Held::Packed { .. }));
    assert_eq!(m.intervals[&0].workers_reporting(), 51);
    assert_eq!(m.cluster_measured()[0].ok, 2_002);
}

/// Four snapshots of 2^62 once wrapped the sums to 0 and the run passed: a sum that
/// would not fit is refused whole, and nothing of it is merged.
#[test]
fn a_snapshot_whose_counts_would_overflow_is_refused_whole() {
    let mut m = Merge::new(vec![Operation::PointSelect.into()], 0);
    m.add(&snap(0, 0, 0, &[100, 200])).unwrap();
    let mut huge = snap(1, 0, 0, &[]);
    huge.operations[0].1.errors[0] = 1 << 62;
    let mut seq = 0;
    let mut refused = 0;
    for _ in 0..5 {
        huge.sequence = seq;
        match m.add(&huge) {
            Ok(_) => seq += 1,
            Err(r) => {
                assert_eq!(r.class, RefusalClass::Overflow, "{r}");
                refused += 1;
            }
        }
    }
    assert_eq!(seq, 3, "three fit below 2^64, the fourth does not");
    assert_eq!(refused, 2);
    let total = &m.cluster_measured()[0];
    assert_eq!(total.ok, 2);
    assert_eq!(total.errors[0], 3 << 62);
    assert_eq!(
        m.workers[&1].snapshots(),
        3,
        "a refused snapshot is not held"
    );
    let mut wraps = snap(2, 0, 0, &[]);
    wraps.operations[0].1.errors[0] = u64::MAX;
    wraps.operations[0].1.errors[1] = 1;
    assert_eq!(m.add(&wraps).unwrap_err().class, RefusalClass::Overflow);
}

/// Late snapshots for many closed intervals (a worker resending after an outage, or
/// one that lies) never hold more than a few intervals unpacked at once.
#[test]
fn late_snapshots_keep_few_intervals_unpacked() {
    let mut m = Merge::new(vec![Operation::PointSelect.into()], 0);
    for k in 0..200u64 {
        m.add(&snap(0, k, k, &[100, 5_000, 90_000])).unwrap();
        m.pack(k);
    }
    assert_eq!(m.open_intervals(), 0);
    for k in 0..200u64 {
        m.add(&snap(1, k, k, &[7, 70_000])).unwrap();
        assert!(
            m.open_intervals() <= MAX_REOPENED + 1,
            "{} open",
            m.open_intervals()
        );
    }
    assert_eq!(m.cluster_measured()[0].ok, 200 * 5);
}

#[test]
fn sequences_resent_out_of_order_count_once_and_ack_the_contiguous_prefix() {
    let mut m = Merge::new(vec![Operation::PointSelect.into()], 0);
    for seq in [0u64, 1, 3, 4] {
        assert_eq!(m.add(&snap(2, seq, seq, &[100])).unwrap(), Accepted::New);
    }
    assert_eq!(m.workers[&2].contiguous(), Some(1), "2 is missing");
    assert_eq!(m.add(&snap(2, 3, 3, &[100])).unwrap(), Accepted::Duplicate);
    assert_eq!(m.add(&snap(2, 2, 2, &[100])).unwrap(), Accepted::New);
    assert_eq!(m.workers[&2].contiguous(), Some(4));
    assert_eq!(m.add(&snap(2, 0, 0, &[100])).unwrap(), Accepted::Duplicate);
    assert_eq!(m.workers[&2].snapshots(), 5);
    assert_eq!(m.workers[&2].duplicates, 2);
    assert_eq!(m.cluster_measured()[0].ok, 5);
    assert!(m.workers[&2].sent_interval(4));
    m.pack(4);
    assert!(
        !m.workers[&2].sent_interval(4),
        "closed intervals are forgotten"
    );
}
