//! The worker's side of the control stream: join, receive an assignment, open the
//! sessions, start with the fleet, stream one snapshot per interval, say what ran.

use crate::error::WorkerError;
use crate::load::Work;
use crate::load::{drive, Shared};
use crate::pacer::Pacer;
use crate::recorder::{IntervalStats, Recorder};
use fleetload_common::plan::interval_count;
use fleetload_common::profile::Profile;
use fleetload_common::rng::Rng;
use fleetload_common::scenario::{OpName, Operation, ScenarioRef};
use fleetload_common::schedule::Arrivals;
use fleetload_common::split::Shard;
use fleetload_common::stats::{OpStats, OpTotals};
use fleetload_common::wire::{Assignment, Done, Hello, Snapshot, WorkerLoad};
use fleetload_db::custom::CustomWorkload;
use fleetload_db::session::{ConnectSpec, Session};
use fleetload_db::workload::Workload;
use fleetload_proto::v1 as pb;
use fleetload_proto::v1::coordinator_message::Msg as FromCoordinator;
use fleetload_proto::v1::worker_message::Msg as ToCoordinator;
use fleetload_proto::PROTOCOL_VERSION;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long after an interval's end its snapshot is taken, so that operations which
/// completed just before the edge have been recorded.
const SNAPSHOT_GRACE: Duration = Duration::from_millis(20);
/// How long a finished worker waits for the coordinator to close the stream.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// Who this worker is and how it dials.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub name: String,
    pub host: String,
    /// Relative capacity; the coordinator splits rate and keys in proportion.
    pub capacity: f64,
    /// Most sessions this worker accepts.
    pub max_sessions: u32,
    /// How long to keep dialing a coordinator that is not up yet.
    pub dial_timeout: Duration,
    /// Where unacknowledged snapshots go when the coordinator is lost.
    pub spool_dir: std::path::PathBuf,
    /// Test hook: pretend this worker's wall clock is off by this many nanoseconds, to
    /// check that the coordinator's offset estimate finds it and corrects the start.
    pub clock_skew_nanos: i64,
    /// TLS and token for the control channel.
    pub security: crate::security::ClientSecurity,
    /// Targets this worker agrees to load (empty: any).
    pub allow_targets: Vec<crate::security::AllowTarget>,
}

impl WorkerConfig {
    /// A worker named `name` on this host, capacity = its cores.
    pub fn local(name: impl Into<String>) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        WorkerConfig {
            name: name.into(),
            host: host_name(),
            capacity: cores as f64,
            max_sessions: fleetload_common::plan::MAX_SESSIONS,
            dial_timeout: Duration::from_secs(30),
            spool_dir: std::path::PathBuf::from("."),
            clock_skew_nanos: 0,
            security: crate::security::ClientSecurity::default(),
            allow_targets: Vec::new(),
        }
    }
}

/// This host's name, for reports.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// What a worker did.
#[derive(Debug, Clone)]
pub struct WorkerSummary {
    pub run_id: String,
    pub worker_index: u32,
    pub totals: Vec<(OpName, OpTotals)>,
    pub snapshots_sent: u64,
    /// Why the run ended early, if the coordinator stopped it.
    pub stopped: Option<String>,
}

struct Control {
    tx: mpsc::Sender<pb::WorkerMessage>,
    inbound: tonic::Streaming<pb::CoordinatorMessage>,
}

impl Control {
    async fn send(&self, msg: ToCoordinator) -> Result<(), WorkerError> {
        self.tx
            .send(pb::WorkerMessage { msg: Some(msg) })
            .await
            .map_err(|_| WorkerError::Stream("the coordinator closed the stream".into()))
    }

    async fn recv(&mut self) -> Result<FromCoordinator, WorkerError> {
        match self.inbound.message().await {
            Ok(Some(pb::CoordinatorMessage { msg: Some(m) })) => Ok(m),
            Ok(Some(_)) => Err(WorkerError::Protocol(
                "empty message from the coordinator".into(),
            )),
            Ok(None) => Err(WorkerError::Stream(
                "the coordinator closed the stream".into(),
            )),
            Err(status) => Err(WorkerError::Stream(status.message().to_string())),
        }
    }

    /// Tell the coordinator why this worker cannot go on, then give it a moment to read.
    async fn fail(&mut self, message: String) -> WorkerError {
        let _ = self
            .send(ToCoordinator::Failure(pb::Failure {
                message: message.clone(),
            }))
            .await;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.recv()).await;
        WorkerError::Database(message)
    }
}

