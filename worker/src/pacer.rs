//! The open-loop pacer: releases every operation at its intended start.
//!
//! tokio's timer rounds each sleep up to the next millisecond, which added about 1 ms of
//! schedule lag to every operation when each session slept for its own operation. The
//! pacer instead runs on a blocking thread, sleeps with the OS timer's precision (tens
//! of microseconds), and on each wake releases every operation that is due into an
//! unbounded MPMC queue that the sessions drain. An operation that waits in the queue
//! for a free session waits on the clock: its response time includes the wait.
//!
//! The queue is bounded in effect: past `cap` queued operations the pacer counts each
//! new one as `dropped_backlog` (loudly, in the report) instead of queueing it, so a
//! stalled database cannot make the worker's memory grow without limit.

use crate::recorder::Recorder;
use fleetload_common::rng::Rng;
use fleetload_common::schedule::Schedule;
use fleetload_common::stats::OpTotals;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Longest single sleep, so a cancellation is noticed promptly.
const MAX_NAP: Duration = Duration::from_millis(10);

/// Everything the pacer needs.
pub struct Pacer {
    pub schedule: Schedule,
    pub start: Instant,
    pub duration: Duration,
    pub interval: Duration,
    pub last_interval: u64,
    pub arrivals: async_channel::Sender<Instant>,
    pub cap: usize,
    pub weights: Vec<u32>,
    pub recorder: Arc<Recorder>,
    pub rng: Rng,
    pub cancel: CancellationToken,
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
    pub fn run(mut self) -> Vec<OpTotals> {
        let mut dropped = vec![OpTotals::default(); self.weights.len()];
        let mut i: u64 = 0;
        loop {
            if self.cancel.is_cancelled() {
                break;
            }
            let Some(offset) = self.schedule.intended(i) else {
                break;
            };
            if offset >= self.duration {
                break;
            }
            let due = self.start + offset;
            let now = Instant::now();
            if due > now {
                std::thread::sleep((due - now).min(MAX_NAP));
                continue;
            }
            if self.arrivals.len() >= self.cap {
                let slot = self.pick();
                self.recorder.dropped(self.interval_of(now), slot);
                dropped[slot].dropped_backlog += 1;
            } else if self.arrivals.try_send(due).is_err() {
                break; // every session is gone
            }
            i += 1;
        }
        dropped
    }
}
