//! The worker's link to the coordinator as a state machine with no I/O: connected,
//! redialing or orphaned; which snapshots are due, sent, acknowledged; when to beat,
//! to redial, to give up. Inputs and the current time go in ([`Link::handle`]); what
//! to send, measure, redial, stop, spool come out ([`Effect`], [`Link::next_deadline`]).
//! The shell in [`crate::shell`] owns the stream, the recorders and the load.
//!
//! ```text
//! connected ──stream breaks──▶ redialing ──rejoined──▶ connected
//!     │                            │
//!     └──── no word for a lease ───┴── refused, or no word for a lease
//!                                      (and past the rejoin window) ──▶ orphaned
//! ```
//!
//! A lease without a word stops this worker's load (the dead man's switch: the
//! coordinator has given its share to others by then), but within the rejoin window
//! (the planned end plus `rejoin_after_end`) the worker only pauses and keeps dialing:
//! a partition longer than a lease heals, the worker hands over what it measured and
//! gets its share back from the coordinator. Past the window, or refused, it spools.

use crate::recorder::IntervalStats;
use fleetload_common::events::{cap_per_snapshot, WorkerEvent};
use fleetload_common::plan::MAX_RATE;
use fleetload_common::profile::Profile;
use fleetload_common::scenario::OpName;
use fleetload_common::stats::OpStats;
use fleetload_common::wire::{Assignment, FromWorker, Rebalance, Snapshot, ToWorker, WorkerLoad};
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

#[cfg(test)]
mod tests;

/// How long after an interval's end its snapshot is taken, so that operations which
/// completed just before the edge have been recorded.
pub(crate) const SNAPSHOT_GRACE: Duration = Duration::from_millis(20);
/// The first redial of a broken stream is at once, then after this, doubling.
const REDIAL_FIRST: Duration = Duration::from_millis(250);
const REDIAL_CAP: Duration = Duration::from_secs(2);

/// The stream to the coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum State {
    Connected,
    /// The stream broke; the load goes on for up to a lease while the worker redials:
    /// next at `at` (`None`: an attempt is under way), then `backoff` later.
    Redialing {
        at: Option<Instant>,
        backoff: Duration,
    },
    /// The coordinator is gone for good (a lease without a word, or it refused the
    /// rejoin): the dead man's switch stops the load.
    Orphaned(String),
}

/// Where the run is, on this worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The load runs; a snapshot per interval.
    Loading,
    /// The load is over: the snapshots through `through` are still to send, then Done.
    Ending {
        through: u64,
        measured: bool,
    },
    /// Every snapshot is sent: Done is due at `at` (the next tick).
    Finishing {
        at: Instant,
    },
    Finished,
}

#[derive(Debug)]
pub(crate) enum Input {
    /// Time passed (the shell woke at [`Link::next_deadline`]).
    Tick,
    Received(ToWorker),
    /// A message that failed validation: refused (logged), but the coordinator is alive.
    Invalid(String),
    /// The stream broke, or a send on it failed.
    Broken(String),
    /// A rejoin got a new stream; the coordinator holds every snapshot up to `acked`.
    Rejoined {
        acked: Option<u64>,
    },
    RejoinRefused(String),
    RejoinFailed(String),
    /// What the recorders held through the interval of the last [`Effect::Measure`],
    /// and the events this worker noticed since the last one.
    Measured {
        through: u64,
        stats: Vec<(u64, IntervalStats)>,
        events: Vec<WorkerEvent>,
    },
    /// Every session and the pacer returned; `cancelled`: this worker was told to stop.
    LoadFinished {
        cancelled: bool,
    },
}

