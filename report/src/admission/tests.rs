//! Every bound of what a worker may send, with a value just inside and one past it.

use super::*;
use fleetload_common::histogram::record;
use fleetload_common::plan::RawPlan;
use fleetload_common::scenario::Operation;
use fleetload_common::stats::{OpStats, OpTotals};

fn plan() -> Plan {
    Plan::try_from(RawPlan {
        target: Some("sqlite:///tmp/x.db".into()),
        rate: Some(100.0),
        sessions: Some(4),
        duration: Some("10s".into()),
        interval: Some("1s".into()),
        ..RawPlan::default()
    })
    .unwrap()
}

fn snap(seq: u64, k: u64, ok: u64) -> Snapshot {
    let mut s = OpStats::default();
    for _ in 0..ok.min(10) {
        record(&mut s.response, Duration::from_millis(2));
    }
    s.ok = ok;
    Snapshot {
        run_id: "r".into(),
        worker_index: 1,
        sequence: seq,
        interval_index: k,
        operations: vec![(Operation::PointSelect.into(), s)],
        events: Vec::new(),
    }
}

const SECOND: Duration = Duration::from_secs(1);

#[test]
fn a_snapshot_a_worker_could_have_sent_passes() {
    let b = Bounds::of(&plan());
    assert_eq!(b.snapshot(&snap(0, 0, 10), 1, "r", SECOND), Ok(()));
    assert_eq!(b.snapshot(&snap(3, 9, 10), 1, "r", 10 * SECOND), Ok(()));
    // A late joiner starts its sequence at 0 in a later interval.
    assert_eq!(b.snapshot(&snap(0, 5, 10), 1, "r", 6 * SECOND), Ok(()));
}

#[test]
fn each_impossible_field_is_refused_with_its_class() {
    use RefusalClass as C;
    let b = Bounds::of(&plan());
    let class = |s: &Snapshot, slot, run, at| b.snapshot(s, slot, run, at).unwrap_err().class;
    assert_eq!(class(&snap(0, 0, 1), 1, "other", SECOND), C::WrongRun);
    assert_eq!(class(&snap(0, 0, 1), 0, "r", SECOND), C::WrongSlot);
    for k in [10, 1_000_000, 1 << 40, u64::MAX] {
        assert_eq!(
            class(&snap(0, k, 1), 1, "r", 60 * SECOND),
            C::IntervalOutOfRange
        );
    }
    // Within the run but not yet happened: interval 8 at 2 s.
    assert_eq!(
        class(&snap(0, 8, 1), 1, "r", 2 * SECOND),
        C::IntervalOutOfRange
    );
    assert_eq!(
        class(&snap(1 << 63, 2, 1), 1, "r", 5 * SECOND),
        C::SequenceOutOfRange
    );
    assert_eq!(
        class(&snap(3, 2, 1), 1, "r", 5 * SECOND),
        C::SequenceOutOfRange
    );
    // 4 sessions for 2 s at 1 µs each: 8 000 000 at most.
    let mut s = snap(0, 0, 0);
    s.operations[0].1.errors[0] = 8_000_001;
    assert_eq!(class(&s, 1, "r", SECOND), C::ImpossibleCount);
    s.operations[0].1.errors[0] = u64::MAX;
    s.operations[0].1.errors[1] = 2;
    assert_eq!(
        class(&s, 1, "r", SECOND),
        C::ImpossibleCount,
        "a sum that wraps"
    );
    let mut s = snap(0, 0, 2);
    s.operations[0].1.rows = 1 << 62;
    assert_eq!(
        class(&s, 1, "r", SECOND),
        C::ImpossibleCount,
        "rows from two reads"
    );
    let mut s = snap(0, 0, 0);
    s.operations[0].1.dropped_backlog = 1 << 62;
    assert_eq!(class(&s, 1, "r", SECOND), C::ImpossibleCount);
    let mut s = snap(0, 0, 1);
    s.operations[0].1.response.reset();
    record(&mut s.operations[0].1.response, Duration::from_secs(3000));
    assert_eq!(class(&s, 1, "r", SECOND), C::ImpossibleLatency);
    let mut s = snap(0, 0, 1);
    s.operations[0].0 = Operation::PredictOne.into();
    assert_eq!(class(&s, 1, "r", SECOND), C::UnknownOperation);
    // A stall reported with the first snapshot after it passes; one past the run's
    // end (or of centuries) is refused.
    let stall = |at: u64, secs: u64| {
        WorkerEvent::Stall(fleetload_common::events::Stall {
            at: Duration::from_millis(at),
            duration: Duration::from_secs(secs),
        })
    };
    let mut s = snap(0, 3, 1);
    s.events = vec![stall(3_100, 3)];
    assert_eq!(b.snapshot(&s, 1, "r", 7 * SECOND), Ok(()));
    for bad in [stall(3_100, 60), stall(u64::MAX / 2, 1), stall(0, u64::MAX)] {
        s.events = vec![bad];
        assert_eq!(class(&s, 1, "r", 7 * SECOND), C::ImpossibleLatency);
    }
    // The same check for an outage: its session must exist, and it may not ride
    // with a snapshot earlier than the interval that ended it.
    let outage = |session: u32, from_ms: u64, to_ms: u64| {
        WorkerEvent::SessionOutage(fleetload_common::events::SessionOutage {
            session,
            role: fleetload_common::scenario::Role::Write,
            last_ok: None,
            first_failure: Duration::from_millis(from_ms),
            recovered: Some(Duration::from_millis(to_ms)),
            failed: [0; fleetload_common::outcome::ErrorClass::COUNT],
            from_instance: None,
            to_instance: None,
        })
    };
    s.events = vec![outage(3, 2_000, 3_500)];
    assert_eq!(b.snapshot(&s, 1, "r", 7 * SECOND), Ok(()));
    for bad in [outage(4, 2_000, 3_500), outage(0, 2_000, 30_000)] {
        s.events = vec![bad];
        assert_eq!(class(&s, 1, "r", 7 * SECOND), C::ImpossibleCount);
    }
}

