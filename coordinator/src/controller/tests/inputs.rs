//! One test per phase transition and per kind of input, in memory: what the core
//! answers each with, and what it leaves to the shell as effects.

use super::*;
use crate::metrics::MetricsUpdate;

fn done(worker: u32, snapshots_sent: u64) -> FromWorker {
    FromWorker::Done(Box::new(fleetload_common::wire::Done {
        run_id: "run-test".into(),
        worker_index: worker,
        snapshots_sent,
        totals: Vec::new(),
        inserted: 0,
        insert_id_base: 1201 + u64::from(worker),
        insert_id_last: 0,
        first_op_unix_nanos: None,
    }))
}

fn finished(effects: &[Effect]) -> Option<&Result<RunRecord, CoordinatorError>> {
    effects.iter().find_map(|e| match e {
        Effect::Finished(r) => Some(r.as_ref()),
        _ => None,
    })
}

fn ready() -> FromWorker {
    FromWorker::Ready {
        sessions: 4,
        rows_loaded: 0,
        spool: String::new(),
    }
}

#[test]
fn each_phase_follows_the_last_in_order() {
    let mut f = Fleet::new(plan(""), 2, 2);
    assert_eq!(f.core.phase(), Phase::Gathering);
    f.join(0, "w0", 1.0);
    assert_eq!(f.core.phase(), Phase::Gathering, "one of two");
    assert!(
        f.last.is_empty(),
        "nothing to do until the fleet is complete"
    );
    f.join(1, "w1", 1.0);
    assert_eq!(f.core.phase(), Phase::Preparing { assigned: false });
    assert!(matches!(
        f.last.as_slice(),
        [Effect::Target(TargetStep::BeforeAssign)]
    ));
    f.feed(Input::TargetDone(Ok(PlanUpdate::default())));
    assert_eq!(f.core.phase(), Phase::Preparing { assigned: true });
    for conn in 0..2 {
        assert!(
            sent_to(&f.last, conn)
                .iter()
                .any(|m| matches!(m, ToWorker::Assignment(_))),
            "worker {conn} is assigned its share"
        );
    }
    f.say(0, ready());
    assert_eq!(f.core.phase(), Phase::Preparing { assigned: true });
    f.say(1, ready());
    assert_eq!(f.core.phase(), Phase::Ready);
    assert!(matches!(
        f.last.as_slice(),
        [Effect::Target(TargetStep::AfterReady)]
    ));
    f.feed(Input::TargetDone(Ok(PlanUpdate::default())));
    assert!(matches!(f.core.phase(), Phase::ClockSync { .. }));
    assert!(!probes(&f.last).is_empty(), "clock sync starts by probing");
}

#[test]
fn the_run_finishes_once_every_worker_is_done_after_its_end() {
    let mut f = Fleet::new(plan(""), 2, 2);
    f.start_fleet(&[1.0, 1.0], &[0, 0]);
    for k in 0..10 {
        f.run_talking(Duration::from_secs(k + 1) - 100 * MS, &[0, 1]);
        f.snapshots(&[0, 1], k);
    }
    // Workers stop by themselves at the planned end: no Stop is needed.
    let effects = f.run_talking(Duration::from_secs(10) + 50 * MS, &[0, 1]);
    assert!(!effects.iter().any(|e| matches!(
        e,
        Effect::Send {
            message: ToWorker::Stop { .. },
            ..
        }
    )));
    f.say(0, done(0, 10));
    assert_eq!(f.core.phase(), Phase::Running, "one worker is still out");
    assert!(finished(&f.last).is_none());
    f.say(1, done(1, 10));
    assert_eq!(f.core.phase(), Phase::Done);
    let record = match finished(&f.last) {
        Some(Ok(r)) => r,
        other => panic!("the run did not finish well: {other:?}"),
    };
    assert!(record.failures.is_empty(), "{:?}", record.failures);
    assert!(!record.interrupted);
    assert_eq!(record.ran_for, Duration::from_secs(10));
    assert_eq!(record.merge.intervals.len(), 10);
}

#[test]
fn an_interrupt_before_the_start_fails_the_run_and_tells_every_worker() {
    let mut f = Fleet::new(plan(""), 2, 2);
    f.join(0, "w0", 1.0);
    f.join(1, "w1", 1.0);
    f.feed(Input::Interrupted);
    assert_eq!(f.core.phase(), Phase::Done);
    assert!(matches!(
        finished(&f.last),
        Some(Err(CoordinatorError::Cancelled))
    ));
    let closed: Vec<u64> = f
        .last
        .iter()
        .filter_map(|e| match e {
            Effect::Close {
                conn,
                last: ToWorker::Stop { .. },
            } => Some(*conn),
            _ => None,
        })
        .collect();
    assert_eq!(closed, vec![0, 1]);
}