#[derive(Debug)]
pub(crate) enum Effect {
    Send(FromWorker),
    /// Take the recorders' statistics through interval `through`, answered by
    /// [`Input::Measured`].
    Measure {
        through: u64,
    },
    /// Try to rejoin now, answered by `Rejoined`, `RejoinRefused` or `RejoinFailed`.
    Redial,
    /// Stop the load: the coordinator said so, or it is gone.
    StopLoad,
    /// No word for a lease: offer no load (the coordinator has given this worker's
    /// share to others) but keep the sessions, while redialing.
    PauseLoad,
    /// A new share of the load from the coordinator, checked against the assignment.
    ApplyLoad(Rebalance),
    /// Every snapshot is sent: send Done with this count, and wait for the stream to
    /// close.
    Finish {
        snapshots_sent: u64,
    },
    /// No coordinator: keep these snapshots in the spool and give up.
    Spool {
        reason: String,
        snapshots: Vec<Snapshot>,
    },
}

pub(crate) struct Link {
    run_id: String,
    worker_index: u32,
    ops: Vec<OpName>,
    start: Instant,
    /// The run's intervals (one rule with the pacer and the sessions).
    intervals: fleetload_common::intervals::Intervals,
    lease: Duration,
    /// Bounds of a rebalance: the key space, and the highest load value.
    rows: u64,
    most: f64,
    state: State,
    phase: Phase,
    sequence: u64,
    /// The next interval without a snapshot.
    next_interval: u64,
    /// Snapshots the coordinator has not acknowledged yet, oldest first.
    unacked: VecDeque<Snapshot>,
    last_heard: Instant,
    next_heartbeat: Instant,
    /// Why the coordinator stopped the run early.
    stopped: Option<String>,
    /// Until when a worker that lost its coordinator for a lease keeps dialing
    /// (`None`: it gives up after the lease).
    rejoin_until: Option<Instant>,
    /// The load was paused for want of a coordinator; the next share it sends is
    /// applied from now on, never to the paused past.
    paused: bool,
    /// Events noticed and not yet sent: each goes with the snapshot of the interval it
    /// is placed in, or the first one still unsent.
    events: Vec<WorkerEvent>,
    effects: Vec<Effect>,
}

impl Link {
    /// The link of a worker that starts its assignment `a` at `start`, connected now.
    pub(crate) fn new(a: &Assignment, start: Instant, now: Instant) -> Link {
        let mut link = Link {
            run_id: a.run_id.clone(),
            worker_index: a.worker_index,
            ops: a.mix.iter().map(|(op, _)| op.clone()).collect(),
            start,
            intervals: fleetload_common::intervals::Intervals::of_run(a.duration, a.interval),
            lease: a.lease,
            rows: a.rows,
            most: match a.load {
                WorkerLoad::Open { .. } => MAX_RATE,
                WorkerLoad::Closed { .. } => f64::from(a.sessions),
            },
            state: State::Connected,
            phase: Phase::Loading,
            sequence: 0,
            next_interval: 0,
            unacked: VecDeque::new(),
            last_heard: now,
            next_heartbeat: now,
            stopped: None,
            rejoin_until: a.rejoin_after_end.map(|d| start + a.duration + d),
            paused: false,
            events: Vec::new(),
            effects: Vec::new(),
        };
        // A worker that joined a running run starts with the interval in progress.
        link.next_interval = link.interval_of(now);
        link
    }

    pub(crate) fn state(&self) -> &State {
        &self.state
    }

    /// Why the coordinator stopped the run early, if it did.
    pub(crate) fn stopped(&self) -> Option<&str> {
        self.stopped.as_deref()
    }

    pub(crate) fn snapshots_sent(&self) -> u64 {
        self.sequence
    }

    /// The interval `t` falls in (the last one past the end).
    fn interval_of(&self, t: Instant) -> u64 {
        self.intervals.at(t.saturating_duration_since(self.start))
    }

    /// When interval `k`'s snapshot is taken.
    fn edge(&self, k: u64) -> Instant {
        self.start + self.intervals.end_of(k) + SNAPSHOT_GRACE
    }

