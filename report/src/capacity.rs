//! A capacity search's outcome as the report holds it: the answer, the rate that
//! broke, and every stage tried. The coordinator's `search` module runs the search.

use serde::{Deserialize, Serialize};

/// One stage of the search.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CurvePoint {
    pub rate: f64,
    pub start_s: f64,
    pub end_s: f64,
    pub achieved_ok_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub error_rate: f64,
    /// Every SLO held.
    pub passed: bool,
    /// The SLOs that did not, with what was measured.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub breaches: Vec<String>,
}

/// The search's outcome, for the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CapacityJson {
    pub slos: Vec<String>,
    /// The highest rate that met every SLO for a whole stage (`None`: not even the
    /// lowest one tried).
    pub answer: Option<f64>,
    /// The lowest rate that did not, when one was found.
    pub breaking: Option<f64>,
    pub precision: f64,
    pub converged: bool,
    pub curve: Vec<CurvePoint>,
}
