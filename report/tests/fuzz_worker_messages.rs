//! Property tests ("fuzzing" with a fixed budget, run in every test pass) of what a
//! worker can send the coordinator: snapshots through admission and the merge, Done
//! messages and clock echoes. Whatever arrives, nothing panics, no sum wraps, nothing
//! lands outside the run, and the unpacked intervals stay few.

use fleetload_common::plan::{Plan, RawPlan};
use fleetload_common::scenario::OpName;
use fleetload_common::wire::{Done, Snapshot};
use fleetload_proto::v1 as pb;
use fleetload_report::admission::{clock_sample, Bounds, MAX_CLOCK_OFFSET};
use fleetload_report::merge::{Accepted, Merge};
use proptest::prelude::*;
use prost::Message;
use std::time::Duration;

fn plan() -> Plan {
    Plan::try_from(RawPlan {
        target: Some("sqlite:///tmp/fuzz.db".into()),
        rate: Some(100.0),
        sessions: Some(8),
        duration: Some("20s".into()),
        interval: Some("1s".into()),
        ..RawPlan::default()
    })
    .unwrap()
}

fn count() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..50, Just(1 << 62), Just(u64::MAX), any::<u64>()]
}

fn index() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..25, Just(1 << 40), Just(u64::MAX), any::<u64>()]
}

prop_compose! {
    fn snapshot()(
        worker_index in 0u32..3,
        sequence in index(),
        interval_index in index(),
        name in prop::sample::select(vec!["point_select", "predict_one", "Bad Name", ""]),
        ok in count(),
        errors in prop::collection::vec(count(), 0..6),
        dropped_backlog in count(),
        retries in count(),
        value_us in prop_oneof![1u64..100_000, Just(3_000_000_000u64)],
        lag_samples in 0u64..3,
    ) -> pb::Snapshot {
        let hist = |n: u64| {
            let mut h = fleetload_common::histogram::new_latency();
            // V2 stores counts as i64: a larger one cannot be encoded at all (the
            // snapshot then disagrees with its histogram and is refused as malformed).
            if n > 0 && n <= i64::MAX as u64 {
                h.record_n(value_us, n).unwrap();
            }
            fleetload_common::histogram::encode(&h).unwrap()
        };
        pb::Snapshot {
            run_id: "r".into(),
            worker_index,
            sequence,
            interval_index,
            operations: vec![pb::OperationSnapshot {
                name: name.into(),
                ok,
                errors,
                dropped_backlog,
                retries,
                response_time: hist(ok),
                service_time: hist(ok),
                schedule_lag: hist(lag_samples),
                ..Default::default()
            }],
            events: Vec::new(),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    /// Snapshots a worker should never send, fed in any order at any time of the run.
    #[test]
    fn hostile_snapshots_never_wrap_escape_the_run_or_pile_up(
        messages in prop::collection::vec((snapshot(), 0u64..30_000), 1..40),
    ) {
        let plan = plan();
        let bounds = Bounds::of(&plan);
        let ops: Vec<OpName> = plan.mix.iter().map(|(op, _)| op.clone()).collect();
        let mut merge = Merge::new(ops, 0);
        let mut accepted_ok: u128 = 0;
        for (msg, at_ms) in messages {
            let Ok(snap) = Snapshot::try_from(msg) else { continue };
            let slot = snap.worker_index;
            if bounds.snapshot(&snap, slot, "r", Duration::from_millis(at_ms)).is_err() {
                continue;
            }
            if let Ok(Accepted::New) = merge.add(&snap) {
                accepted_ok += snap.operations.iter().map(|(_, s)| u128::from(s.ok)).sum::<u128>();
            }
        }
        let cluster: u128 = merge.cluster_measured().iter().map(|s| u128::from(s.ok)).sum();
        prop_assert_eq!(cluster, accepted_ok, "a sum wrapped");
        prop_assert!(merge.intervals.keys().all(|k| *k <= bounds.last_interval()));
        prop_assert!(merge.open_intervals() <= 17 + 2);
    }

    #[test]
    fn arbitrary_done_bytes_are_refused_or_bounded(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let bounds = Bounds::of(&plan());
        if let Ok(msg) = pb::Done::decode(bytes.as_slice()) {
            if let Ok(done) = Done::try_from(msg) {
                if bounds.done(&done, done.worker_index, &done.run_id, done.insert_id_base, 0).is_ok() {
                    for (_, t) in &done.totals {
                        prop_assert!(t.ok < 1 << 40);
                    }
                }
            }
        }
    }

    #[test]
    fn clock_echoes_give_a_plausible_sample_or_a_refusal(
        t1 in any::<i64>(), t2 in any::<i64>(), t3 in any::<i64>(), t4 in any::<i64>(),
        honest in any::<bool>(),
    ) {
        // Half the cases are near-honest echoes, so both outcomes are exercised.
        let (t2, t3, t4) = if honest {
            let t1 = t1 / 4;
            (t1.saturating_add(t2 % 1_000_000_000), t1.saturating_add(t2 % 1_000_000_000).saturating_add((t3 % 1_000_000).abs()), t1.saturating_add(2_000_000_000))
        } else {
            (t2, t3, t4)
        };
        let t1 = if honest { t1 / 4 } else { t1 };
        if let Ok((offset, rtt)) = clock_sample(t1, t1, t2, t3, t4) {
            prop_assert!(rtt >= 0);
            prop_assert!(offset.unsigned_abs() <= MAX_CLOCK_OFFSET.as_nanos() as u64);
        }
    }
}
