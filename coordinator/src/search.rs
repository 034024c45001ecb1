//! Capacity search: step the cluster rate up by a factor while the SLOs hold for a
//! whole stage, then bisect between the last rate that held and the first that did
//! not, until they are within the asked precision. One fleet, one run: the rate changes
//! live at stage boundaries, so no time is lost restarting workers or reopening
//! sessions.
//!
//! Each stage's first interval is left out of its verdict: it carries the backlog (or
//! the slack) of the previous rate. After a stage that broke the SLOs, a stage with no
//! load lets the database and the workers' queues drain, so the backlog of a rate that
//! was too high does not count against the next, lower one.

use fleetload_common::threshold::Threshold;
pub use fleetload_report::capacity::{CapacityJson, CurvePoint};
use fleetload_report::merge::Merge;
use fleetload_report::thresholds::{measure, stats_over};
use fleetload_report::OpSummary;
use std::time::Duration;

/// What to search for.
#[derive(Debug, Clone)]
pub struct SearchSpec {
    pub slos: Vec<Threshold>,
    pub start: f64,
    /// Multiply the rate by this after a stage that met the SLOs (> 1).
    pub factor: f64,
    /// Stage length, whole intervals.
    pub stage: Duration,
    /// Stop once the bracket is this tight, relative to the rate that held.
    pub precision: f64,
    pub max_rate: Option<f64>,
}

/// The search as it goes.
#[derive(Debug)]
pub struct Search {
    spec: SearchSpec,
    stage_intervals: u64,
    rate: f64,
    stage_index: u64,
    lo: Option<f64>,
    hi: Option<f64>,
    /// In a drain stage: the rate to try after it.
    draining: Option<f64>,
    pub curve: Vec<CurvePoint>,
    pub done: bool,
}

/// What to do after a stage.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    Continue,
    Rate(f64),
    Finish(String),
}

