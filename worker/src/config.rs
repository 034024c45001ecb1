//! Who this worker is and how it dials ([`WorkerConfig`]), and its clock: the wall
//! clock it shares with the coordinator (with a test hook for skew) and the monotonic
//! instant of a wall-clock time. Below the client, the launch and the session loops,
//! which all read them.

use std::time::Duration;
use tokio::time::Instant;

/// Who this worker is and how it dials.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub name: String,
    pub host: String,
    /// Relative capacity; the coordinator splits rate and keys in proportion.
    pub capacity: f64,
    /// Most sessions this worker accepts.
    pub max_sessions: u32,
    /// How long to keep dialing a coordinator that is not up yet.
    pub dial_timeout: Duration,
    /// Where unacknowledged snapshots go when the coordinator is lost.
    pub spool_dir: std::path::PathBuf,
    /// Test hook: pretend this worker's wall clock is off by this many nanoseconds, to
    /// check that the coordinator's offset estimate finds it and corrects the start.
    pub clock_skew_nanos: i64,
    /// TLS and token for the control channel.
    pub security: crate::security::ClientSecurity,
    /// Targets this worker agrees to load (empty: any).
    pub allow_targets: Vec<crate::security::AllowTarget>,
}

impl WorkerConfig {
    /// A worker named `name` on this host, capacity = its cores.
    pub fn local(name: impl Into<String>) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        WorkerConfig {
            name: name.into(),
            host: host_name(),
            capacity: cores as f64,
            max_sessions: fleetload_common::plan::MAX_SESSIONS,
            dial_timeout: Duration::from_secs(30),
            spool_dir: std::path::PathBuf::from("."),
            clock_skew_nanos: 0,
            security: crate::security::ClientSecurity::default(),
            allow_targets: Vec::new(),
        }
    }
}

/// This host's name, for reports.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// This worker's wall clock, Unix nanoseconds (with the test skew, if any).
pub(crate) fn wall_nanos(skew: i64) -> i64 {
    fleetload_common::wire::unix_nanos_now().saturating_add(skew)
}

/// The monotonic instant of a wall-clock time on this worker's (skewed) clock.
pub(crate) fn instant_at(unix_nanos: i64, skew: i64) -> Instant {
    let (now_wall, now) = (wall_nanos(skew), Instant::now());
    let ahead = unix_nanos.saturating_sub(now_wall);
    if ahead >= 0 {
        now + Duration::from_nanos(ahead as u64)
    } else {
        now.checked_sub(Duration::from_nanos(ahead.unsigned_abs()))
            .unwrap_or(now)
    }
}
