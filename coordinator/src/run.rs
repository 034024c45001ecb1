//! The run controller: one task that owns all run state and reacts to worker events in
//! order, so no lock guards the merge. Phases: gather N workers, assign shards and rate
//! shares, wait until every worker's sessions are open, send one start instant, merge
//! snapshots, and build the report.

use crate::error::CoordinatorError;
use crate::merge::{Accepted, Merge};
use crate::report::{Report, ReportInput, WorkerInfo};
use crate::service::{message, stop, Event, FromWorker, Outbox};
use fleetload_common::histogram::{merge as merge_histogram, new_latency};
use fleetload_common::plan::{LoadModel, Plan};
use fleetload_common::split::{split_keys, split_rate, Shard};
use fleetload_common::wire::{Assignment, Done, Hello, WorkerLoad};
use fleetload_proto::v1 as pb;
use fleetload_proto::v1::coordinator_message::Msg as ToWorker;
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How the coordinator runs a plan.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    pub plan: Plan,
    /// Workers to wait for.
    pub workers: usize,
    /// How long to wait for them.
    pub join_timeout: Duration,
    /// Lead between sending the start instant and the start itself.
    pub start_lead: Duration,
    /// Receives one line per closed interval, for a live display.
    pub progress: Option<mpsc::UnboundedSender<Progress>>,
    /// Prepare the data through the fleet first: the coordinator creates the table,
    /// every worker loads its shard, the coordinator finishes the table.
    pub prepare: Option<fleetload_db::PrepareSpec>,
    /// Counters and gauges for the Prometheus endpoint, when one is served.
    pub metrics: Option<std::sync::Arc<crate::metrics::Metrics>>,
}

impl CoordinatorConfig {
    pub fn new(plan: Plan, workers: usize) -> Self {
        CoordinatorConfig {
            plan,
            workers,
            join_timeout: Duration::from_secs(60),
            start_lead: Duration::from_millis(500),
            progress: None,
            prepare: None,
            metrics: None,
        }
    }
}

/// One closed interval of the cluster, for the live display.
#[derive(Debug, Clone)]
pub struct Progress {
    pub interval: u64,
    pub elapsed: Duration,
    pub duration: Duration,
    pub warmup: bool,
    pub workers_reporting: usize,
    pub workers: usize,
    pub ok_per_s: f64,
    pub target_rate: Option<f64>,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
    pub dropped: u64,
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = self
            .target_rate
            .map(|r| format!(" (target {r:.0})"))
            .unwrap_or_default();
        write!(
            f,
            "[{:>5.1}s/{:.0}s]{} workers {}/{}  ok/s {:.0}{target}  p50 {:.3}ms  p99 {:.3}ms  errors {}  dropped {}",
            self.elapsed.as_secs_f64(),
            self.duration.as_secs_f64(),
            if self.warmup { " warm-up" } else { "" },
            self.workers_reporting,
            self.workers,
            self.ok_per_s,
            self.p50_ms,
            self.p99_ms,
            self.errors,
            self.dropped
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Joined,
    Ready,
    Running,
    Done,
    Failed,
    Lost,
}

#[derive(Debug)]
struct Slot {
    conn: u64,
    hello: Hello,
    peer: Option<SocketAddr>,
    outbox: Option<Outbox>,
    state: State,
    shard: Shard,
    rate: Option<f64>,
    message: Option<String>,
    done: Option<Done>,
    rows_loaded: u64,
    /// When the worker last said anything (any message, heartbeats included).
    last_heard: Instant,
    /// Key ranges it took over from lost workers.
    extra: Vec<Shard>,
}

impl Slot {
    fn send(&self, msg: ToWorker) {
        if let Some(outbox) = &self.outbox {
            // Never block the controller on one slow worker; acks are cumulative and
            // the other messages are few.
            let _ = outbox.try_send(message(msg));
        }
    }

    fn stop(&mut self, reason: &str) {
        if let Some(outbox) = self.outbox.take() {
            let _ = outbox.try_send(stop(reason));
        }
    }
}

pub(crate) struct Controller {
    config: CoordinatorConfig,
    events: mpsc::Receiver<Event>,
    slots: Vec<Slot>,
    run_id: String,
    /// Who was lost and how the work was redistributed, in order.
    membership: Vec<crate::report::Membership>,
}

fn new_run_id() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .replace([':', '-'], "");
    format!(
        "run-{}-{:04x}",
        stamp.trim_end_matches('Z'),
        now.subsec_nanos() & 0xffff
    )
}

