//! The link driven by inputs at chosen instants: snapshots due, acknowledged, resent
//! after a rejoin, the dead man's switch, the spool, Done.

use super::*;
use fleetload_common::events::{SessionOutage, Stall};
use fleetload_common::profile::Profile;
use fleetload_common::scenario::Operation;
use fleetload_common::scenario_ref::ScenarioRef;
use fleetload_common::split::Shard;
use fleetload_common::target::Target;
use fleetload_common::wire::ResumeSecret;

const MS: Duration = Duration::from_millis(1);

fn assignment() -> Assignment {
    Assignment {
        run_id: "r1".into(),
        worker_index: 0,
        target: Target::parse("sqlite:///tmp/x.db", None).unwrap(),
        scenario: ScenarioRef::Builtin(fleetload_common::scenario::Scenario::PointSelect),
        mix: vec![(Operation::PointSelect.into(), 1)],
        shard: Shard {
            first: 1,
            last: 100,
        },
        rows: 100,
        insert_id_base: 101,
        insert_id_stride: 1,
        batch_size: 10,
        aurora_ml: false,
        load_rows: false,
        lease: Duration::from_secs(3),
        sessions: 4,
        load: WorkerLoad::Open {
            profile: Profile::constant(100.0),
            arrival: fleetload_common::schedule::Arrival::Uniform,
            phase: 0.0,
            max_backlog: Duration::from_secs(5),
            catch_up: Some(2.0),
        },
        duration: Duration::from_secs(10),
        interval: Duration::from_secs(1),
        seed: 1,
        connect_rate: 100,
        op_timeout: Duration::from_secs(1),
        connect_timeout: Duration::from_secs(1),
        resume_secret: ResumeSecret("s".into()),
        max_connection_age: None,
        reader: None,
        plan_hash: "h".into(),
        rejoin_after_end: None,
    }
}

/// A link with its clock in hand, answering every Measure at once as the shell does.
struct Harness {
    link: Link,
    start: Instant,
    now: Instant,
}

impl Harness {
    fn new() -> Harness {
        Harness::of(&assignment())
    }

    fn of(a: &Assignment) -> Harness {
        let start = Instant::now();
        Harness {
            link: Link::new(a, start, start),
            start,
            now: start,
        }
    }

    fn feed(&mut self, input: Input) -> Vec<Effect> {
        let mut out = Vec::new();
        let mut queue = vec![input];
        while let Some(input) = queue.pop() {
            for e in self.link.handle(self.now, input) {
                if let Effect::Measure { through } = e {
                    queue.push(Input::Measured {
                        through,
                        stats: Vec::new(),
                        events: Vec::new(),
                    });
                }
                out.push(e);
            }
        }
        out
    }

    /// Tick at every deadline up to `t` after the start.
    fn until(&mut self, t: Duration) -> Vec<Effect> {
        let until = self.start + t;
        let mut out = Vec::new();
        while let Some(d) = self.link.next_deadline().filter(|d| *d <= until) {
            self.now = self.now.max(d);
            out.extend(self.feed(Input::Tick));
        }
        self.now = until;
        out
    }
}

fn sent_snapshots(effects: &[Effect]) -> Vec<u64> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send(FromWorker::Snapshot(s)) => Some(s.sequence),
            _ => None,
        })
        .collect()
}

#[test]
fn one_snapshot_per_interval_is_sent_after_its_edge_and_kept_until_acknowledged() {
    let mut h = Harness::new();
    let effects = h.until(Duration::from_millis(1010));
    assert!(
        sent_snapshots(&effects).is_empty(),
        "not before the edge and its grace"
    );
    let mut effects = h.until(Duration::from_millis(2030));
    h.feed(Input::Received(ToWorker::Heartbeat));
    effects.extend(h.until(Duration::from_millis(3030)));
    assert_eq!(sent_snapshots(&effects), vec![0, 1, 2]);
    assert!(effects
        .iter()
        .any(|e| matches!(e, Effect::Send(FromWorker::Heartbeat))));
    h.feed(Input::Received(ToWorker::Ack { sequence: 1 }));
    assert_eq!(h.link.unacked.len(), 1);
}

#[test]
fn a_rejoin_resends_exactly_the_unacknowledged_snapshots() {
    let mut h = Harness::new();
    h.until(Duration::from_millis(2030));
    h.feed(Input::Received(ToWorker::Ack { sequence: 0 }));
    h.feed(Input::Broken("reset".into()));
    assert!(matches!(h.link.state(), State::Redialing { .. }));
    // While redialing, interval 2's snapshot is taken but not sent; the first redial
    // is at once.
    let effects = h.until(Duration::from_millis(3030));
    assert!(sent_snapshots(&effects).is_empty());
    assert!(effects.iter().any(|e| matches!(e, Effect::Redial)));
    // The coordinator says it holds 0 and 1 (1 arrived before the break).
    let effects = h.feed(Input::Rejoined { acked: Some(1) });
    assert_eq!(sent_snapshots(&effects), vec![2]);
    assert_eq!(*h.link.state(), State::Connected);
}

