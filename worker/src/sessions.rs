//! The session loops: how each session turns the schedule into operations.
//!
//! Open loop: sessions take the intended start of each operation from the pacer's
//! queue (see [`crate::pacer`]); an operation that finds no free session waits on the
//! clock, so its response time (completion − intended start) includes the wait and the
//! schedule lag shows it. Nothing is skipped silently: an operation further behind
//! than `max_backlog` is counted as `dropped_backlog`. Closed loop: sessions run back to
//! back, with an optional think time.

use crate::recorder::{On, Recorder};
use fleetload_common::events::{SessionOutage, WorkerEvent};
use fleetload_common::generator::Streams;
use fleetload_common::outcome::ErrorClass;
use fleetload_common::rng::Rng;
use fleetload_common::scenario::{OpName, Role};
use fleetload_common::split::Shard;
use fleetload_common::stats::OpTotals;
use fleetload_common::wire::WorkerLoad;
use fleetload_db::connect::ConnectSpec;
use fleetload_db::session::Session;
use fleetload_db::workloads::builtin::BuiltinWorkload;
use fleetload_db::workloads::file::FileWorkload;
use fleetload_db::workloads::tpcc::TpccWorkload;
use fleetload_db::workloads::{Attempt, Executed, Keys, OpFailure, Workload};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The run start as this worker's first operation shows it: its send time on this
/// worker's clock minus its intended offset into the run (set once).
fn note_first_op(shared: &Shared, intended: Instant) {
    if shared
        .first_op_start
        .load(std::sync::atomic::Ordering::Relaxed)
        != 0
    {
        return;
    }
    let into_run = intended.saturating_duration_since(shared.start);
    let at = crate::config::wall_nanos(shared.clock_skew_nanos)
        - i64::try_from(into_run.as_nanos()).unwrap_or(0);
    let _ = shared.first_op_start.compare_exchange(
        0,
        at,
        std::sync::atomic::Ordering::Relaxed,
        std::sync::atomic::Ordering::Relaxed,
    );
}

const BACKOFF_FIRST: Duration = Duration::from_millis(50);
const BACKOFF_CAP: Duration = Duration::from_secs(2);

/// What the sessions run: a built-in scenario's operations or a scenario file's, one per
/// mix slot. Each kind's sessions are spawned with its concrete type (see
/// `fleetload_db::workloads` on why).
#[derive(Debug)]
pub(crate) enum Work {
    Builtin(BuiltinWorkload),
    /// Boxed: its statements are several times the others' size.
    Tpcc(Box<TpccWorkload>),
    File(FileWorkload),
}

/// What every session of a worker shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub start: Instant,
    pub duration: Duration,
    /// The run's intervals (one rule with the pacer and the link).
    pub intervals: fleetload_common::intervals::Intervals,
    pub load: WorkerLoad,
    /// Closed loop: how many sessions are active over time (its share of the stages).
    pub active: tokio::sync::watch::Receiver<Arc<fleetload_common::profile::Profile>>,
    /// The run start as this worker's first operation showed it, Unix nanoseconds on
    /// its clock (its send time minus its intended offset); 0 until then.
    pub first_op_start: std::sync::atomic::AtomicI64,
    pub clock_skew_nanos: i64,
    pub mix: Vec<(OpName, u32)>,
    pub shard: Shard,
    /// Ranges taken over from lost workers, and a version sessions check per operation
    /// (one atomic load; the lock only when it changed).
    pub extra: std::sync::RwLock<Vec<Shard>>,
    pub extra_version: std::sync::atomic::AtomicU64,
    /// First id this worker inserts, and the worker stride (the fleet size).
    pub insert_base: u64,
    pub insert_stride: u64,
    pub sessions: usize,
    pub op_timeout: Duration,
    pub seed: u64,
    pub worker_index: u32,
    /// The endpoints' sessions: the writer's first (everything, without a reader).
    pub pools: Vec<Pool>,
    /// Reconnect a session after this long (with jitter); `None`: keep connections.
    pub max_connection_age: Option<Duration>,
    pub recorders: Vec<Arc<Recorder>>,
    /// Session outages and stalls of this worker's own runtime, noticed and not yet in
    /// a snapshot.
    pub events: crate::events::Events,
    pub cancel: CancellationToken,
}