impl Controller {
    pub(crate) fn new(config: CoordinatorConfig, events: mpsc::Receiver<Event>) -> Self {
        Controller {
            config,
            events,
            slots: Vec::new(),
            run_id: new_run_id(),
            membership: Vec::new(),
        }
    }

    fn slot_of(&mut self, conn: u64) -> Option<(usize, &mut Slot)> {
        self.slots
            .iter_mut()
            .enumerate()
            .find(|(_, s)| s.conn == conn)
    }

    pub(crate) async fn run(
        mut self,
        shutdown: CancellationToken,
    ) -> Result<Report, CoordinatorError> {
        let result = self.run_inner(&shutdown).await;
        if let Err(e) = &result {
            let reason = format!("run aborted: {e}");
            for s in &mut self.slots {
                s.stop(&reason);
            }
        }
        result
    }

    async fn run_inner(
        &mut self,
        shutdown: &CancellationToken,
    ) -> Result<Report, CoordinatorError> {
        self.gather(shutdown).await?;
        let schema = match &self.config.prepare {
            Some(spec) => {
                tracing::info!(
                    rows = spec.rows,
                    "creating the table; every worker loads its shard"
                );
                Some(
                    fleetload_db::prepare::create_schema(spec)
                        .await
                        .map_err(|e| CoordinatorError::Prepare(e.to_string()))?,
                )
            }
            None => None,
        };
        self.assign()?;
        self.wait_ready(shutdown).await?;
        if let (Some(spec), Some(mut session)) = (&self.config.prepare, schema) {
            fleetload_db::prepare::finish_prepare(spec, &mut session)
                .await
                .map_err(|e| CoordinatorError::Prepare(e.to_string()))?;
            session.close().await;
            let loaded: Vec<String> = self
                .slots
                .iter()
                .map(|s| format!("{} {}", s.hello.name, s.rows_loaded))
                .collect();
            tracing::info!(loaded = %loaded.join(", "), "data prepared by the fleet");
        }
        self.collect(shutdown).await
    }

    async fn gather(&mut self, shutdown: &CancellationToken) -> Result<(), CoordinatorError> {
        let want = self.config.workers;
        let deadline = Instant::now() + self.config.join_timeout;
        tracing::info!(workers = want, "waiting for workers");
        while self.slots.len() < want {
            tokio::select! {
                ev = self.events.recv() => match ev {
                    Some(Event::Joined { conn, hello, peer, outbox }) => {
                        tracing::info!(worker = %hello.name, host = %hello.host, peer = ?peer, "worker joined ({}/{want})", self.slots.len() + 1);
                        self.slots.push(Slot { conn, hello, peer, outbox: Some(outbox), state: State::Joined, shard: Shard { first: 1, last: 1 }, rate: None, message: None, done: None, rows_loaded: 0, last_heard: Instant::now(), extra: Vec::new() });
                    }
                    Some(Event::Closed { conn, .. }) => {
                        if let Some(i) = self.slots.iter().position(|s| s.conn == conn) {
                            let gone = self.slots.remove(i);
                            tracing::warn!(worker = %gone.hello.name, "worker left before the run started");
                        }
                    }
                    Some(_) => {}
                    None => return Err(CoordinatorError::Serve("the control service stopped".into())),
                },
                _ = tokio::time::sleep_until(deadline) => {
                    let names: Vec<String> = self.slots.iter().map(|s| format!("{} ({})", s.hello.name, s.hello.host)).collect();
                    return Err(CoordinatorError::WorkersMissing {
                        joined: self.slots.len(),
                        expected: want,
                        waited: self.config.join_timeout,
                        names: if names.is_empty() { String::new() } else { format!(" (joined: {})", names.join(", ")) },
                    });
                }
                _ = shutdown.cancelled() => return Err(CoordinatorError::Cancelled),
            }
        }
        Ok(())
    }