async fn dial(
    endpoint: &str,
    security: &crate::security::ClientSecurity,
    timeout: Duration,
    shutdown: &CancellationToken,
) -> Result<tonic::transport::Channel, WorkerError> {
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        return Err(WorkerError::Endpoint {
            endpoint: endpoint.into(),
            message: "the address has no http:// or https:// scheme; use http://HOST:PORT (https:// with TLS)".into(),
        });
    }
    let ep = security
        .endpoint(endpoint)
        .map_err(|message| WorkerError::Endpoint {
            endpoint: endpoint.into(),
            message,
        })?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true);
    let started = Instant::now();
    loop {
        match ep.connect().await {
            Ok(channel) => return Ok(channel),
            // A certificate problem does not go away by waiting: say so at once.
            Err(e) if crate::security::is_certificate_error(&crate::security::error_chain(&e)) => {
                return Err(WorkerError::Tls {
                    endpoint: endpoint.into(),
                    message: crate::security::explain_connect_error(&e, endpoint),
                });
            }
            Err(e) if started.elapsed() >= timeout => {
                return Err(WorkerError::Dial {
                    endpoint: endpoint.into(),
                    waited: timeout,
                    message: crate::security::explain_connect_error(&e, endpoint),
                });
            }
            Err(_) => {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                    _ = shutdown.cancelled() => return Err(WorkerError::Cancelled),
                }
            }
        }
    }
}

/// Open the control stream on `channel` and say hello.
async fn open_stream(
    channel: tonic::transport::Channel,
    endpoint: &str,
    security: &crate::security::ClientSecurity,
    hello: &Hello,
) -> Result<Control, WorkerError> {
    let mut client = security.client(channel);
    // Room for a lease's worth of resent snapshots without blocking the sender.
    let (tx, rx) = mpsc::channel(256);
    tx.send(pb::WorkerMessage {
        msg: Some(ToCoordinator::Hello(hello.into())),
    })
    .await
    .map_err(|_| WorkerError::Stream("cannot send hello".into()))?;
    let inbound = client
        .control(ReceiverStream::new(rx))
        .await
        .map_err(|s| match s.code() {
            tonic::Code::Unauthenticated => WorkerError::Refused {
                reason: s.message().to_string(),
            },
            _ => WorkerError::Stream(security.explain_stream_error(&s, endpoint)),
        })?
        .into_inner();
    Ok(Control { tx, inbound })
}

/// Convert an absolute Unix time to this process's monotonic clock.
/// This worker's wall clock, Unix nanoseconds (with the test skew, if any).
pub(crate) fn wall_nanos(skew: i64) -> i64 {
    fleetload_common::wire::unix_nanos_now().saturating_add(skew)
}

/// The monotonic instant of a wall-clock time on this worker's (skewed) clock.
fn instant_at(unix_nanos: i64, skew: i64) -> Instant {
    let (now_wall, now) = (wall_nanos(skew), Instant::now());
    let ahead = unix_nanos.saturating_sub(now_wall);
    if ahead >= 0 {
        now + Duration::from_nanos(ahead as u64)
    } else {
        now.checked_sub(Duration::from_nanos(ahead.unsigned_abs()))
            .unwrap_or(now)
    }
}

/// Open the assignment's sessions at no more than `connect_rate` per second.
async fn open_sessions(a: &Assignment, spec: &ConnectSpec) -> Result<Vec<Session>, String> {
    let mut set = tokio::task::JoinSet::new();
    let gap = Duration::from_secs_f64(1.0 / f64::from(a.connect_rate));
    for i in 0..a.sessions {
        let spec = spec.clone();
        let delay = gap * i;
        set.spawn(async move {
            tokio::time::sleep(delay).await;
            (i, spec.connect().await)
        });
    }
    let mut sessions = Vec::with_capacity(a.sessions as usize);
    let mut first_error: Option<(u32, String)> = None;
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((_, Ok(s))) => sessions.push(s),
            Ok((i, Err(e))) => {
                if first_error.is_none() {
                    first_error = Some((i, e.to_string()));
                    set.abort_all();
                }
            }
            Err(e) if e.is_cancelled() => {}
            Err(e) => first_error = first_error.or(Some((0, format!("session task failed: {e}")))),
        }
    }
    match first_error {
        None => Ok(sessions),
        Some((i, e)) => {
            for s in sessions {
                s.close().await;
            }
            Err(format!("session {} of {}: {e}", i + 1, a.sessions))
        }
    }
}

