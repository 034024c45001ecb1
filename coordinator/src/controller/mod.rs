//! The run controller's core: every decision of a run, with no I/O. Events and the
//! current time go in ([`Controller::handle`]); what to send, what to answer and when to
//! wake come out ([`Effect`], [`Controller::next_deadline`]). The tokio shell in
//! [`crate::shell`] owns the sockets, the timers, the target's connection,
//! the counter sampler, the checkpoint files, the dashboard's hub and the metrics
//! registry: the core decides with a [`RunConfig`] and learns of the shell only what
//! changes a decision ([`Outputs`]); dashboard frames and metric counts leave it as
//! effects. So loss, rejoin, rebalance, late joiners, `ctl` and clock sync are tested by
//! feeding events at chosen instants, with no sleeps and no ports (`tests/inputs.rs`
//! holds one test per phase transition and per kind of input).
//!
//! Phases, in order (docs/design.md draws them):
//! gathering → preparing → ready → clock sync → running → draining → done; any phase
//! before running fails the run on a lost worker, a timeout or an interrupt.

mod clock;
mod config;
mod ctl;
mod join;
mod live_view;
mod now;
mod phases;
mod progress;
mod record;
mod shares;
mod slot;
#[cfg(test)]
mod tests;

pub use config::RunConfig;
pub(crate) use config::{Dashboard, Outputs};
pub(crate) use now::Now;
pub use progress::Progress;

use crate::error::CoordinatorError;
use crate::metrics::MetricsUpdate;
use fleetload_common::plan::{Plan, StandIn};
use fleetload_common::profile::Profile;
use fleetload_common::wire::{Command, CommandReply, FromWorker, Hello, ToWorker};
use fleetload_report::admission::{Bounds, Refusal, RefusalClass};
use fleetload_report::merge::Merge;
use fleetload_report::RunRecord;
use slot::{Slot, State};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A stream that said hello: who it claims to be and where it comes from.
#[derive(Debug, Clone)]
pub(crate) struct Arrival {
    pub conn: u64,
    pub hello: Hello,
    pub peer: Option<SocketAddr>,
    /// The client certificate (DER) it presented under mutual TLS.
    pub cert: Option<Vec<u8>>,
}

/// What happens to the controller.
#[derive(Debug)]
pub(crate) enum Input {
    Joined(Arrival),
    Message {
        conn: u64,
        message: FromWorker,
    },
    /// A message that failed validation: a protocol error of that worker.
    Invalid {
        conn: u64,
        error: String,
    },
    Closed {
        conn: u64,
        error: Option<String>,
    },
    /// A `ctl` command; its answer comes back as [`Effect::Reply`] with the same id.
    Command {
        id: u64,
        command: Command,
    },
    /// A call refused for a missing or wrong token, before any hello.
    Unauthorized {
        peer: Option<SocketAddr>,
    },
    /// The shell finished the target work of the last [`Effect::Target`].
    TargetDone(Result<PlanUpdate, CoordinatorError>),
    /// Time passed (the shell woke at [`Controller::next_deadline`]).
    Tick,
    /// The operator interrupted the run.
    Interrupted,
    /// The control service stopped: no more events will come.
    ServiceStopped,
    /// The last [`Effect::Checkpoint`] is on disk (with each worker's highest sequence
    /// in it), or could not be written.
    Checkpointed(Result<BTreeMap<u32, u64>, String>),
}

/// What the controller asks of its shell.
#[derive(Debug)]
pub(crate) enum Effect {
    Send {
        conn: u64,
        message: ToWorker,
    },
    /// Send a last message and end the stream.
    Close {
        conn: u64,
        last: ToWorker,
    },
    Reply {
        id: u64,
        reply: CommandReply,
    },
    /// One closed interval, for the live display.
    Progress(Progress),
    /// Work on the target database, answered by [`Input::TargetDone`]; no event is fed
    /// meanwhile.
    Target(TargetStep),
    /// The run starts at `start` (`start_unix_nanos` on the wall clock): sample the
    /// database's counters and read CloudWatch from then on.
    Started {
        start: Instant,
        start_unix_nanos: i64,
    },
    /// Write the run so far to the checkpoint, answered by [`Input::Checkpointed`]
    /// with `acks`: what each worker may then forget.
    Checkpoint {
        outcome: Box<RunRecord>,
        acks: BTreeMap<u32, u64>,
    },
    /// One event for the live dashboard's viewers (`fleet`, `interval`), as JSON.
    Publish {
        event: &'static str,
        json: String,
    },
    /// Count into the Prometheus endpoint.
    Metrics(MetricsUpdate),
    /// The run is over.
    Finished(Box<Result<RunRecord, CoordinatorError>>),
}

