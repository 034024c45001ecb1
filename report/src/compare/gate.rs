//! `--fail-on "p99 > +10%"`: a limit on how much a metric may change from the base run,
//! for every operation or one (`read_customer:p99 > +10%`). A gate fails only when the
//! change is beyond its limit *and* beyond the noise the two runs' interval series
//! show, so a CI pipeline does not fail on what rerunning the same test would give.

use super::{Change, Report, METRICS};
use serde::Serialize;
use std::str::FromStr;

/// Which way a change must go to fail the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Direction {
    /// `>`: fails when the metric rises more than the limit.
    Above,
    /// `<`: fails when it falls more than the limit.
    Below,
}

/// One `--fail-on`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Gate {
    /// As written.
    pub text: String,
    /// `None`: every operation both runs have.
    pub operation: Option<String>,
    pub metric: &'static str,
    /// The metric's table label.
    #[serde(skip)]
    pub label: &'static str,
    pub direction: Direction,
    /// The signed limit: `+10` for `> +10%`, `-5` for `< -5%`.
    pub limit: f64,
    /// The limit is a percentage of the base (else in the metric's own units).
    pub percent: bool,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum GateError {
    #[error("--fail-on {text:?}: {reason}; write METRIC > +N% or METRIC < -N%, optionally OPERATION:METRIC, e.g. \"p99 > +10%\" or \"read_customer:ok_per_s < -5%\"; metrics: {metrics}")]
    Syntax {
        text: String,
        reason: String,
        metrics: String,
    },
    #[error(
        "--fail-on {text:?}: operation {operation} is not in both reports (they have: {have}); was it renamed? Name an operation both runs have"
    )]
    NoSuchOperation {
        text: String,
        operation: String,
        have: String,
    },
    #[error("--fail-on {text:?}: nothing to judge: the two reports have no operation in common (base: {base}; new: {new}); a gate that judges nothing must not pass")]
    NothingToJudge {
        text: String,
        base: String,
        new: String,
    },
}

fn metric_names() -> String {
    METRICS.iter().map(|m| m.key).collect::<Vec<_>>().join(", ")
}

impl FromStr for Gate {
    type Err = GateError;

    fn from_str(text: &str) -> Result<Gate, GateError> {
        let bad = |reason: &str| GateError::Syntax {
            text: text.to_string(),
            reason: reason.to_string(),
            metrics: metric_names(),
        };
        let (lhs, direction, rhs) = match (text.find('>'), text.find('<')) {
            (Some(i), None) => (&text[..i], Direction::Above, &text[i + 1..]),
            (None, Some(i)) => (&text[..i], Direction::Below, &text[i + 1..]),
            _ => return Err(bad("needs exactly one of > or <")),
        };
        let lhs = lhs.trim();
        let (operation, key) = match lhs.rsplit_once(':') {
            Some((op, m)) if !op.trim().is_empty() => (Some(op.trim().to_string()), m.trim()),
            Some(_) => return Err(bad("an empty operation before ':'")),
            None => (None, lhs),
        };
        let key = if key == "p999" { "p99.9" } else { key };
        let metric = METRICS
            .iter()
            .find(|m| m.key == key)
            .ok_or_else(|| bad(&format!("unknown metric {key:?}")))?;
        let rhs = rhs.trim().replace(' ', "");
        let (number, percent) = match rhs.strip_suffix('%') {
            Some(n) => (n.to_string(), true),
            None => (rhs.clone(), false),
        };
        let limit: f64 = number
            .parse()
            .map_err(|_| bad(&format!("{rhs:?} is not a number")))?;
        if !limit.is_finite() {
            return Err(bad("the limit must be finite"));
        }
        match direction {
            Direction::Above if limit < 0.0 => {
                return Err(bad("\"> -N\" would fail on an improvement; use > +N"))
            }
            Direction::Below if limit > 0.0 => {
                return Err(bad("\"< +N\" would fail on an improvement; use < -N"))
            }
            _ => {}
        }
        Ok(Gate {
            text: text.to_string(),
            operation,
            metric: metric.key,
            label: metric.label,
            direction,
            limit,
            percent,
        })
    }
}

/// A gate's verdict on one operation.
#[derive(Debug, Clone, Serialize)]
pub struct GateResult {
    pub gate: String,
    pub operation: String,
    pub metric: &'static str,
    pub base: f64,
    pub new: f64,
    /// The change in the gate's units (percent of the base, or the metric's units).
    pub change: f64,
    /// The run-to-run noise in the same units.
    pub noise: f64,
    pub failed: bool,
    /// Why it passed or failed, one sentence.
    pub verdict: String,
}

impl Gate {
    /// Judge the comparison's `changes` (from [`super::compare`]).
    ///
    /// # Errors
    /// The gate names an operation that is not in both reports.
    pub fn judge(
        &self,
        changes: &[Change],
        base: &Report,
        new: &Report,
    ) -> Result<Vec<GateResult>, GateError> {
        if let Some(op) = &self.operation {
            if !changes.iter().any(|c| &c.operation == op) {
                let have: Vec<String> = base
                    .operations
                    .keys()
                    .filter(|k| new.operations.contains_key(*k))
                    .map(|k| k.to_string())
                    .collect();
                return Err(GateError::NoSuchOperation {
                    text: self.text.clone(),
                    operation: op.clone(),
                    have: have.join(", "),
                });
            }
        }
        let results: Vec<GateResult> = changes
            .iter()
            .filter(|c| c.metric == self.label)
            .filter(|c| self.operation.as_ref().is_none_or(|op| *op == c.operation))
            .map(|c| self.judge_one(c))
            .collect();
        if results.is_empty() {
            let names = |r: &Report| {
                let v: Vec<String> = r.operations.keys().map(|k| k.to_string()).collect();
                if v.is_empty() {
                    "none".to_string()
                } else {
                    v.join(", ")
                }
            };
            return Err(GateError::NothingToJudge {
                text: self.text.clone(),
                base: names(base),
                new: names(new),
            });
        }
        Ok(results)
    }

