//! CloudWatch's series as the report holds them, on the run's timeline. The
//! coordinator's poller fetches them; this is only the record.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What the report holds of CloudWatch.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CloudWatchJson {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub period_s: u64,
    /// The run's start, Unix seconds: a point's time is this plus its `t_s`.
    pub start_unix_s: f64,
    /// Series that had data, in the order fleetload asks for them.
    pub series: Vec<CloudWatchSeries>,
    /// What went wrong or is worth knowing (CloudWatch unreachable, a partial result).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// One metric's points.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CloudWatchSeries {
    pub namespace: String,
    pub metric: String,
    pub dimensions: BTreeMap<String, String>,
    pub stat: String,
    pub unit: String,
    /// `[t_s, value]`: the start of each CloudWatch period in seconds after the run's
    /// start (negative: before it), and the statistic over that period.
    pub points: Vec<[f64; 2]>,
}

impl CloudWatchJson {
    /// The series of `metric`, the first one (cluster before instances).
    pub fn find(&self, metric: &str) -> Option<&CloudWatchSeries> {
        self.series.iter().find(|s| s.metric == metric)
    }
}