#[test]
fn failed_redials_back_off_and_a_lease_without_a_word_stops_the_load_and_spools() {
    let mut h = Harness::new();
    h.until(Duration::from_millis(1030));
    h.feed(Input::Broken("reset".into()));
    let mut redials = Vec::new();
    let mut stopped = false;
    for _ in 0..40 {
        let effects = h.until(h.now - h.start + 100 * MS);
        for e in &effects {
            match e {
                Effect::Redial => {
                    redials.push(h.now - h.start);
                    h.feed(Input::RejoinFailed("refused".into()));
                }
                Effect::StopLoad => stopped = true,
                _ => {}
            }
        }
        if stopped {
            break;
        }
    }
    assert!(stopped, "the dead man's switch fired");
    let gaps: Vec<Duration> = redials.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.windows(2).all(|g| g[1] >= g[0]),
        "backing off: {gaps:?}"
    );
    assert!(
        h.now - h.start >= Duration::from_secs(3) && h.now - h.start < Duration::from_secs(4),
        "after one lease from the last word"
    );
    let effects = h.feed(Input::LoadFinished { cancelled: false });
    let spooled = effects.iter().find_map(|e| match e {
        Effect::Spool { snapshots, reason } => Some((snapshots.len(), reason.clone())),
        _ => None,
    });
    let (n, reason) = spooled.expect("everything unacknowledged is spooled");
    assert!(reason.contains("lease"), "{reason}");
    assert!(n >= 4, "intervals 0..=3 at least: {n}");
}

#[test]
fn a_stop_ends_the_load_and_done_follows_the_last_snapshot() {
    let mut h = Harness::new();
    h.until(Duration::from_millis(2500));
    let effects = h.feed(Input::Received(ToWorker::Stop {
        reason: "ctl".into(),
    }));
    assert!(matches!(&effects[..], [Effect::StopLoad]));
    let effects = h.feed(Input::LoadFinished { cancelled: false });
    assert_eq!(
        sent_snapshots(&effects),
        vec![2],
        "the interval in progress"
    );
    assert!(!effects.iter().any(|e| matches!(e, Effect::Finish { .. })));
    let effects = h.until(Duration::from_millis(2500));
    assert!(matches!(
        &effects[..],
        [Effect::Finish { snapshots_sent: 3 }]
    ));
    assert_eq!(h.link.stopped(), Some("ctl"));
}

#[test]
fn a_rebalance_outside_the_key_space_or_the_sessions_is_refused() {
    let mut h = Harness::new();
    let outside = Rebalance {
        extra: vec![Shard {
            first: 50,
            last: 500,
        }],
        profile: None,
    };
    assert!(h
        .feed(Input::Received(ToWorker::Rebalance(outside)))
        .is_empty());
    let fine = Rebalance {
        extra: vec![Shard {
            first: 50,
            last: 60,
        }],
        profile: Some(Profile::constant(50.0)),
    };
    let effects = h.feed(Input::Received(ToWorker::Rebalance(fine.clone())));
    assert!(matches!(&effects[..], [Effect::ApplyLoad(r)] if *r == fine));
}

#[test]
fn a_lease_without_a_word_pauses_within_the_rejoin_window_and_a_rejoin_resumes_from_now() {
    let mut a = assignment();
    a.rejoin_after_end = Some(Duration::from_secs(2));
    let mut h = Harness::of(&a);
    h.until(Duration::from_millis(1030));
    h.feed(Input::Received(ToWorker::Heartbeat));
    // Silent from 1.03 s: at 4.03 s the lease is over.
    let effects = h.until(Duration::from_millis(4100));
    assert!(
        effects.iter().any(|e| matches!(e, Effect::PauseLoad)),
        "paused"
    );
    assert!(
        !effects.iter().any(|e| matches!(e, Effect::StopLoad)),
        "not stopped"
    );
    assert!(effects.iter().any(|e| matches!(e, Effect::Redial)));
    h.feed(Input::RejoinFailed("unreachable".into()));
    // The partition heals at 6 s: the worker rejoins, resends what is unacknowledged,
    // and the share the coordinator sends holds from now, not from the paused past.
    let effects = h.until(Duration::from_secs(6));
    for e in &effects {
        if matches!(e, Effect::Redial) {
            h.feed(Input::RejoinFailed("unreachable".into()));
        }
    }
    h.link.state = State::Redialing {
        at: None,
        backoff: REDIAL_FIRST,
    };
    let effects = h.feed(Input::Rejoined { acked: Some(0) });
    assert_eq!(sent_snapshots(&effects), vec![1, 2, 3, 4]);
    let effects = h.feed(Input::Received(ToWorker::Rebalance(Rebalance {
        extra: Vec::new(),
        profile: Some(Profile::constant(100.0)),
    })));
    let [Effect::ApplyLoad(r)] = &effects[..] else {
        panic!("{effects:?}")
    };
    let p = r.profile.as_ref().unwrap();
    assert_eq!(p.value_at(5.0), 0.0, "nothing owed for the pause");
    assert_eq!(p.value_at(6.5), 100.0);
    // Heard again: no stop, and the load runs to its end.
    let effects = h.until(Duration::from_millis(7000));
    assert!(!effects
        .iter()
        .any(|e| matches!(e, Effect::StopLoad | Effect::PauseLoad)));
}

