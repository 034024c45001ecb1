//! The controller's only notion of time: each input carries the instant it happened
//! at, read once by the shell, so the core never reads a clock and a test can drive it
//! through any schedule.

use std::time::{Duration, Instant};

/// The time an input happens at: the monotonic instant for deadlines and the wall clock
/// (Unix nanoseconds) for what goes on the wire.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Now {
    pub at: Instant,
    pub unix_nanos: i64,
}

impl Now {
    /// This host's clocks, now.
    pub(crate) fn read() -> Now {
        Now {
            at: Instant::now(),
            unix_nanos: fleetload_common::wire::unix_nanos_now(),
        }
    }

    /// `d` later on both clocks.
    pub(crate) fn after(self, d: Duration) -> Now {
        Now {
            at: self.at + d,
            unix_nanos: self
                .unix_nanos
                .saturating_add(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
        }
    }
}