/// Join the coordinator at `endpoint`, run the assigned share, and return what ran.
///
/// # Errors
/// The coordinator cannot be reached or refuses this worker, the database cannot be
/// reached, or the control stream breaks.
pub async fn run(
    endpoint: &str,
    config: WorkerConfig,
    shutdown: CancellationToken,
) -> Result<WorkerSummary, WorkerError> {
    let channel = dial(endpoint, &config.security, config.dial_timeout, &shutdown).await?;
    let hello = Hello {
        protocol_version: PROTOCOL_VERSION,
        name: config.name.clone(),
        host: config.host.clone(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        max_sessions: config.max_sessions,
        capacity: config.capacity,
        rejoin: None,
    };
    let mut control = open_stream(channel, endpoint, &config.security, &hello).await?;

    let mut assignment = loop {
        tokio::select! {
            msg = control.recv() => match msg? {
                FromCoordinator::Assignment(a) => match Assignment::try_from(a) {
                    Ok(a) => break a,
                    Err(e) => {
                        let message = format!("invalid assignment: {e}");
                        let _ = control.fail(message).await;
                        return Err(WorkerError::BadAssignment(e));
                    }
                },
                FromCoordinator::Refused(r) => return Err(WorkerError::Refused { reason: r.reason }),
                FromCoordinator::Stop(s) => return Err(WorkerError::Refused { reason: s.reason }),
                _ => continue,
            },
            _ = shutdown.cancelled() => return Err(WorkerError::Cancelled),
        }
    };
    tracing::info!(run = %assignment.run_id, index = assignment.worker_index, target = %assignment.target,
        sessions = assignment.sessions, shard = ?assignment.shard, "assignment received");
    if let Err(message) = crate::security::check_target(&assignment.target, &config.allow_targets) {
        tracing::error!("{message}");
        return Err(control
            .fail(format!(
                "worker {} refuses the assignment: {message}",
                config.name
            ))
            .await);
    }
    if assignment.sessions > config.max_sessions {
        let message = format!(
            "worker {} accepts at most {} sessions, the plan asks for {}",
            config.name, config.max_sessions, assignment.sessions
        );
        return Err(control.fail(message).await);
    }
    let connect = match ConnectSpec::new(assignment.target.clone(), assignment.connect_timeout) {
        Ok(c) => c,
        Err(e) => return Err(control.fail(e.to_string()).await),
    };
    let mut sessions = match open_sessions(&assignment, &connect).await {
        Ok(s) => s,
        Err(e) => return Err(control.fail(e).await),
    };
    // The fleet prepares the data: this worker loads its own shard on its sessions.
    let mut rows_loaded = 0;
    if assignment.load_rows {
        let shard = assignment.shard;
        let loaded = fleetload_db::prepare::load_range(
            sessions,
            &assignment.scenario,
            assignment.seed,
            assignment.rows,
            shard.first..=shard.last,
        )
        .await;
        sessions = match loaded {
            Ok(s) => s,
            Err(e) => {
                return Err(control
                    .fail(format!(
                        "loading shard [{}, {}]: {e}",
                        shard.first, shard.last
                    ))
                    .await)
            }
        };
        rows_loaded = shard.len();
        tracing::info!(rows = rows_loaded, "loaded this worker's shard");
    }
    // Inserted ids start above every id in the table, so runs never collide. Every
    // worker reads the maximum before it reports ready, and nobody inserts before the
    // start, so all workers of the run see the same maximum.
    let builtin_table = assignment.scenario.builtin().map(|s| s.table());
    if let Some(table) = builtin_table.filter(|_| {
        assignment
            .mix
            .iter()
            .any(|(op, _)| *op == Operation::InsertCustomer)
    }) {
        match sessions[0]
            .scalar_i64(&format!("SELECT COALESCE(MAX(id), 0) FROM {table}"))
            .await
        {
            Ok(max) => {
                let above = u64::try_from(max)
                    .unwrap_or(0)
                    .saturating_sub(assignment.rows);
                assignment.insert_id_base += above;
            }
            Err(e) => {
                return Err(control
                    .fail(format!(
                        "cannot read the highest id of {table}: {}",
                        fleetload_db::session::describe(&e)
                    ))
                    .await)
            }
        }
    }
    // A scenario file's statements are prepared on the server now, so a broken file
    // fails the run with its line before any load starts.
    let mut work = match work_for(&assignment) {
        Ok(w) => w,
        Err(e) => return Err(control.fail(e).await),
    };
    // So are a built-in scenario's, and its table's key space is checked: a missing
    // table fails the run before the start with the command that makes it. Not while
    // this very run prepares the data (the table fills and the model's functions are
    // installed once every worker is ready).
    let checked = match (&work, sessions.first_mut()) {
        (Work::Custom { workload, .. }, Some(first)) => workload.check(first).await,
        (Work::Builtin { workload, ops }, Some(first)) if !assignment.load_rows => {
            workload
                .check(
                    first,
                    assignment.target.driver(),
                    ops,
                    assignment.target.url(),
                    assignment.rows,
                )
                .await
        }
        _ => Ok(()),
    };
    if let Err(e) = checked {
        return Err(control.fail(e).await);
    }
    control
        .send(ToCoordinator::Ready(pb::Ready {
            sessions_open: sessions.len() as u32,
            rows_loaded,
        }))
        .await?;

    let start = loop {
        tokio::select! {
            msg = control.recv() => match msg {
                Ok(FromCoordinator::Start(s)) => break instant_at(s.start_unix_nanos, config.clock_skew_nanos),
                Ok(FromCoordinator::TimeProbe(p)) => {
                    let received = wall_nanos(config.clock_skew_nanos);
                    control
                        .send(ToCoordinator::TimeEcho(pb::TimeEcho {
                            id: p.id,
                            coordinator_send_unix_nanos: p.coordinator_send_unix_nanos,
                            worker_receive_unix_nanos: received,
                            worker_send_unix_nanos: wall_nanos(config.clock_skew_nanos),
                        }))
                        .await?;
                }
                Ok(FromCoordinator::Stop(s)) => {
                    for session in sessions { session.close().await; }
                    return Ok(WorkerSummary { run_id: assignment.run_id, worker_index: assignment.worker_index, totals: Vec::new(), snapshots_sent: 0, stopped: Some(s.reason) });
                }
                Ok(_) => continue,
                Err(e) => {
                    for session in sessions { session.close().await; }
                    return Err(e);
                }
            },
            _ = shutdown.cancelled() => {
                for session in sessions { session.close().await; }
                return Err(WorkerError::Cancelled);
            }
        }
    };
    // Sequences start above what is in the table once every worker has loaded its
    // shard (all were ready) and before anyone inserts (the start is still ahead).
    if let (Work::Custom { workload, bases }, Some(first)) = (&mut work, sessions.first_mut()) {
        match workload.sequence_bases(first).await {
            Ok(b) => *bases = b,
            Err(e) => return Err(control.fail(e).await),
        }
    }
    execute(
        assignment,
        work,
        sessions,
        connect,
        start,
        control,
        shutdown,
        &RejoinTo {
            endpoint,
            hello: &hello,
            spool_dir: &config.spool_dir,
            clock_skew_nanos: config.clock_skew_nanos,
            security: &config.security,
        },
    )
    .await
}

/// What this worker's sessions will run, from its assignment.
fn work_for(a: &Assignment) -> Result<Work, String> {
    let names: Vec<OpName> = a.mix.iter().map(|(op, _)| op.clone()).collect();
    match &a.scenario {
        ScenarioRef::Builtin(scenario) => Ok(Work::Builtin {
            workload: Workload::new(
                a.target.driver(),
                *scenario,
                a.seed,
                a.batch_size,
                a.aurora_ml,
            ),
            ops: names
                .iter()
                .map(|n| {
                    n.builtin()
                        .ok_or_else(|| format!("{n} is not an operation of {}", scenario.name()))
                })
                .collect::<Result<_, _>>()?,
        }),
        ScenarioRef::File(file) => Ok(Work::Custom {
            workload: CustomWorkload::new(std::sync::Arc::clone(file), a.target.driver(), &names)?,
            bases: Default::default(),
        }),
    }
}

#[allow(clippy::too_many_arguments)]
async fn execute(
    a: Assignment,
    work: Work,
    sessions: Vec<Session>,
    connect: ConnectSpec,
    start: Instant,
    mut control: Control,
    shutdown: CancellationToken,
    rejoin_to: &RejoinTo<'_>,
) -> Result<WorkerSummary, WorkerError> {
    let spool_dir = rejoin_to.spool_dir;
    let last_interval = interval_count(a.duration, a.interval) - 1;
    let recorder_count = sessions.len().clamp(1, 16);
    let cancel = shutdown.child_token();
    let recorders: Vec<Arc<Recorder>> = (0..recorder_count)
        .map(|_| Arc::new(Recorder::new(a.mix.len())))
        .collect();
    let (arrivals_tx, arrivals) = async_channel::unbounded();
    let tracker = TaskTracker::new();
    let initial = match &a.load {
        WorkerLoad::Open { profile, .. } => profile.clone(),
        WorkerLoad::Closed { sessions, .. } => sessions
            .clone()
            .unwrap_or_else(|| Profile::constant(f64::from(a.sessions))),
    };
    let (rate_tx, rate_rx) = tokio::sync::watch::channel(Arc::new(initial));
    let active_sessions = rate_rx.clone();
    let pacer = match &a.load {
        WorkerLoad::Open {
            profile,
            arrival,
            phase,
            max_backlog,
        } => {
            let rate = profile.max();
            let pacer = Pacer {
                arrivals_plan: Arrivals::new(
                    *arrival,
                    profile.clone(),
                    *phase,
                    Rng::for_stream(a.seed, &[u64::from(a.worker_index), 0xA771]),
                ),
                start: start.into_std(),
                duration: a.duration,
                interval: a.interval,
                last_interval,
                arrivals: arrivals_tx,
                // Past this many queued operations, more would only be dropped later.
                cap: ((rate * max_backlog.as_secs_f64()) as usize)
                    .max(a.sessions as usize * 4)
                    .max(1024),
                weights: a.mix.iter().map(|(_, w)| *w).collect(),
                recorder: Arc::clone(&recorders[0]),
                rng: Rng::for_stream(a.seed, &[u64::from(a.worker_index), u64::MAX]),
                cancel: cancel.clone(),
                rate: rate_rx.clone(),
            };
            Some(tracker.spawn(pacer.run()))
        }
        WorkerLoad::Closed { .. } => None,
    };
    let shared = Arc::new(Shared {
        start,
        duration: a.duration,
        interval: a.interval,
        last_interval,
        load: a.load.clone(),
        active: active_sessions,
        first_op_start: std::sync::atomic::AtomicI64::new(0),
        clock_skew_nanos: rejoin_to.clock_skew_nanos,
        arrivals,
        mix: a.mix.clone(),
        shard: a.shard,
        extra: std::sync::RwLock::new(Vec::new()),
        extra_version: std::sync::atomic::AtomicU64::new(0),
        op_timeout: a.op_timeout,
        seed: a.seed,
        worker_index: a.worker_index,
        work,
        insert_base: a.insert_id_base,
        insert_stride: a.insert_id_stride,
        sessions: sessions.len(),
        connect,
        recorders,
        cancel: cancel.clone(),
    });
    let handles: Vec<_> = sessions
        .into_iter()
        .enumerate()
        .map(|(i, s)| tracker.spawn(drive(i, s, Arc::clone(&shared))))
        .collect();
    tracker.close();

    let mut sender = SnapshotSender {
        a: &a,
        shared: &shared,
        sequence: 0,
        // A worker that joined a running run starts with the interval in progress.
        next_interval: shared.interval_of(tokio::time::Instant::now()),
        unacked: std::collections::VecDeque::new(),
    };
    let mut stopped: Option<String> = None;
    // Set when the coordinator is gone for good (a whole lease without a word, or it
    // refused our rejoin): the dead man's switch stops the load, since nobody supervises
    // it any more.
    let mut orphaned: Option<String> = None;
    let mut last_heard = Instant::now();
    let mut heartbeat = tokio::time::interval(a.lease / 3);
    // While the stream is broken the load goes on for up to the lease; snapshots are
    // kept and the worker redials, then resends what was not acknowledged.
    let mut connected = true;
    let mut redial = Redial::new();
    loop {
        let edge = start
            + a.interval * u32::try_from(sender.next_interval + 1).unwrap_or(u32::MAX)
            + SNAPSHOT_GRACE;
        tokio::select! {
            _ = tokio::time::sleep_until(edge), if sender.next_interval < last_interval && orphaned.is_none() => {
                let k = sender.next_interval;
                if sender.send_through(connected.then_some(&control), k).await.is_err() {
                    connected = false;
                }
            }
            _ = tracker.wait() => break,
            _ = heartbeat.tick(), if connected && orphaned.is_none() => {
                if control.send(ToCoordinator::Heartbeat(pb::Heartbeat {})).await.is_err() {
                    connected = false;
                }
            }
            _ = tokio::time::sleep_until(last_heard + a.lease), if orphaned.is_none() => {
                tracing::error!(lease = ?a.lease, "no word from the coordinator for a whole lease; stopping the load");
                orphaned = Some(format!("no message from the coordinator for longer than the lease ({:?})", a.lease));
                cancel.cancel();
            }
            _ = tokio::time::sleep_until(redial.at), if !connected && orphaned.is_none() => {
                match rejoin(rejoin_to, &a, &sender).await {
                    Ok(Rejoined::Back(c, acked)) => {
                        tracing::info!("rejoined the coordinator; resent the unacknowledged snapshots");
                        control = *c;
                        connected = true;
                        last_heard = Instant::now();
                        redial = Redial::new();
                        if let Some(seq) = acked {
                    sender.acked(seq);
                }
                    }
                    Ok(Rejoined::Refused(reason)) => {
                        orphaned = Some(format!("the coordinator refused the rejoin: {reason}"));
                        cancel.cancel();
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "rejoin failed; retrying");
                        redial.failed();
                    }
                }
            }
            msg = control.recv(), if connected && orphaned.is_none() => match msg {
                Ok(m) => {
                    last_heard = Instant::now();
                    match m {
                        FromCoordinator::Stop(s) => {
                            tracing::info!(reason = %s.reason, "stopped by the coordinator");
                            stopped = Some(s.reason);
                            cancel.cancel();
                        }
                        FromCoordinator::Ack(ack) => sender.acked(ack.sequence),
                        FromCoordinator::Rebalance(r) => rebalance(&r, &a, &shared, &rate_tx),
                        _ => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, lease = ?a.lease, "the stream to the coordinator broke; the load goes on while redialing, for up to the lease");
                    connected = false;
                    redial = Redial::new();
                }
            },
        }
    }
    let mut totals: Vec<(OpName, OpTotals)> = a
        .mix
        .iter()
        .map(|(op, _)| (op.clone(), OpTotals::default()))
        .collect();
    let mut inserted = 0;
    let mut insert_id_last = 0;
    let pacer_dropped = match pacer {
        Some(p) => p
            .await
            .map_err(|e| tracing::error!(error = %e, "the pacer failed"))
            .ok(),
        None => None,
    };
    for h in handles {
        match h.await {
            Ok((session_totals, rows, last_id)) => {
                inserted += rows;
                insert_id_last = insert_id_last.max(last_id);
                for (slot, t) in session_totals.iter().enumerate() {
                    totals[slot].1.merge(t);
                }
            }
            Err(e) => tracing::error!(error = %e, "a session task failed"),
        }
    }
    for (slot, t) in pacer_dropped.into_iter().flatten().enumerate() {
        totals[slot].1.dropped_backlog += t.dropped_backlog;
    }
    // The load is over; the final snapshots and Done still need a coordinator.
    while !connected && orphaned.is_none() {
        if Instant::now() >= last_heard + a.lease {
            orphaned = Some(format!(
                "no message from the coordinator for longer than the lease ({:?})",
                a.lease
            ));
            break;
        }
        tokio::time::sleep_until(redial.at).await;
        match rejoin(rejoin_to, &a, &sender).await {
            Ok(Rejoined::Back(c, acked)) => {
                control = *c;
                connected = true;
                if let Some(seq) = acked {
                    sender.acked(seq);
                }
            }
            Ok(Rejoined::Refused(reason)) => {
                orphaned = Some(format!("the coordinator refused the rejoin: {reason}"))
            }
            Err(_) => redial.failed(),
        }
    }
    if let Some(reason) = orphaned {
        // Nothing measured is lost: what the coordinator never acknowledged, and what
        // was never sent, goes to a file beside the worker.
        let through = shared.interval_of(Instant::now()).max(sender.next_interval);
        let _ = sender.send_through(None, through).await;
        let spooled = sender.unacked.len();
        let path = spool_dir.join(format!(
            "fleetload-unsent-{}-w{}.jsonl",
            a.run_id, a.worker_index
        ));
        let file = match write_spool(&path, &sender.unacked) {
            Ok(()) => path.display().to_string(),
            Err(e) => format!("(could not write {}: {e})", path.display()),
        };
        return Err(WorkerError::Orphaned {
            reason,
            spooled,
            file,
        });
    }
    let through = if stopped.is_some() || shutdown.is_cancelled() {
        shared.interval_of(Instant::now()).max(sender.next_interval)
    } else {
        last_interval
    };
    sender.send_through(Some(&control), through).await?;
    let first = shared
        .first_op_start
        .load(std::sync::atomic::Ordering::Relaxed);
    let done = Done {
        run_id: a.run_id.clone(),
        worker_index: a.worker_index,
        snapshots_sent: sender.sequence,
        totals: totals.clone(),
        inserted,
        insert_id_base: a.insert_id_base,
        insert_id_last,
        first_op_unix_nanos: (first != 0).then_some(first),
    };
    control.send(ToCoordinator::Done((&done).into())).await?;
    // Wait for the coordinator to take the last messages and close the stream.
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        while let Ok(m) = control.recv().await {
            if let FromCoordinator::Stop(_) = m {
                break;
            }
        }
    })
    .await;
    let snapshots_sent = sender.sequence;
    Ok(WorkerSummary {
        run_id: a.run_id.clone(),
        worker_index: a.worker_index,
        totals,
        snapshots_sent,
        stopped,
    })
}