    fn assign(&mut self) -> Result<(), CoordinatorError> {
        let plan = &self.config.plan;
        let weights: Vec<f64> = self.slots.iter().map(|s| s.hello.capacity).collect();
        let shards = split_keys(plan.rows, &weights)?;
        let n = self.slots.len() as u64;
        let loads: Vec<WorkerLoad> = match plan.load {
            LoadModel::Open {
                rate,
                arrival,
                max_backlog,
            } => split_rate(rate, &weights)?
                .into_iter()
                .map(|s| WorkerLoad::Open {
                    arrival,
                    rate: s.rate,
                    phase: s.phase,
                    max_backlog,
                })
                .collect(),
            LoadModel::Closed { think_time } => {
                vec![WorkerLoad::Closed { think_time }; self.slots.len()]
            }
        };
        for (i, (slot, (shard, load))) in self
            .slots
            .iter_mut()
            .zip(shards.into_iter().zip(loads))
            .enumerate()
        {
            slot.shard = shard;
            slot.rate = match load {
                WorkerLoad::Open { rate, .. } => Some(rate),
                WorkerLoad::Closed { .. } => None,
            };
            let a = Assignment {
                run_id: self.run_id.clone(),
                worker_index: i as u32,
                target: plan.target.clone(),
                scenario: plan.scenario.clone(),
                mix: plan.mix.clone(),
                shard,
                rows: plan.rows,
                insert_id_base: plan.rows + 1 + i as u64,
                insert_id_stride: n,
                batch_size: plan.batch,
                aurora_ml: matches!(plan.ml, fleetload_common::plan::MlMode::Aurora { .. }),
                load_rows: self.config.prepare.is_some(),
                sessions: plan.sessions,
                load,
                duration: plan.duration,
                interval: plan.interval,
                seed: plan.seed,
                connect_rate: plan.connect_rate,
                op_timeout: plan.op_timeout,
                connect_timeout: plan.connect_timeout,
                lease: plan.lease,
            };
            tracing::info!(worker = %slot.hello.name, shard = ?shard, rate = ?slot.rate, "assigned");
            slot.send(ToWorker::Assignment(pb::Assignment::from(&a)));
        }
        Ok(())
    }

    /// Refuse a worker that arrives when the run already has its fleet.
    fn refuse(&self, outbox: Outbox, name: &str) {
        let reason = format!(
            "run {} already has its {} workers; {name} is not needed",
            self.run_id, self.config.workers
        );
        let _ = outbox.try_send(message(ToWorker::Refused(pb::Refused { reason })));
    }

    async fn wait_ready(&mut self, shutdown: &CancellationToken) -> Result<(), CoordinatorError> {
        let plan = self.config.plan.clone();
        // Loading a shard takes time too: allow a generous 1 000 rows per second.
        let loading = if self.config.prepare.is_some() {
            Duration::from_secs(plan.rows / 1000)
        } else {
            Duration::ZERO
        };
        let waited = loading
            + plan.connect_timeout
            + Duration::from_secs_f64(f64::from(plan.sessions) / f64::from(plan.connect_rate))
            + Duration::from_secs(10);
        let deadline = Instant::now() + waited;
        while self.slots.iter().any(|s| s.state != State::Ready) {
            tokio::select! {
                ev = self.events.recv() => match ev {
                    Some(Event::Message { conn, message: FromWorker::Ready { sessions, rows_loaded } }) => {
                        if let Some((_, s)) = self.slot_of(conn) {
                            tracing::info!(worker = %s.hello.name, sessions, rows_loaded, "worker ready");
                            s.state = State::Ready;
                            s.rows_loaded = rows_loaded;
                        }
                    }
                    Some(Event::Message { conn, message: FromWorker::Failure(message) }) => {
                        let worker = self.slot_of(conn).map(|(_, s)| s.hello.name.clone()).unwrap_or_default();
                        return Err(CoordinatorError::WorkerFailed { worker, message });
                    }
                    Some(Event::Invalid { conn, error }) => {
                        let worker = self.slot_of(conn).map(|(_, s)| s.hello.name.clone()).unwrap_or_default();
                        return Err(CoordinatorError::WorkerFailed { worker, message: format!("protocol error: {error}") });
                    }
                    Some(Event::Closed { conn, error }) => {
                        if let Some((_, s)) = self.slot_of(conn) {
                            let worker = s.hello.name.clone();
                            return Err(match error {
                                Some(e) => CoordinatorError::WorkerFailed { worker, message: format!("stream broke while opening sessions: {e}") },
                                None => CoordinatorError::WorkerLost { worker, phase: "while opening its sessions" },
                            });
                        }
                    }
                    Some(Event::Joined { hello, outbox, .. }) => self.refuse(outbox, &hello.name),
                    Some(Event::Message { .. }) => {}
                    None => return Err(CoordinatorError::Serve("the control service stopped".into())),
                },
                _ = tokio::time::sleep_until(deadline) => {
                    let late = self.slots.iter().find(|s| s.state != State::Ready).map(|s| s.hello.name.clone()).unwrap_or_default();
                    return Err(CoordinatorError::ReadyTimeout { worker: late, waited, sessions: plan.sessions });
                }
                _ = shutdown.cancelled() => return Err(CoordinatorError::Cancelled),
            }
        }
        Ok(())
    }