    fn orphaned(&self) -> bool {
        matches!(self.state, State::Orphaned(_))
    }

    /// When to feed [`Input::Tick`] at the latest.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let orphaned = self.orphaned();
        let edge = (self.phase == Phase::Loading
            && !orphaned
            && self.next_interval < self.intervals.last())
        .then(|| self.edge(self.next_interval));
        let heartbeat = (self.state == State::Connected && self.phase == Phase::Loading)
            .then_some(self.next_heartbeat);
        let lease = (!orphaned && self.waits_for_coordinator()).then(|| self.give_up_at());
        let redial = match self.state {
            State::Redialing { at, .. } => at,
            _ => None,
        };
        let finish = match self.phase {
            Phase::Finishing { at } => Some(at),
            _ => None,
        };
        [edge, heartbeat, lease, redial, finish]
            .into_iter()
            .flatten()
            .min()
    }

    /// When a worker without word from its coordinator pauses (a lease after the last
    /// word) or, past it, gives up (the rejoin window's end).
    fn give_up_at(&self) -> Instant {
        let lease = self.last_heard + self.lease;
        match self.rejoin_until {
            Some(until) if self.paused || self.state != State::Connected => lease.max(until),
            _ => lease,
        }
    }

    /// Whether a lease without a word orphans this worker now: while the load runs, and
    /// after it while the final snapshots wait for a stream.
    fn waits_for_coordinator(&self) -> bool {
        match self.phase {
            Phase::Loading => true,
            Phase::Ending { .. } => self.state != State::Connected,
            Phase::Finishing { .. } | Phase::Finished => false,
        }
    }

    /// React to `input` at `now`; returns what the shell must do, in order.
    pub(crate) fn handle(&mut self, now: Instant, input: Input) -> Vec<Effect> {
        match input {
            Input::Tick => self.tick(now),
            Input::Received(m) => self.received(now, m),
            Input::Invalid(error) => {
                self.last_heard = now;
                tracing::error!(%error, "refused an invalid message from the coordinator");
            }
            Input::Broken(error) => {
                if let Phase::Finishing { .. } = self.phase {
                    // Done waits for a stream again, and the lease bounds the wait.
                    self.phase = Phase::Ending {
                        through: self.next_interval.saturating_sub(1),
                        measured: true,
                    };
                }
                if self.state == State::Connected {
                    tracing::warn!(%error, lease = ?self.lease, "the stream to the coordinator broke; the load goes on while redialing, for up to the lease");
                    self.state = State::Redialing {
                        at: Some(now),
                        backoff: REDIAL_FIRST,
                    };
                }
            }
            Input::Rejoined { acked } => self.rejoined(now, acked),
            Input::RejoinRefused(reason) => {
                self.orphan(format!("the coordinator refused the rejoin: {reason}"));
            }
            Input::RejoinFailed(error) => {
                if let State::Redialing { at, backoff } = &mut self.state {
                    tracing::debug!(%error, "rejoin failed; retrying");
                    *at = Some(now + *backoff);
                    *backoff = (*backoff * 2).min(REDIAL_CAP);
                }
            }
            Input::Measured {
                through,
                stats,
                events,
            } => {
                self.events.extend(events);
                self.measured(through, stats);
            }
            Input::LoadFinished { cancelled } => {
                let through = if self.stopped.is_some() || cancelled {
                    self.interval_of(now).max(self.next_interval)
                } else {
                    self.intervals.last()
                };
                self.phase = Phase::Ending {
                    through,
                    measured: false,
                };
            }
        }
        self.end(now);
        std::mem::take(&mut self.effects)
    }

    fn tick(&mut self, now: Instant) {
        if matches!(self.phase, Phase::Finishing { .. }) && self.state == State::Connected {
            self.phase = Phase::Finished;
            self.effects.push(Effect::Finish {
                snapshots_sent: self.sequence,
            });
            return;
        }
        if self.phase == Phase::Loading
            && !self.orphaned()
            && self.next_interval < self.intervals.last()
            && now >= self.edge(self.next_interval)
        {
            self.effects.push(Effect::Measure {
                through: self.next_interval,
            });
        }
        if self.phase == Phase::Loading
            && self.state == State::Connected
            && now >= self.next_heartbeat
        {
            self.next_heartbeat = now + self.lease / 3;
            self.effects.push(Effect::Send(FromWorker::Heartbeat));
        }
        if !self.orphaned() && self.waits_for_coordinator() && now >= self.last_heard + self.lease {
            if self.rejoin_until.is_some_and(|until| now < until) {
                self.pause(now);
            } else {
                tracing::error!(lease = ?self.lease, "no word from the coordinator for a whole lease, and no time left to rejoin; stopping the load");
                let reason = format!(
                    "no message from the coordinator for longer than the lease ({:?}){}",
                    self.lease,
                    if self.rejoin_until.is_some() {
                        " and until the end of the rejoin window"
                    } else {
                        ""
                    }
                );
                return self.orphan(reason);
            }
        }
        if let State::Redialing { at, .. } = &mut self.state {
            if at.is_some_and(|at| now >= at) {
                // Until the attempt's answer, no second one.
                *at = None;
                self.effects.push(Effect::Redial);
            }
        }
    }

    /// A lease without a word, within the rejoin window: the coordinator has given this
    /// worker's share away, so stop offering load, but keep the sessions and redial.
    fn pause(&mut self, now: Instant) {
        if !self.paused && self.phase == Phase::Loading {
            tracing::error!(lease = ?self.lease, "no word from the coordinator for a whole lease; pausing the load and redialing until the rejoin window ends");
            self.paused = true;
            self.effects.push(Effect::PauseLoad);
        }
        if self.state == State::Connected {
            self.state = State::Redialing {
                at: Some(now),
                backoff: REDIAL_FIRST,
            };
        }
    }

    fn orphan(&mut self, reason: String) {
        if self.orphaned() {
            return;
        }
        self.state = State::Orphaned(reason);
        if self.phase == Phase::Loading {
            self.effects.push(Effect::StopLoad);
        }
    }

    fn received(&mut self, now: Instant, m: ToWorker) {
        self.last_heard = now;
        match m {
            ToWorker::Stop { reason } => {
                tracing::info!(%reason, "stopped by the coordinator");
                if self.phase == Phase::Loading && self.stopped.is_none() {
                    self.effects.push(Effect::StopLoad);
                }
                self.stopped.get_or_insert(reason);
            }
            ToWorker::Ack { sequence } => self.acked(sequence),
            ToWorker::Rebalance(r) => self.rebalance(now, r),
            _ => {}
        }
    }

    /// The coordinator holds every snapshot up to `sequence`.
    fn acked(&mut self, sequence: u64) {
        while self.unacked.front().is_some_and(|s| s.sequence <= sequence) {
            self.unacked.pop_front();
        }
    }

    /// A new share of the load: applied when it fits this worker's key space and
    /// sessions, refused (logged) otherwise.
    fn rebalance(&mut self, now: Instant, r: Rebalance) {
        if let Some(s) = r.extra.iter().find(|s| s.last > self.rows) {
            tracing::error!(range = %s, rows = self.rows, "refused a rebalance with key ranges outside the key space");
            return;
        }
        if let Some(p) = r.profile.as_ref().filter(|p| p.max() > self.most) {
            tracing::error!(most = self.most, asked = p.max(), "refused an invalid rebalance from the coordinator: its load is above what this worker runs");
            return;
        }
        let t = now.saturating_duration_since(self.start).as_secs_f64();
        tracing::info!(
            now = %r.profile.as_ref().map_or_else(|| "unchanged".to_string(), |p| format!("{:.1}", p.value_at(t))),
            extra_keys = %r.extra.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
            "new share of the load"
        );
        let mut r = r;
        if std::mem::take(&mut self.paused) {
            // Resumed: the share holds from now; what the pause skipped is not owed.
            let zero = Profile::constant(0.0);
            r.profile = Some(match &r.profile {
                Some(p) => zero.splice(t, p),
                None => zero.splice(t, &Profile::constant(self.most)),
            });
        }
        self.effects.push(Effect::ApplyLoad(r));
    }

    fn rejoined(&mut self, now: Instant, acked: Option<u64>) {
        if !matches!(self.state, State::Redialing { .. }) {
            return;
        }
        tracing::info!("rejoined the coordinator; resending the unacknowledged snapshots");
        self.state = State::Connected;
        self.last_heard = now;
        if let Some(seq) = acked {
            self.acked(seq);
        }
        for s in &self.unacked {
            self.effects
                .push(Effect::Send(FromWorker::Snapshot(Box::new(s.clone()))));
        }
    }

    /// Turn what the recorders held into one snapshot per interval from the next
    /// unsent one through `through`, empty ones included so the coordinator can close
    /// each interval; sent when connected, kept until acknowledged.
    fn measured(&mut self, through: u64, stats: Vec<(u64, IntervalStats)>) {
        let empty =
            || -> IntervalStats { (0..self.ops.len()).map(|_| OpStats::default()).collect() };
        let mut by_interval: BTreeMap<u64, IntervalStats> = BTreeMap::new();
        for (k, stats) in stats {
            let into = by_interval
                .entry(k.max(self.next_interval))
                .or_insert_with(empty);
            for (x, y) in into.iter_mut().zip(&stats) {
                x.merge(y);
                x.merge_instances(y);
            }
        }
        while self.next_interval <= through {
            let k = self.next_interval;
            // An event goes with the interval it is placed in, or the first one still
            // unsent (the one rule for every kind: `WorkerEvent::placed_at`).
            let (mut events, later): (Vec<WorkerEvent>, Vec<WorkerEvent>) =
                std::mem::take(&mut self.events)
                    .into_iter()
                    .partition(|e| self.interval_of(self.start + e.placed_at()) <= k);
            self.events = later;
            cap_per_snapshot(&mut events);
            let snapshot = Snapshot {
                events,
                run_id: self.run_id.clone(),
                worker_index: self.worker_index,
                sequence: self.sequence,
                interval_index: k,
                operations: self
                    .ops
                    .iter()
                    .cloned()
                    .zip(by_interval.remove(&k).unwrap_or_else(empty))
                    .collect(),
            };
            self.sequence += 1;
            self.next_interval += 1;
            if self.state == State::Connected {
                self.effects
                    .push(Effect::Send(FromWorker::Snapshot(Box::new(
                        snapshot.clone(),
                    ))));
            }
            self.unacked.push_back(snapshot);
        }
        if let Phase::Ending { through, .. } = self.phase {
            self.phase = Phase::Ending {
                through,
                measured: true,
            };
        }
    }

    /// After the load: once connected, the final snapshots and then Done (on the next
    /// tick, so that a send that fails first sends the link redialing); once orphaned,
    /// everything unacknowledged to the spool.
    fn end(&mut self, now: Instant) {
        let Phase::Ending { through, measured } = self.phase else {
            return;
        };
        match &self.state {
            State::Connected if !measured => self.effects.push(Effect::Measure { through }),
            State::Connected => {
                self.phase = Phase::Finishing { at: now };
            }
            State::Orphaned(_) if !measured => {
                let through = self.interval_of(now).max(self.next_interval);
                self.effects.push(Effect::Measure { through });
            }
            State::Orphaned(reason) => {
                self.effects.push(Effect::Spool {
                    reason: reason.clone(),
                    snapshots: self.unacked.drain(..).collect(),
                });
                self.phase = Phase::Finished;
            }
            State::Redialing { .. } => {}
        }
    }
}
