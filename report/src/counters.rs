//! The database's own counters as the report holds them: samples on the run's
//! timeline, the run's deltas, the levels of gauges, and the times they could not be
//! read. The coordinator samples them (its `counters` module); this is only the record.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A counter sample's values, by the server's name for each.
pub type Counters = BTreeMap<String, i64>;

/// One sample: seconds after the start (negative: before it) and the values.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sample {
    pub t_s: f64,
    pub values: Counters,
}

/// A time the counters could not be read (the connection was lost: a failover, a
/// restart, a killed backend). No sample is invented for it: the series has a hole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gap {
    /// The first attempt that failed, seconds after the start.
    pub from_s: f64,
    /// The first sample after it; `None` when the counters never came back.
    pub to_s: Option<f64>,
    pub error: String,
}

/// What the report holds of the database's counters.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DatabaseCounters {
    /// Why there are no samples, when there are none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
    pub samples: Vec<Sample>,
    /// Last sample minus first, per counter present in both (levels left out).
    pub deltas: BTreeMap<String, i64>,
    /// Levels such as `Threads_connected`: their last value and the most seen.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub gauges: BTreeMap<String, Gauge>,
    /// Times without samples, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gaps: Vec<Gap>,
}

/// A level over the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gauge {
    pub last: i64,
    pub max: i64,
}