/// The sessions of one endpoint.
#[derive(Debug)]
pub(crate) struct Pool {
    pub role: Role,
    pub connect: ConnectSpec,
    /// The mix's weights as this pool runs them: 0 for operations of the other role
    /// when the plan has a reader.
    pub weights: Vec<u32>,
    /// Intended starts and operations the pacer released for this pool (open loop).
    pub arrivals: crate::dispatch::Receiver<(std::time::Instant, u16)>,
}

impl Shared {
    /// The interval an event at `t` belongs to (the last one for stragglers).
    pub(crate) fn interval_of(&self, t: Instant) -> u64 {
        self.intervals.at(t.saturating_duration_since(self.start))
    }

    /// An operation of `pool`'s by weight (closed loop; the pacer picks in open loop).
    fn pick(&self, pool: usize, rng: &mut Rng, total_weight: u64) -> usize {
        let weights = &self.pools[pool].weights;
        let mut x = rng.range(1, total_weight);
        for (slot, w) in weights.iter().enumerate() {
            let w = u64::from(*w);
            if x <= w {
                return slot;
            }
            x -= w;
        }
        weights.len() - 1
    }
}

/// One session's loop state, for a workload of kind `W`.
struct SessionLoop<W: Workload> {
    workload: Arc<W>,
    /// This session's own state of the workload.
    state: W::Session,
    index: usize,
    /// Its endpoint's sessions, in `Shared::pools`.
    pool: usize,
    shared: Arc<Shared>,
    recorder: Arc<Recorder>,
    session: Option<Session>,
    rng: Rng,
    keys: Keys,
    extra_seen: u64,
    total_weight: u64,
    backoff: Duration,
    totals: Vec<OpTotals>,
    inserted: u64,
    /// The largest id this session used for an insert.
    last_insert_id: u64,
    /// When this session last succeeded, since the start.
    last_ok: Option<Duration>,
    /// Its outage in progress: since its first failure of an unavailability class.
    outage: Option<OpenOutage>,
    /// The instance its connection is on, as the server names itself, and whether it
    /// said it was read-only.
    instance: Option<(String, bool)>,
    /// The interval in which it was last counted as a session of its instance.
    counted_in: Option<u64>,
    /// When the connection was opened, and when it is due for a refresh
    /// (`max_connection_age` with this connection's jitter).
    refresh_at: Option<Instant>,
}

/// A session's outage while it lasts.
struct OpenOutage {
    last_ok: Option<Duration>,
    first_failure: Duration,
    failed: [u64; ErrorClass::COUNT],
    from_instance: Option<String>,
}

