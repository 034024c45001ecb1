//! The controller driven by events at chosen instants, with no sockets and no sleeps:
//! each test builds a fleet, moves time by hand and asserts what the core sends.

use super::*;
use fleetload_common::plan::RawPlan;
use fleetload_common::scenario::OpName;
use fleetload_common::split::Shard;
use fleetload_common::stats::OpStats;
use fleetload_common::wire::{Rebalance, Rejoin, ResumeSecret, Snapshot, TimeEcho};

const MS: Duration = Duration::from_millis(1);

fn plan(extra: &str) -> Plan {
    let text = format!(
        "target = \"sqlite:///tmp/never-opened.db\"\nscenario = \"point_select\"\nrows = 1200\nrate = 600.0\nduration = \"10s\"\ninterval = \"1s\"\nlease = \"3s\"\n{extra}"
    );
    let raw = RawPlan::from_toml(&text).expect("test plan parses");
    Plan::try_from(raw).expect("test plan is valid")
}

fn hello(name: &str, capacity: f64) -> Hello {
    Hello {
        protocol_version: fleetload_proto::PROTOCOL_VERSION,
        name: name.into(),
        host: "test".into(),
        cores: 1,
        max_sessions: 64,
        capacity,
        rejoin: None,
    }
}

/// A controller with time in hand and every effect it produced so far.
struct Fleet {
    core: Controller,
    now: Now,
    /// Effects of the last input only.
    last: Vec<Effect>,
    /// The start instant, once started.
    start: Option<Instant>,
    /// Each slot's assignment as sent.
    assignments: Vec<Assignment>,
}

use fleetload_common::wire::{Assignment, WorkerLoad};

impl Fleet {
    fn new(plan: Plan, workers: usize, max_workers: usize) -> Fleet {
        Fleet::with_outputs(plan, workers, max_workers, Outputs::default())
    }

    /// A fleet whose shell serves `outputs` (metrics, a dashboard, checkpoints).
    fn with_outputs(plan: Plan, workers: usize, max_workers: usize, outputs: Outputs) -> Fleet {
        let mut config = RunConfig::new(plan, workers, "run-test".into());
        config.max_workers = max_workers;
        let now = Now {
            at: Instant::now(),
            unix_nanos: 1_800_000_000_000_000_000,
        };
        Fleet {
            core: Controller::new(config, outputs, now),
            now,
            last: Vec::new(),
            start: None,
            assignments: Vec::new(),
        }
    }

    fn feed(&mut self, input: Input) -> &[Effect] {
        self.last = self.core.handle(self.now, input);
        for e in &self.last {
            match e {
                Effect::Send {
                    message: ToWorker::Assignment(a),
                    ..
                } => self.assignments.push((**a).clone()),
                Effect::Started { start, .. } => self.start = Some(*start),
                _ => {}
            }
        }
        &self.last
    }

    fn advance(&mut self, d: Duration) {
        self.now = self.now.after(d);
    }

    /// Move time to `t` after the start, ticking at every deadline on the way, as the
    /// shell does.
    fn run_until(&mut self, t: Duration) -> Vec<Effect> {
        let until = self.start.expect("started") + t;
        let mut all = Vec::new();
        while let Some(d) = self.core.next_deadline().filter(|d| *d <= until) {
            if d > self.now.at {
                self.advance(d - self.now.at);
            }
            self.feed(Input::Tick);
            all.append(&mut self.last);
        }
        if until > self.now.at {
            self.advance(until - self.now.at);
        }
        all
    }

    fn join(&mut self, conn: u64, name: &str, capacity: f64) -> &[Effect] {
        self.feed(Input::Joined(Arrival {
            conn,
            hello: hello(name, capacity),
            peer: None,
            cert: None,
        }))
    }

    fn say(&mut self, conn: u64, message: FromWorker) -> &[Effect] {
        self.feed(Input::Message { conn, message })
    }

    /// Join workers with these capacities (conns 0..), make them ready, answer every
    /// clock probe with the given offsets (ns) after 2 ms, and start.
    fn start_fleet(&mut self, capacities: &[f64], offsets: &[i64]) {
        for (i, c) in capacities.iter().enumerate() {
            self.join(i as u64, &format!("w{i}"), *c);
        }
        assert!(self
            .last
            .iter()
            .any(|e| matches!(e, Effect::Target(TargetStep::BeforeAssign))));
        self.feed(Input::TargetDone(Ok(PlanUpdate::default())));
        for i in 0..capacities.len() {
            self.say(
                i as u64,
                FromWorker::Ready {
                    sessions: 4,
                    rows_loaded: 0,
                    spool: String::new(),
                },
            );
        }
        self.feed(Input::TargetDone(Ok(PlanUpdate::default())));
        // Answer every probe sent (they go out a few at a time), 2 ms later.
        let mut pending: Vec<(u64, u64, i64)> = probes(&self.last);
        while let Phase::ClockSync { .. } = self.core.phase() {
            assert!(!pending.is_empty(), "clock sync waits with no probe out");
            self.advance(2 * MS);
            let mut next = Vec::new();
            for (conn, id, sent) in pending {
                let at_worker = sent + 1_000_000 + offsets[conn as usize];
                self.say(
                    conn,
                    FromWorker::TimeEcho(TimeEcho {
                        id,
                        coordinator_send: sent,
                        worker_receive: at_worker,
                        worker_send: at_worker,
                        coordinator_receive: None,
                    }),
                );
                next.extend(probes(&self.last));
            }
            pending = next;
        }
        assert_eq!(self.core.phase(), Phase::Running);
    }

