//! Thresholds (SLOs): `[operation.]metric op value`, e.g. `predict_one.p99 < 50ms`,
//! `error_rate < 0.5%`, `ok_per_s >= 900`. Checked on the merged cluster histograms of
//! the whole run's measured intervals or of one stage's.

use serde::{Deserialize, Serialize};

/// What a threshold measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    P50,
    P90,
    P99,
    P999,
    Max,
    Mean,
    /// Failed / (succeeded + failed), as a fraction.
    ErrorRate,
    /// Successful operations per second.
    OkPerS,
    /// Operations dropped for being too far behind schedule.
    Dropped,
    /// Sessions' downtime in outages and failovers (first failure to first success
    /// after): the median, the 99th percentile and the longest over sessions.
    DowntimeP50,
    DowntimeP99,
    DowntimeMax,
}

impl Metric {
    pub fn is_latency(self) -> bool {
        matches!(
            self,
            Metric::P50 | Metric::P90 | Metric::P99 | Metric::P999 | Metric::Max | Metric::Mean
        )
    }

    pub fn is_downtime(self) -> bool {
        matches!(
            self,
            Metric::DowntimeP50 | Metric::DowntimeP99 | Metric::DowntimeMax
        )
    }

    /// Whether the limit is a duration (latency or downtime), in milliseconds.
    pub fn is_duration(self) -> bool {
        self.is_latency() || self.is_downtime()
    }