/// Run one session until the schedule ends, the run's duration passes or the run is
/// cancelled. Returns what this session executed, per mix slot (counted here,
/// independently of the snapshots, so the coordinator can check its merge), and the rows
/// it inserted and the largest id it used for them.
pub(crate) async fn drive<W: Workload>(
    index: usize,
    pool: usize,
    session: Session,
    shared: Arc<Shared>,
    workload: Arc<W>,
) -> (Vec<OpTotals>, u64, u64) {
    let recorder = Arc::clone(&shared.recorders[index % shared.recorders.len()]);
    let total_weight = shared.pools[pool]
        .weights
        .iter()
        .map(|w| u64::from(*w))
        .sum::<u64>();
    let state = workload.session(Streams {
        worker_index: u64::from(shared.worker_index),
        fleet: shared.insert_stride,
        session: index as u64,
        sessions: shared.sessions.max(1) as u64,
    });
    let mut d = SessionLoop {
        workload,
        state,
        index,
        pool,
        rng: Rng::for_stream(shared.seed, &[u64::from(shared.worker_index), index as u64]),
        recorder,
        // Session i of the worker inserts base + i·N, base + (i + S)·N, …: distinct
        // from every other session of every worker of the run.
        extra_seen: 0,
        keys: Keys {
            shard: shared.shard,
            extra: Vec::new(),
            next_insert: shared.insert_base + index as u64 * shared.insert_stride,
            insert_stride: shared.insert_stride * shared.sessions.max(1) as u64,
        },
        session: Some(session),
        total_weight,
        backoff: BACKOFF_FIRST,
        totals: vec![OpTotals::default(); shared.mix.len()],
        inserted: 0,
        last_insert_id: 0,
        last_ok: None,
        outage: None,
        instance: None,
        counted_in: None,
        refresh_at: None,
        shared,
    };
    d.refresh_at = d.refresh_due();
    if let Some(s) = d.session.as_mut() {
        d.instance = s.instance().await.map(|i| (i.name, i.read_only));
    }
    match d.shared.load {
        WorkerLoad::Open { max_backlog, .. } => d.open_loop(max_backlog).await,
        WorkerLoad::Closed {
            think_time,
            tpcc_wait,
            ..
        } => d.closed_loop(think_time, tpcc_wait).await,
    }
    d.end_outage(None);
    if let Some(s) = d.session.take() {
        s.close().await;
    }
    (d.totals, d.inserted, d.last_insert_id)
}

impl<W: Workload> SessionLoop<W> {
    async fn open_loop(&mut self, max_backlog: Duration) {
        let shared = Arc::clone(&self.shared);
        loop {
            if shared.cancel.is_cancelled() {
                return;
            }
            let intended = tokio::select! {
                due = shared.pools[self.pool].arrivals.recv() => match due {
                    Ok((due, slot)) => (Instant::from_std(due), usize::from(slot)),
                    Err(_) => return, // the pacer is done and the queue is drained
                },
                _ = shared.cancel.cancelled() => return,
            };
            let (intended, slot) = intended;
            let now = Instant::now();
            if now.saturating_duration_since(intended) > max_backlog {
                self.recorder.dropped(shared.interval_of(now), slot);
                self.totals[slot].dropped_backlog += 1;
                continue;
            }
            self.one(slot, intended).await;
        }
    }

