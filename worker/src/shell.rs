//! The worker's side of a run: join, receive an assignment, open the sessions, start
//! with the fleet, drive the load while the link ([`crate::link`]) streams a snapshot
//! per interval, and say what ran.

use crate::config::{instant_at, wall_nanos, WorkerConfig};
use crate::error::{SetupError, WorkerError};
use crate::launch::Endpoints;
use crate::launch::{Load, Ran};
use crate::link::{Effect, Input, Link};
use crate::sessions::Work;
use crate::stream::{Control, RejoinTo, Rejoined};
use fleetload_common::scenario::{OpName, Operation, Scenario};
use fleetload_common::scenario_ref::ScenarioRef;
use fleetload_common::stats::OpTotals;
use fleetload_common::wire::{Assignment, Done, FromWorker, Hello, Snapshot, ToWorker};
use fleetload_db::connect::ConnectSpec;
use fleetload_db::session::Session;
use fleetload_db::workloads::builtin::BuiltinWorkload;
use fleetload_db::workloads::file::FileWorkload;
use fleetload_db::workloads::tpcc::TpccWorkload;
use fleetload_db::workloads::{CheckFor, Workload};
use fleetload_proto::PROTOCOL_VERSION;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long a finished worker waits for the coordinator to close the stream.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

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

