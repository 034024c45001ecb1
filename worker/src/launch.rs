//! Launching the load: a pool of sessions per endpoint, the pacer that releases the
//! open loop's operations into them, a task per session; and collecting what ran.

use crate::config::WorkerConfig;
use crate::dispatch::Order;
use crate::pacer::Pacer;
use crate::recorder::Recorder;
use crate::sessions::{drive, Pool, Shared, Work};
use fleetload_common::profile::Profile;
use fleetload_common::rng::Rng;
use fleetload_common::scenario::{OpName, Role};
use fleetload_common::schedule::Arrivals;
use fleetload_common::stats::OpTotals;
use fleetload_common::wire::{Assignment, Rebalance, WorkerLoad};
use fleetload_db::connect::ConnectSpec;
use fleetload_db::session::Session;
use std::sync::Arc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The running load: the sessions' tasks, the pacer (open loop), and what they share.
pub(crate) struct Load {
    pub(crate) shared: Arc<Shared>,
    pub(crate) tracker: TaskTracker,
    pub(crate) pacer: Option<tokio::task::JoinHandle<Vec<OpTotals>>>,
    pub(crate) sessions: Vec<tokio::task::JoinHandle<(Vec<OpTotals>, u64, u64)>>,
    /// The load profile (ops/s or active sessions) the pacer and sessions follow.
    pub(crate) profile: tokio::sync::watch::Sender<Arc<Profile>>,
    pub(crate) cancel: CancellationToken,
}

impl Load {
    /// Spawn the sessions (and the pacer) of assignment `a`, starting at `start`.
    pub(crate) fn start(
        a: &Assignment,
        work: Work,
        endpoints: Endpoints,
        start: Instant,
        config: &WorkerConfig,
        shutdown: &CancellationToken,
    ) -> Load {
        let intervals = fleetload_common::intervals::Intervals::of_run(a.duration, a.interval);
        let cancel = shutdown.child_token();
        let count = endpoints.count();
        let recorders: Vec<Arc<Recorder>> = (0..count.clamp(1, 16))
            .map(|_| Arc::new(Recorder::new(a.mix.len())))
            .collect();
        let tracker = TaskTracker::new();
        let initial = match &a.load {
            WorkerLoad::Open { profile, .. } => profile.clone(),
            WorkerLoad::Closed { sessions, .. } => sessions
                .clone()
                .unwrap_or_else(|| Profile::constant(count as f64)),
        };
        let (profile, rate_rx) = tokio::sync::watch::channel(Arc::new(initial));
        let (pools, queues, route, sessions) = pools_for(a, endpoints);
        let pacer = pacer_for(
            a,
            start,
            (queues, route),
            Arc::clone(&recorders[0]),
            &cancel,
            &rate_rx,
        )
        .map(|p| tracker.spawn(p.run()));
        let shared = Arc::new(Shared {
            start,
            duration: a.duration,
            intervals,
            load: a.load.clone(),
            active: rate_rx,
            first_op_start: std::sync::atomic::AtomicI64::new(0),
            clock_skew_nanos: config.clock_skew_nanos,
            mix: a.mix.clone(),
            shard: a.shard,
            extra: std::sync::RwLock::new(Vec::new()),
            extra_version: std::sync::atomic::AtomicU64::new(0),
            op_timeout: a.op_timeout,
            seed: a.seed,
            worker_index: a.worker_index,
            insert_base: a.insert_id_base,
            insert_stride: a.insert_id_stride,
            sessions: count,
            pools,
            max_connection_age: a.max_connection_age,
            recorders,
            events: crate::events::Events::default(),
            cancel: cancel.clone(),
        });
        tracker.spawn({
            let shared = Arc::clone(&shared);
            let end = start + a.duration;
            async move {
                crate::stall::watch(start, end, &shared.events, shared.cancel.clone()).await;
            }
        });
        // Each kind with its concrete type, where its sessions' futures are known to be
        // Send (see fleetload_db::workloads).
        macro_rules! spawn_sessions {
            ($workload:expr) => {{
                let workload = Arc::new($workload);
                sessions
                    .into_iter()
                    .enumerate()
                    .map(|(i, (pool, s))| {
                        tracker.spawn(drive(
                            i,
                            pool,
                            s,
                            Arc::clone(&shared),
                            Arc::clone(&workload),
                        ))
                    })
                    .collect()
            }};
        }
        let sessions = match work {
            Work::Builtin(w) => spawn_sessions!(w),
            Work::Tpcc(w) => spawn_sessions!(*w),
            Work::File(w) => spawn_sessions!(w),
        };
        tracker.close();
        Load {
            shared,
            tracker,
            pacer,
            sessions,
            profile,
            cancel,
        }
    }

    /// What the recorders hold through interval `through`, and the events noticed.
    pub(crate) fn measure(
        &self,
        through: u64,
    ) -> (
        Vec<(u64, crate::recorder::IntervalStats)>,
        Vec<fleetload_common::events::WorkerEvent>,
    ) {
        let stats = self
            .shared
            .recorders
            .iter()
            .flat_map(|r| r.take_through(through))
            .collect();
        (stats, self.shared.events.take())
    }