    async fn collect(&mut self, shutdown: &CancellationToken) -> Result<Report, CoordinatorError> {
        let plan = self.config.plan.clone();
        if let Some(m) = &self.config.metrics {
            m.describe_run(
                &self.run_id,
                plan.scenario.name(),
                plan.target.url(),
                self.config.workers,
                plan.duration,
                match plan.load {
                    LoadModel::Open { rate, .. } => Some(rate),
                    LoadModel::Closed { .. } => None,
                },
            );
        }
        let lead = self.config.start_lead;
        let started_at = SystemTime::now() + lead;
        let start = Instant::now() + lead;
        let start_nanos = i64::try_from(
            started_at
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos(),
        )
        .unwrap_or(i64::MAX);
        for s in &mut self.slots {
            s.state = State::Running;
            s.send(ToWorker::Start(pb::Start {
                start_unix_nanos: start_nanos,
            }));
        }
        tracing::info!(run = %self.run_id, "started");
        let counters_stop = CancellationToken::new();
        let counters = tokio::spawn(crate::counters::run(
            plan.clone(),
            start,
            counters_stop.clone(),
        ));

        let warmup_intervals = (plan.warmup.as_nanos() / plan.interval.as_nanos()) as u64;
        let mut merge = Merge::new(
            plan.mix.iter().map(|(op, _)| op.clone()).collect(),
            warmup_intervals,
        );
        let last_interval = plan.interval_count() - 1;
        let late_grace = plan.interval.max(Duration::from_secs(1));
        let mut deadline = start + plan.duration + plan.op_timeout + Duration::from_secs(15);
        let mut failures = Vec::new();
        let mut interrupted = false;
        let mut next_close = 0u64;
        let mut stopped_at: Option<Instant> = None;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let mut next_heartbeat = Instant::now();
        for s in &mut self.slots {
            s.last_heard = Instant::now();
        }

        loop {
            if self
                .slots
                .iter()
                .all(|s| matches!(s.state, State::Done | State::Failed | State::Lost))
            {
                break;
            }
            tokio::select! {
                ev = self.events.recv() => {
                    let Some(ev) = ev else { break };
                    self.on_event(ev, &mut merge, &mut failures, start);
                }
                _ = tick.tick() => {
                    let now = Instant::now();
                    if now >= next_heartbeat {
                        next_heartbeat = now + plan.lease / 3;
                        for s in &self.slots {
                            if matches!(s.state, State::Running | State::Done) {
                                s.send(ToWorker::Heartbeat(pb::Heartbeat {}));
                            }
                        }
                    }
                    let mut lost_now = Vec::new();
                    for (i, s) in self.slots.iter_mut().enumerate() {
                        if s.state == State::Running && now.duration_since(s.last_heard) > plan.lease {
                            lost_now.push(i);
                            let at = now.saturating_duration_since(start).as_secs_f64();
                            let m = format!("lost at {at:.1}s: no message for longer than the lease ({:?}); network partition or a stalled host", plan.lease);
                            tracing::warn!(worker = %s.hello.name, "{m}");
                            failures.push(format!("worker {} {m}", s.hello.name));
                            s.state = State::Lost;
                            s.message = Some(m);
                            s.stop("lost: lease expired");
                        }
                    }
                    for i in lost_now {
                        let at = now.saturating_duration_since(start).as_secs_f64();
                        failures.extend(self.after_loss(i, at));
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    for s in &mut self.slots {
                        if s.state == State::Running {
                            s.state = State::Lost;
                            let m = "did not finish in time after the run ended".to_string();
                            failures.push(format!("worker {} {m}", s.hello.name));
                            s.message = Some(m);
                        }
                    }
                    break;
                }
                _ = shutdown.cancelled(), if !interrupted => {
                    interrupted = true;
                    stopped_at = Some(Instant::now());
                    tracing::warn!("interrupted: stopping the fleet and collecting final snapshots");
                    for s in &mut self.slots {
                        if s.state == State::Running {
                            s.send(ToWorker::Stop(pb::Stop { reason: "the coordinator was interrupted".into() }));
                        }
                    }
                    deadline = deadline.min(Instant::now() + Duration::from_secs(10));
                }
            }
            while next_close <= last_interval {
                let live: Vec<u32> = self
                    .slots
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| matches!(s.state, State::Running | State::Done))
                    .map(|(i, _)| i as u32)
                    .collect();
                let have_all = live.iter().all(|w| {
                    merge
                        .workers
                        .get(w)
                        .is_some_and(|a| a.intervals.contains(&next_close))
                });
                let overdue =
                    Instant::now() >= start + plan.interval * (next_close as u32 + 1) + late_grace;
                if !(have_all || overdue) || stopped_at.is_some() {
                    break;
                }
                if let Some(agg) = merge.intervals.get_mut(&next_close) {
                    agg.closed = true;
                }
                self.emit_progress(&merge, next_close, live.len());
                next_close += 1;
            }
        }
        for s in &mut self.slots {
            s.stop("run complete");
        }
        counters_stop.cancel();
        let database_counters = match counters.await {
            Ok(c) => c,
            Err(e) => crate::counters::DatabaseCounters {
                unavailable: Some(format!("the sampler failed: {e}")),
                ..Default::default()
            },
        };
        let ran_for = stopped_at.map_or(plan.duration, |t| {
            t.saturating_duration_since(start).min(plan.duration)
        });
        let workers: Vec<WorkerInfo> = self
            .slots
            .iter()
            .enumerate()
            .map(|(i, s)| WorkerInfo {
                index: i as u32,
                name: s.hello.name.clone(),
                host: s.hello.host.clone(),
                peer: s.peer.map(|p| p.to_string()),
                cores: s.hello.cores,
                capacity: s.hello.capacity,
                shard: s.shard,
                rate: s.rate,
                sessions: plan.sessions,
                state: match s.state {
                    State::Done => "done",
                    State::Failed => "failed",
                    State::Lost => "lost",
                    State::Joined | State::Ready | State::Running => "unfinished",
                },
                message: s.message.clone(),
                executed: s.done.as_ref().map(|d| d.totals.clone()),
                inserted: s
                    .done
                    .as_ref()
                    .map(|d| (d.inserted, d.insert_id_base, d.insert_id_last)),
                rows_loaded: (s.rows_loaded > 0).then_some(s.rows_loaded),
            })
            .collect();
        Ok(Report::build(
            ReportInput {
                plan: &plan,
                run_id: &self.run_id,
                started_at,
                ran_for,
                workers: &workers,
                failures,
                interrupted,
                database_counters,
                membership: self.membership.clone(),
            },
            &merge,
        ))
    }