    fn judge_one(&self, c: &Change) -> GateResult {
        if let Some(run) = c.absent_in {
            return GateResult {
                gate: self.text.clone(),
                operation: c.operation.clone(),
                metric: self.metric,
                base: c.base,
                new: c.new,
                change: f64::NAN,
                noise: f64::NAN,
                failed: true,
                verdict: format!(
                    "FAILED: {} {} cannot be judged: no {} operation succeeded in the {run} run, so it has no latency to compare",
                    c.operation, self.metric, c.operation
                ),
            };
        }
        let (change, noise) = if self.percent {
            if c.base == 0.0 {
                // From nothing: any rise is unbounded, no change is none; the noise
                // bound of a zero base is zero.
                let pct = if c.delta == 0.0 {
                    0.0
                } else {
                    f64::INFINITY.copysign(c.delta)
                };
                (pct, 0.0)
            } else {
                (
                    c.delta / c.base.abs() * 100.0,
                    c.noise / c.base.abs() * 100.0,
                )
            }
        } else {
            (c.delta, c.noise)
        };
        let beyond_limit = match self.direction {
            Direction::Above => change > self.limit,
            Direction::Below => change < self.limit,
        };
        let unit = if self.percent { "%" } else { "" };
        let failed = beyond_limit && c.significant;
        let verdict = match (beyond_limit, c.significant) {
            (true, true) => format!(
                "FAILED: {} {} changed {change:+.1}{unit} (limit {:+}{unit}), beyond the run-to-run noise of ±{noise:.1}{unit}",
                c.operation, self.metric, self.limit
            ),
            (true, false) => format!(
                "passed: {} {} changed {change:+.1}{unit}, past the limit but within the run-to-run noise of ±{noise:.1}{unit}",
                c.operation, self.metric
            ),
            (false, _) => format!(
                "passed: {} {} changed {change:+.1}{unit} (limit {:+}{unit})",
                c.operation, self.metric, self.limit
            ),
        };
        GateResult {
            gate: self.text.clone(),
            operation: c.operation.clone(),
            metric: self.metric,
            base: c.base,
            new: c.new,
            change,
            noise,
            failed,
            verdict,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(base: f64, new: f64, noise: f64) -> Change {
        Change {
            operation: "point_select".into(),
            metric: "p99 ms",
            base,
            new,
            delta: new - base,
            noise,
            significant: (new - base).abs() > noise,
            absent_in: None,
        }
    }

    #[test]
    fn gates_parse_with_scope_sign_and_unit() {
        let g: Gate = "p99 > +10%".parse().unwrap();
        assert_eq!(
            (g.operation.as_deref(), g.metric, g.limit, g.percent),
            (None, "p99", 10.0, true)
        );
        let g: Gate = "read_customer:ok_per_s < -5%".parse().unwrap();
        assert_eq!(g.operation.as_deref(), Some("read_customer"));
        assert_eq!((g.direction, g.limit), (Direction::Below, -5.0));
        let g: Gate = "p999 > 2".parse().unwrap();
        assert_eq!((g.metric, g.percent), ("p99.9", false));
        for bad in [
            "p99 >> 10%",
            "p98 > +10%",
            "p99 > ten%",
            "p99 > -10%",
            "ok_per_s < +5%",
            "p99 10%",
            ":p99 > 1%",
        ] {
            let e = bad.parse::<Gate>().unwrap_err().to_string();
            assert!(e.contains(bad) && e.contains("e.g."), "{e}");
        }
    }

    #[test]
    fn a_gate_fails_only_beyond_both_its_limit_and_the_noise() {
        let g: Gate = "p99 > +10%".parse().unwrap();
        // +50 % with noise ±5 %: fails.
        assert!(g.judge_one(&change(10.0, 15.0, 0.5)).failed);
        // +50 % with noise ±80 %: past the limit, but noise.
        let r = g.judge_one(&change(10.0, 15.0, 8.0));
        assert!(
            !r.failed && r.verdict.contains("within the run-to-run noise"),
            "{r:?}"
        );
        // +5 %: within the limit, however quiet the runs.
        assert!(!g.judge_one(&change(10.0, 10.5, 0.01)).failed);
        // An improvement never fails a "rises" gate.
        assert!(!g.judge_one(&change(10.0, 5.0, 0.01)).failed);
        let g: Gate = "ok_per_s < -5%".parse().unwrap();
        assert!(g.judge_one(&change(100.0, 80.0, 1.0)).failed);
        assert!(!g.judge_one(&change(100.0, 120.0, 1.0)).failed);
    }

    #[test]
    fn a_latency_that_does_not_exist_in_a_run_fails_the_gate_instead_of_improving() {
        let g: Gate = "p99 > +10%".parse().unwrap();
        let mut c = change(10.0, 0.0, 0.5);
        c.absent_in = Some("new");
        let r = g.judge_one(&c);
        assert!(
            r.failed
                && r.verdict
                    .contains("no point_select operation succeeded in the new run"),
            "{r:?}"
        );
    }

    #[test]
    fn a_rise_from_zero_fails_a_percent_gate() {
        let g: Gate = "error_pct > +50%".parse().unwrap();
        let r = g.judge_one(&change(0.0, 4.0, 0.0));
        assert!(r.failed, "{r:?}");
    }
}
