//! Wire conversions: round trips, and refusals named by field.

use super::*;
use crate::histogram::record;
use crate::scenario::Operation;

fn assignment() -> Assignment {
    Assignment {
        run_id: "r1".into(),
        worker_index: 1,
        target: Target::parse(
            "postgres://postgres@127.0.0.1/test",
            Some("PGPASSWORD".into()),
        )
        .unwrap(),
        scenario: ScenarioRef::Builtin(Scenario::PointSelect),
        mix: vec![(Operation::PointSelect.into(), 1)],
        shard: Shard {
            first: 5001,
            last: 10_000,
        },
        rows: 10_000,
        insert_id_base: 10_002,
        insert_id_stride: 2,
        batch_size: 10,
        aurora_ml: false,
        load_rows: true,
        lease: Duration::from_secs(5),
        sessions: 16,
        load: WorkerLoad::Open {
            profile: Profile::from_points(vec![(0.0, 1000.0), (10.0, 2000.0)]).unwrap(),
            arrival: crate::schedule::Arrival::Poisson,
            phase: 0.5,
            max_backlog: Duration::from_secs(5),
            catch_up: Some(2.0),
        },
        duration: Duration::from_secs(30),
        interval: Duration::from_secs(1),
        seed: 9,
        connect_rate: 100,
        op_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(5),
        resume_secret: ResumeSecret("00ff".into()),
        max_connection_age: Some(Duration::from_secs(90)),
        reader: Some(crate::plan::Reader {
            target: Target::parse(
                "postgres://postgres@127.0.0.2/test",
                Some("PGPASSWORD".into()),
            )
            .unwrap(),
            sessions: 4,
        }),
        plan_hash: "9f86d081884c7d65".into(),
        rejoin_after_end: Some(Duration::from_secs(5)),
    }
}

#[test]
fn assignment_round_trips() {
    let a = assignment();
    assert_eq!(Assignment::try_from(pb::Assignment::from(&a)).unwrap(), a);
}

#[test]
fn out_of_bounds_assignments_are_refused_by_field() {
    let mut p = pb::Assignment::from(&assignment());
    p.shard = Some(pb::Shard {
        first: 9000,
        last: 20_000,
    });
    let e = Assignment::try_from(p).unwrap_err().to_string();
    assert!(e.contains("assignment.shard"), "{e}");
    let mut p = pb::Assignment::from(&assignment());
    p.load = Some(pb::assignment::Load::OpenLoop(pb::OpenLoop {
        rate: f64::NAN,
        max_backlog_millis: 1000,
        catch_up_factor: 0.0,
        arrival: 0,
        profile: Vec::new(),
        phase_fraction: 0.0,
    }));
    let e = Assignment::try_from(p).unwrap_err().to_string();
    assert!(e.contains("open_loop.rate"), "{e}");
    let mut p = pb::Assignment::from(&assignment());
    if let Some(pb::assignment::Load::OpenLoop(o)) = &mut p.load {
        o.profile = vec![
            pb::ProfilePoint {
                t_s: 5.0,
                value: 10.0,
            },
            pb::ProfilePoint {
                t_s: 1.0,
                value: 10.0,
            },
        ];
    }
    let e = Assignment::try_from(p).unwrap_err().to_string();
    assert!(
        e.contains("open_loop.profile") && e.contains("comes before"),
        "{e}"
    );
    let mut p = pb::Assignment::from(&assignment());
    p.scenario = "tpch".into();
    assert!(Assignment::try_from(p)
        .unwrap_err()
        .to_string()
        .contains("unknown scenario"));
}