    /// A new share of the load: the profile and the key ranges taken over.
    pub(crate) fn apply(&self, r: Rebalance) {
        if let Some(p) = r.profile {
            let _ = self.profile.send(Arc::new(p));
        }
        if let Ok(mut e) = self.shared.extra.write() {
            *e = r.extra;
        }
        self.shared
            .extra_version
            .fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// Wait for every task and add up what ran.
    pub(crate) async fn totals(&mut self, mix: &[(OpName, u32)]) -> Ran {
        let mut totals: Vec<(OpName, OpTotals)> = mix
            .iter()
            .map(|(op, _)| (op.clone(), OpTotals::default()))
            .collect();
        let (mut inserted, mut insert_id_last) = (0, 0);
        let pacer_dropped = match self.pacer.take() {
            Some(p) => p
                .await
                .map_err(|e| tracing::error!(error = %e, "the pacer failed"))
                .ok(),
            None => None,
        };
        for h in std::mem::take(&mut self.sessions) {
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
        Ran {
            totals,
            inserted,
            insert_id_last,
        }
    }
}

/// A pool per endpoint (the writer's runs every operation without a reader, only the
/// writes with one), the pacer's queue of each, which queue each operation goes to,
/// and every session with its pool.
#[allow(clippy::type_complexity)]
fn pools_for(
    a: &Assignment,
    endpoints: Endpoints,
) -> (
    Vec<Pool>,
    Vec<crate::dispatch::Sender<(std::time::Instant, u16)>>,
    Vec<usize>,
    Vec<(usize, Session)>,
) {
    let roles: Vec<Role> = a.mix.iter().map(|(op, _)| a.scenario.role_of(op)).collect();
    let split = endpoints.reader.is_some();
    let route: Vec<usize> = roles
        .iter()
        .map(|r| usize::from(split && *r == Role::Read))
        .collect();
    let mut pools = Vec::new();
    let mut queues = Vec::new();
    let mut sessions = Vec::new();
    let all = [
        (Role::Write, Some(endpoints.writer)),
        (Role::Read, endpoints.reader),
    ];
    for (role, endpoint) in all {
        let Some((connect, opened)) = endpoint else {
            continue;
        };
        let index = pools.len();
        // A reader endpoint's sessions take turns, which spreads the reads over the
        // replicas their connections landed on; otherwise the warmest free session
        // takes the next operation (see `dispatch`).
        let order = match role {
            Role::Read => Order::Turns,
            Role::Write => Order::Warm,
        };
        let (tx, rx) = crate::dispatch::queue(order);
        queues.push(tx);
        pools.push(Pool {
            role,
            connect,
            weights: a
                .mix
                .iter()
                .zip(&route)
                .map(|((_, w), q)| if *q == index { *w } else { 0 })
                .collect(),
            arrivals: rx,
        });
        sessions.extend(opened.into_iter().map(|s| (index, s)));
    }
    (pools, queues, route, sessions)
}

/// Open loop: the pacer that releases assignment `a`'s intended starts from `start`.
fn pacer_for(
    a: &Assignment,
    start: Instant,
    (queues, route): (
        Vec<crate::dispatch::Sender<(std::time::Instant, u16)>>,
        Vec<usize>,
    ),
    recorder: Arc<Recorder>,
    cancel: &CancellationToken,
    rate: &tokio::sync::watch::Receiver<Arc<Profile>>,
) -> Option<Pacer> {
    let WorkerLoad::Open {
        profile,
        arrival,
        phase,
        max_backlog,
        catch_up,
    } = &a.load
    else {
        return None;
    };
    Some(Pacer {
        arrivals_plan: Arrivals::new(
            *arrival,
            profile.clone(),
            *phase,
            Rng::for_stream(a.seed, &[u64::from(a.worker_index), 0xA771]),
        ),
        start: start.into_std(),
        duration: a.duration,
        intervals: fleetload_common::intervals::Intervals::of_run(a.duration, a.interval),
        queues,
        route,
        // Past this many queued operations, more would only be dropped later.
        cap: ((profile.max() * max_backlog.as_secs_f64()) as usize)
            .max(a.sessions as usize * 4)
            .max(1024),
        weights: a.mix.iter().map(|(_, w)| *w).collect(),
        recorder,
        rng: Rng::for_stream(a.seed, &[u64::from(a.worker_index), u64::MAX]),
        cancel: cancel.clone(),
        rate: rate.clone(),
        catch_up: *catch_up,
    })
}

/// What the sessions ran: totals per operation, rows inserted and the last insert id.
#[derive(Debug, Default)]
pub(crate) struct Ran {
    pub(crate) totals: Vec<(OpName, OpTotals)>,
    pub(crate) inserted: u64,
    pub(crate) insert_id_last: u64,
}

/// The sessions opened on each endpoint, and how to reopen them.
pub(crate) struct Endpoints {
    pub(crate) writer: (ConnectSpec, Vec<Session>),
    pub(crate) reader: Option<(ConnectSpec, Vec<Session>)>,
}

impl Endpoints {
    pub(crate) fn count(&self) -> usize {
        self.writer.1.len() + self.reader.as_ref().map_or(0, |r| r.1.len())
    }

    pub(crate) async fn close(self) {
        for s in self
            .writer
            .1
            .into_iter()
            .chain(self.reader.into_iter().flat_map(|r| r.1))
        {
            s.close().await;
        }
    }
}