fn done() -> Done {
    Done {
        run_id: "r".into(),
        worker_index: 1,
        snapshots_sent: 10,
        totals: vec![(
            Operation::PointSelect.into(),
            OpTotals {
                ok: 1000,
                ..OpTotals::default()
            },
        )],
        inserted: 0,
        insert_id_base: 7,
        insert_id_last: 0,
        first_op_unix_nanos: Some(5_000_000_000),
    }
}

#[test]
fn a_done_only_for_its_own_slot_run_and_what_was_possible() {
    use RefusalClass as C;
    let b = Bounds::of(&plan());
    let start = 5_000_000_000;
    assert_eq!(b.done(&done(), 1, "r", 7, start), Ok(()));
    let class = |d: &Done| b.done(d, 1, "r", 7, start).unwrap_err().class;
    let mut d = done();
    d.worker_index = 0;
    assert_eq!(class(&d), C::WrongSlot);
    let mut d = done();
    d.run_id = "another".into();
    assert_eq!(class(&d), C::WrongRun);
    let mut d = done();
    d.totals[0].1.ok = 1 << 62;
    assert_eq!(class(&d), C::ImpossibleDone);
    let mut d = done();
    d.snapshots_sent = 1 << 63;
    assert_eq!(class(&d), C::ImpossibleDone);
    let mut d = done();
    d.insert_id_base = 1;
    assert_eq!(class(&d), C::ImpossibleDone);
    let mut d = done();
    d.first_op_unix_nanos = Some(i64::MAX);
    assert_eq!(class(&d), C::Clock);
}

#[test]
fn clock_samples_need_our_probe_a_forward_worker_and_a_plausible_offset() {
    let ms = 1_000_000i64;
    let t1 = 1_700_000_000_000 * ms;
    // The worker is 250 ms ahead; 2 ms each way; 1 ms to answer.
    let ok = clock_sample(t1, t1, t1 + 252 * ms, t1 + 253 * ms, t1 + 5 * ms).unwrap();
    assert_eq!(ok, (250 * ms, 4 * ms));
    for (t2, t3, t4) in [
        (0, 0, t1 + ms),
        (-1, -1, t1 + ms),
        (i64::MIN, i64::MAX, t1 + ms),
        (i64::MAX, i64::MAX, t1 + ms),
        (t1, t1 + 10 * ms, t1 + ms), // answered after the echo came back
        (t1 + ms, t1, t1 + 2 * ms),  // answered before it was received
    ] {
        let r = clock_sample(t1, t1, t2, t3, t4);
        assert_eq!(
            r.map_err(|e| e.class),
            Err(RefusalClass::Clock),
            "{t2} {t3}"
        );
    }
    assert!(
        clock_sample(t1, t1 - 1, t1, t1, t1 + ms).is_err(),
        "not our probe"
    );
}
