//! The open-loop pacer: releases every operation at its intended start.
//!
//! tokio's timer rounds each sleep up to the next millisecond, which added about 1 ms of
//! schedule lag to every operation when each session slept for its own operation. The
//! pacer is one task that sleeps on a [`PreciseTimer`] (tens of microseconds) and on
//! each wake releases every operation that is due into an MPMC queue that the sessions
//! drain. An operation that waits in the queue for a free session waits on the clock:
//! its response time includes the wait.
//!
//! The queue is bounded in effect: past `cap` queued operations the pacer counts each
//! new one as `dropped_backlog` (loudly, in the report) instead of queueing it, so a
//! stalled database cannot make the worker's memory grow without limit.

use crate::recorder::Recorder;
use crate::timer::PreciseTimer;
use fleetload_common::profile::Profile;
use fleetload_common::rng::Rng;
use fleetload_common::schedule::Arrivals;
use fleetload_common::stats::OpTotals;
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn sleep_until(timer: Option<&PreciseTimer>, due: Instant) -> std::io::Result<()> {
    match timer {
        Some(t) => t.sleep_until(due).await,
        None => {
            tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
            Ok(())
        }
    }
}
use tokio_util::sync::CancellationToken;

/// Releases between yields to the runtime when catching up on a backlog.
const RELEASE_BATCH: u32 = 1024;

/// Everything the pacer needs.
pub struct Pacer {
    pub arrivals_plan: Arrivals,
    pub start: Instant,
    pub duration: Duration,
    pub interval: Duration,
    pub last_interval: u64,
    /// One queue per pool of sessions (the writer's, the reader's), and which queue
    /// each operation of the mix goes to.
    pub queues: Vec<async_channel::Sender<(Instant, u16)>>,
    pub route: Vec<usize>,
    pub cap: usize,
    pub weights: Vec<u32>,
    pub recorder: Arc<Recorder>,
    pub rng: Rng,
    pub cancel: CancellationToken,
    /// Load changes (live control, a worker lost or joined): the whole new profile.
    pub rate: tokio::sync::watch::Receiver<Arc<Profile>>,
}

impl Pacer {
    fn interval_of(&self, t: Instant) -> u64 {
        let k =
            t.saturating_duration_since(self.start).as_nanos() / self.interval.as_nanos().max(1);
        u64::try_from(k).unwrap_or(u64::MAX).min(self.last_interval)
    }

    fn pick(&mut self) -> usize {
        let total: u64 = self
            .weights
            .iter()
            .map(|w| u64::from(*w))
            .sum::<u64>()
            .max(1);
        let mut x = self.rng.range(1, total);
        for (slot, w) in self.weights.iter().enumerate() {
            if x <= u64::from(*w) {
                return slot;
            }
            x -= u64::from(*w);
        }
        self.weights.len() - 1
    }

    /// Run until the schedule passes the duration or the run is cancelled. Returns the
    /// operations it had to drop, per mix slot. Closing the queue (by returning) tells
    /// the sessions that no more operations will come.
    pub async fn run(mut self) -> Vec<OpTotals> {
        let mut dropped = vec![OpTotals::default(); self.weights.len()];
        let timer = match PreciseTimer::new() {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!(error = %e, "no precise timer; falling back to tokio's 1 ms timer");
                None
            }
        };
        let mut released: u32 = 0;
        let mut rate_open = true;
        let mut next = self.arrivals_plan.next();
        loop {
            if self.cancel.is_cancelled() {
                break;
            }
            let Some(offset) = next else {
                // Nothing more is due under this profile (paused for good, or a rate of
                // 0): wait for a change until the run's end.
                let end = self.start + self.duration;
                let cancel = self.cancel.clone();
                let mut rate = self.rate.clone();
                tokio::select! {
                    changed = rate.changed(), if rate_open => {
                        rate_open = changed.is_ok();
                        if rate_open {
                            let profile = Profile::clone(&self.rate.borrow_and_update());
                            self.arrivals_plan.set_profile(profile);
                            next = self.arrivals_plan.next();
                        }
                        continue;
                    }
                    _ = tokio::time::sleep_until(tokio::time::Instant::from_std(end)) => break,
                    _ = cancel.cancelled() => break,
                }
            };
            if offset >= self.duration {
                break;
            }
            if self.rate.has_changed().unwrap_or(false) {
                let profile = Profile::clone(&self.rate.borrow_and_update());
                // The pending arrival keeps its time; the ones after follow the new profile.
                self.arrivals_plan.set_profile(profile);
            }
            let due = self.start + offset;
            let now = Instant::now();
            if due > now {
                let cancel = self.cancel.clone();
                let mut rate = self.rate.clone();
                tokio::select! {
                    changed = rate.changed(), if rate_open => {
                        // A closed channel means no more changes; keep pacing.
                        rate_open = changed.is_ok();
                        continue;
                    }
                    slept = sleep_until(timer.as_ref(), due) => {
                        if let Err(e) = slept {
                            tracing::warn!(error = %e, "precise timer failed; using tokio's timer");
                            tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
                        }
                    }
                    _ = cancel.cancelled() => break,
                }
                continue;
            }
            let slot = self.pick();
            let queued: usize = self.queues.iter().map(async_channel::Sender::len).sum();
            if queued >= self.cap {
                self.recorder.dropped(self.interval_of(now), slot);
                dropped[slot].dropped_backlog += 1;
            } else if self.queues[self.route[slot]]
                .try_send((due, u16::try_from(slot).unwrap_or(u16::MAX)))
                .is_err()
            {
                break; // every session of that endpoint is gone
            }
            next = self.arrivals_plan.next();
            released = released.wrapping_add(1);
            if released.is_multiple_of(RELEASE_BATCH) {
                // Catching up on a backlog: let the sessions run.
                tokio::task::yield_now().await;
            }
        }
        dropped
    }
}