#[test]
fn an_interrupt_while_running_stops_the_fleet_and_keeps_what_ran() {
    let mut f = Fleet::new(plan(""), 1, 1);
    f.start_fleet(&[1.0], &[0]);
    f.run_talking(Duration::from_millis(1900), &[0]);
    f.snapshots(&[0], 0);
    f.feed(Input::Interrupted);
    assert_eq!(f.core.phase(), Phase::Draining);
    assert!(sent_to(&f.last, 0)
        .iter()
        .any(|m| matches!(m, ToWorker::Stop { reason } if reason.contains("interrupted"))));
    // A second interrupt changes nothing more.
    f.feed(Input::Interrupted);
    assert!(sent_to(&f.last, 0).is_empty());
    f.say(0, done(0, 1));
    let record = match finished(&f.last) {
        Some(Ok(r)) => r,
        other => panic!("an interrupted run still has its record: {other:?}"),
    };
    assert!(record.interrupted);
    assert!(record.ran_for < Duration::from_secs(2));
}

#[test]
fn a_failed_target_step_fails_the_run_with_its_error() {
    let mut f = Fleet::new(plan(""), 1, 1);
    f.join(0, "w0", 1.0);
    f.feed(Input::TargetDone(Err(CoordinatorError::TargetSilent {
        message: "connection refused".into(),
    })));
    assert_eq!(f.core.phase(), Phase::Done);
    match finished(&f.last) {
        Some(Err(e)) => assert!(e.to_string().contains("connection refused"), "{e}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_worker_whose_stream_closes_before_the_start_fails_the_run_by_name() {
    let mut f = Fleet::new(plan(""), 2, 2);
    f.join(0, "w0", 1.0);
    f.join(1, "w1", 1.0);
    f.feed(Input::TargetDone(Ok(PlanUpdate::default())));
    f.feed(Input::Closed {
        conn: 1,
        error: Some("reset by peer".into()),
    });
    match finished(&f.last) {
        Some(Err(e)) => assert!(e.to_string().contains("w1"), "{e}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_stream_that_breaks_while_running_waits_out_the_lease() {
    let mut f = Fleet::new(plan(""), 2, 2);
    f.start_fleet(&[1.0, 1.0], &[0, 0]);
    f.run_talking(Duration::from_secs(1), &[0, 1]);
    f.feed(Input::Closed {
        conn: 1,
        error: Some("reset by peer".into()),
    });
    assert!(
        f.last.is_empty(),
        "a broken stream is not yet a lost worker"
    );
    // Within the lease (3 s) nothing moves; after it the survivor takes the rate.
    let within = f.run_talking(Duration::from_secs(3), &[0]);
    assert!(rebalance_to(&within, 0).is_none());
    let after = f.run_talking(Duration::from_secs(5), &[0]);
    let r = rebalance_to(&after, 0).expect("the survivor is rebalanced");
    assert_eq!(r.extra.len(), 1, "it takes the lost worker's keys");
    let whole = r.profile.as_ref().expect("open loop").value_at(6.0);
    assert!(close(whole, 600.0), "the whole rate: {whole}");
}

#[test]
fn an_invalid_message_is_refused_and_counted_and_the_run_goes_on() {
    let mut f = Fleet::new(plan(""), 1, 1);
    f.start_fleet(&[1.0], &[0]);
    f.feed(Input::Invalid {
        conn: 0,
        error: "operation name too long".into(),
    });
    assert_eq!(f.core.phase(), Phase::Running);
    assert!(finished(&f.last).is_none());
    f.run_talking(Duration::from_millis(1900), &[0]);
    f.snapshots(&[0], 0);
    f.feed(Input::Command {
        id: 1,
        command: Command::Stop("enough".into()),
    });
    f.say(0, done(0, 1));
    let record = match finished(&f.last) {
        Some(Ok(r)) => r,
        other => panic!("{other:?}"),
    };
    let rejected = &record.workers[0].rejected;
    assert!(
        rejected
            .iter()
            .any(|(class, n, detail)| class == "malformed"
                && *n == 1
                && detail.contains("too long")),
        "{rejected:?}"
    );
}

#[test]
fn commands_are_answered_in_every_phase() {
    let mut f = Fleet::new(plan(""), 1, 1);
    f.feed(Input::Command {
        id: 7,
        command: Command::Status,
    });
    assert!(
        f.last
            .iter()
            .any(|e| matches!(e, Effect::Reply { id: 7, .. })),
        "answered while gathering"
    );
    f.start_fleet(&[1.0], &[0]);
    f.feed(Input::Command {
        id: 8,
        command: Command::Status,
    });
    let status = f.last.iter().find_map(|e| match e {
        Effect::Reply { id: 8, reply } => reply.status.clone(),
        _ => None,
    });
    assert!(status.is_some(), "a running status carries the live view");
    f.feed(Input::ServiceStopped);
    assert_eq!(f.core.phase(), Phase::Done);
    f.feed(Input::Command {
        id: 9,
        command: Command::Pause,
    });
    assert!(f.last.iter().any(|e| matches!(
        e,
        Effect::Reply { id: 9, reply } if !reply.ok && reply.message.contains("ended")
    )));
}

#[test]
fn a_stopped_service_ends_the_run_with_what_was_merged() {
    let mut f = Fleet::new(plan(""), 1, 1);
    f.start_fleet(&[1.0], &[0]);
    f.run_talking(Duration::from_millis(1900), &[0]);
    f.snapshots(&[0], 0);
    f.feed(Input::ServiceStopped);
    match finished(&f.last) {
        Some(Ok(r)) => assert_eq!(r.merge.intervals.len(), 1),
        other => panic!("{other:?}"),
    }
}

#[test]
fn unauthorized_attempts_are_counted_in_any_phase_and_change_nothing_else() {
    let mut f = Fleet::new(plan(""), 1, 1);
    for _ in 0..3 {
        f.feed(Input::Unauthorized { peer: None });
        assert!(f.last.is_empty());
    }
    assert_eq!(f.core.phase(), Phase::Gathering);
    let deadline = f.core.next_deadline().expect("the join deadline");
    f.advance(deadline - f.now.at);
    f.feed(Input::Tick);
    match finished(&f.last) {
        Some(Err(e)) => assert!(e.to_string().contains("3 refused"), "{e}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn snapshots_are_acknowledged_only_once_a_checkpoint_holds_them() {
    let outputs = Outputs {
        checkpoints: true,
        ..Outputs::default()
    };
    let mut f = Fleet::with_outputs(plan("checkpoint = \"2s\""), 1, 1, outputs);
    f.start_fleet(&[1.0], &[0]);
    let mut acked_before = false;
    let mut checkpoint = None;
    for k in 0..3 {
        let effects = f.run_talking(Duration::from_secs(k + 1) - 100 * MS, &[0]);
        f.snapshots(&[0], k);
        acked_before |= sent_to(&f.last, 0)
            .iter()
            .chain(sent_to(&effects, 0).iter())
            .any(|m| matches!(m, ToWorker::Ack { .. }));
        checkpoint = checkpoint.or_else(|| {
            effects.iter().find_map(|e| match e {
                Effect::Checkpoint { acks, .. } => Some(acks.clone()),
                _ => None,
            })
        });
    }
    assert!(
        !acked_before,
        "no acknowledgement before a checkpoint is written"
    );
    let acks = checkpoint.expect("a checkpoint was asked for");
    f.feed(Input::Checkpointed(Ok(acks.clone())));
    let sequence = sent_to(&f.last, 0).iter().find_map(|m| match m {
        ToWorker::Ack { sequence } => Some(*sequence),
        _ => None,
    });
    assert_eq!(
        sequence,
        acks.get(&0).copied(),
        "acknowledged what it holds"
    );
}

#[test]
fn metrics_and_dashboard_updates_are_effects_only_when_the_shell_serves_them() {
    let served = Outputs {
        metrics: true,
        dashboard: Some(Dashboard { needs_token: true }),
        ..Outputs::default()
    };
    for outputs in [Outputs::default(), served] {
        let serving = outputs.metrics;
        let mut f = Fleet::with_outputs(plan(""), 1, 1, outputs);
        f.start_fleet(&[1.0], &[0]);
        let mut effects = f.run_talking(Duration::from_millis(900), &[0]);
        f.snapshots(&[0], 0);
        effects.append(&mut f.last);
        effects.extend(f.run_talking(Duration::from_millis(1100), &[0]));
        let metrics: Vec<&MetricsUpdate> = effects
            .iter()
            .filter_map(|e| match e {
                Effect::Metrics(m) => Some(m),
                _ => None,
            })
            .collect();
        let published: Vec<&str> = effects
            .iter()
            .filter_map(|e| match e {
                Effect::Publish { event, .. } => Some(*event),
                _ => None,
            })
            .collect();
        if serving {
            assert!(metrics
                .iter()
                .any(|m| matches!(m, MetricsUpdate::Accepted(ops) if ops.len() == 1)));
            assert!(metrics
                .iter()
                .any(|m| matches!(m, MetricsUpdate::IntervalClosed(_))));
            assert!(published.contains(&"interval"), "{published:?}");
            assert!(f.core.ui_start().needs_token);
        } else {
            assert!(metrics.is_empty() && published.is_empty());
        }
    }
}