    fn on_event(
        &mut self,
        ev: Event,
        merge: &mut Merge,
        failures: &mut Vec<String>,
        start: Instant,
    ) {
        let run_id = self.run_id.clone();
        match ev {
            Event::Joined {
                conn,
                hello,
                outbox,
                ..
            } => match &hello.rejoin {
                Some((rejoin_run, index)) if *rejoin_run == run_id => {
                    let Some(slot) = self.slots.get_mut(*index as usize) else {
                        return self.refuse(outbox, &hello.name);
                    };
                    if slot.state != State::Running {
                        let reason = format!(
                            "worker {} of run {run_id} is no longer part of it ({:?})",
                            slot.hello.name, slot.state
                        );
                        let _ = outbox.try_send(message(ToWorker::Refused(pb::Refused { reason })));
                        return;
                    }
                    tracing::info!(worker = %slot.hello.name, "worker rejoined; it resends what was not acknowledged");
                    slot.conn = conn;
                    slot.outbox = Some(outbox);
                    slot.last_heard = Instant::now();
                    let held = merge.workers.get(index).and_then(|a| a.contiguous());
                    slot.send(match held {
                        Some(seq) => ToWorker::Ack(pb::Ack { sequence: seq }),
                        None => ToWorker::Heartbeat(pb::Heartbeat {}),
                    });
                }
                _ => self.refuse(outbox, &hello.name),
            },
            Event::Message { conn, message } => {
                let metrics = self.config.metrics.clone();
                let Some((index, slot)) = self.slot_of(conn) else {
                    return;
                };
                slot.last_heard = Instant::now();
                match message {
                    FromWorker::Snapshot(snap) => {
                        if snap.run_id != run_id || snap.worker_index as usize != index {
                            tracing::warn!(worker = %slot.hello.name, "ignored a snapshot for run {} worker {}", snap.run_id, snap.worker_index);
                            return;
                        }
                        match merge.add(&snap) {
                            Ok(Accepted::New) => {
                                if let Some(m) = &metrics {
                                    m.accepted(&snap);
                                }
                            }
                            Ok(Accepted::Duplicate) => {
                                tracing::debug!(worker = %slot.hello.name, seq = snap.sequence, "duplicate snapshot ignored")
                            }
                            Err(e) => {
                                tracing::warn!(worker = %slot.hello.name, error = %e, "snapshot refused")
                            }
                        }
                        if let Some(seq) = merge
                            .workers
                            .get(&snap.worker_index)
                            .and_then(|a| a.contiguous())
                        {
                            slot.send(ToWorker::Ack(pb::Ack { sequence: seq }));
                        }
                    }
                    FromWorker::Done(done) => {
                        tracing::info!(worker = %slot.hello.name, snapshots = done.snapshots_sent, "worker done");
                        slot.state = State::Done;
                        slot.done = Some(done);
                    }
                    FromWorker::Failure(m) => {
                        failures.push(format!("worker {} failed: {m}", slot.hello.name));
                        slot.state = State::Failed;
                        slot.message = Some(m);
                        let at = start.elapsed().as_secs_f64();
                        failures.extend(self.after_loss(index, at));
                    }
                    FromWorker::Ready { .. } | FromWorker::Heartbeat => {}
                }
            }
            Event::Invalid { conn, error } => {
                if let Some((_, slot)) = self.slot_of(conn) {
                    tracing::warn!(worker = %slot.hello.name, %error, "invalid message");
                    failures.push(format!(
                        "worker {} sent an invalid message: {error}",
                        slot.hello.name
                    ));
                }
            }
            Event::Closed { conn, error } => {
                if let Some((_, slot)) = self.slot_of(conn) {
                    if slot.state == State::Running {
                        // Not lost yet: the worker keeps running and redials; the lease
                        // decides (see the tick in `collect`).
                        let at = start.elapsed().as_secs_f64();
                        tracing::warn!(worker = %slot.hello.name, at, error = ?error, "stream broke; waiting up to the lease for the worker to rejoin");
                    }
                    slot.outbox = None;
                }
            }
        }
    }

