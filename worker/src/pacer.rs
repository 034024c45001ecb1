//! The open-loop pacer: releases every operation at its intended start.
//!
//! tokio's timer rounds each sleep up to the next millisecond, which added about 1 ms of
//! schedule lag to every operation when each session slept for its own operation. The
//! pacer is one task that sleeps on a [`PreciseTimer`] (tens of microseconds) and on
//! each wake releases every operation that is due into an MPMC queue that the sessions
//! drain. An operation that waits in the queue for a free session waits on the clock:
//! its response time includes the wait.
//!
//! When the pacer itself was held up (the worker's process frozen, its runtime
//! starved; the database cannot cause this, since releasing never waits for a session)
//! the arrivals it missed are not fired at once by default: with a `catch_up` factor
//! f, the k-th missed arrival goes out at `t0 + (due_k − due_0) / f`, so the backlog
//! drains at f times the schedule's pace until the releases meet the schedule again.
//! Their response time still counts from the intended start.
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
pub(crate) struct Pacer {
    pub arrivals_plan: Arrivals,
    pub start: Instant,
    pub duration: Duration,
    /// The run's intervals (one rule with the sessions and the link).
    pub intervals: fleetload_common::intervals::Intervals,
    /// One queue per pool of sessions (the writer's, the reader's), and which queue
    /// each operation of the mix goes to.
    pub queues: Vec<crate::dispatch::Sender<(Instant, u16)>>,
    pub route: Vec<usize>,
    pub cap: usize,
    pub weights: Vec<u32>,
    pub recorder: Arc<Recorder>,
    pub rng: Rng,
    pub cancel: CancellationToken,
    /// Load changes (live control, a worker lost or joined): the whole new profile.
    pub rate: tokio::sync::watch::Receiver<Arc<Profile>>,
    /// Release arrivals missed during a stall at no more than this multiple of the
    /// schedule's pace (`None`: all at once).
    pub catch_up: Option<f64>,
}

/// A catch-up under way: from `at` (when the pacer noticed it was behind), arrivals
/// due from `due` on go out at the pace of the schedule times `factor`.
#[derive(Debug, Clone, Copy)]
struct CatchingUp {
    at: Instant,
    due: Instant,
    factor: f64,
}

impl CatchingUp {
    /// When the arrival due at `due` goes out: never before it is due.
    fn release_at(&self, due: Instant) -> Instant {
        let paced = self.at + due.saturating_duration_since(self.due).div_f64(self.factor);
        paced.max(due)
    }
}

impl Pacer {
    fn interval_of(&self, t: Instant) -> u64 {
        self.intervals.at(t.saturating_duration_since(self.start))
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
    pub(crate) async fn run(mut self) -> Vec<OpTotals> {
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
        let mut catching_up: Option<CatchingUp> = None;
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
            if let (Some(factor), None) = (self.catch_up, catching_up) {
                if now.saturating_duration_since(due) > crate::stall::STALL {
                    tracing::debug!(behind = ?now - due, "the pacer was held up; catching up at {factor}× the schedule's pace");
                    catching_up = Some(CatchingUp {
                        at: now,
                        due,
                        factor,
                    });
                }
            }
            let release = match catching_up {
                Some(c) if c.release_at(due) <= due => {
                    // Back on schedule.
                    catching_up = None;
                    due
                }
                Some(c) => c.release_at(due),
                None => due,
            };
            if release > now {
                let due = release;
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
            let queued: usize = self.queues.iter().map(crate::dispatch::Sender::len).sum();
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_backlog_drains_at_the_factor_and_meets_the_schedule() {
        let t = Instant::now();
        // Arrivals every 10 ms; the pacer noticed at t + 3 s that it is 3 s behind.
        let c = CatchingUp {
            at: t + Duration::from_secs(3),
            due: t,
            factor: 2.0,
        };
        let gap = |k: u32| {
            c.release_at(t + Duration::from_millis(10) * (k + 1))
                - c.release_at(t + Duration::from_millis(10) * k)
        };
        // Twice the schedule's pace while behind: 5 ms apart instead of 10.
        assert_eq!(gap(0), Duration::from_millis(5));
        assert_eq!(gap(100), Duration::from_millis(5));
        // Back on schedule once paced releases reach the due times: t0 + (d − d0)/2 = d
        // at d = 6 s; from there on, each goes out when due, never before.
        let d = t + Duration::from_secs(6);
        assert_eq!(c.release_at(d), d);
        let later = t + Duration::from_secs(7);
        assert_eq!(c.release_at(later), later);
        assert!(c.release_at(t + Duration::from_secs(1)) > t + Duration::from_secs(1));
    }
}