    /// Move time to `t` after the start with these workers saying they are alive
    /// every half second.
    fn run_talking(&mut self, t: Duration, conns: &[u64]) -> Vec<Effect> {
        let mut all = Vec::new();
        let mut at = self
            .now
            .at
            .saturating_duration_since(self.start.expect("started"));
        while at < t {
            at = (at + 500 * MS).min(t);
            all.extend(self.run_until(at));
            for c in conns {
                self.say(*c, FromWorker::Heartbeat);
                all.append(&mut self.last);
            }
        }
        all
    }

    /// Every worker sends an empty snapshot of interval `k` (sequence = k) and a
    /// heartbeat.
    fn snapshots(&mut self, conns: &[u64], k: u64) {
        for c in conns {
            let snap = snapshot(*c as u32, k, k, OpStats::default());
            self.say(*c, FromWorker::Snapshot(Box::new(snap)));
        }
    }
}

/// The clock probes among `effects`: (conn, round, send time).
fn probes(effects: &[Effect]) -> Vec<(u64, u64, i64)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send {
                conn,
                message:
                    ToWorker::TimeProbe {
                        id,
                        coordinator_send_unix_nanos,
                    },
            } => Some((*conn, *id, *coordinator_send_unix_nanos)),
            _ => None,
        })
        .collect()
}

fn snapshot(worker: u32, sequence: u64, k: u64, stats: OpStats) -> Snapshot {
    Snapshot {
        run_id: "run-test".into(),
        worker_index: worker,
        sequence,
        interval_index: k,
        operations: vec![(OpName::new("point_select").unwrap(), stats)],
        events: Vec::new(),
    }
}

fn sent_to(effects: &[Effect], to: u64) -> Vec<&ToWorker> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send { conn, message } if *conn == to => Some(message),
            _ => None,
        })
        .collect()
}