impl Search {
    pub fn new(spec: SearchSpec, interval: Duration) -> Self {
        let stage_intervals = (spec.stage.as_nanos() / interval.as_nanos().max(1)).max(2) as u64;
        Search {
            rate: spec.start,
            spec,
            stage_intervals,
            stage_index: 0,
            lo: None,
            hi: None,
            draining: None,
            curve: Vec::new(),
            done: false,
        }
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Interval `k` closed: at a stage's last interval, judge the stage and say what
    /// comes next.
    pub fn interval_closed(&mut self, merge: &Merge, k: u64, interval: Duration) -> Next {
        if self.done || !(k + 1).is_multiple_of(self.stage_intervals) {
            return Next::Continue;
        }
        if let Some(next) = self.draining.take() {
            self.rate = next;
            return Next::Rate(next);
        }
        let first = k + 1 - self.stage_intervals;
        let range = (first + 1)..=k;
        let seconds = (self.stage_intervals - 1) as f64 * interval.as_secs_f64();
        let all = stats_over(merge, &range, None);
        let summary = OpSummary::of(&all, seconds);
        let breaches: Vec<String> = self
            .spec
            .slos
            .iter()
            .filter_map(|t| {
                let stats = stats_over(merge, &range, t.operation.as_deref());
                let m = measure(t, &stats, seconds);
                (!(t.cmp.holds(m, t.value) && (stats.ok > 0 || !t.metric.is_latency())))
                    .then(|| format!("{} (measured {:.3})", t.text, m))
            })
            .collect();
        let passed = breaches.is_empty();
        self.curve.push(CurvePoint {
            rate: self.rate,
            start_s: first as f64 * interval.as_secs_f64(),
            end_s: (k + 1) as f64 * interval.as_secs_f64(),
            achieved_ok_per_s: summary.ok_per_s,
            p50_ms: summary.response_time.p50_ms,
            p99_ms: summary.response_time.p99_ms,
            error_rate: summary.error_rate,
            passed,
            breaches,
        });
        self.stage_index += 1;
        if passed {
            self.lo = Some(self.lo.map_or(self.rate, |l| l.max(self.rate)));
        } else {
            self.hi = Some(self.hi.map_or(self.rate, |h| h.min(self.rate)));
        }
        let next = match (self.lo, self.hi) {
            (Some(lo), Some(hi)) => {
                if (hi - lo) / lo <= self.spec.precision {
                    return self.finish(format!(
                        "capacity search converged: {lo:.1} ops/s holds, {hi:.1} does not"
                    ));
                }
                (lo + hi) / 2.0
            }
            (Some(lo), None) => {
                let up = lo * self.spec.factor;
                match self.spec.max_rate {
                    Some(max) if lo >= max => {
                        return self.finish(format!(
                            "capacity search reached --max-rate {max} with every SLO met"
                        ));
                    }
                    Some(max) => up.min(max),
                    None => up,
                }
            }
            (None, Some(hi)) => {
                let down = hi / self.spec.factor;
                if down < 1.0 {
                    return self.finish("capacity search: even 1 op/s breaks the SLOs".into());
                }
                down
            }
            (None, None) => self.rate,
        };
        if passed {
            self.rate = next;
            Next::Rate(next)
        } else {
            // Drain the backlog before the next, lower rate.
            self.draining = Some(next);
            self.rate = 0.0;
            Next::Rate(0.0)
        }
    }

    fn finish(&mut self, why: String) -> Next {
        self.done = true;
        Next::Finish(why)
    }

    pub fn report(&self) -> CapacityJson {
        CapacityJson {
            slos: self.spec.slos.iter().map(|t| t.text.clone()).collect(),
            answer: self.lo,
            breaking: self.hi,
            precision: self.spec.precision,
            converged: self.done,
            curve: self.curve.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetload_common::histogram::record;
    use fleetload_common::scenario::OpName;
    use fleetload_common::stats::OpStats;
    use fleetload_common::wire::Snapshot;

    /// A fake system whose p99 is 5 ms below `capacity` and 500 ms above: the search
    /// must end with the bracket around it.
    #[test]
    fn the_search_steps_up_then_bisects_to_the_breaking_point() {
        let capacity = 437.0;
        let op = OpName::new("q").unwrap();
        let mut merge = Merge::new(vec![op.clone()], 0);
        let spec = SearchSpec {
            slos: vec![Threshold::parse("p99 < 50ms", &["q"]).unwrap()],
            start: 100.0,
            factor: 2.0,
            stage: Duration::from_secs(2),
            precision: 0.05,
            max_rate: None,
        };
        let mut s = Search::new(spec, Duration::from_secs(1));
        let mut finished = None;
        for k in 0..200u64 {
            let mut stats = OpStats {
                ok: 10,
                ..OpStats::default()
            };
            let latency = if s.rate() <= capacity { 5_000 } else { 500_000 };
            for _ in 0..10 {
                record(&mut stats.response, Duration::from_micros(latency));
            }
            merge
                .add(&Snapshot {
                    run_id: "r".into(),
                    worker_index: 0,
                    sequence: k,
                    interval_index: k,
                    operations: vec![(op.clone(), stats)],
                    events: Vec::new(),
                })
                .unwrap();
            if let Next::Finish(why) = s.interval_closed(&merge, k, Duration::from_secs(1)) {
                finished = Some(why);
                break;
            }
        }
        assert!(finished.is_some());
        let r = s.report();
        let answer = r.answer.unwrap();
        assert!(answer <= capacity && answer >= capacity * 0.95, "{r:?}");
        assert!(r.breaking.unwrap() > capacity);
        // Up 100, 200, 400, 800 (breaks), then bisection (with a drain stage after each
        // breach, which is not part of the curve).
        let rates: Vec<f64> = r.curve.iter().map(|p| p.rate).collect();
        assert_eq!(&rates[..5], &[100.0, 200.0, 400.0, 800.0, 600.0]);
    }
}