#[test]
fn past_the_rejoin_window_the_worker_stops_and_spools() {
    let mut a = assignment();
    a.rejoin_after_end = Some(Duration::from_secs(1));
    let mut h = Harness::of(&a);
    h.until(Duration::from_millis(1030));
    let mut stopped_at = None;
    for _ in 0..200 {
        let effects = h.until(h.now - h.start + 100 * MS);
        for e in &effects {
            match e {
                Effect::Redial => {
                    h.feed(Input::RejoinFailed("unreachable".into()));
                }
                Effect::StopLoad => stopped_at = Some(h.now - h.start),
                _ => {}
            }
        }
        if stopped_at.is_some() {
            break;
        }
    }
    // The run's planned end (10 s) plus the window (1 s).
    let at = stopped_at.expect("stopped at the window's end");
    assert!(
        at >= Duration::from_secs(11) && at < Duration::from_millis(11_200),
        "{at:?}"
    );
    let effects = h.feed(Input::LoadFinished { cancelled: false });
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::Spool { snapshots, .. } if snapshots.len() == 10)),
        "{effects:?}"
    );
}

#[test]
fn a_stall_goes_into_the_snapshot_of_the_interval_it_began_in() {
    let mut h = Harness::new();
    h.until(Duration::from_millis(900));
    h.now = h.start + Duration::from_millis(3050);
    let stall = WorkerEvent::Stall(Stall {
        at: Duration::from_millis(950),
        duration: Duration::from_millis(2100),
    });
    let later = WorkerEvent::Stall(Stall {
        at: Duration::from_millis(3010),
        duration: Duration::from_millis(110),
    });
    let effects = h.link.handle(
        h.now,
        Input::Measured {
            through: 2,
            stats: Vec::new(),
            events: vec![stall.clone(), later.clone()],
        },
    );
    let sent = sent_events(&effects);
    assert_eq!(sent, vec![(0, vec![stall]), (1, vec![]), (2, vec![])]);
    // One that began in interval 3 waits for interval 3's snapshot.
    let effects = h.link.handle(
        h.now,
        Input::Measured {
            through: 3,
            stats: Vec::new(),
            events: Vec::new(),
        },
    );
    assert!(effects.iter().any(|e| matches!(e, Effect::Send(FromWorker::Snapshot(s)) if s.interval_index == 3 && s.events == vec![later.clone()])));
}

#[test]
fn a_session_outage_goes_into_the_snapshot_of_the_interval_that_ended_it() {
    let mut h = Harness::new();
    h.until(Duration::from_millis(900));
    h.now = h.start + Duration::from_millis(3050);
    let outage = |from_ms: u64, to_ms: Option<u64>| {
        WorkerEvent::SessionOutage(SessionOutage {
            session: 3,
            role: fleetload_common::scenario::Role::Write,
            last_ok: None,
            first_failure: Duration::from_millis(from_ms),
            recovered: to_ms.map(Duration::from_millis),
            failed: [0; fleetload_common::outcome::ErrorClass::COUNT],
            from_instance: None,
            to_instance: None,
        })
    };
    let ended = outage(200, Some(1_400));
    let still_down = outage(2_500, None);
    let effects = h.link.handle(
        h.now,
        Input::Measured {
            through: 2,
            stats: Vec::new(),
            events: vec![still_down.clone(), ended.clone()],
        },
    );
    let sent = sent_events(&effects);
    assert_eq!(
        sent,
        vec![(0, vec![]), (1, vec![ended]), (2, vec![still_down])]
    );
}

/// Each snapshot sent among `effects`: its interval and the events it carries.
fn sent_events(effects: &[Effect]) -> Vec<(u64, Vec<WorkerEvent>)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send(FromWorker::Snapshot(s)) => Some((s.interval_index, s.events.clone())),
            _ => None,
        })
        .collect()
}