#[test]
fn snapshot_round_trips_and_inconsistent_counts_are_refused() {
    let mut s = OpStats::default();
    for us in [100u64, 200, 300] {
        record(&mut s.response, Duration::from_micros(us));
        record(&mut s.service, Duration::from_micros(us / 2));
        record(&mut s.lag, Duration::from_micros(1));
    }
    s.ok = 3;
    s.add_error(ErrorClass::Deadlock, || "Deadlock found".into());
    let snap = Snapshot {
        run_id: "r".into(),
        worker_index: 0,
        sequence: 4,
        interval_index: 4,
        operations: vec![(Operation::PointSelect.into(), s)],
        events: vec![crate::events::WorkerEvent::Stall(crate::events::Stall {
            at: Duration::from_millis(4200),
            duration: Duration::from_millis(3000),
        })],
    };
    let back = Snapshot::try_from(snap.to_proto().unwrap()).unwrap();
    assert_eq!(back.events, snap.events);
    let (op, b) = &back.operations[0];
    assert_eq!(*op, Operation::PointSelect);
    assert_eq!(b.ok, 3);
    assert_eq!(b.errors[ErrorClass::Deadlock.index()], 1);
    assert_eq!(
        b.response.value_at_quantile(1.0),
        snap.operations[0].1.response.value_at_quantile(1.0)
    );
    assert_eq!(b.samples[0].message, "Deadlock found");

    let mut p = snap.to_proto().unwrap();
    p.operations[0].ok = 4;
    assert!(Snapshot::try_from(p)
        .unwrap_err()
        .to_string()
        .contains("response times"));
    // Rollbacks and remote transactions are some of the ok ones, never more.
    for field in ["rolled_back", "remote"] {
        let mut p = snap.to_proto().unwrap();
        match field {
            "rolled_back" => p.operations[0].rolled_back = u64::MAX,
            _ => p.operations[0].remote = 4,
        }
        let e = Snapshot::try_from(p).unwrap_err().to_string();
        assert!(e.contains(&format!("snapshot.operations.{field}")), "{e}");
    }
    let mut p = snap.to_proto().unwrap();
    p.operations[0].rolled_back = 1;
    p.operations[0].remote = 3;
    let back = Snapshot::try_from(p).unwrap();
    assert_eq!(
        (
            back.operations[0].1.rolled_back,
            back.operations[0].1.remote
        ),
        (1, 3)
    );
    let mut p = snap.to_proto().unwrap();
    p.operations[0].service_time = vec![1, 2, 3];
    assert!(Snapshot::try_from(p)
        .unwrap_err()
        .to_string()
        .contains("snapshot.service_time"));
}

#[test]
fn every_message_to_a_worker_round_trips() {
    let messages = vec![
        ToWorker::Assignment(Box::new(assignment())),
        ToWorker::Start {
            start_unix_nanos: 17,
        },
        ToWorker::Stop {
            reason: "ctl".into(),
        },
        ToWorker::Ack { sequence: 9 },
        ToWorker::Rebalance(Rebalance {
            extra: vec![Shard { first: 3, last: 8 }],
            profile: Some(Profile::from_points(vec![(0.0, 5.0), (2.0, 7.0)]).unwrap()),
        }),
        ToWorker::Rebalance(Rebalance {
            extra: Vec::new(),
            profile: None,
        }),
        ToWorker::Refused {
            reason: "full".into(),
        },
        ToWorker::TimeProbe {
            id: 3,
            coordinator_send_unix_nanos: -4,
        },
        ToWorker::Heartbeat,
    ];
    for m in messages {
        assert_eq!(from_coordinator(to_worker(&m)).unwrap(), m);
    }
}

#[test]
fn messages_from_a_worker_round_trip_and_a_bad_rebalance_or_command_is_named() {
    let echo = TimeEcho {
        id: 1,
        coordinator_send: 2,
        worker_receive: 3,
        worker_send: 4,
        coordinator_receive: None,
    };
    match from_worker(to_coordinator(&FromWorker::TimeEcho(echo)).unwrap()).unwrap() {
        FromWorker::TimeEcho(back) => assert_eq!(back, echo),
        other => panic!("{other:?}"),
    }
    let long = "x".repeat(MAX_FAILURE * 2);
    match from_worker(to_coordinator(&FromWorker::Failure(long)).unwrap()).unwrap() {
        FromWorker::Failure(m) => assert_eq!(m.len(), MAX_FAILURE),
        other => panic!("{other:?}"),
    }
    let e = from_worker(WorkerMessage { msg: None }).unwrap_err();
    assert!(e.to_string().contains("msg"), "{e}");

    let bad = CoordinatorMessage {
        msg: Some(pb::coordinator_message::Msg::Rebalance(pb::Rebalance {
            extra_shards: vec![pb::Shard { first: 9, last: 2 }],
            profile: Vec::new(),
        })),
    };
    let e = from_coordinator(bad).unwrap_err().to_string();
    assert!(e.contains("rebalance.extra_shards"), "{e}");

    for c in [
        Command::Status,
        Command::SetRate(12.5),
        Command::Pause,
        Command::Resume,
        Command::Stop("done".into()),
    ] {
        assert_eq!(command_from(command_request(&c)).unwrap(), c);
    }
    let e = command_from(command_request(&Command::SetRate(f64::NAN))).unwrap_err();
    assert!(e.to_string().contains("set-rate"), "{e}");
    let reply = CommandReply {
        ok: true,
        message: String::new(),
        status: Some(LiveStatus {
            run_id: "r".into(),
            state: "running".into(),
            elapsed_s: 1.5,
            duration_s: 10.0,
            target: "sqlite://x".into(),
            scenario: "point_select".into(),
            unit: "ops/s".into(),
            planned_now: Some(10.0),
            workers: vec![WorkerStatus {
                name: "w".into(),
                state: "running".into(),
                share: 1.0,
            }],
            last_interval: None,
            changes: Vec::new(),
        }),
    };
    assert_eq!(reply_from(command_reply(&reply)).unwrap(), reply);
}

