//! The run controller: one task that owns all run state and reacts to worker events in
//! order, so no lock guards the merge. Phases: gather N workers, assign shards and rate
//! shares, wait until every worker's sessions are open, send one start instant, merge
//! snapshots, and build the report.

use crate::admission::{Bounds, Refusal, RefusalClass};
use crate::error::CoordinatorError;
use crate::merge::{Accepted, Merge};
use crate::report::{Report, ReportInput, WorkerInfo};
use crate::service::{message, stop, Command, Event, FromWorker, Joined, Outbox};
use fleetload_common::histogram::{merge as merge_histogram, new_latency};
use fleetload_common::plan::{LoadModel, Plan};
use fleetload_common::split::{split_keys, split_rate, Shard};
use fleetload_common::wire::{Assignment, Done, Hello, ResumeSecret, WorkerLoad};
use fleetload_proto::v1 as pb;
use fleetload_proto::v1::coordinator_message::Msg as ToWorker;
use std::collections::BTreeMap;
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
    /// Workers the run admits in all: those beyond `workers` join while it runs and get
    /// a share from the next interval on.
    pub max_workers: usize,
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
    /// Search for the highest rate that meets these SLOs instead of following the
    /// plan's load (`fleetload find-capacity`).
    pub search: Option<crate::search::SearchSpec>,
    /// TLS and token of the control channel.
    pub security: crate::security::ServerSecurity,
}

impl CoordinatorConfig {
    pub fn new(plan: Plan, workers: usize) -> Self {
        CoordinatorConfig {
            plan,
            workers,
            max_workers: workers,
            join_timeout: Duration::from_secs(60),
            start_lead: Duration::from_millis(500),
            progress: None,
            prepare: None,
            metrics: None,
            search: None,
            security: crate::security::ServerSecurity::default(),
        }
    }
}

/// One closed interval of the cluster, for the live display.
#[derive(Debug, Clone)]
pub struct Progress {
    pub interval: u64,
    pub elapsed: Duration,
    /// The planned length; `None` for a capacity search, which ends when it converges.
    pub duration: Option<Duration>,
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
        let of = self
            .duration
            .map_or(String::new(), |d| format!("/{:.0}s", d.as_secs_f64()));
        write!(
            f,
            "[{:>5.1}s{of}]{} workers {}/{}  ok/s {:.0}{target}  p50 {:.3}ms  p99 {:.3}ms  errors {}  dropped {}",
            self.elapsed.as_secs_f64(),
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
    /// Its fraction of the cluster's load (0 once lost).
    share: f64,
    message: Option<String>,
    done: Option<Done>,
    rows_loaded: u64,
    /// When the worker last said anything (any message, heartbeats included).
    last_heard: Instant,
    /// Key ranges it took over from lost workers.
    extra: Vec<Shard>,
    /// Its clock's offset from ours and the round trip of the best probe, nanoseconds.
    clock: Option<(i64, i64)>,
    /// The load profile it was last sent.
    profile: Option<fleetload_common::profile::Profile>,
    /// Joined after the start: clock echoes still expected before its Start.
    late_probes: Option<(u32, Instant)>,
    /// Messages refused from it, per class: how many, and the first one's detail.
    rejected: BTreeMap<RefusalClass, (u64, String)>,
    /// What a rejoin of this slot must present (set with its Assignment).
    resume_secret: ResumeSecret,
    /// The client certificate (DER) of the stream that took the slot, under mutual TLS:
    /// a rejoin must come with the same one.
    cert: Option<Vec<u8>>,
    /// The send time of the clock probes it was sent last: only echoes of those count.
    probe_sent: Option<i64>,
}

impl Slot {
    /// A worker that just joined, with `shard` until it is assigned one.
    fn new(joined: Joined, shard: Shard) -> Slot {
        let Joined {
            conn,
            hello,
            peer,
            cert,
            outbox,
        } = joined;
        Slot {
            conn,
            hello,
            peer,
            cert,
            outbox: Some(outbox),
            state: State::Joined,
            shard,
            share: 0.0,
            rate: None,
            message: None,
            done: None,
            rows_loaded: 0,
            last_heard: Instant::now(),
            extra: Vec::new(),
            clock: None,
            profile: None,
            late_probes: None,
            rejected: BTreeMap::new(),
            resume_secret: ResumeSecret::default(),
            probe_sent: None,
        }
    }

    /// Keep a clock echo's sample when its round trip is the lowest so far; an echo
    /// that is not of our probe, or that no clock could have produced, is refused.
    fn clock_echo(
        &mut self,
        coordinator_send: i64,
        worker_receive: i64,
        worker_send: i64,
    ) -> Result<(), Refusal> {
        let sent = self.probe_sent.ok_or_else(|| {
            Refusal::new(RefusalClass::Clock, "a clock echo when no probe was sent")
        })?;
        let sample = crate::admission::clock_sample(
            sent,
            coordinator_send,
            worker_receive,
            worker_send,
            unix_nanos_now(),
        )?;
        if self.clock.is_none_or(|(_, d)| sample.1 < d) {
            self.clock = Some(sample);
        }
        Ok(())
    }