    /// Apply the plan's policy after worker `lost` left the run at `at_s`; returns a
    /// failure to record when the policy ends the run.
    fn after_loss(&mut self, lost: usize, at_s: f64) -> Option<String> {
        use fleetload_common::plan::OnWorkerLoss;
        let plan = self.config.plan.clone();
        let name = self.slots[lost].hello.name.clone();
        let mut note = |event: String| {
            tracing::warn!("{event}");
            self.membership
                .push(crate::report::Membership { t_s: at_s, event });
        };
        note(format!("worker {name} left the run"));
        match plan.on_worker_loss {
            OnWorkerLoss::Continue => None,
            OnWorkerLoss::Abort => {
                let reason = format!(
                    "run aborted at {at_s:.1}s: worker {name} was lost (on_worker_loss = abort)"
                );
                for s in &self.slots {
                    if s.state == State::Running {
                        s.send(ToWorker::Stop(pb::Stop {
                            reason: reason.clone(),
                        }));
                    }
                }
                self.membership.push(crate::report::Membership {
                    t_s: at_s,
                    event: reason.clone(),
                });
                Some(reason)
            }
            OnWorkerLoss::Rebalance => {
                let survivors: Vec<usize> = (0..self.slots.len())
                    .filter(|i| *i != lost && self.slots[*i].state == State::Running)
                    .collect();
                if survivors.is_empty() {
                    self.membership.push(crate::report::Membership {
                        t_s: at_s,
                        event: "no worker left to take over".into(),
                    });
                    return None;
                }
                let mut ranges = vec![self.slots[lost].shard];
                ranges.append(&mut self.slots[lost].extra);
                let weights: Vec<f64> = survivors
                    .iter()
                    .map(|i| self.slots[*i].hello.capacity)
                    .collect();
                for r in ranges {
                    match split_keys(r.len(), &weights) {
                        Ok(parts) => {
                            for (i, p) in survivors.iter().zip(parts) {
                                self.slots[*i].extra.push(Shard {
                                    first: r.first + p.first - 1,
                                    last: r.first + p.last - 1,
                                });
                            }
                        }
                        // Fewer keys than survivors: the first takes them all.
                        Err(_) => self.slots[survivors[0]].extra.push(r),
                    }
                }
                if let LoadModel::Open { rate, .. } = plan.load {
                    if let Ok(shares) = split_rate(rate, &weights) {
                        for (i, share) in survivors.iter().zip(shares) {
                            self.slots[*i].rate = Some(share.rate);
                        }
                    }
                }
                let mut parts = Vec::new();
                for i in &survivors {
                    let s = &self.slots[*i];
                    s.send(ToWorker::Rebalance(pb::Rebalance {
                        rate: s.rate.unwrap_or(0.0),
                        extra_shards: s
                            .extra
                            .iter()
                            .map(|x| pb::Shard {
                                first: x.first,
                                last: x.last,
                            })
                            .collect(),
                    }));
                    let ranges: Vec<String> = s
                        .extra
                        .iter()
                        .map(|x| format!("[{}, {}]", x.first, x.last))
                        .collect();
                    parts.push(format!(
                        "{} rate {:.1}/s takes {}",
                        s.hello.name,
                        s.rate.unwrap_or(0.0),
                        ranges.join(" ")
                    ));
                }
                self.membership.push(crate::report::Membership {
                    t_s: at_s,
                    event: format!("rebalanced: {}", parts.join("; ")),
                });
                None
            }
        }
    }