#[test]
fn session_outages_round_trip_and_one_out_of_order_is_refused() {
    use crate::events::{SessionOutage, WorkerEvent};
    let mut failed = [0; ErrorClass::COUNT];
    failed[ErrorClass::ReadOnly.index()] = 3;
    let outage = SessionOutage {
        session: 2,
        role: crate::scenario::Role::Read,
        last_ok: Some(Duration::from_millis(3_990)),
        first_failure: Duration::from_millis(4_000),
        recovered: Some(Duration::from_millis(5_750)),
        failed,
        from_instance: Some("10.0.0.1:5432".into()),
        to_instance: Some("10.0.0.2:5432".into()),
    };
    let snap = Snapshot {
        run_id: "r".into(),
        worker_index: 0,
        sequence: 5,
        interval_index: 5,
        operations: vec![(Operation::PointSelect.into(), OpStats::default())],
        events: vec![WorkerEvent::SessionOutage(outage.clone())],
    };
    let back = Snapshot::try_from(snap.to_proto().unwrap()).unwrap();
    assert_eq!(back.events, vec![WorkerEvent::SessionOutage(outage)]);
    let mut p = snap.to_proto().unwrap();
    match &mut p.events[0].kind {
        Some(fleetload_proto::v1::worker_event::Kind::SessionOutage(o)) => {
            o.recovered_nanos = Some(1);
        }
        other => panic!("{other:?}"),
    }
    let e = Snapshot::try_from(p).unwrap_err().to_string();
    assert!(
        e.contains("session_outage") && e.contains("not in order"),
        "{e}"
    );
    // An event of a kind this side does not know is refused by name, not dropped.
    let mut p = snap.to_proto().unwrap();
    p.events[0].kind = None;
    let e = Snapshot::try_from(p).unwrap_err().to_string();
    assert!(
        e.contains("snapshot.events") && e.contains("newer worker"),
        "{e}"
    );
}

#[test]
fn logins_travel_as_where_to_find_them_and_contradictions_are_refused() {
    use crate::target::{Login, Target};
    for login in [
        Login::Iam {
            region: Some("eu-west-1".into()),
        },
        Login::Iam { region: None },
        Login::Secret {
            id: "arn:aws:secretsmanager:eu-west-1:1:secret:db".into(),
            region: None,
        },
        Login::PasswordEnv("DBPASS".into()),
    ] {
        let mut a = assignment();
        a.reader = None;
        a.target = Target::parse("postgres://app@db.example/test?sslmode=require", None)
            .unwrap()
            .with_login(login.clone())
            .unwrap();
        let back = Assignment::try_from(pb::Assignment::from(&a)).unwrap();
        assert_eq!(back.target.login(), &login);
    }
    let mut p = pb::Assignment::from(&assignment());
    p.reader_url.clear();
    p.target_url = "postgres://app@db.example/test?sslmode=require".into();
    p.iam_auth = true;
    p.password_env = "DBPASS".into();
    let e = Assignment::try_from(p.clone()).unwrap_err().to_string();
    assert!(e.contains("assignment.iam_auth"), "{e}");
    // IAM without TLS is refused on the wire as in the plan.
    p.password_env.clear();
    p.target_url = "postgres://app@db.example/test".into();
    let e = Assignment::try_from(p).unwrap_err().to_string();
    assert!(
        e.contains("assignment.target_url") && e.contains("TLS"),
        "{e}"
    );
}

#[test]
fn every_declared_counter_crosses_the_wire() {
    use crate::histogram::record;
    use crate::stats::OpCounters;
    let by_name: serde_json::Map<String, serde_json::Value> = OpCounters::NAMES
        .iter()
        .enumerate()
        .map(|(i, n)| ((*n).to_string(), serde_json::Value::from(i as u64 + 1)))
        .collect();
    let counters: OpCounters = serde_json::from_value(serde_json::Value::Object(by_name)).unwrap();
    let ok = OpCounters::NAMES.len() as u64 + 1;
    let mut stats = OpStats::from_parts(
        ok,
        [0; ErrorClass::COUNT],
        counters,
        crate::histogram::new_latency(),
        crate::histogram::new_latency(),
        crate::histogram::new_latency(),
        Vec::new(),
    );
    for _ in 0..ok {
        record(&mut stats.response, Duration::from_micros(900));
        record(&mut stats.service, Duration::from_micros(800));
        record(&mut stats.lag, Duration::from_micros(100));
    }
    let snap = Snapshot {
        run_id: "r".into(),
        worker_index: 0,
        sequence: 0,
        interval_index: 0,
        operations: vec![(Operation::PointSelect.into(), stats)],
        events: Vec::new(),
    };
    let back = Snapshot::try_from(snap.to_proto().unwrap()).unwrap();
    assert_eq!(
        back.operations[0].1.counters(),
        counters,
        "a counter declared in OpCounters but not carried by the wire"
    );
}