/// When to redial a broken stream: 250 ms, doubling to 2 s.
struct Redial {
    at: Instant,
    backoff: Duration,
}

impl Redial {
    fn new() -> Self {
        Redial {
            at: Instant::now(),
            backoff: Duration::from_millis(250),
        }
    }

    fn failed(&mut self) {
        self.at = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(Duration::from_secs(2));
    }
}

/// Where and as whom a worker redials, and where it spools when it cannot.
pub(crate) struct RejoinTo<'a> {
    endpoint: &'a str,
    hello: &'a Hello,
    spool_dir: &'a std::path::Path,
    clock_skew_nanos: i64,
    security: &'a crate::security::ClientSecurity,
}

enum Rejoined {
    /// The new stream, and the highest sequence the coordinator said it holds.
    Back(Box<Control>, Option<u64>),
    Refused(String),
}

/// Dial the coordinator again as worker `a.worker_index` of run `a.run_id`, and resend
/// every snapshot it has not acknowledged (it ignores the ones it already holds).
async fn rejoin(
    to: &RejoinTo<'_>,
    a: &Assignment,
    sender: &SnapshotSender<'_>,
) -> Result<Rejoined, WorkerError> {
    let attempt = async {
        let ep = to
            .security
            .endpoint(to.endpoint)
            .map_err(|message| WorkerError::Endpoint {
                endpoint: to.endpoint.into(),
                message,
            })?
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true);
        let channel = ep
            .connect()
            .await
            .map_err(|e| WorkerError::Stream(e.to_string()))?;
        let mut hello = to.hello.clone();
        hello.rejoin = Some(fleetload_common::wire::Rejoin {
            run_id: a.run_id.clone(),
            worker_index: a.worker_index,
            secret: a.resume_secret.clone(),
        });
        let mut control = open_stream(channel, to.endpoint, to.security, &hello).await?;
        let first = control.recv().await?;
        if let FromCoordinator::Refused(r) = first {
            return Ok(Rejoined::Refused(r.reason));
        }
        for snapshot in &sender.unacked {
            control
                .send(ToCoordinator::Snapshot(snapshot.clone()))
                .await?;
        }
        let acked = match first {
            FromCoordinator::Ack(ack) => Some(ack.sequence),
            _ => None,
        };
        Ok(Rejoined::Back(Box::new(control), acked))
    };
    tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .unwrap_or_else(|_| Err(WorkerError::Stream("rejoin timed out".into())))
}