    fn emit_progress(&self, merge: &Merge, k: u64, live: usize) {
        let plan = &self.config.plan;
        let Some(agg) = merge.intervals.get(&k) else {
            return;
        };
        let end = (plan.interval * (k as u32 + 1)).min(plan.duration);
        if let Some(m) = &self.config.metrics {
            let len = end.saturating_sub(plan.interval * k as u32).as_secs_f64();
            let ops: Vec<_> = merge
                .operations
                .iter()
                .cloned()
                .zip(agg.cluster.iter())
                .collect();
            m.interval_closed(&ops, len, live, end);
        }
        let Some(tx) = &self.config.progress else {
            return;
        };
        let mut all = new_latency();
        let (mut ok, mut errors, mut dropped) = (0, 0, 0);
        for s in &agg.cluster {
            merge_histogram(&mut all, &s.response);
            ok += s.ok;
            errors += s.error_total();
            dropped += s.dropped_backlog;
        }
        let len = end
            .saturating_sub(plan.interval * k as u32)
            .as_secs_f64()
            .max(1e-9);
        let _ = tx.send(Progress {
            interval: k,
            elapsed: end,
            duration: plan.duration,
            warmup: k < merge.warmup_intervals,
            workers_reporting: agg.per_worker.len(),
            workers: live,
            ok_per_s: ok as f64 / len,
            target_rate: match plan.load {
                LoadModel::Open { rate, .. } => Some(rate),
                LoadModel::Closed { .. } => None,
            },
            p50_ms: all.value_at_quantile(0.5) as f64 / 1000.0,
            p99_ms: all.value_at_quantile(0.99) as f64 / 1000.0,
            errors,
            dropped,
        });
    }
}