/// The target work between phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TargetStep {
    /// Before the assignment: create the table (when the fleet prepares it) or inspect
    /// the target (its key space, the ML stand-in's settings).
    BeforeAssign,
    /// Every worker is ready: finish the table the fleet loaded and inspect it again.
    AfterReady,
}

/// What the target work learned, for the plan.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct PlanUpdate {
    /// The table's key space, when the plan names no rows.
    pub rows: Option<u64>,
    /// The ML stand-in's settings in force.
    pub standin: Option<StandIn>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Waiting for the starting fleet.
    Gathering,
    /// The target work, then the workers' assignments; they open their sessions.
    Preparing {
        assigned: bool,
    },
    /// Every worker is ready; the target work after it.
    Ready,
    /// Probing every worker's clock, round by round.
    ClockSync {
        round: u64,
    },
    Running,
    /// A stop was sent: collecting the final snapshots.
    Draining,
    Done,
}

/// The run once started.
#[derive(Debug)]
struct Live {
    merge: Merge,
    /// The start instant on our monotonic clock and on our wall clock.
    start: Instant,
    start_nanos: i64,
    failures: Vec<String>,
    interrupted: bool,
    /// The next interval to close.
    next_close: u64,
    stopped_at: Option<Instant>,
    /// Past it, a worker still running did not finish in time.
    deadline: Instant,
    next_heartbeat: Instant,
    /// When the next checkpoint is due (`None`: the run writes none), and whether one
    /// is being written.
    next_checkpoint: Option<Instant>,
    checkpoint_pending: bool,
}

/// Clock probe rounds before the start.
const PROBE_ROUNDS: u64 = 8;
/// How long a probe round waits for every echo.
const PROBE_WAIT: Duration = Duration::from_millis(500);
/// Clock probes in flight at once (see `probe_round`).
const PROBE_WINDOW: usize = 4;
/// Time a round allows per worker beyond `PROBE_WAIT`, as they are probed in turn.
const PROBE_PACE: Duration = Duration::from_millis(5);
/// Clock probes sent to a worker that joins a running run.
const LATE_PROBES: u64 = 8;
/// How long a late joiner's echoes are waited for before it starts without them.
const LATE_PROBE_WAIT: Duration = Duration::from_secs(2);
/// How long after a stop the final snapshots are waited for.
const DRAIN_WAIT: Duration = Duration::from_secs(10);

pub(crate) struct Controller {
    config: RunConfig,
    /// What the shell serves, as far as decisions go.
    outputs: Outputs,
    phase: Phase,
    /// When the current phase gives up waiting (gathering, preparing, a probe round).
    phase_deadline: Option<Instant>,
    slots: Vec<Slot>,
    run_id: String,
    /// Who was lost and how the work was redistributed, in order.
    membership: Vec<fleetload_report::Membership>,
    /// The cluster's load over time as it stands (plan stages, then live changes):
    /// ops/s, or active sessions in closed loop (`None`: every session).
    cluster: Option<Profile>,
    /// Live changes of the load (ctl), in order.
    changes: Vec<fleetload_report::Membership>,
    /// While paused: the profile to resume.
    paused: Option<Option<Profile>>,
    last_progress: Option<Progress>,
    /// A stop asked for (ctl, a failed threshold, the capacity search), not yet sent.
    stop_request: Option<String>,
    search: Option<crate::search::Search>,
    /// Workers that arrived beyond `workers` before the start: admitted once it runs.
    waiting: Vec<Arrival>,
    /// Which workers answered the current probe round, and the next one to probe.
    answered: Vec<bool>,
    probe_next: usize,
    live: Option<Box<Live>>,
    /// What to say about a (possibly) bad message.
    bounds: Bounds,
    /// When the run writes checkpoints: each worker's highest sequence in the last one
    /// written (what may be acknowledged).
    checkpointed: Option<BTreeMap<u32, u64>>,
    /// The fleet as the dashboard was last told it (JSON).
    ui_fleet: String,
    /// Running totals behind the dashboard's threshold verdicts.
    ui_so_far: live_view::SoFar,
    /// Workers and calls refused, by reason: how many, and the first one's peer. Said
    /// when the fleet does not gather ("0 of 1 joined" alone hides why).
    refused: BTreeMap<String, (u64, String)>,
    effects: Vec<Effect>,
}

