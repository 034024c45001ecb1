//! One worker's place in the run: who holds it, what it was given, what it said.

use super::{Arrival, Now};
use fleetload_common::profile::Profile;
use fleetload_common::split::Shard;
use fleetload_common::wire::{Done, Hello, ResumeSecret, TimeEcho};
use fleetload_report::admission::{Refusal, RefusalClass};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Joined,
    Ready,
    Running,
    Done,
    Failed,
    Lost,
}

impl State {
    /// Takes part in the run: heartbeats go to it, its snapshots are awaited.
    pub(crate) fn is_live(self) -> bool {
        matches!(self, State::Running | State::Done)
    }

    pub(crate) fn is_over(self) -> bool {
        matches!(self, State::Done | State::Failed | State::Lost)
    }

    /// As the live dashboard names it while the run goes.
    pub(crate) fn live_name(self) -> &'static str {
        match self {
            State::Joined => "joined",
            State::Ready => "ready",
            State::Running => "running",
            other => other.report_name(),
        }
    }

    /// As the report names it.
    pub(crate) fn report_name(self) -> &'static str {
        match self {
            State::Done => "done",
            State::Failed => "failed",
            State::Lost => "lost",
            State::Joined | State::Ready | State::Running => "unfinished",
        }
    }
}

#[derive(Debug)]
pub(crate) struct Slot {
    /// The stream that holds the slot now (a rejoin moves it to a new stream).
    pub(crate) conn: u64,
    pub(crate) hello: Hello,
    pub(crate) peer: Option<SocketAddr>,
    pub(crate) state: State,
    pub(crate) shard: Shard,
    pub(crate) rate: Option<f64>,
    /// Its fraction of the cluster's load (0 once lost).
    pub(crate) share: f64,
    pub(crate) message: Option<String>,
    pub(crate) done: Option<Done>,
    pub(crate) rows_loaded: u64,
    /// When the worker last said anything (any message, heartbeats included).
    pub(crate) last_heard: Instant,
    /// Key ranges it took over from lost workers.
    pub(crate) extra: Vec<Shard>,
    /// Its clock's offset from ours and the round trip of the best probe, nanoseconds.
    pub(crate) clock: Option<(i64, i64)>,
    /// The load profile it was last sent.
    pub(crate) profile: Option<Profile>,
    /// Joined after the start: clock echoes received, and since when it is probed.
    pub(crate) late_probes: Option<(u32, Instant)>,
    /// Messages refused from it, per class: how many, and the first one's detail.
    pub(crate) rejected: BTreeMap<RefusalClass, (u64, String)>,
    /// What a rejoin of this slot must present (set with its Assignment).
    pub(crate) resume_secret: ResumeSecret,
    /// The client certificate (DER) of the stream that took the slot, under mutual TLS:
    /// a rejoin must come with the same one.
    pub(crate) cert: Option<Vec<u8>>,
    /// The send time of the clock probes it was sent last: only echoes of those count.
    pub(crate) probe_sent: Option<i64>,
    /// Where the worker says it spools what it cannot deliver.
    pub(crate) spool: Option<String>,
    /// When it was lost (seconds from the start) and the failure recorded for it, while
    /// it may still rejoin.
    pub(crate) lost: Option<(f64, String)>,
    /// Spans it was lost and came back: (lost at, rejoined at), seconds from the start.
    pub(crate) away: Vec<(f64, f64)>,
}

impl Slot {
    /// A worker that just joined, with `shard` until it is assigned one.
    pub(crate) fn new(arrival: Arrival, shard: Shard, now: Instant) -> Slot {
        let Arrival {
            conn,
            hello,
            peer,
            cert,
        } = arrival;
        Slot {
            conn,
            hello,
            peer,
            cert,
            state: State::Joined,
            shard,
            share: 0.0,
            rate: None,
            message: None,
            done: None,
            rows_loaded: 0,
            last_heard: now,
            extra: Vec::new(),
            clock: None,
            profile: None,
            late_probes: None,
            rejected: BTreeMap::new(),
            resume_secret: ResumeSecret::default(),
            probe_sent: None,
            spool: None,
            lost: None,
            away: Vec::new(),
        }
    }

    /// The offset of its clock from ours, nanoseconds (0 without a sample).
    pub(crate) fn offset(&self) -> i64 {
        self.clock.map_or(0, |(o, _)| o)
    }

    /// Keep a clock echo's sample when its round trip is the lowest so far; an echo
    /// that is not of our probe, or that no clock could have produced, is refused.
    pub(crate) fn clock_echo(&mut self, echo: &TimeEcho, now: Now) -> Result<(), Refusal> {
        let sent = self.probe_sent.ok_or_else(|| {
            Refusal::new(RefusalClass::Clock, "a clock echo when no probe was sent")
        })?;
        let sample = fleetload_report::admission::clock_sample(
            sent,
            echo.coordinator_send,
            echo.worker_receive,
            echo.worker_send,
            echo.coordinator_receive.unwrap_or(now.unix_nanos),
        )?;
        if self.clock.is_none_or(|(_, d)| sample.1 < d) {
            self.clock = Some(sample);
        }
        Ok(())
    }

    /// Count a refused message by class; the first of each class is logged as a
    /// warning with the worker's name and address, the rest at debug level.
    pub(crate) fn refuse(&mut self, r: Refusal) {
        let entry = self.rejected.entry(r.class).or_insert((0, String::new()));
        entry.0 += 1;
        if entry.0 == 1 {
            tracing::warn!(worker = %self.hello.name, peer = %crate::shown(&self.peer), class = %r.class.name(), detail = %r.detail, "refused a message from a worker (further ones of this class are logged at debug level)");
            entry.1 = r.detail;
        } else {
            tracing::debug!(worker = %self.hello.name, peer = %crate::shown(&self.peer), class = %r.class.name(), detail = %r.detail, "refused a message from a worker");
        }
    }
}
