//! Stalls of the worker itself: a frozen process (SIGSTOP, a VM paused), a starved
//! host, a runtime blocked by a long computation. Operations measured across one look
//! slow, and arrivals missed during one would go out in a burst; neither is the
//! database's doing, so the worker notices them and the report names them.
//!
//! A task wakes every `TICK`; when it wakes more than `STALL` later than it asked,
//! the whole runtime was held up that long. A stall of the database (sessions blocked
//! on a lock) does not show here: the runtime stays free while sessions wait.

use crate::events::Events;
use fleetload_common::events::{Stall, WorkerEvent};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The shortest lateness counted as a stall (well above the scheduler's jitter).
pub(crate) const STALL: Duration = Duration::from_millis(100);
const TICK: Duration = Duration::from_millis(10);
/// Watch for stalls from `start` until `end` or `cancel`.
pub(crate) async fn watch(
    start: Instant,
    end: Instant,
    events: &Events,
    cancel: CancellationToken,
) {
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
            events.push(WorkerEvent::Stall(Stall {
                at: asked.saturating_duration_since(start),
                duration: late,
            }));
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
        let stalls = std::sync::Arc::new(Events::default());
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
        let got: Vec<Stall> = stalls
            .take()
            .iter()
            .filter_map(|e| e.as_stall().copied())
            .collect();
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].duration >= Duration::from_millis(300), "{got:?}");
        assert!(got[0].at < Duration::from_millis(200), "{got:?}");
        assert!(stalls.take().is_empty(), "taken once");
    }
}