impl Controller {
    pub(crate) fn new(config: RunConfig, outputs: Outputs, now: Now) -> Self {
        let search = config
            .search
            .clone()
            .map(|spec| crate::search::Search::new(spec, config.plan.interval));
        let cluster = match &search {
            Some(s) => Some(Profile::constant(s.rate())),
            None => config.plan.cluster_profile(),
        };
        tracing::info!(workers = config.workers, "waiting for workers");
        let run_id = config.run_id.clone();
        let checkpointed =
            (outputs.checkpoints && config.plan.checkpoint.is_some()).then(BTreeMap::new);
        Controller {
            bounds: Bounds::of(&config.plan),
            phase_deadline: Some(now.at + config.join_timeout),
            config,
            phase: Phase::Gathering,
            slots: Vec::new(),
            run_id,
            outputs,
            membership: Vec::new(),
            cluster,
            changes: Vec::new(),
            paused: None,
            last_progress: None,
            stop_request: None,
            search,
            waiting: Vec::new(),
            answered: Vec::new(),
            probe_next: 0,
            live: None,
            checkpointed,
            ui_fleet: String::new(),
            ui_so_far: live_view::SoFar::default(),
            refused: BTreeMap::new(),
            effects: Vec::new(),
        }
    }

    #[cfg(test)]
    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    /// The plan as it stands (the target work may have changed its rows and settings).
    pub(crate) fn plan(&self) -> &Plan {
        &self.config.plan
    }

    /// React to `input` at `now`; returns what the shell must do, in order.
    pub(crate) fn handle(&mut self, now: Now, input: Input) -> Vec<Effect> {
        if let Input::Unauthorized { peer } = input {
            self.count_refusal(
                "with a missing or wrong token (give workers the coordinator's FLEETLOAD_TOKEN or --token-file)".into(),
                peer,
            );
            return std::mem::take(&mut self.effects);
        }
        match self.phase {
            Phase::Gathering => self.gathering(now, input),
            Phase::Preparing { .. } => self.preparing(now, input),
            Phase::Ready => self.ready(now, input),
            Phase::ClockSync { round } => self.clock_sync(now, round, input),
            Phase::Running | Phase::Draining => self.running(now, input),
            Phase::Done => {
                if let Input::Command { id, .. } = input {
                    self.reply(id, CommandReply::refused("the run has ended"));
                }
            }
        }
        std::mem::take(&mut self.effects)
    }