    /// Count a refused message by class; the first of each class is logged as a
    /// warning with the worker's name and address, the rest at debug level.
    fn refuse(&mut self, r: Refusal) {
        let entry = self.rejected.entry(r.class).or_insert((0, String::new()));
        entry.0 += 1;
        if entry.0 == 1 {
            tracing::warn!(worker = %self.hello.name, peer = ?self.peer, class = %r.class.name(), detail = %r.detail, "refused a message from a worker (further ones of this class are logged at debug level)");
            entry.1 = r.detail;
        } else {
            tracing::debug!(worker = %self.hello.name, peer = ?self.peer, class = %r.class.name(), detail = %r.detail, "refused a message from a worker");
        }
    }

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
    /// The cluster's load over time as it stands (plan stages, then live changes):
    /// ops/s, or active sessions in closed loop (`None`: every session).
    cluster: Option<fleetload_common::profile::Profile>,
    /// Live changes of the load (ctl), in order.
    changes: Vec<crate::report::Membership>,
    /// While paused: the profile to resume.
    paused: Option<Option<fleetload_common::profile::Profile>>,
    last_progress: Option<Progress>,
    /// A stop asked for (ctl, or a failed threshold with abort_on_fail), not yet sent.
    stop_request: Option<String>,
    search: Option<crate::search::Search>,
    /// Workers that arrived beyond `workers` before the start: admitted once it runs.
    waiting: Vec<Joined>,
    /// The start instant on our clock, Unix nanoseconds (0 before the start).
    start_nanos: i64,
    /// What a worker may say in this run.
    bounds: Bounds,
}

/// Clock probes sent to a worker that joins a running run.
const LATE_PROBES: u64 = 8;

use fleetload_common::wire::unix_nanos_now;

/// The target could not be inspected before the start: only an error when the plan
/// names stand-in settings that must be set; otherwise the workers' pre-flight says what
/// is missing.
fn unreachable_target(plan: &Plan, e: String) -> Result<(), CoordinatorError> {
    if plan.standin.is_empty() {
        tracing::debug!(error = %e, "cannot inspect the target; the workers check it");
        return Ok(());
    }
    Err(CoordinatorError::Prepare(format!(
        "cannot set the ML stand-in's settings on {}: {e}; install it with `fleetload prepare --scenario churn --target {}`",
        plan.target, plan.target
    )))
}

/// Refuse a stream that said hello, telling it why, and log it with its peer address
/// and the name it claimed.
fn refuse_join(joined: Joined, reason: String) {
    tracing::warn!(worker = %joined.hello.name, peer = ?joined.peer, %reason, "refused a worker");
    let _ = joined
        .outbox
        .try_send(message(ToWorker::Refused(pb::Refused { reason })));
}

/// A slot's resume secret: 128 bits from the operating system's generator.
fn new_resume_secret() -> Result<ResumeSecret, CoordinatorError> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| CoordinatorError::Serve(format!("no randomness for a resume secret: {e}")))?;
    Ok(ResumeSecret(
        bytes.iter().map(|b| format!("{b:02x}")).collect(),
    ))
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
        let search = config
            .search
            .clone()
            .map(|spec| crate::search::Search::new(spec, config.plan.interval));
        let bounds = Bounds::of(&config.plan);
        let config_cluster = match &search {
            Some(s) => Some(fleetload_common::profile::Profile::constant(s.rate())),
            None => config.plan.cluster_profile(),
        };
        Controller {
            config,
            events,
            slots: Vec::new(),
            run_id: new_run_id(),
            membership: Vec::new(),
            cluster: config_cluster,
            changes: Vec::new(),
            paused: None,
            last_progress: None,
            stop_request: None,
            search,
            waiting: Vec::new(),
            start_nanos: 0,
            bounds,
        }
    }

    /// Insert ids step by the largest fleet the run may have, so every worker, late
    /// joiners included, inserts ids of its own residue; `verify` checks them by it.
    fn insert_id_stride(&self) -> u64 {
        self.config.max_workers.max(self.config.workers) as u64
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
        if schema.is_none() {
            // Before the workers are assigned and open their sessions: the key space
            // decides the shards, and SQLite's stand-in reads its settings when a
            // session opens.
            self.inspect_target(true).await?;
        }
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
            // The fleet just loaded `rows`: the key space is the plan's.
            self.inspect_target(false).await?;
        }
        self.sync_clocks(shutdown).await?;
        self.collect(shutdown).await
    }

    /// Before the workers open their sessions, on one connection of the coordinator's:
    /// a built-in scenario's plan that does not name `rows` takes the table's key space
    /// (the default of a few thousand rows on a table of millions would read a sliver of
    /// it and look faster than it is), and the churn stand-in gets the settings the plan
    /// names, and the report the ones in force. Only named settings need the database:
    /// otherwise a coordinator that cannot reach it (no password on its host) runs on,
    /// and the workers' own pre-flight says what is missing.
    async fn inspect_target(&mut self, take_key_space: bool) -> Result<(), CoordinatorError> {
        use fleetload_common::plan::{MlMode, StandIn};
        use fleetload_common::scenario::Scenario;
        let plan = &self.config.plan;
        let key_space = plan
            .scenario
            .builtin()
            .filter(|_| take_key_space && !plan.rows_given);
        let standin =
            plan.scenario.builtin() == Some(Scenario::Churn) && matches!(plan.ml, MlMode::StandIn);
        if key_space.is_none() && !standin {
            return Ok(());
        }
        let connect =
            fleetload_db::session::ConnectSpec::new(plan.target.clone(), plan.connect_timeout);
        let mut session = match connect {
            Ok(spec) => match spec.connect().await {
                Ok(s) => s,
                Err(e) => return unreachable_target(plan, e.to_string()),
            },
            Err(e) => return unreachable_target(plan, e.to_string()),
        };
        let highest = match key_space {
            Some(scenario) => fleetload_db::workload::key_space(&mut session, scenario)
                .await
                .ok()
                .flatten()
                .filter(|n| *n > 0),
            None => None,
        };
        let ml = if standin {
            Some(
                fleetload_db::ml::configure(&mut session, plan.target.driver(), &plan.standin)
                    .await,
            )
        } else {
            None
        };
        session.close().await;
        if let (Some(n), Some(scenario)) = (highest, key_space) {
            tracing::info!(
                rows = n,
                table = scenario.table(),
                "the plan names no rows: the key space is the table's, 1..={n}"
            );
            self.config.plan.rows = n;
        }
        match ml {
            Some(Ok(ml)) => {
                tracing::info!(delay = ?ml.overhead, row_cost = ?ml.row_cost, capacity = ml.capacity, "ML stand-in settings in force");
                self.config.plan.standin = StandIn {
                    delay: Some(ml.overhead),
                    row_cost: Some(ml.row_cost),
                    capacity: Some(ml.capacity),
                };
                Ok(())
            }
            Some(Err(e)) => unreachable_target(&self.config.plan, e),
            None => Ok(()),
        }
    }

    /// Estimate every worker's clock offset NTP-style: a few probes each, keeping the
    /// sample with the lowest round trip (its offset error is at most half of it).
    async fn sync_clocks(&mut self, shutdown: &CancellationToken) -> Result<(), CoordinatorError> {
        const PROBES: u64 = 8;
        for id in 0..PROBES {
            let sent = unix_nanos_now();
            for s in &mut self.slots {
                s.probe_sent = Some(sent);
                s.send(ToWorker::TimeProbe(pb::TimeProbe {
                    id,
                    coordinator_send_unix_nanos: sent,
                }));
            }
            let mut answered = vec![false; self.slots.len()];
            let deadline = Instant::now() + Duration::from_millis(500);
            while answered.iter().any(|a| !a) {
                tokio::select! {
                    ev = self.events.recv() => match ev {
                        Some(Event::Message { conn, message: FromWorker::TimeEcho { id: got, coordinator_send, worker_receive, worker_send } }) => {
                            let Some((i, slot)) = self.slot_of(conn) else { continue };
                            if got != id {
                                continue;
                            }
                            answered[i] = true;
                            if let Err(r) = slot.clock_echo(coordinator_send, worker_receive, worker_send) {
                                slot.refuse(r);
                            }
                        }
                        ev => self.before_start(ev, "before the start")?,
                    },
                    _ = tokio::time::sleep_until(deadline) => break,
                    _ = shutdown.cancelled() => return Err(CoordinatorError::Cancelled),
                }
            }
        }
        for s in &self.slots {
            match s.clock {
                Some((offset, rtt)) => {
                    tracing::info!(worker = %s.hello.name, offset_ms = offset as f64 / 1e6, rtt_ms = rtt as f64 / 1e6, "clock")
                }
                None => {
                    tracing::warn!(worker = %s.hello.name, "no clock sample: its start uses our clock as is")
                }
            }
        }
        Ok(())
    }

    async fn gather(&mut self, shutdown: &CancellationToken) -> Result<(), CoordinatorError> {
        let want = self.config.workers;
        let deadline = Instant::now() + self.config.join_timeout;
        tracing::info!(workers = want, "waiting for workers");
        while self.slots.len() < want {
            tokio::select! {
                ev = self.events.recv() => match ev {
                    Some(Event::Joined(joined)) if joined.hello.rejoin.is_some() => self.hold_or_refuse(joined),
                    Some(Event::Joined(joined)) => {
                        tracing::info!(worker = %joined.hello.name, host = %joined.hello.host, peer = ?joined.peer, "worker joined ({}/{want})", self.slots.len() + 1);
                        self.slots.push(Slot::new(joined, Shard { first: 1, last: 1 }));
                    }
                    Some(Event::Closed { conn, .. }) => {
                        if let Some(i) = self.slots.iter().position(|s| s.conn == conn) {
                            let gone = self.slots.remove(i);
                            tracing::warn!(worker = %gone.hello.name, "worker left before the run started");
                        }
                    }
                    Some(Event::Command { reply, .. }) => {
                        let _ = reply.send(pb::CommandReply {
                            ok: false,
                            message: format!("the run has not started yet: {} of {want} workers have joined; try again once it runs", self.slots.len()),
                            status_json: String::new(),
                        });
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
        // Insert ids step by the largest fleet the run may have, so late joiners get
        // id residues of their own.
        let stride = self.insert_id_stride();
        let shares = split_rate(&weights)?;
        let cluster = self.cluster.clone();
        if let (LoadModel::Closed { .. }, Some(c)) = (&plan.load, &cluster) {
            let most = c.max();
            if most > f64::from(plan.sessions) * n as f64 {
                return Err(CoordinatorError::Plan(format!(
                    "the stages ask for {most} active sessions, but {n} workers × {} sessions open only {}; raise `sessions` or add workers",
                    plan.sessions,
                    u64::from(plan.sessions) * n
                )));
            }
        }
        let loads: Vec<WorkerLoad> = shares
            .iter()
            .map(|s| match plan.load {
                LoadModel::Open {
                    arrival,
                    max_backlog,
                    ..
                } => WorkerLoad::Open {
                    profile: cluster
                        .as_ref()
                        .map(|c| c.scaled(s.share))
                        .unwrap_or_else(|| fleetload_common::profile::Profile::constant(0.0)),
                    arrival,
                    phase: s.phase,
                    max_backlog,
                },
                LoadModel::Closed { think_time } => WorkerLoad::Closed {
                    think_time,
                    sessions: cluster.as_ref().map(|c| c.scaled(s.share)),
                },
            })
            .collect();
        for (i, (slot, (shard, load))) in self
            .slots
            .iter_mut()
            .zip(shards.into_iter().zip(loads))
            .enumerate()
        {
            slot.shard = shard;
            slot.share = shares[i].share;
            slot.profile = match &load {
                WorkerLoad::Open { profile, .. } => Some(profile.clone()),
                WorkerLoad::Closed { sessions, .. } => sessions.clone(),
            };
            slot.rate = match &load {
                WorkerLoad::Open { profile, .. } => Some(profile.value_at(0.0)),
                WorkerLoad::Closed { .. } => None,
            };
            let a = assignment(
                &self.run_id,
                plan,
                i,
                shard,
                stride,
                load,
                self.config.prepare.is_some(),
            )?;
            slot.resume_secret = a.resume_secret.clone();
            tracing::info!(worker = %slot.hello.name, shard = ?shard, rate = ?slot.rate, "assigned");
            slot.send(ToWorker::Assignment(pb::Assignment::from(&a)));
        }
        Ok(())
    }

    /// Events that mean the same in every phase before the start: a worker whose stream
    /// ends takes the run down, a newcomer waits for the start, `ctl` is told to wait,
    /// other messages are not due yet.
    fn before_start(
        &mut self,
        ev: Option<Event>,
        phase: &'static str,
    ) -> Result<(), CoordinatorError> {
        match ev {
            Some(Event::Closed { conn, error }) => {
                if let Some((_, s)) = self.slot_of(conn) {
                    let worker = s.hello.name.clone();
                    return Err(match error {
                        Some(e) => CoordinatorError::WorkerFailed {
                            worker,
                            message: format!("stream broke {phase}: {e}"),
                        },
                        None => CoordinatorError::WorkerLost { worker, phase },
                    });
                }
            }
            Some(Event::Joined(joined)) => self.hold_or_refuse(joined),
            Some(Event::Command { reply, .. }) => {
                let _ = reply.send(pb::CommandReply {
                    ok: false,
                    message: "the run has not started yet; try again in a moment".into(),
                    status_json: String::new(),
                });
            }
            Some(_) => {}
            None => {
                return Err(CoordinatorError::Serve(
                    "the control service stopped".into(),
                ))
            }
        }
        Ok(())
    }

    /// Refuse a worker that arrives when the run already has its fleet.
    fn refuse(&self, joined: Joined) {
        let reason = format!(
            "run {} already has its {} workers; {} is not needed",
            self.run_id, self.config.max_workers, joined.hello.name
        );
        refuse_join(joined, reason);
    }

    /// A worker beyond the starting fleet before the start: keep it for later if the
    /// run admits more, refuse it otherwise.
    fn hold_or_refuse(&mut self, joined: Joined) {
        if joined.hello.rejoin.is_some() {
            refuse_join(joined, "there is no running run to rejoin yet".into());
        } else if self.slots.len() + self.waiting.len() < self.config.max_workers {
            tracing::info!(worker = %joined.hello.name, peer = ?joined.peer, "worker will join once the run has started");
            self.waiting.push(joined);
        } else {
            self.refuse(joined);
        }
    }

    /// Admit a worker into the running run: it runs a share of the load from the next
    /// interval on, reading and updating keys from the whole key space (shards are
    /// fixed at the start), and inserting ids of its own residue.
    fn admit(&mut self, joined: Joined, start: Instant) {
        use fleetload_common::profile::Profile;
        if self.slots.len() >= self.config.max_workers || self.stop_request.is_some() {
            return self.refuse(joined);
        }
        let plan = self.config.plan.clone();
        let i = self.slots.len();
        let elapsed = start.elapsed().as_secs_f64();
        let interval = plan.interval.as_secs_f64();
        let at = ((elapsed / interval).floor() + 1.0) * interval;
        if at >= plan.duration.as_secs_f64() {
            let reason = format!(
                "run {} ends before the next interval; nothing left to share",
                self.run_id
            );
            return refuse_join(joined, reason);
        }
        tracing::info!(worker = %joined.hello.name, peer = ?joined.peer, at, "a worker joins the running run");
        self.slots.push(Slot::new(
            joined,
            Shard {
                first: 1,
                last: plan.rows,
            },
        ));
        // New shares over the running workers and the newcomer, from `at`.
        let members: Vec<usize> = (0..self.slots.len())
            .filter(|k| *k == i || self.slots[*k].state == State::Running)
            .collect();
        let weights: Vec<f64> = members
            .iter()
            .map(|k| self.slots[*k].hello.capacity)
            .collect();
        let Ok(shares) = split_rate(&weights) else {
            return;
        };
        for (k, sh) in members.iter().zip(&shares) {
            self.slots[*k].share = sh.share;
        }
        let phase = members
            .iter()
            .position(|k| *k == i)
            .map_or(0.0, |p| shares[p].phase);
        let zero = Profile::constant(0.0);
        let mine = self
            .cluster
            .as_ref()
            .map(|c| zero.splice(at, &c.scaled(self.slots[i].share)));
        self.slots[i].profile = mine.clone();
        let load = match plan.load {
            LoadModel::Open {
                arrival,
                max_backlog,
                ..
            } => WorkerLoad::Open {
                profile: mine.unwrap_or(zero),
                arrival,
                phase,
                max_backlog,
            },
            LoadModel::Closed { think_time } => WorkerLoad::Closed {
                think_time,
                sessions: mine,
            },
        };
        let a = match assignment(
            &self.run_id,
            &plan,
            i,
            Shard {
                first: 1,
                last: plan.rows,
            },
            self.insert_id_stride(),
            load,
            false,
        ) {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, "cannot admit a worker");
                self.slots[i].stop(&e.to_string());
                self.slots[i].state = State::Failed;
                return;
            }
        };
        self.slots[i].resume_secret = a.resume_secret.clone();
        self.slots[i].send(ToWorker::Assignment(pb::Assignment::from(&a)));
        let name = self.slots[i].hello.name.clone();
        let parts = self.push_load(at);
        self.membership.push(crate::report::Membership {
            t_s: elapsed,
            event: format!(
                "worker {name} joined; from {at:.1}s the load is split over {} workers: {}",
                members.len(),
                parts.join("; ")
            ),
        });
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
                        let (most_rows, most_sessions) = (plan.rows, plan.sessions);
                        if let Some((_, s)) = self.slot_of(conn) {
                            if rows_loaded > most_rows || sessions > most_sessions {
                                s.refuse(Refusal::new(RefusalClass::ImpossibleCount, format!(
                                    "ready with {sessions} sessions and {rows_loaded} rows loaded, of {most_sessions} sessions and {most_rows} rows"
                                )));
                                continue;
                            }
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
                    ev => self.before_start(ev, "while opening its sessions")?,
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
            // The start instant on the worker's own clock.
            let offset = s.clock.map_or(0, |(o, _)| o);
            s.send(ToWorker::Start(pb::Start {
                start_unix_nanos: start_nanos.saturating_add(offset),
            }));
        }
        tracing::info!(run = %self.run_id, "started");
        self.start_nanos = start_nanos;
        for joined in std::mem::take(&mut self.waiting) {
            self.admit(joined, start);
        }
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
                    match ev {
                        Event::Command { command, reply } => {
                            let answer = self.command(command, start);
                            let _ = reply.send(answer);
                        }
                        ev => self.on_event(ev, &mut merge, &mut failures, start),
                    }
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
                    let stuck: Vec<usize> = self.slots.iter().enumerate()
                        .filter(|(_, s)| s.late_probes.is_some_and(|(_, since)| since.elapsed() > Duration::from_secs(2)))
                        .map(|(i, _)| i)
                        .collect();
                    for i in stuck {
                        self.start_late(i, start);
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
                        .is_some_and(|a| a.sent_interval(next_close))
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
                self.search_step(&merge, next_close);
                if let Some(reason) = crate::thresholds::abort_check(&plan, &merge, next_close) {
                    if self.stop_request.is_none() && stopped_at.is_none() {
                        tracing::warn!("{reason}");
                        failures.push(reason.clone());
                        self.stop_request = Some(reason);
                    }
                }
                merge.pack(next_close);
                next_close += 1;
            }
            if let Some(reason) = self.stop_request.take() {
                if stopped_at.is_none() {
                    stopped_at = Some(Instant::now());
                    let at = start.elapsed().as_secs_f64();
                    self.changes.push(crate::report::Membership {
                        t_s: at,
                        event: format!("stopped: {reason}"),
                    });
                    for s in &mut self.slots {
                        if s.state == State::Running {
                            s.send(ToWorker::Stop(pb::Stop {
                                reason: reason.clone(),
                            }));
                        }
                    }
                    deadline = deadline.min(Instant::now() + Duration::from_secs(10));
                }
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
                clock: s.clock,
                first_op_unix_nanos: s.done.as_ref().and_then(|d| d.first_op_unix_nanos),
                insert_id_stride: self.insert_id_stride(),
                rejected: s
                    .rejected
                    .iter()
                    .map(|(class, (n, detail))| (class.name(), *n, detail.clone()))
                    .collect(),
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
                changes: self.changes.clone(),
                planned: self.cluster.clone(),
                start_unix_nanos: start_nanos,
                capacity: self.search.as_ref().map(crate::search::Search::report),
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
            Event::Joined(joined) => match &joined.hello.rejoin {
                Some(_) => self.rejoin(joined, merge),
                None => self.admit(joined, start),
            },
            Event::Message { conn, message } => {
                let metrics = self.config.metrics.clone();
                let Some(index) = self.slots.iter().position(|s| s.conn == conn) else {
                    return;
                };
                let bounds = &self.bounds;
                let start_nanos = self.start_nanos;
                let insert_id_base = insert_id_base(&self.config.plan, index);
                let slot = &mut self.slots[index];
                slot.last_heard = Instant::now();
                let elapsed = Instant::now().saturating_duration_since(start);
                match message {
                    FromWorker::Snapshot(snap) => {
                        if let Err(r) = bounds.snapshot(&snap, index as u32, &run_id, elapsed) {
                            return slot.refuse(r);
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
                            Err(r) => slot.refuse(r),
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
                        if slot.state != State::Running {
                            return slot.refuse(Refusal::new(
                                RefusalClass::Unexpected,
                                format!("a Done from a worker that is {:?}", slot.state),
                            ));
                        }
                        let its_start =
                            start_nanos.saturating_add(slot.clock.map_or(0, |(o, _)| o));
                        if let Err(r) =
                            bounds.done(&done, index as u32, &run_id, insert_id_base, its_start)
                        {
                            return slot.refuse(r);
                        }
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
                    FromWorker::Ready { .. } if slot.state == State::Joined => {
                        // A late joiner with its sessions open: probe its clock, then
                        // start it on the run's start instant in its own clock.
                        slot.state = State::Ready;
                        let sent = unix_nanos_now();
                        slot.probe_sent = Some(sent);
                        for id in 0..LATE_PROBES {
                            slot.send(ToWorker::TimeProbe(pb::TimeProbe {
                                id,
                                coordinator_send_unix_nanos: sent,
                            }));
                        }
                        slot.late_probes = Some((0, Instant::now()));
                    }
                    FromWorker::TimeEcho {
                        coordinator_send,
                        worker_receive,
                        worker_send,
                        ..
                    } => {
                        if let Some((got, since)) = slot.late_probes {
                            if let Err(r) =
                                slot.clock_echo(coordinator_send, worker_receive, worker_send)
                            {
                                slot.refuse(r);
                            }
                            slot.late_probes = Some((got + 1, since));
                            if u64::from(got + 1) >= LATE_PROBES {
                                self.start_late(index, start);
                            }
                        }
                    }
                    FromWorker::Ready { .. } | FromWorker::Heartbeat => {}
                }
            }
            Event::Invalid { conn, error } => {
                // Refused and counted; the run goes on. What it would have carried is
                // missing from the merge, which the merge check then reports.
                if let Some((_, slot)) = self.slot_of(conn) {
                    slot.refuse(Refusal::new(RefusalClass::Malformed, error));
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
            Event::Command { command, reply } => {
                let _ = reply.send(self.command(command, start));
            }
        }
    }

    /// A worker that lost its stream asks for its slot back. It must name this run and
    /// a running slot, present the slot's resume secret and, under mutual TLS, the
    /// certificate that took the slot: a holder of the fleet token alone cannot take a
    /// running worker's place. Every rejoin and refusal is logged with the peer address
    /// and the claimed name; a refused claim on a slot is counted on that slot.
    fn rejoin(&mut self, joined: Joined, merge: &Merge) {
        let Some(claim) = joined.hello.rejoin.clone() else {
            return;
        };
        let run_id = self.run_id.clone();
        if claim.run_id != run_id {
            let reason = format!(
                "run {:?} is not running here (this is run {run_id})",
                claim.run_id
            );
            return refuse_join(joined, reason);
        }
        let index = claim.worker_index as usize;
        let Some(slot) = self.slots.get_mut(index) else {
            let reason = format!("run {run_id} has no worker slot {index}");
            return refuse_join(joined, reason);
        };
        if slot.state != State::Running {
            let reason = format!(
                "worker {} of run {run_id} is no longer part of it ({:?})",
                slot.hello.name, slot.state
            );
            return refuse_join(joined, reason);
        }
        use subtle::ConstantTimeEq;
        let secret_ok: bool = claim
            .secret
            .0
            .as_bytes()
            .ct_eq(slot.resume_secret.0.as_bytes())
            .into();
        let cert_ok = slot.cert.is_none() || slot.cert == joined.cert;
        if !secret_ok || !cert_ok {
            let what = if secret_ok {
                "with another client certificate than the one that took it"
            } else {
                "without the slot's resume secret"
            };
            slot.refuse(Refusal::new(
                RefusalClass::Rejoin,
                format!(
                    "{} at {:?} claimed slot {index} ({}) {what}",
                    joined.hello.name, joined.peer, slot.hello.name
                ),
            ));
            let reason = format!("slot {index} of run {run_id} is held by its worker; a rejoin must present the slot's resume secret and the client certificate that took it");
            return refuse_join(joined, reason);
        }
        tracing::info!(worker = %slot.hello.name, claimed_by = %joined.hello.name, peer = ?joined.peer, was = ?slot.peer, "worker rejoined; it resends what was not acknowledged");
        slot.conn = joined.conn;
        slot.outbox = Some(joined.outbox);
        slot.peer = joined.peer;
        slot.last_heard = Instant::now();
        let held = merge
            .workers
            .get(&claim.worker_index)
            .and_then(|a| a.contiguous());
        slot.send(match held {
            Some(seq) => ToWorker::Ack(pb::Ack { sequence: seq }),
            None => ToWorker::Heartbeat(pb::Heartbeat {}),
        });
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
                self.slots[lost].share = 0.0;
                if let Ok(shares) = split_rate(&weights) {
                    for (i, share) in survivors.iter().zip(shares) {
                        self.slots[*i].share = share.share;
                    }
                }
                let parts = self.push_load(at_s);
                self.membership.push(crate::report::Membership {
                    t_s: at_s,
                    event: format!("rebalanced: {}", parts.join("; ")),
                });
                None
            }
        }
    }

    /// Apply a `fleetload ctl` command. Changes take effect at the next interval
    /// boundary (every worker has the new profile by then) and are kept for the report.
    fn command(&mut self, command: Command, start: Instant) -> pb::CommandReply {
        use fleetload_common::profile::Profile;
        let plan = self.config.plan.clone();
        let elapsed = start.elapsed().as_secs_f64();
        let interval = plan.interval.as_secs_f64();
        let at = ((elapsed / interval).floor() + 1.0) * interval;
        let open = matches!(plan.load, LoadModel::Open { .. });
        let unit = if open { "ops/s" } else { "sessions" };
        // Closed loop without stages runs every session: make that explicit first.
        let all_sessions = f64::from(plan.sessions)
            * self
                .slots
                .iter()
                .filter(|s| s.state == State::Running)
                .count() as f64;
        let current =
            |c: &Option<Profile>| c.clone().unwrap_or_else(|| Profile::constant(all_sessions));
        let reply = |ok: bool, message: String| pb::CommandReply {
            ok,
            message,
            status_json: String::new(),
        };
        let done = |c: &mut Self, what: String| {
            tracing::info!("{what}");
            c.changes.push(crate::report::Membership {
                t_s: at,
                event: what.clone(),
            });
            c.push_load(at);
            reply(true, what)
        };
        match command {
            Command::Status => {
                let now_value = self.cluster.as_ref().map(|c| c.value_at(elapsed));
                let status = serde_json::json!({
                    "run_id": self.run_id,
                    "state": if self.paused.is_some() { "paused" } else { "running" },
                    "elapsed_s": (elapsed * 10.0).round() / 10.0,
                    "duration_s": plan.duration.as_secs_f64(),
                    "target": fleetload_common::target::redact(plan.target.url()),
                    "scenario": plan.scenario.name(),
                    "unit": unit,
                    "planned_now": now_value,
                    "workers": self.slots.iter().map(|s| serde_json::json!({
                        "name": s.hello.name,
                        "state": format!("{:?}", s.state).to_lowercase(),
                        "share": s.share,
                    })).collect::<Vec<_>>(),
                    "last_interval": self.last_progress.as_ref().map(|p| serde_json::json!({
                        "ok_per_s": p.ok_per_s, "p50_ms": p.p50_ms, "p99_ms": p.p99_ms,
                        "errors": p.errors, "dropped": p.dropped,
                    })),
                    "changes": self.changes.iter().map(|c| serde_json::json!({"t_s": c.t_s, "event": c.event})).collect::<Vec<_>>(),
                });
                pb::CommandReply {
                    ok: true,
                    message: String::new(),
                    status_json: status.to_string(),
                }
            }
            Command::SetRate(v) => {
                if !open && v > all_sessions {
                    return reply(false, format!("set-rate {v}: the fleet has {all_sessions} sessions open; closed-loop set-rate sets active sessions"));
                }
                if let Some(saved) = &mut self.paused {
                    *saved = Some(Profile::constant(v));
                    return reply(true, format!("paused; resume runs {v} {unit}"));
                }
                let before = current(&self.cluster).value_at(at);
                self.cluster = Some(current(&self.cluster).splice(at, &Profile::constant(v)));
                done(
                    self,
                    format!("set-rate {v} {unit} (was {before:.1}) from {at:.1}s, by ctl"),
                )
            }
            Command::Pause => {
                if self.paused.is_some() {
                    return reply(false, "already paused".into());
                }
                self.paused = Some(self.cluster.clone());
                self.cluster = Some(current(&self.cluster).splice(at, &Profile::constant(0.0)));
                done(self, format!("paused from {at:.1}s, by ctl"))
            }
            Command::Resume => {
                let Some(saved) = self.paused.take() else {
                    return reply(false, "not paused".into());
                };
                let resumed = current(&saved);
                self.cluster = Some(current(&self.cluster).splice(at, &resumed));
                done(
                    self,
                    format!(
                        "resumed at {:.1} {unit} from {at:.1}s, by ctl",
                        resumed.value_at(at)
                    ),
                )
            }
            Command::Stop(reason) => {
                let why = if reason.is_empty() {
                    "stopped by ctl".to_string()
                } else {
                    format!("stopped by ctl: {reason}")
                };
                self.stop_request = Some(why.clone());
                reply(true, why)
            }
        }
    }

    /// Start a late joiner on the run's start instant, in its own clock.
    fn start_late(&mut self, i: usize, start: Instant) {
        let start_nanos = self.start_nanos;
        let Some(s) = self.slots.get_mut(i) else {
            return;
        };
        s.late_probes = None;
        s.state = State::Running;
        s.last_heard = Instant::now();
        let offset = s.clock.map_or(0, |(o, _)| o);
        s.send(ToWorker::Start(pb::Start {
            start_unix_nanos: start_nanos.saturating_add(offset),
        }));
        tracing::info!(worker = %s.hello.name, at = start.elapsed().as_secs_f64(), offset_ms = offset as f64 / 1e6, "late joiner started");
    }

    /// After interval `k` closed: let the capacity search judge its stage and set the
    /// next rate (from the next interval on) or end the run.
    fn search_step(&mut self, merge: &Merge, k: u64) {
        let interval = self.config.plan.interval;
        let Some(search) = &mut self.search else {
            return;
        };
        match search.interval_closed(merge, k, interval) {
            crate::search::Next::Continue => {}
            crate::search::Next::Rate(rate) => {
                let at = (k + 1) as f64 * interval.as_secs_f64();
                let cluster = self
                    .cluster
                    .clone()
                    .unwrap_or_else(|| fleetload_common::profile::Profile::constant(0.0));
                self.cluster =
                    Some(cluster.splice(at, &fleetload_common::profile::Profile::constant(rate)));
                self.changes.push(crate::report::Membership {
                    t_s: at,
                    event: if rate > 0.0 {
                        format!("capacity search: {rate:.1} ops/s")
                    } else {
                        "capacity search: no load for a stage, to drain the backlog".into()
                    },
                });
                self.push_load(at);
            }
            crate::search::Next::Finish(why) => {
                tracing::info!("{why}");
                self.stop_request = Some(why);
            }
        }
    }

    /// Send every running worker its share of the cluster's load as it now stands, with
    /// the key ranges it took over; returns a line per worker for the report.
    fn push_load(&mut self, at_s: f64) -> Vec<String> {
        let mut parts = Vec::new();
        let cluster = self.cluster.clone();
        for s in self.slots.iter_mut().filter(|s| s.state == State::Running) {
            // What it was sent still holds until `at`; its new share from then on.
            let profile = cluster.as_ref().map(|c| {
                let new = c.scaled(s.share);
                match &s.profile {
                    Some(old) => old.splice(at_s, &new),
                    None => new,
                }
            });
            s.profile = profile.clone();
            if let Some(p) = &profile {
                if s.rate.is_some() {
                    s.rate = Some(p.value_at(at_s));
                }
            }
            s.send(ToWorker::Rebalance(pb::Rebalance {
                rate: 0.0,
                extra_shards: s
                    .extra
                    .iter()
                    .map(|x| pb::Shard {
                        first: x.first,
                        last: x.last,
                    })
                    .collect(),
                profile: profile
                    .as_ref()
                    .map(fleetload_common::wire::profile_points)
                    .unwrap_or_default(),
            }));
            let ranges: Vec<String> = s
                .extra
                .iter()
                .map(|x| format!("[{}, {}]", x.first, x.last))
                .collect();
            let load = match (&profile, s.rate) {
                (Some(p), Some(_)) => format!("rate {:.1}/s", p.value_at(at_s)),
                (Some(p), None) => format!("{:.0} sessions", p.value_at(at_s)),
                (None, _) => "every session".to_string(),
            };
            parts.push(if ranges.is_empty() {
                format!("{} {load}", s.hello.name)
            } else {
                format!("{} {load} takes {}", s.hello.name, ranges.join(" "))
            });
        }
        parts
    }

    fn emit_progress(&mut self, merge: &Merge, k: u64, live: usize) {
        let plan = &self.config.plan;
        let Some(agg) = merge.intervals.get(&k) else {
            return;
        };
        let cluster = agg.cluster();
        let end = (plan.interval * (k as u32 + 1)).min(plan.duration);
        if let Some(m) = &self.config.metrics {
            let len = end.saturating_sub(plan.interval * k as u32).as_secs_f64();
            let from = (plan.interval * k as u32).as_secs_f64();
            let target = match plan.load {
                LoadModel::Open { .. } => self
                    .cluster
                    .as_ref()
                    .map(|c| c.integral(from, from + len) / len.max(1e-9)),
                LoadModel::Closed { .. } => None,
            };
            let ops: Vec<_> = merge
                .operations
                .iter()
                .cloned()
                .zip(cluster.iter())
                .collect();
            m.interval_closed(&ops, len, live, end, target);
        }
        let mut all = new_latency();
        let (mut ok, mut errors, mut dropped) = (0, 0, 0);
        for s in cluster.iter() {
            merge_histogram(&mut all, &s.response);
            ok += s.ok;
            errors += s.error_total();
            dropped += s.dropped_backlog;
        }
        let len = end
            .saturating_sub(plan.interval * k as u32)
            .as_secs_f64()
            .max(1e-9);
        // The planned cluster rate in the middle of the interval (open loop).
        let mid = (plan.interval * k as u32).as_secs_f64() + len / 2.0;
        let progress = Progress {
            interval: k,
            elapsed: end,
            duration: self.search.is_none().then_some(plan.duration),
            warmup: k < merge.warmup_intervals,
            workers_reporting: agg.workers_reporting(),
            workers: live,
            ok_per_s: ok as f64 / len,
            target_rate: match plan.load {
                LoadModel::Open { .. } => self
                    .cluster
                    .as_ref()
                    .map(|c| c.integral(mid - len / 2.0, mid + len / 2.0) / len),
                LoadModel::Closed { .. } => None,
            },
            p50_ms: all.value_at_quantile(0.5) as f64 / 1000.0,
            p99_ms: all.value_at_quantile(0.99) as f64 / 1000.0,
            errors,
            dropped,
        };
        self.last_progress = Some(progress.clone());
        if let Some(tx) = &self.config.progress {
            let _ = tx.send(progress);
        }
    }
}

/// The first id worker `i` inserts: above the loaded rows, its own residue of the stride.
fn insert_id_base(plan: &Plan, i: usize) -> u64 {
    plan.rows + 1 + i as u64
}

/// Worker `i`'s assignment: the plan's part every worker shares, with this worker's
/// keys, insert-id stride, load and a fresh resume secret. The start and a late joiner
/// both build it here.
///
/// # Errors
/// The operating system has no randomness for the secret.
fn assignment(
    run_id: &str,
    plan: &Plan,
    i: usize,
    shard: Shard,
    insert_id_stride: u64,
    load: WorkerLoad,
    load_rows: bool,
) -> Result<Assignment, CoordinatorError> {
    Ok(Assignment {
        run_id: run_id.to_string(),
        worker_index: i as u32,
        target: plan.target.clone(),
        scenario: plan.scenario.clone(),
        mix: plan.mix.clone(),
        shard,
        rows: plan.rows,
        insert_id_base: insert_id_base(plan, i),
        insert_id_stride,
        batch_size: plan.batch,
        aurora_ml: matches!(plan.ml, fleetload_common::plan::MlMode::Aurora { .. }),
        load_rows,
        sessions: plan.sessions,
        load,
        duration: plan.duration,
        interval: plan.interval,
        seed: plan.seed,
        connect_rate: plan.connect_rate,
        op_timeout: plan.op_timeout,
        connect_timeout: plan.connect_timeout,
        lease: plan.lease,
        resume_secret: new_resume_secret()?,
    })
}