/// Open `count` sessions at no more than `connect_rate` per second.
async fn open_sessions(
    count: u32,
    connect_rate: u32,
    spec: &ConnectSpec,
) -> Result<Vec<Session>, SetupError> {
    let mut set = tokio::task::JoinSet::new();
    let gap = Duration::from_secs_f64(1.0 / f64::from(connect_rate.max(1)));
    for i in 0..count {
        let spec = spec.clone();
        let delay = gap * i;
        set.spawn(async move {
            tokio::time::sleep(delay).await;
            (i, spec.connect().await)
        });
    }
    let mut sessions = Vec::with_capacity(count as usize);
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
            Err(SetupError::Session {
                index: i + 1,
                count,
                reason: e,
            })
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
    // The spool keeps what this worker measured if its coordinator dies: a directory
    // that cannot take it must stop the worker now, not lose the data then.
    let mut config = config;
    config.spool_dir = fleetload_common::outdir::ensure_writable(&config.spool_dir, "--spool-dir")?;
    let channel =
        crate::stream::dial(endpoint, &config.security, config.dial_timeout, &shutdown).await?;
    let hello = Hello {
        protocol_version: PROTOCOL_VERSION,
        name: config.name.clone(),
        host: config.host.clone(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        max_sessions: config.max_sessions,
        capacity: config.capacity,
        rejoin: None,
    };
    let mut control = crate::stream::open(channel, endpoint, &config.security, &hello).await?;
    let mut assignment = await_assignment(&mut control, &shutdown).await?;
    tracing::info!(run = %assignment.run_id, index = assignment.worker_index, target = %assignment.target,
        sessions = assignment.sessions, shard = %assignment.shard, "assignment received");
    let prepared = match prepare(&mut assignment, &config).await {
        Ok(p) => p,
        Err(e) => return Err(control.fail(e).await),
    };
    let Prepared {
        mut endpoints,
        mut work,
        rows_loaded,
    } = prepared;
    control
        .send(&FromWorker::Ready {
            sessions: endpoints.count() as u32,
            rows_loaded,
            spool: spool_path(&assignment, &config).display().to_string(),
        })
        .await?;
    let start = match await_start(&mut control, config.clock_skew_nanos, &shutdown).await {
        Ok(Started::At(start)) => start,
        other => {
            endpoints.close().await;
            return match other? {
                Started::Stopped(reason) => Ok(WorkerSummary {
                    run_id: assignment.run_id,
                    worker_index: assignment.worker_index,
                    totals: Vec::new(),
                    snapshots_sent: 0,
                    stopped: Some(reason),
                }),
                Started::At(_) => Err(WorkerError::Cancelled),
            };
        }
    };
    // Sequences start above what is in the table once every worker has loaded its
    // shard (all were ready) and before anyone inserts (the start is still ahead).
    if let (Work::File(workload), Some(first)) = (&mut work, endpoints.writer.1.first_mut()) {
        match workload.sequence_bases(first).await {
            Ok(b) => workload.set_bases(b),
            Err(e) => return Err(control.fail(e.into()).await),
        }
    }
    let load = Load::start(&assignment, work, endpoints, start, &config, &shutdown);
    let to = RejoinTo {
        endpoint,
        hello: &hello,
        security: &config.security,
    };
    execute(assignment, load, control, &to, &config, &shutdown).await
}

/// Where this worker spools what it cannot deliver.
fn spool_path(a: &Assignment, config: &WorkerConfig) -> std::path::PathBuf {
    let path = fleetload_common::spool::path(&config.spool_dir, &a.run_id, a.worker_index);
    std::path::absolute(&path).unwrap_or(path)
}

/// Wait for this worker's assignment; a refusal or a stop ends the worker.
async fn await_assignment(
    control: &mut Control,
    shutdown: &CancellationToken,
) -> Result<Assignment, WorkerError> {
    loop {
        let msg = tokio::select! {
            msg = control.recv() => msg?,
            _ = shutdown.cancelled() => return Err(WorkerError::Cancelled),
        };
        match msg {
            Ok(ToWorker::Assignment(a)) => return Ok(*a),
            Ok(ToWorker::Refused { reason } | ToWorker::Stop { reason }) => {
                return Err(WorkerError::Refused { reason })
            }
            Ok(_) => continue,
            Err(e) => {
                return Err(control.fail(SetupError::Assignment(e)).await);
            }
        }
    }
}

/// A worker ready to start: its sessions open (and its shard loaded), its work checked.
struct Prepared {
    endpoints: Endpoints,
    work: Work,
    rows_loaded: u64,
}

/// How a worker connects to `target`.
fn connect_spec(
    target: &fleetload_common::target::Target,
    a: &Assignment,
) -> Result<ConnectSpec, SetupError> {
    let spec = ConnectSpec::new(target.clone(), a.connect_timeout)?;
    Ok(ConnectSpec {
        application: "fleetload worker",
        ..spec
    })
}

/// Everything between the assignment and Ready: refuse what this worker does not run,
/// open the sessions, load the shard, place the insert ids, check the scenario on the
/// server. An error is what to tell the coordinator.
async fn prepare(a: &mut Assignment, config: &WorkerConfig) -> Result<Prepared, SetupError> {
    let refuses = |what, reason| SetupError::Refused {
        worker: config.name.clone(),
        what,
        reason,
    };
    if let Err(message) = crate::security::check_target(&a.target, &config.allow_targets) {
        tracing::error!("{message}");
        return Err(refuses("assignment", message));
    }
    let readers = a.reader.as_ref().map_or(0, |r| r.sessions);
    if a.sessions.saturating_add(readers) > config.max_sessions {
        return Err(SetupError::TooManySessions {
            worker: config.name.clone(),
            max: config.max_sessions,
            asked: a.sessions.saturating_add(readers),
        });
    }
    let reader = match &a.reader {
        Some(r) => {
            if let Err(message) = crate::security::check_target(&r.target, &config.allow_targets) {
                return Err(refuses("reader", message));
            }
            let spec = connect_spec(&r.target, a)?;
            let sessions = open_sessions(r.sessions, a.connect_rate, &spec)
                .await
                .map_err(|e| SetupError::Reader {
                    target: r.target.to_string(),
                    source: Box::new(e),
                })?;
            Some((spec, sessions))
        }
        None => None,
    };
    let connect = connect_spec(&a.target, a)?;
    let mut sessions = open_sessions(a.sessions, a.connect_rate, &connect).await?;
    // The fleet prepares the data: this worker loads its own shard on its sessions.
    let mut rows_loaded = 0;
    if a.load_rows {
        let shard = a.shard;
        (sessions, _) = fleetload_db::prepare::load_range(
            sessions,
            &a.scenario,
            a.seed,
            a.rows,
            shard.first..=shard.last,
        )
        .await
        .map_err(|e| SetupError::LoadShard {
            first: shard.first,
            last: shard.last,
            reason: e.to_string(),
        })?;
        rows_loaded = shard.len();
        tracing::info!(rows = rows_loaded, "loaded this worker's shard");
    }
    let first = sessions.first_mut().ok_or(SetupError::NoSession)?;
    place_insert_ids(a, first).await?;
    // A scenario file's statements are prepared on the server now, so a broken file
    // fails the run with its line before any load starts.
    let work = work_for(a)?;
    check_work(a, &work, first).await?;
    Ok(Prepared {
        endpoints: Endpoints {
            writer: (connect, sessions),
            reader,
        },
        work,
        rows_loaded,
    })
}

/// Inserted ids start above every id in the table, so runs never collide. Every
/// worker reads the maximum before it reports ready, and nobody inserts before the
/// start, so all workers of the run see the same maximum.
async fn place_insert_ids(a: &mut Assignment, session: &mut Session) -> Result<(), SetupError> {
    let inserts = a.mix.iter().any(|(op, _)| *op == Operation::InsertCustomer);
    let Some(table) = a.scenario.builtin().map(|s| s.table()).filter(|_| inserts) else {
        return Ok(());
    };
    let max = session
        .scalar_i64(&format!("SELECT COALESCE(MAX(id), 0) FROM {table}"))
        .await
        .map_err(|e| SetupError::HighestId {
            table,
            reason: fleetload_db::session::describe(&e),
        })?;
    let above = u64::try_from(max).unwrap_or(0).saturating_sub(a.rows);
    a.insert_id_base += above;
    Ok(())
}

/// Prepare the statements and check the key space: a missing table fails the run
/// before the start with the command that makes it. Not while this very run prepares
/// the data (the table fills and the model's functions are installed once every worker
/// is ready).
async fn check_work(a: &Assignment, work: &Work, first: &mut Session) -> Result<(), SetupError> {
    let plan = CheckFor {
        target: a.target.url(),
        rows: a.rows,
    };
    match work {
        // While this very run prepares the data, the built-in tables fill (and the
        // model's functions are installed) only once every worker is ready.
        Work::Builtin(_) | Work::Tpcc(_) if a.load_rows => Ok(()),
        Work::Builtin(workload) => Ok(Workload::check(workload, first, &plan).await?),
        Work::Tpcc(workload) => Ok(Workload::check(&**workload, first, &plan).await?),
        Work::File(workload) => Ok(Workload::check(workload, first, &plan).await?),
    }
}

enum Started {
    At(Instant),
    /// The coordinator stopped the run before it started.
    Stopped(String),
}

/// Answer clock probes until the start instant arrives.
async fn await_start(
    control: &mut Control,
    skew: i64,
    shutdown: &CancellationToken,
) -> Result<Started, WorkerError> {
    loop {
        let msg = tokio::select! {
            msg = control.recv() => msg?,
            _ = shutdown.cancelled() => return Err(WorkerError::Cancelled),
        };
        match msg {
            Ok(ToWorker::Start { start_unix_nanos }) => {
                return Ok(Started::At(instant_at(start_unix_nanos, skew)))
            }
            Ok(ToWorker::TimeProbe {
                id,
                coordinator_send_unix_nanos,
            }) => {
                let received = wall_nanos(skew);
                let echo = fleetload_common::wire::TimeEcho {
                    id,
                    coordinator_send: coordinator_send_unix_nanos,
                    worker_receive: received,
                    worker_send: wall_nanos(skew),
                    coordinator_receive: None,
                };
                control.send(&FromWorker::TimeEcho(echo)).await?;
            }
            Ok(ToWorker::Stop { reason }) => return Ok(Started::Stopped(reason)),
            Ok(_) => continue,
            Err(e) => {
                tracing::error!(error = %e, "refused an invalid message from the coordinator");
            }
        }
    }
}

/// What this worker's sessions will run, from its assignment.
fn work_for(a: &Assignment) -> Result<Work, SetupError> {
    let names: Vec<OpName> = a.mix.iter().map(|(op, _)| op.clone()).collect();
    match &a.scenario {
        ScenarioRef::Builtin(scenario) => {
            let ops = names
                .iter()
                .map(|n| {
                    n.builtin().ok_or_else(|| SetupError::NotAnOperation {
                        op: n.clone(),
                        scenario: scenario.name(),
                    })
                })
                .collect::<Result<_, _>>()?;
            Ok(if *scenario == Scenario::Tpcc {
                Work::Tpcc(Box::new(
                    TpccWorkload::new(a.target.driver(), a.seed)
                        .with_key_space(a.rows)
                        .with_mix(ops),
                ))
            } else {
                Work::Builtin(
                    BuiltinWorkload::new(
                        a.target.driver(),
                        *scenario,
                        a.seed,
                        a.batch_size,
                        a.aurora_ml,
                    )
                    .with_mix(ops),
                )
            })
        }
        ScenarioRef::File(file) => Ok(Work::File(FileWorkload::new(
            std::sync::Arc::clone(file),
            a.target.driver(),
            &names,
        )?)),
    }
}

/// The run from its start: the load runs while the link sends snapshots, redials and
/// watches the lease; then the last snapshots and Done, or the spool.
async fn execute(
    a: Assignment,
    mut load: Load,
    mut control: Control,
    to: &RejoinTo<'_>,
    config: &WorkerConfig,
    shutdown: &CancellationToken,
) -> Result<WorkerSummary, WorkerError> {
    let mut link = Link::new(&a, load.shared.start.into_std(), std::time::Instant::now());
    let mut ran: Option<Ran> = None;
    // When the dead man's switch paused or stopped this worker's load (its wall clock):
    // the spool carries it, so a recovered report marks the time without load.
    let mut load_paused: Option<i64> = None;
    loop {
        let connected = *link.state() == crate::link::State::Connected;
        let deadline = link.next_deadline();
        let input = tokio::select! {
            msg = control.recv(), if connected => match msg {
                Ok(Ok(m)) => Input::Received(m),
                Ok(Err(e)) => Input::Invalid(e.to_string()),
                Err(e) => Input::Broken(e.to_string()),
            },
            _ = sleep_until(deadline) => Input::Tick,
            _ = load.tracker.wait(), if ran.is_none() => {
                ran = Some(load.totals(&a.mix).await);
                Input::LoadFinished { cancelled: shutdown.is_cancelled() }
            }
        };
        let mut queue: std::collections::VecDeque<Effect> =
            link.handle(std::time::Instant::now(), input).into();
        let mut broken = None;
        while let Some(effect) = queue.pop_front() {
            let next = match effect {
                Effect::Send(m) => {
                    if broken.is_none() {
                        if let Err(e) = control.send(&m).await {
                            broken = Some(e.to_string());
                        }
                    }
                    None
                }
                Effect::Measure { through } => {
                    let (stats, events) = load.measure(through);
                    Some(Input::Measured {
                        through,
                        stats,
                        events,
                    })
                }
                Effect::Redial => Some(match crate::stream::rejoin(to, claim(&a, config)).await {
                    Ok(Rejoined::Back(c, acked)) => {
                        control = *c;
                        load_paused = None;
                        Input::Rejoined { acked }
                    }
                    Ok(Rejoined::Refused(reason)) => Input::RejoinRefused(reason),
                    Err(e) => Input::RejoinFailed(e.to_string()),
                }),
                Effect::StopLoad => {
                    if ran.is_none() {
                        load_paused.get_or_insert(wall_nanos(config.clock_skew_nanos));
                    }
                    load.cancel.cancel();
                    None
                }
                Effect::ApplyLoad(r) => {
                    load.apply(r);
                    None
                }
                Effect::PauseLoad => {
                    load_paused.get_or_insert(wall_nanos(config.clock_skew_nanos));
                    load.apply(fleetload_common::wire::Rebalance {
                        extra: Vec::new(),
                        profile: Some(fleetload_common::profile::Profile::constant(0.0)),
                    });
                    None
                }
                Effect::Finish { snapshots_sent } => {
                    let ran = ran.take().unwrap_or_default();
                    return finish(&a, &load, &mut control, ran, snapshots_sent, link.stopped())
                        .await;
                }
                Effect::Spool { reason, snapshots } => {
                    let load_ended = ran.is_some();
                    let done = ran
                        .take()
                        .map(|ran| done_of(&a, &load, ran, link.snapshots_sent()));
                    let paused = load_paused
                        .or_else(|| (!load_ended).then(|| wall_nanos(config.clock_skew_nanos)));
                    return Err(spool(&a, config, reason, &snapshots, done.as_ref(), paused));
                }
            };
            if let Some(input) = next.or_else(|| broken.take().map(Input::Broken)) {
                queue.extend(link.handle(std::time::Instant::now(), input));
            }
        }
    }
}

async fn sleep_until(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}

/// The slot this worker claims when it rejoins.
fn claim(a: &Assignment, config: &WorkerConfig) -> fleetload_common::wire::Rejoin {
    fleetload_common::wire::Rejoin {
        run_id: a.run_id.clone(),
        worker_index: a.worker_index,
        secret: a.resume_secret.clone(),
        spool: spool_path(a, config).display().to_string(),
    }
}

/// What ran, as the final message says it.
fn done_of(a: &Assignment, load: &Load, ran: Ran, snapshots_sent: u64) -> Done {
    let first = load
        .shared
        .first_op_start
        .load(std::sync::atomic::Ordering::Relaxed);
    Done {
        run_id: a.run_id.clone(),
        worker_index: a.worker_index,
        snapshots_sent,
        totals: ran.totals,
        inserted: ran.inserted,
        insert_id_base: a.insert_id_base,
        insert_id_last: ran.insert_id_last,
        first_op_unix_nanos: (first != 0).then_some(first),
    }
}

/// Every snapshot is sent: say what ran, and wait for the coordinator to close.
async fn finish(
    a: &Assignment,
    load: &Load,
    control: &mut Control,
    ran: Ran,
    snapshots_sent: u64,
    stopped: Option<&str>,
) -> Result<WorkerSummary, WorkerError> {
    let done = done_of(a, load, ran, snapshots_sent);
    let totals = done.totals.clone();
    control.send(&FromWorker::Done(Box::new(done))).await?;
    // Wait for the coordinator to take the last messages and close the stream.
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        while let Ok(m) = control.recv().await {
            if let Ok(ToWorker::Stop { .. }) = m {
                break;
            }
        }
    })
    .await;
    Ok(WorkerSummary {
        run_id: a.run_id.clone(),
        worker_index: a.worker_index,
        totals,
        snapshots_sent,
        stopped: stopped.map(str::to_string),
    })
}