    async fn closed_loop(&mut self, think_time: Duration, tpcc_wait: bool) {
        let shared = Arc::clone(&self.shared);
        let end = shared.start + shared.duration;
        if shared.start > Instant::now() {
            tokio::select! {
                _ = tokio::time::sleep_until(shared.start) => {}
                _ = shared.cancel.cancelled() => return,
            }
        }
        if self.total_weight == 0 {
            // Nothing of this endpoint's role in the mix: the session idles.
            tokio::select! {
                _ = tokio::time::sleep_until(end) => {}
                _ = shared.cancel.cancelled() => {}
            }
            return;
        }
        while !shared.cancel.is_cancelled() && Instant::now() < end {
            // Stages set how many of the sessions run; the others wait their turn.
            let t = Instant::now()
                .saturating_duration_since(shared.start)
                .as_secs_f64();
            let active = shared.active.borrow().value_at(t).round() as usize;
            if self.index >= active {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                    _ = shared.cancel.cancelled() => return,
                }
                continue;
            }
            let slot = shared.pick(self.pool, &mut self.rng, self.total_weight);
            let (keying, think) = match shared.mix[slot].0.builtin().filter(|_| tpcc_wait) {
                Some(op) => {
                    let (keying, mean) = fleetload_common::tpcc::waits(op);
                    (
                        keying,
                        fleetload_common::tpcc::think_time(&mut self.rng, mean),
                    )
                }
                None => (Duration::ZERO, think_time),
            };
            if !keying.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(keying) => {}
                    _ = shared.cancel.cancelled() => return,
                }
                if Instant::now() >= end {
                    break;
                }
            }
            self.one(slot, Instant::now()).await;
            if !think.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(think) => {}
                    _ = shared.cancel.cancelled() => return,
                }
            }
        }
    }

    /// Run one operation intended to start at `intended`, reconnecting first if needed.
    async fn one(&mut self, slot: usize, intended: Instant) {
        let shared = Arc::clone(&self.shared);
        if self.refresh_at.is_some_and(|at| Instant::now() >= at) {
            // Old enough: reconnect now, without a backoff (nothing failed), resolving
            // the name again.
            if let Some(s) = self.session.take() {
                s.close().await;
            }
            self.backoff = Duration::ZERO;
        }
        if self.session.is_none() && !self.reconnect(slot).await {
            return;
        }
        self.refresh_ranges(&shared);
        let next_insert = self.keys.next_insert;
        let send = Instant::now();
        note_first_op(&shared, intended);
        let Some((retries, result)) = self.execute(&shared, slot).await else {
            return;
        };
        let done = Instant::now();
        if retries > 0 {
            self.recorder
                .retried(shared.interval_of(done), slot, retries);
            self.totals[slot].retries += retries;
        }
        if self.keys.next_insert != next_insert {
            // Ids are spent whether or not the insert succeeded.
            self.last_insert_id = self
                .last_insert_id
                .max(self.keys.next_insert - self.keys.insert_stride);
        }
        self.record(&shared, slot, (intended, send, done), result);
    }

    /// Take the key ranges taken over from lost workers, when they changed (one atomic
    /// load per operation; the lock only then).
    fn refresh_ranges(&mut self, shared: &Shared) {
        let version = shared
            .extra_version
            .load(std::sync::atomic::Ordering::Acquire);
        if version != self.extra_seen {
            self.extra_seen = version;
            self.keys.extra = shared.extra.read().map(|e| e.clone()).unwrap_or_default();
        }
    }

    /// Execute operation `slot` within the operation timeout: the retries inside it and
    /// its result; `None` without a session.
    async fn execute(
        &mut self,
        shared: &Shared,
        slot: usize,
    ) -> Option<(
        u64,
        Result<Result<Executed, OpFailure>, tokio::time::error::Elapsed>,
    )> {
        let session = self.session.as_mut()?;
        let attempt = self.workload.execute(
            session,
            slot,
            &mut self.state,
            &mut self.keys,
            &mut self.rng,
        );
        Some(
            match tokio::time::timeout(shared.op_timeout, attempt).await {
                Ok(Attempt { retries, result }) => (retries, Ok(result)),
                Err(elapsed) => (0, Err(elapsed)),
            },
        )
    }

    /// Record an operation's outcome: its times when it succeeded, its error class
    /// otherwise (and drop a connection whose state is unknown).
    fn record(
        &mut self,
        shared: &Shared,
        slot: usize,
        (intended, send, done): (Instant, Instant, Instant),
        result: Result<Result<Executed, OpFailure>, tokio::time::error::Elapsed>,
    ) {
        let open_loop = matches!(shared.load, WorkerLoad::Open { .. });
        let interval = shared.interval_of(done);
        let at = done.saturating_duration_since(shared.start);
        match &result {
            Ok(Ok(_)) => {
                self.end_outage(Some(at));
                self.last_ok = Some(at);
            }
            Ok(Err(e)) => self.failed(e.class(), at),
            Err(_) => self.failed(ErrorClass::Timeout, at),
        }
        let new_session = self.counted_in != Some(interval);
        if self.instance.is_some() {
            self.counted_in = Some(interval);
        }
        let on = self.instance.as_ref().map(|(name, read_only)| On {
            name,
            read_only: *read_only,
            new_session,
        });
        match result {
            Ok(Ok(executed)) => {
                self.inserted += executed.inserted;
                let lag = open_loop.then(|| send.saturating_duration_since(intended));
                self.recorder.ok_on(
                    interval,
                    slot,
                    (done - intended, done - send, lag),
                    &executed,
                    on,
                );
                self.totals[slot].ok += 1;
            }
            Ok(Err(e)) => {
                let class = e.class();
                self.recorder
                    .error_on(interval, slot, class, || e.describe(), on);
                self.totals[slot].errors[class.index()] += 1;
                if class.needs_reconnect() {
                    self.session = None;
                }
            }
            Err(_) => {
                let timeout = shared.op_timeout;
                let op = &shared.mix[slot].0;
                self.recorder.error_on(
                    interval,
                    slot,
                    ErrorClass::Timeout,
                    || format!("{op} did not complete within op_timeout {timeout:?}"),
                    on,
                );
                self.totals[slot].errors[ErrorClass::Timeout.index()] += 1;
                // The connection's state is unknown after an abandoned statement.
                self.session = None;
            }
        }
    }

    /// When a connection opened now is due for a refresh: `max_connection_age` × a
    /// jitter in [0.8, 1.2), so the sessions of a fleet do not all move at once.
    fn refresh_due(&mut self) -> Option<Instant> {
        let age = self.shared.max_connection_age?;
        Some(Instant::now() + age.mul_f64(0.8 + 0.4 * self.rng.next_f64()))
    }

    /// A failed operation at `at`: it opens an outage when its class says the instance
    /// is unavailable, and is counted in the outage in progress either way.
    fn failed(&mut self, class: ErrorClass, at: Duration) {
        match &mut self.outage {
            Some(o) => o.failed[class.index()] += 1,
            None if class.is_unavailability() => {
                let mut failed = [0; ErrorClass::COUNT];
                failed[class.index()] = 1;
                self.outage = Some(OpenOutage {
                    last_ok: self.last_ok,
                    first_failure: at,
                    failed,
                    from_instance: self.instance.as_ref().map(|i| i.0.clone()),
                });
            }
            None => {}
        }
    }

    /// Close the outage in progress: recovered by a success at `at`, or (`None`) still
    /// down when the session ends. The link places it by its end, with the interval
    /// of the operation that ended it.
    fn end_outage(&mut self, at: Option<Duration>) {
        let Some(o) = self.outage.take() else {
            return;
        };
        self.shared
            .events
            .push(WorkerEvent::SessionOutage(SessionOutage {
                session: u32::try_from(self.index).unwrap_or(u32::MAX),
                role: self.shared.pools[self.pool].role,
                last_ok: o.last_ok,
                first_failure: o.first_failure,
                recovered: at,
                failed: o.failed,
                from_instance: o.from_instance,
                to_instance: at.and(self.instance.as_ref().map(|i| i.0.clone())),
            }));
    }

    /// Wait out the backoff and try to reopen the session once. A failed attempt
    /// counts as a `connect` error of the operation that needed it.
    async fn reconnect(&mut self, slot: usize) -> bool {
        let shared = Arc::clone(&self.shared);
        // Full jitter over [backoff/2, backoff]: thousands of sessions do not reconnect
        // in lockstep after an outage.
        let wait = self.backoff.mul_f64(0.5 + 0.5 * self.rng.next_f64());
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shared.cancel.cancelled() => return false,
        }
        match shared.pools[self.pool].connect.connect().await {
            Ok(mut s) => {
                let instance = s.instance().await.map(|i| (i.name, i.read_only));
                // The same connection slot back on the same instance is the same session
                // there: a reconnect is counted again only where it lands elsewhere.
                if instance.as_ref().map(|i| &i.0) != self.instance.as_ref().map(|i| &i.0) {
                    self.counted_in = None;
                }
                self.instance = instance;
                self.session = Some(s);
                self.refresh_at = self.refresh_due();
                self.backoff = BACKOFF_FIRST;
                true
            }
            Err(e) => {
                self.backoff = (self.backoff * 2).clamp(BACKOFF_FIRST, BACKOFF_CAP);
                let now = Instant::now();
                self.failed(
                    ErrorClass::Connect,
                    now.saturating_duration_since(shared.start),
                );
                let interval = shared.interval_of(now);
                self.recorder
                    .error(interval, slot, ErrorClass::Connect, || e.to_string());
                self.totals[slot].errors[ErrorClass::Connect.index()] += 1;
                tracing::debug!(session = self.index, error = %e, "reconnect failed");
                false
            }
        }
    }
}