    /// The quantile of a latency percentile.
    pub fn quantile(self) -> Option<f64> {
        match self {
            Metric::P50 => Some(0.5),
            Metric::P90 => Some(0.9),
            Metric::P99 => Some(0.99),
            Metric::P999 => Some(0.999),
            Metric::Max => Some(1.0),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cmp {
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
}

impl Cmp {
    pub fn holds(self, measured: f64, limit: f64) -> bool {
        match self {
            Cmp::Lt => measured < limit,
            Cmp::Le => measured <= limit,
            Cmp::Gt => measured > limit,
            Cmp::Ge => measured >= limit,
        }
    }
}

/// One threshold. Latency values are in milliseconds, error rates a fraction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    /// As written.
    pub text: String,
    /// `None`: all operations together.
    pub operation: Option<String>,
    /// Downtime of one endpoint's sessions only (`downtime.write.max`); `None`: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<crate::scenario::Role>,
    pub metric: Metric,
    pub cmp: Cmp,
    pub value: f64,
}

const METRICS: &str = "p50, p90, p99, p99.9, max, mean (latency, e.g. 50ms), error_rate (e.g. 0.5%), ok_per_s, dropped, downtime.max / downtime.p99 / downtime.p50 (per session, optionally downtime.write.max, downtime.read.max)";

/// `downtime[.read|.write].(p50|p99|max)`: the metric and the role.
fn downtime(left: &str) -> Option<Result<(Metric, Option<crate::scenario::Role>), String>> {
    use crate::scenario::Role;
    let rest = left.strip_prefix("downtime.")?;
    let (role, stat) = match rest.split_once('.') {
        Some(("write", s)) => (Some(Role::Write), s),
        Some(("read", s)) => (Some(Role::Read), s),
        Some((r, _)) => {
            return Some(Err(format!(
                "unknown role {r:?} in {left:?}; downtime.write.max or downtime.read.max"
            )))
        }
        None => (None, rest),
    };
    Some(match stat {
        "p50" => Ok((Metric::DowntimeP50, role)),
        "p99" => Ok((Metric::DowntimeP99, role)),
        "max" => Ok((Metric::DowntimeMax, role)),
        other => Err(format!(
            "unknown downtime statistic {other:?} in {left:?}; p50, p99 or max"
        )),
    })
}

fn metric(name: &str) -> Option<Metric> {
    Some(match name {
        "p50" => Metric::P50,
        "p90" => Metric::P90,
        "p99" => Metric::P99,
        "p99.9" | "p999" => Metric::P999,
        "max" => Metric::Max,
        "mean" => Metric::Mean,
        "error_rate" | "errors" => Metric::ErrorRate,
        "ok_per_s" | "throughput" | "rate" => Metric::OkPerS,
        "dropped" => Metric::Dropped,
        _ => return None,
    })
}

impl Threshold {
    /// Parse `text`; `operations` are the run's operation names.
    ///
    /// # Errors
    /// The message says what is wrong and what would be accepted.
    pub fn parse(text: &str, operations: &[&str]) -> Result<Threshold, String> {
        let t = text.trim();
        let ops = ["<=", ">=", "<", ">"];
        let (pos, op) = ops
            .iter()
            .filter_map(|o| t.find(o).map(|p| (p, *o)))
            .min_by_key(|(p, o)| (*p, std::cmp::Reverse(o.len())))
            .ok_or_else(|| {
                format!(
                    "{text:?}: no comparison; write e.g. \"p99 < 50ms\" or \"error_rate < 0.5%\""
                )
            })?;
        let cmp = match op {
            "<=" => Cmp::Le,
            ">=" => Cmp::Ge,
            "<" => Cmp::Lt,
            _ => Cmp::Gt,
        };
        let left = t[..pos].trim();
        let right = t[pos + op.len()..].trim();
        if right.is_empty() {
            return Err(format!(
                "{text:?}: nothing after {op:?}; write the limit, e.g. \"p99 < 50ms\""
            ));
        }
        let (operation, metric, role) = match (metric(left), downtime(left)) {
            (Some(m), _) => (None, m, None),
            (None, Some(d)) => {
                let (m, role) = d.map_err(|e| format!("{text:?}: {e}"))?;
                (None, m, role)
            }
            (None, None) => {
                let (o, m) = left.split_once('.').ok_or_else(|| {
                    format!("{text:?}: unknown metric {left:?}; use {METRICS}, optionally after an operation name (predict_one.p99)")
                })?;
                let m = metric(m)
                    .ok_or_else(|| format!("{text:?}: unknown metric {m:?}; use {METRICS}"))?;
                if !operations.contains(&o) {
                    return Err(format!(
                        "{text:?}: the run has no operation {o:?}; it has {}",
                        operations.join(", ")
                    ));
                }
                (Some(o.to_string()), m, None)
            }
        };
        let number = |s: &str| -> Result<f64, String> {
            s.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| format!("{text:?}: {right:?} is not a number ≥ 0"))
        };
        let value = if metric.is_duration() {
            let (n, scale) = if let Some(n) = right.strip_suffix("ms") {
                (n, 1.0)
            } else if let Some(n) = right
                .strip_suffix("us")
                .or_else(|| right.strip_suffix("µs"))
            {
                (n, 0.001)
            } else if let Some(n) = right.strip_suffix('s') {
                (n, 1000.0)
            } else {
                return Err(format!(
                    "{text:?}: give the latency a unit: ms, s or us (e.g. 50ms)"
                ));
            };
            number(n)? * scale
        } else if metric == Metric::ErrorRate {
            match right.strip_suffix('%') {
                Some(n) => number(n)? / 100.0,
                None => {
                    let v = number(right)?;
                    if v > 1.0 {
                        return Err(format!(
                            "{text:?}: an error rate is a fraction (0.005) or a percentage (0.5%)"
                        ));
                    }
                    v
                }
            }
        } else {
            number(right.trim_end_matches("/s").trim_end_matches("ops"))?
        };
        Ok(Threshold {
            text: t.to_string(),
            operation,
            role,
            metric,
            cmp,
            value,
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn downtime_thresholds_name_a_statistic_and_optionally_a_role() {
        let t = Threshold::parse("downtime.write.max < 30s", &[]).unwrap();
        assert_eq!(
            (t.metric, t.role, t.value),
            (
                Metric::DowntimeMax,
                Some(crate::scenario::Role::Write),
                30_000.0
            )
        );
        let t = Threshold::parse("downtime.p99 <= 1500ms", &[]).unwrap();
        assert_eq!((t.metric, t.role), (Metric::DowntimeP99, None));
        let e = Threshold::parse("downtime.replica.max < 1s", &[]).unwrap_err();
        assert!(e.contains("unknown role"), "{e}");
        let e = Threshold::parse("downtime.mean < 1s", &[]).unwrap_err();
        assert!(e.contains("p50, p99 or max"), "{e}");
    }

    use super::*;

    const OPS: [&str; 2] = ["predict_one", "read_customer"];

    #[test]
    fn thresholds_parse_with_units() {
        let t = Threshold::parse("predict_one.p99 < 50ms", &OPS).unwrap();
        assert_eq!(
            (t.operation.as_deref(), t.metric, t.cmp, t.value),
            (Some("predict_one"), Metric::P99, Cmp::Lt, 50.0)
        );
        let t = Threshold::parse("error_rate < 0.5%", &OPS).unwrap();
        assert_eq!(
            (t.operation, t.metric, t.value),
            (None, Metric::ErrorRate, 0.005)
        );
        let t = Threshold::parse("p99.9<=2s", &OPS).unwrap();
        assert_eq!((t.metric, t.cmp, t.value), (Metric::P999, Cmp::Le, 2000.0));
        let t = Threshold::parse("read_customer.ok_per_s >= 900", &OPS).unwrap();
        assert_eq!((t.metric, t.cmp, t.value), (Metric::OkPerS, Cmp::Ge, 900.0));
        assert!(Cmp::Lt.holds(49.9, 50.0) && !Cmp::Lt.holds(50.0, 50.0));
    }

    #[test]
    fn mistakes_say_what_to_write() {
        for (text, words) in [
            ("p99 50ms", "no comparison"),
            ("p98 < 5ms", "unknown metric"),
            ("insert.p99 < 5ms", "no operation \"insert\""),
            ("p99 < 50", "give the latency a unit"),
            ("error_rate < 5", "a fraction"),
            ("p99 < fastms", "not a number"),
            ("p99 <", "nothing after"),
        ] {
            let e = Threshold::parse(text, &OPS).unwrap_err();
            assert!(e.contains(words), "{text}: {e}");
        }
    }
}