/// Nothing measured is lost: what the coordinator never acknowledged, what was never
/// sent, and the final totals (when the load had ended) go to the spool file, which
/// `fleetload report recover` merges into the run's report.
fn spool(
    a: &Assignment,
    config: &WorkerConfig,
    reason: String,
    snapshots: &[Snapshot],
    done: Option<&Done>,
    load_paused_unix_nanos: Option<i64>,
) -> WorkerError {
    let path = spool_path(a, config);
    let header = fleetload_common::spool::SpoolHeader {
        fleetload_spool: fleetload_common::spool::SPOOL_FORMAT,
        run_id: a.run_id.clone(),
        worker_index: a.worker_index,
        worker: config.name.clone(),
        plan_hash: a.plan_hash.clone(),
        reason: reason.clone(),
        load_paused_unix_nanos,
    };
    // The directory was checked at start; if it went away since, make it again, and
    // if that fails keep the data in the system's temporary directory instead.
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| fleetload_common::spool::write(&path, &header, snapshots, done));
    let file = match written {
        Ok(()) => path.display().to_string(),
        Err(e) => {
            let fallback =
                fleetload_common::spool::path(&std::env::temp_dir(), &a.run_id, a.worker_index);
            match fleetload_common::spool::write(&fallback, &header, snapshots, done) {
                Ok(()) => format!(
                    "{} (could not write {}: {e})",
                    fallback.display(),
                    path.display()
                ),
                Err(e2) => format!(
                    "nowhere: could not write {} ({e}) nor {} ({e2}); they are lost",
                    path.display(),
                    fallback.display()
                ),
            }
        }
    };
    WorkerError::Orphaned {
        reason,
        spooled: snapshots.len(),
        file,
    }
}
