//! The bounds of every duration a plan names, in one table: the plan's validation and
//! the wire's (an Assignment is the plan on the wire, checked on arrival) use the same
//! numbers.

use std::time::Duration;

/// An inclusive range of durations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub lo: Duration,
    pub hi: Duration,
}

const fn span(lo: Duration, hi: Duration) -> Span {
    Span { lo, hi }
}

pub const MAX_BACKLOG: Span = span(Duration::from_millis(10), Duration::from_secs(3600));
pub const THINK_TIME: Span = span(Duration::ZERO, Duration::from_secs(3600));
pub const INTERVAL: Span = span(Duration::from_millis(100), Duration::from_secs(600));
/// The longest run (its shortest is one interval).
pub const LONGEST_RUN: Duration = Duration::from_secs(7 * 86_400);
pub const OP_TIMEOUT: Span = span(Duration::from_millis(1), Duration::from_secs(3600));
pub const CONNECT_TIMEOUT: Span = span(Duration::from_millis(100), Duration::from_secs(600));
/// How often the coordinator writes report.partial.json.
pub const CHECKPOINT: Span = span(Duration::from_secs(1), Duration::from_secs(3600));
/// How long after the planned end a lost worker may try to rejoin.
pub const REJOIN: Span = span(Duration::ZERO, Duration::from_secs(3600));
pub const LEASE: Span = span(Duration::from_millis(500), Duration::from_secs(600));
/// The ML stand-in's fixed cost per request and cost per row.
pub const ML_DELAY: Span = span(Duration::ZERO, Duration::from_secs(60));
pub const ML_ROW_COST: Span = span(Duration::ZERO, Duration::from_secs(10));
/// How long a session keeps its connection before it reconnects (and resolves the
/// name again).
pub const MAX_CONNECTION_AGE: Span = span(Duration::from_secs(1), Duration::from_secs(86_400));
pub const ABORT_GRACE: Span = span(Duration::ZERO, Duration::from_secs(86_400));