fn rebalance_to(effects: &[Effect], to: u64) -> Option<&Rebalance> {
    sent_to(effects, to).into_iter().find_map(|m| match m {
        ToWorker::Rebalance(r) => Some(r),
        _ => None,
    })
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

#[test]
fn the_start_instant_accounts_for_each_workers_clock_offset() {
    let mut f = Fleet::new(plan(""), 2, 2);
    let offsets = [0, 5_000_000_000];
    let before = f.now.after(Duration::ZERO);
    f.start_fleet(&[1.0, 1.0], &offsets);
    let starts: Vec<i64> = (0..2)
        .map(|c| {
            f.last
                .iter()
                .find_map(|e| match e {
                    Effect::Send {
                        conn,
                        message: ToWorker::Start { start_unix_nanos },
                    } if *conn == c => Some(*start_unix_nanos),
                    _ => None,
                })
                .expect("a start for every worker")
        })
        .collect();
    assert_eq!(
        starts[1] - starts[0],
        5_000_000_000,
        "the second worker's clock is 5 s ahead: its start is 5 s later on its clock"
    );
    // The start is the lead after the last probe round, on our clock.
    let lead = i64::try_from(Duration::from_millis(500).as_nanos()).unwrap();
    assert_eq!(starts[0], f.now.unix_nanos + lead);
    assert!(starts[0] > before.unix_nanos);
}

#[test]
fn a_worker_silent_for_a_lease_is_lost_and_the_survivors_take_its_keys_and_rate_by_capacity() {
    let mut f = Fleet::new(plan(""), 3, 3);
    f.start_fleet(&[1.0, 1.0, 2.0], &[0, 0, 0]);
    let shard_lost = f.assignments[1].shard;
    // Workers 0 and 2 keep talking; worker 1 says nothing after the start.
    let mut effects = Vec::new();
    for k in 0..4u64 {
        effects.extend(f.run_until(Duration::from_secs(k + 1) + 30 * MS));
        f.snapshots(&[0, 2], k);
        effects.extend(std::mem::take(&mut f.last));
        if effects
            .iter()
            .any(|e| matches!(e, Effect::Close { conn: 1, .. }))
        {
            break;
        }
    }
    let lost_at = effects
        .iter()
        .position(|e| matches!(e, Effect::Close { conn: 1, last: ToWorker::Stop { reason } } if reason.contains("lease")))
        .expect("worker 1 is told it is lost");
    let after = &effects[lost_at..];
    let r0 = rebalance_to(after, 0).expect("worker 0 gets a new share");
    let r2 = rebalance_to(after, 2).expect("worker 2 gets a new share");
    // Its keys split 1:2 between the survivors, together exactly its shard.
    let (a, b) = (r0.extra[0], r2.extra[0]);
    assert_eq!(a.first, shard_lost.first);
    assert_eq!(a.last + 1, b.first);
    assert_eq!(b.last, shard_lost.last);
    assert!((b.len() as f64 / a.len() as f64 - 2.0).abs() < 0.05);
    // The rate: 600 ops/s split 1:2 from now on.
    let late = 9.5;
    assert!(close(r0.profile.as_ref().unwrap().value_at(late), 200.0));
    assert!(close(r2.profile.as_ref().unwrap().value_at(late), 400.0));
    assert!(
        rebalance_to(after, 1).is_none(),
        "nothing more to the lost worker"
    );
}

#[test]
fn a_rejoin_with_the_slots_secret_is_acknowledged_up_to_what_the_merge_holds() {
    let mut f = Fleet::new(plan(""), 1, 1);
    f.start_fleet(&[1.0], &[0]);
    f.run_until(Duration::from_secs(2) + 30 * MS);
    f.snapshots(&[0], 0);
    f.snapshots(&[0], 1);
    f.feed(Input::Closed {
        conn: 0,
        error: Some("reset".into()),
    });
    let secret = f.assignments[0].resume_secret.clone();
    let claim = |secret: ResumeSecret| {
        let mut h = hello("w0", 1.0);
        h.rejoin = Some(Rejoin {
            run_id: "run-test".into(),
            worker_index: 0,
            secret,
            spool: String::new(),
        });
        h
    };
    // A stranger with the token but not the secret is refused and counted.
    f.feed(Input::Joined(Arrival {
        conn: 7,
        hello: claim(ResumeSecret("00".repeat(16))),
        peer: None,
        cert: None,
    }));
    assert!(matches!(
        &f.last[..],
        [Effect::Close {
            conn: 7,
            last: ToWorker::Refused { .. }
        }]
    ));
    f.feed(Input::Joined(Arrival {
        conn: 8,
        hello: claim(secret),
        peer: None,
        cert: None,
    }));
    // Acknowledged up to what is held, then its share again (it may have paused).
    assert!(matches!(
        sent_to(&f.last, 8)[..],
        [ToWorker::Ack { sequence: 1 }, ToWorker::Rebalance(_)]
    ));
    // The slot now lives on the new stream: its snapshots are acknowledged there.
    f.run_until(Duration::from_secs(3) + 30 * MS);
    let snap = snapshot(0, 2, 2, OpStats::default());
    f.say(8, FromWorker::Snapshot(Box::new(snap)));
    assert!(sent_to(&f.last, 8)
        .iter()
        .any(|m| matches!(m, ToWorker::Ack { sequence: 2 })));
}

#[test]
fn a_late_joiner_gets_its_share_from_the_next_interval() {
    let mut f = Fleet::new(plan(""), 2, 3);
    f.start_fleet(&[1.0, 1.0], &[0, 0]);
    f.run_until(Duration::from_millis(2300));
    f.join(5, "late", 1.0);
    let effects = std::mem::take(&mut f.last);
    let a = f.assignments.last().expect("the newcomer is assigned");
    assert_eq!(a.worker_index, 2);
    assert_eq!(
        a.shard,
        Shard {
            first: 1,
            last: 1200
        }
    );
    let WorkerLoad::Open { profile, .. } = &a.load else {
        panic!("open loop")
    };
    assert!(close(profile.value_at(2.9), 0.0), "nothing before 3 s");
    assert!(close(profile.value_at(3.5), 200.0), "a third from 3 s");
    for c in [0, 1] {
        let r = rebalance_to(&effects, c).expect("the others get their new share");
        let p = r.profile.as_ref().unwrap();
        assert!(close(p.value_at(2.9), 300.0), "half until the boundary");
        assert!(close(p.value_at(3.5), 200.0), "a third from it");
    }
    // It starts once its clock is probed.
    f.say(
        5,
        FromWorker::Ready {
            sessions: 4,
            rows_loaded: 0,
            spool: String::new(),
        },
    );
    let probes = sent_to(&f.last, 5).len();
    assert_eq!(probes as u64, LATE_PROBES);
    let sent = f.now.unix_nanos;
    for id in 0..LATE_PROBES {
        f.say(
            5,
            FromWorker::TimeEcho(TimeEcho {
                id,
                coordinator_send: sent,
                worker_receive: sent,
                worker_send: sent,
                coordinator_receive: None,
            }),
        );
    }
    assert!(sent_to(&f.last, 5)
        .iter()
        .any(|m| matches!(m, ToWorker::Start { .. })));
}

#[test]
fn set_rate_and_pause_take_effect_at_the_next_boundary_on_every_worker() {
    let mut f = Fleet::new(plan(""), 2, 2);
    f.start_fleet(&[1.0, 3.0], &[0, 0]);
    f.run_talking(Duration::from_millis(1400), &[0, 1]);
    f.feed(Input::Command {
        id: 1,
        command: Command::SetRate(100.0),
    });
    assert!(matches!(
        f.last.iter().find(|e| matches!(e, Effect::Reply { .. })),
        Some(Effect::Reply { id: 1, reply }) if reply.ok
    ));
    for (c, share) in [(0, 0.25), (1, 0.75)] {
        let p = rebalance_to(&f.last, c).unwrap().profile.clone().unwrap();
        assert!(close(p.value_at(1.9), 600.0 * share), "unchanged until 2 s");
        assert!(close(p.value_at(2.1), 100.0 * share), "100 ops/s from 2 s");
    }
    f.run_talking(Duration::from_millis(4200), &[0, 1]);
    f.feed(Input::Command {
        id: 2,
        command: Command::Pause,
    });
    for c in [0, 1] {
        let p = rebalance_to(&f.last, c).unwrap().profile.clone().unwrap();
        assert!(p.value_at(4.9) > 0.0);
        assert!(close(p.value_at(5.1), 0.0), "paused from 5 s");
    }
    f.feed(Input::Command {
        id: 3,
        command: Command::Pause,
    });
    assert!(matches!(&f.last[..], [Effect::Reply { id: 3, reply }] if !reply.ok));
}

#[test]
fn a_failing_threshold_aborts_the_run_after_its_grace() {
    let mut f = Fleet::new(
        plan("thresholds = [\"error_rate < 1%\"]\nabort_on_fail = true\nabort_grace = \"2s\""),
        1,
        1,
    );
    f.start_fleet(&[1.0], &[0]);
    let failing = || {
        let mut s = OpStats {
            ok: 10,
            ..Default::default()
        };
        s.errors[0] = 10;
        s
    };
    let mut stop_at = None;
    for k in 0..5u64 {
        f.run_until(Duration::from_secs(k + 1) + 30 * MS);
        let snap = snapshot(0, k, k, failing());
        f.say(0, FromWorker::Snapshot(Box::new(snap)));
        if sent_to(&f.last, 0)
            .iter()
            .any(|m| matches!(m, ToWorker::Stop { reason } if reason.contains("error_rate")))
        {
            stop_at = Some(k);
            break;
        }
    }
    assert_eq!(
        stop_at,
        Some(1),
        "judged once 2 s were measured (intervals 0 and 1), not before"
    );
    assert_eq!(f.core.phase(), Phase::Draining);
    // The last snapshot and Done end the run with the reason among the failures.
    f.say(
        0,
        FromWorker::Done(Box::new(fleetload_common::wire::Done {
            run_id: "run-test".into(),
            worker_index: 0,
            snapshots_sent: 2,
            totals: Vec::new(),
            inserted: 0,
            insert_id_base: 1201,
            insert_id_last: 0,
            first_op_unix_nanos: None,
        })),
    );
    let outcome = f.last.iter().find_map(|e| match e {
        Effect::Finished(r) => r.as_ref().as_ref().ok(),
        _ => None,
    });
    let outcome = outcome.expect("the run finished");
    assert!(outcome.failures.iter().any(|m| m.contains("error_rate")));
    assert!(outcome.ran_for < Duration::from_secs(3));
}

#[test]
fn a_worker_missing_at_the_join_deadline_fails_the_run_with_the_names_that_came() {
    let mut f = Fleet::new(plan(""), 2, 2);
    f.join(0, "only", 1.0);
    let deadline = f.core.next_deadline().expect("the join deadline");
    f.advance(deadline - f.now.at);
    f.feed(Input::Tick);
    let err = f.last.iter().find_map(|e| match e {
        Effect::Finished(r) => r.as_ref().as_ref().err(),
        _ => None,
    });
    let err = err.expect("the run failed").to_string();
    assert!(
        err.contains("only 1 of 2 workers") && err.contains("only (test)"),
        "{err}"
    );
    assert!(f
        .last
        .iter()
        .any(|e| matches!(e, Effect::Close { conn: 0, .. })));
}

mod inputs;