    /// When to feed [`Input::Tick`] at the latest, if anything is waited for.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        match (self.phase, &self.live) {
            (Phase::Running | Phase::Draining, Some(live)) => self.live_deadline(live),
            _ => self.phase_deadline,
        }
    }

    /// The earliest of: the run's end, the next heartbeat, a lease running out, a late
    /// joiner's probes given up, the next interval overdue.
    fn live_deadline(&self, live: &Live) -> Option<Instant> {
        let plan = &self.config.plan;
        let leases = self
            .slots
            .iter()
            .filter(|s| s.state == State::Running)
            .map(|s| s.last_heard + plan.lease);
        let probes = self
            .slots
            .iter()
            .filter_map(|s| s.late_probes.map(|(_, since)| since + LATE_PROBE_WAIT));
        let overdue = (live.next_close < plan.interval_count() && live.stopped_at.is_none())
            .then(|| progress::overdue_at(plan, live.start, live.next_close));
        let checkpoint = live.next_checkpoint.filter(|_| !live.checkpoint_pending);
        [live.deadline, live.next_heartbeat]
            .into_iter()
            .chain(checkpoint)
            .chain(self.rejoin_deadline(live))
            .chain(leases)
            .chain(probes)
            .chain(overdue)
            .min()
    }

    fn send(&mut self, i: usize, message: ToWorker) {
        if let Some(s) = self.slots.get(i) {
            self.effects.push(Effect::Send {
                conn: s.conn,
                message,
            });
        }
    }

    /// Send `message` to every running worker.
    fn send_running(&mut self, message: &ToWorker) {
        for i in 0..self.slots.len() {
            if self.slots[i].state == State::Running {
                self.send(i, message.clone());
            }
        }
    }

    fn close(&mut self, conn: u64, last: ToWorker) {
        self.effects.push(Effect::Close { conn, last });
    }

    fn reply(&mut self, id: u64, reply: CommandReply) {
        self.effects.push(Effect::Reply { id, reply });
    }

    fn slot_index(&self, conn: u64) -> Option<usize> {
        self.slots.iter().position(|s| s.conn == conn)
    }

    fn name_of(&self, conn: u64) -> String {
        self.slot_index(conn)
            .map(|i| self.slots[i].hello.name.clone())
            .unwrap_or_default()
    }

    /// End the run with `error`: every worker is told why and its stream ended.
    fn fail(&mut self, error: CoordinatorError) {
        let reason = format!("run aborted: {error}");
        for i in 0..self.slots.len() {
            let conn = self.slots[i].conn;
            self.close(
                conn,
                ToWorker::Stop {
                    reason: reason.clone(),
                },
            );
        }
        self.phase = Phase::Done;
        self.phase_deadline = None;
        self.effects.push(Effect::Finished(Box::new(Err(error))));
    }

    fn running(&mut self, now: Now, input: Input) {
        let Some(mut live) = self.live.take() else {
            return;
        };
        match input {
            Input::Command { id, command } => {
                let reply = self.command(command, now, &live);
                self.reply(id, reply);
            }
            Input::Joined(a) if a.hello.rejoin.is_some() => self.rejoin(a, &mut live, now),
            Input::Joined(a) => self.admit(a, now, &live),
            Input::Message { conn, message } => self.on_message(conn, message, now, &mut live),
            Input::Invalid { conn, error } => {
                // Refused and counted; the run goes on. What it would have carried is
                // missing from the merge, which the merge check then reports.
                if let Some(i) = self.slot_index(conn) {
                    self.slots[i].refuse(Refusal::new(RefusalClass::Malformed, error));
                }
            }
            Input::Closed { conn, error } => {
                if let Some(i) = self.slot_index(conn) {
                    if self.slots[i].state == State::Running {
                        // Not lost yet: the worker keeps running and redials; the lease
                        // decides.
                        let at = since(now, live.start);
                        tracing::warn!(worker = %self.slots[i].hello.name, at, error = %error.as_deref().unwrap_or("closed by the worker"), "stream broke; waiting up to the lease for the worker to rejoin");
                    }
                }
            }
            Input::Tick => {
                if now.at >= live.deadline {
                    return self.overtime(live);
                }
                self.on_tick(now, &mut live);
            }
            Input::Interrupted if !live.interrupted => {
                live.interrupted = true;
                tracing::warn!("interrupted: stopping the fleet and collecting final snapshots");
                self.stop_all(now, &mut live, "the coordinator was interrupted");
            }
            Input::ServiceStopped => return self.finish(live),
            // Counted in `handle`, before any phase sees it.
            Input::Unauthorized { .. } => {}
            Input::Checkpointed(written) => self.checkpointed(written, now, &mut live),
            Input::Interrupted | Input::TargetDone(_) => {}
        }
        self.close_intervals(now, &mut live);
        if let Some(reason) = self.stop_request.take() {
            if live.stopped_at.is_none() {
                self.changes.push(fleetload_report::Membership {
                    t_s: since(now, live.start),
                    event: format!("stopped: {reason}"),
                });
                self.stop_all(now, &mut live, &reason);
            }
        }
        if self.slots.iter().all(|s| s.state.is_over())
            && self
                .rejoin_deadline(&live)
                .is_none_or(|d| now.at >= d || live.interrupted || live.stopped_at.is_some())
        {
            return self.finish(live);
        }
        self.live = Some(live);
    }

    /// While a worker lost to a partition may still rejoin: until the end of its
    /// rejoin window, and a lease for its dial to land (`None`: nobody can).
    fn rejoin_deadline(&self, live: &Live) -> Option<Instant> {
        let plan = &self.config.plan;
        let window = plan.rejoin?;
        if plan.on_worker_loss == fleetload_common::plan::OnWorkerLoss::Abort {
            // The loss ended the run: nobody comes back into it.
            return None;
        }
        self.slots
            .iter()
            .any(|s| s.lost.is_some())
            .then(|| live.start + plan.duration + window + plan.lease)
    }

    /// Tell every running worker to stop and wait a short while for its last snapshots.
    fn stop_all(&mut self, now: Now, live: &mut Live, reason: &str) {
        live.stopped_at = Some(now.at);
        self.phase = Phase::Draining;
        self.send_running(&ToWorker::Stop {
            reason: reason.to_string(),
        });
        live.deadline = live.deadline.min(now.at + DRAIN_WAIT);
    }

    /// Every `checkpoint` interval: the run so far to disk, with what each worker may
    /// forget once it is there.
    fn checkpoint(&mut self, now: Now, live: &mut Live) {
        let (Some(at), Some(every)) = (live.next_checkpoint, self.config.plan.checkpoint) else {
            return;
        };
        if live.checkpoint_pending || now.at < at {
            return;
        }
        live.checkpoint_pending = true;
        live.next_checkpoint = Some(now.at + every);
        let acks = live
            .merge
            .workers
            .iter()
            .filter_map(|(w, agg)| agg.contiguous().map(|s| (*w, s)))
            .collect();
        let outcome = Box::new(self.record_so_far(live, now));
        self.effects.push(Effect::Checkpoint { outcome, acks });
    }

    /// A checkpoint is on disk: acknowledge what it holds. One that cannot be written
    /// ends checkpointing for the run (said in its changes): snapshots are then
    /// acknowledged once merged, so the workers' memory does not grow meanwhile.
    fn checkpointed(
        &mut self,
        written: Result<BTreeMap<u32, u64>, String>,
        now: Now,
        live: &mut Live,
    ) {
        live.checkpoint_pending = false;
        match written {
            Ok(acks) => {
                if let Some(held) = &mut self.checkpointed {
                    held.extend(acks);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot write the checkpoint; no more checkpoints this run");
                self.changes.push(fleetload_report::Membership {
                    t_s: since(now, live.start),
                    event: format!("checkpoints stopped: {e}"),
                });
                self.checkpointed = None;
                live.next_checkpoint = None;
            }
        }
        for i in 0..self.slots.len() {
            if self.slots[i].state == State::Running {
                let w = i as u32;
                if let Some(sequence) = self.acked_through(w, &live.merge) {
                    self.send(i, ToWorker::Ack { sequence });
                }
            }
        }
    }

    fn on_tick(&mut self, now: Now, live: &mut Live) {
        self.checkpoint(now, live);
        let plan = self.config.plan.clone();
        if now.at >= live.next_heartbeat {
            live.next_heartbeat = now.at + plan.lease / 3;
            for i in 0..self.slots.len() {
                if self.slots[i].state.is_live() {
                    self.send(i, ToWorker::Heartbeat);
                }
            }
        }
        for i in 0..self.slots.len() {
            if self.slots[i]
                .late_probes
                .is_some_and(|(_, since)| now.at >= since + LATE_PROBE_WAIT)
            {
                self.start_late(i, now, live);
            }
        }
        for i in 0..self.slots.len() {
            let s = &mut self.slots[i];
            if s.state != State::Running || now.at < s.last_heard + plan.lease {
                continue;
            }
            let at = since(now, live.start);
            let m = format!("lost at {at:.1}s: no message for longer than the lease ({:?}); network partition or a stalled host", plan.lease);
            tracing::warn!(worker = %s.hello.name, "{m}");
            let failure = format!("worker {} {m}", s.hello.name);
            live.failures.push(failure.clone());
            s.state = State::Lost;
            s.message = Some(m);
            // Kept for the report, and for a rejoin when the plan allows one.
            s.lost = Some((at, failure));
            let conn = s.conn;
            self.close(
                conn,
                ToWorker::Stop {
                    reason: "lost: lease expired".into(),
                },
            );
            live.failures.extend(self.after_loss(i, at));
        }
    }

    /// The run is long over and some workers never said Done.
    fn overtime(&mut self, mut live: Box<Live>) {
        for s in &mut self.slots {
            if s.state == State::Running {
                s.state = State::Lost;
                let m = "did not finish in time after the run ended".to_string();
                live.failures.push(format!("worker {} {m}", s.hello.name));
                s.message = Some(m);
            }
        }
        self.finish(live);
    }

    fn finish(&mut self, live: Box<Live>) {
        for i in 0..self.slots.len() {
            let conn = self.slots[i].conn;
            self.close(
                conn,
                ToWorker::Stop {
                    reason: "run complete".into(),
                },
            );
        }
        self.phase = Phase::Done;
        let outcome = self.record(*live);
        self.effects.push(Effect::Finished(Box::new(Ok(outcome))));
    }
}

/// Seconds from `start` to `now` (0 before it).
fn since(now: Now, start: Instant) -> f64 {
    now.at.saturating_duration_since(start).as_secs_f64()
}
