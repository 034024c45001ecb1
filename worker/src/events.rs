//! The worker's event sink: every detector (a session ending an outage, the stall
//! watcher, and the kinds to come) pushes what it saw here, and the link takes them
//! into the snapshot of the interval each is placed in (see
//! [`fleetload_common::events`]). Over a kind's per-snapshot cap, the longest of that
//! kind are kept: they are the ones that matter.

use fleetload_common::events::{cap_per_snapshot, WorkerEvent};
use std::sync::Mutex;

/// Events noticed and not yet taken into a snapshot.
#[derive(Debug, Default)]
pub(crate) struct Events(Mutex<Vec<WorkerEvent>>);

impl Events {
    pub(crate) fn push(&self, e: WorkerEvent) {
        let mut v = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let kind = e.kind();
        v.push(e);
        // Trim only well over the cap, so a burst costs one pass, not one per event.
        if v.iter().filter(|x| x.kind() == kind).count() > 2 * kind.snapshot_cap() {
            cap_per_snapshot(&mut v);
        }
    }

    /// Every event noticed since the last call.
    pub(crate) fn take(&self) -> Vec<WorkerEvent> {
        let mut v = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        std::mem::take(&mut *v)
    }
}
