//! Stalls of the worker itself: a frozen process (SIGSTOP, a VM paused), a starved
//! host, a runtime blocked by a long computation. Operations measured across one look
//! slow, and arrivals missed during one would go out in a burst; neither is the
//! database's doing, so the worker notices them and the report names them.
//!
//! A task wakes every `TICK`; when it wakes more than `STALL` later than it asked,
//! the whole runtime was held up that long. A stall of the database (sessions blocked
//! on a lock) does not show here: the runtime stays free while sessions wait.

use fleetload_common::stats::Stall;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The shortest lateness counted as a stall (well above the scheduler's jitter).
pub const STALL: Duration = Duration::from_millis(100);
const TICK: Duration = Duration::from_millis(10);
/// Stalls kept between two snapshots; beyond it the shortest are forgotten.
const KEEP: usize = fleetload_common::stats::MAX_STALLS;

/// Stalls noticed and not yet taken into a snapshot.
#[derive(Debug, Default)]
pub struct Stalls(Mutex<Vec<Stall>>);

impl Stalls {
    fn push(&self, s: Stall) {
        let Ok(mut v) = self.0.lock() else { return };
        v.push(s);
        if v.len() > KEEP {
            // Keep the longest: they are the ones that matter.
            v.sort_by_key(|s| std::cmp::Reverse(s.duration));
            v.truncate(KEEP);
            v.sort_by_key(|s| s.at);
        }
    }

    /// Every stall noticed since the last call.
    pub fn take(&self) -> Vec<Stall> {
        self.0
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }
}

/// Watch for stalls from `start` until `end` or `cancel`.
pub async fn watch(start: Instant, end: Instant, stalls: &Stalls, cancel: CancellationToken) {
    tokio::select! {
        _ = tokio::time::sleep_until(start) => {}
        _ = cancel.cancelled() => return,
    }
    loop {
        let asked = Instant::now() + TICK;
        tokio::select! {
            _ = tokio::time::sleep_until(asked) => {}
            _ = cancel.cancelled() => return,
        }
        let woke = Instant::now();
        let late = woke.saturating_duration_since(asked);
        if late > STALL {
            tracing::warn!(late = ?late, "this worker stalled (its runtime woke late): a frozen process or a starved host, not the database");
            stalls.push(Stall {
                at: asked.saturating_duration_since(start),
                duration: late,
            });
        }
        if woke >= end {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_blocked_runtime_is_a_stall_with_its_length() {
        let stalls = std::sync::Arc::new(Stalls::default());
        let start = Instant::now();
        let cancel = CancellationToken::new();
        let task = tokio::spawn({
            let (stalls, cancel) = (std::sync::Arc::clone(&stalls), cancel.clone());
            async move { watch(start, start + Duration::from_secs(5), &stalls, cancel).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        // Block the only runtime thread, as a frozen process would.
        std::thread::sleep(Duration::from_millis(400));
        tokio::time::sleep(Duration::from_millis(50)).await;
        cancel.cancel();
        task.await.unwrap();
        let got = stalls.take();
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].duration >= Duration::from_millis(300), "{got:?}");
        assert!(got[0].at < Duration::from_millis(200), "{got:?}");
        assert!(stalls.take().is_empty(), "taken once");
    }
}