struct SnapshotSender<'a> {
    a: &'a Assignment,
    shared: &'a Shared,
    sequence: u64,
    next_interval: u64,
    /// Snapshots the coordinator has not acknowledged yet, oldest first.
    unacked: std::collections::VecDeque<pb::Snapshot>,
}

impl SnapshotSender<'_> {
    /// The coordinator holds every snapshot up to `sequence`.
    fn acked(&mut self, sequence: u64) {
        while self.unacked.front().is_some_and(|s| s.sequence <= sequence) {
            self.unacked.pop_front();
        }
    }

    /// Send one snapshot for every interval from the next unsent one through `through`,
    /// empty ones included, so the coordinator can close each interval.
    /// Without `control` (no coordinator) the snapshots are only kept.
    async fn send_through(
        &mut self,
        control: Option<&Control>,
        through: u64,
    ) -> Result<(), WorkerError> {
        let mut by_interval: std::collections::BTreeMap<u64, IntervalStats> = Default::default();
        for r in &self.shared.recorders {
            for (k, stats) in r.take_through(through) {
                let k = k.max(self.next_interval);
                let into = by_interval
                    .entry(k)
                    .or_insert_with(|| (0..self.a.mix.len()).map(|_| OpStats::default()).collect());
                for (x, y) in into.iter_mut().zip(&stats) {
                    x.merge(y);
                }
            }
        }
        while self.next_interval <= through {
            let k = self.next_interval;
            let stats = by_interval
                .remove(&k)
                .unwrap_or_else(|| (0..self.a.mix.len()).map(|_| OpStats::default()).collect());
            let snapshot = Snapshot {
                run_id: self.a.run_id.clone(),
                worker_index: self.a.worker_index,
                sequence: self.sequence,
                interval_index: k,
                operations: self
                    .a
                    .mix
                    .iter()
                    .map(|(op, _)| op.clone())
                    .zip(stats)
                    .collect(),
            };
            let wire = snapshot
                .to_proto()
                .map_err(|e| WorkerError::Protocol(e.to_string()))?;
            self.unacked.push_back(wire.clone());
            self.sequence += 1;
            self.next_interval += 1;
            if let Some(control) = control {
                control.send(ToCoordinator::Snapshot(wire)).await?;
            }
        }
        Ok(())
    }
}

/// Write snapshots as JSON lines (histograms as base64 HdrHistogram V2, as sent).
fn write_spool(
    path: &std::path::Path,
    snapshots: &std::collections::VecDeque<pb::Snapshot>,
) -> std::io::Result<()> {
    use base64::Engine;
    use std::io::Write;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for s in snapshots {
        let operations: Vec<serde_json::Value> = s
            .operations
            .iter()
            .map(|o| {
                serde_json::json!({
                    "name": o.name, "ok": o.ok, "errors": o.errors, "dropped_backlog": o.dropped_backlog,
                    "response_time": b64(&o.response_time), "service_time": b64(&o.service_time), "schedule_lag": b64(&o.schedule_lag),
                })
            })
            .collect();
        let line = serde_json::json!({
            "run_id": s.run_id, "worker_index": s.worker_index, "sequence": s.sequence,
            "interval_index": s.interval_index, "operations": operations,
        });
        writeln!(out, "{line}")?;
    }
    out.flush()
}

/// Apply a rebalance: this worker's whole new load profile and the ranges taken over
/// from lost workers. Out-of-bounds values are refused (logged) rather than applied.
fn rebalance(
    r: &pb::Rebalance,
    a: &Assignment,
    shared: &Shared,
    rate: &tokio::sync::watch::Sender<Arc<Profile>>,
) {
    let ranges_ok = r
        .extra_shards
        .iter()
        .all(|s| s.first >= 1 && s.first <= s.last && s.last <= a.rows);
    let max = match a.load {
        WorkerLoad::Open { .. } => fleetload_common::plan::MAX_RATE,
        WorkerLoad::Closed { .. } => f64::from(a.sessions),
    };
    let profile = if r.profile.is_empty() {
        None
    } else {
        match fleetload_common::wire::profile_from("rebalance.profile", &r.profile, max) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::error!(error = %e, "refused an invalid rebalance from the coordinator");
                return;
            }
        }
    };
    if !ranges_ok {
        tracing::error!("refused a rebalance with key ranges outside the key space");
        return;
    }
    let extra: Vec<Shard> = r
        .extra_shards
        .iter()
        .map(|s| Shard {
            first: s.first,
            last: s.last,
        })
        .collect();
    let now = Instant::now()
        .saturating_duration_since(shared.start)
        .as_secs_f64();
    tracing::info!(now_value = ?profile.as_ref().map(|p| p.value_at(now)), ranges = ?extra, "new share of the load");
    if let Some(p) = profile {
        let _ = rate.send(Arc::new(p));
    }
    if let Ok(mut e) = shared.extra.write() {
        *e = extra;
    }
    shared
        .extra_version
        .fetch_add(1, std::sync::atomic::Ordering::Release);
}
