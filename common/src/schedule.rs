//! Open-loop schedules: the intended start of every operation as a function of time,
//! never of the previous operation (DESIGN-NOTES §2).
//!
//! Operation `i` of a segment starting at op `first` and time `t0` with rate `r` is due
//! at `t0 + (i - first) / r`. A rate change at time `T` starts a new segment at the first
//! operation the old segment would have issued at or after `T`, so no operation is
//! skipped or issued twice across the change.

use crate::rng::Rng;
use serde::Serialize;
use std::time::Duration;

/// How open-loop operations are spaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Arrival {
    /// Exactly `1 / rate` apart: the steadiest load, and the one that wakes an idle
    /// client for every operation.
    Uniform,
    /// Exponential gaps with mean `1 / rate` (a Poisson process), as sysbench `--rate`
    /// and pgbench `-R` generate. Independent Poisson workers add up to a Poisson
    /// cluster at the summed rate.
    Poisson,
}

impl Arrival {
    pub fn name(self) -> &'static str {
        match self {
            Arrival::Uniform => "uniform",
            Arrival::Poisson => "poisson",
        }
    }
}

/// Successive intended starts of one worker, for either arrival process.
#[derive(Debug, Clone)]
pub struct Arrivals {
    schedule: Schedule,
    arrival: Arrival,
    rng: Rng,
    next_index: u64,
    /// Poisson: offset of the next arrival in nanoseconds.
    next_nanos: f64,
}

impl Arrivals {
    /// Arrivals at `rate` per second starting at `phase` (uniform) or at the start with
    /// exponential gaps (Poisson, from `rng`).
    pub fn new(arrival: Arrival, rate: f64, phase: Duration, mut rng: Rng) -> Self {
        let first = match arrival {
            Arrival::Uniform => phase.as_nanos() as f64,
            Arrival::Poisson => exponential_gap_nanos(&mut rng, rate),
        };
        Arrivals {
            schedule: Schedule::constant(rate, phase),
            arrival,
            rng,
            next_index: 0,
            next_nanos: first,
        }
    }
}

impl Arrivals {
    /// Continue at `rate` from the arrival pending at `at` (the one `next` returned last
    /// and not yet released): it keeps its time, the following ones follow the new rate,
    /// so no arrival is skipped or repeated across the change.
    pub fn restart(&mut self, at: Duration, rate: f64) {
        self.schedule = Schedule::constant(rate, at);
        self.next_index = 1;
        self.next_nanos = at.as_nanos() as f64
            + exponential_gap_nanos(&mut self.rng, rate.max(f64::MIN_POSITIVE));
    }
}

/// Successive intended starts relative to the run start; ends when the rate is 0.
impl Iterator for Arrivals {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        match self.arrival {
            Arrival::Uniform => {
                let t = self.schedule.intended(self.next_index)?;
                self.next_index += 1;
                Some(t)
            }
            Arrival::Poisson => {
                let rate = self.schedule.segments.last().map_or(0.0, |s| s.rate);
                if rate <= 0.0 {
                    return None;
                }
                let t = Duration::from_nanos(self.next_nanos as u64);
                self.next_nanos += exponential_gap_nanos(&mut self.rng, rate);
                Some(t)
            }
        }
    }
}

fn exponential_gap_nanos(rng: &mut Rng, rate: f64) -> f64 {
    // 1 - U lies in (0, 1], so the logarithm is finite.
    -(1.0 - rng.next_f64()).ln() / rate * 1e9
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Segment {
    first_op: u64,
    start_nanos: f64,
    /// Operations per second; 0 pauses the schedule.
    rate: f64,
}

/// A piecewise-constant-rate schedule relative to the run start.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    segments: Vec<Segment>,
}

impl Schedule {
    /// A constant rate with the first operation at `phase` after the start.
    pub fn constant(rate: f64, phase: Duration) -> Self {
        Schedule {
            segments: vec![Segment {
                first_op: 0,
                start_nanos: phase.as_nanos() as f64,
                rate: rate.max(0.0),
            }],
        }
    }

    /// Intended start of operation `i`, relative to the run start; `None` while paused.
    pub fn intended(&self, i: u64) -> Option<Duration> {
        let seg = self.segment_for(i);
        if seg.rate <= 0.0 {
            return None;
        }
        let nanos = seg.start_nanos + (i - seg.first_op) as f64 * 1e9 / seg.rate;
        Some(Duration::from_nanos(nanos as u64))
    }

    /// How many operations are due strictly before `t`.
    pub fn due_before(&self, t: Duration) -> u64 {
        let t = t.as_nanos() as f64;
        let mut count = 0;
        for (k, seg) in self.segments.iter().enumerate() {
            let end_op = self.segments.get(k + 1).map(|s| s.first_op);
            if t <= seg.start_nanos {
                break;
            }
            let n = if seg.rate <= 0.0 {
                0
            } else {
                ((t - seg.start_nanos) * seg.rate / 1e9).ceil() as u64
            };
            count = seg.first_op + end_op.map_or(n, |e| n.min(e - seg.first_op));
        }
        count
    }

    /// Change the rate from time `at` on (relative to the run start).
    pub fn change_rate(&mut self, at: Duration, rate: f64) {
        let first_op = self.due_before(at);
        // Segments that would begin after `at` are superseded.
        self.segments
            .retain(|s| s.first_op < first_op || s.start_nanos < at.as_nanos() as f64);
        self.segments.push(Segment {
            first_op,
            start_nanos: at.as_nanos() as f64,
            rate: rate.max(0.0),
        });
    }

    fn segment_for(&self, i: u64) -> &Segment {
        let idx = self.segments.partition_point(|s| s.first_op <= i);
        &self.segments[idx.saturating_sub(1)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn constant_rate_spaces_operations_evenly_from_the_phase() {
        let s = Schedule::constant(1000.0, Duration::from_micros(250));
        assert_eq!(s.intended(0), Some(Duration::from_micros(250)));
        assert_eq!(s.intended(1), Some(Duration::from_micros(1250)));
        assert_eq!(s.intended(1000), Some(Duration::from_micros(1_000_250)));
        assert_eq!(s.due_before(Duration::from_secs(2)), 2000);
        assert_eq!(s.due_before(Duration::ZERO), 0);
    }

    #[test]
    fn a_rate_change_rebases_without_skipping_or_repeating() {
        let mut s = Schedule::constant(100.0, Duration::ZERO);
        s.change_rate(Duration::from_secs(1), 1000.0);
        // 100 ops in the first second, then 1000/s from exactly t = 1 s.
        assert_eq!(s.intended(99), Some(990 * MS));
        assert_eq!(s.intended(100), Some(Duration::from_secs(1)));
        assert_eq!(s.intended(101), Some(Duration::from_secs(1) + MS));
        assert_eq!(s.due_before(Duration::from_secs(2)), 1100);
        // Intended times stay strictly increasing across the change.
        let times: Vec<_> = (0..300).filter_map(|i| s.intended(i)).collect();
        assert!(times.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn poisson_arrivals_have_the_planned_mean_rate_and_exponential_gaps() {
        let mut a = Arrivals::new(Arrival::Poisson, 1000.0, Duration::ZERO, Rng::new(5));
        let times: Vec<Duration> = (0..20_000).map(|_| a.next().unwrap()).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
        let rate = 20_000.0 / times.last().unwrap().as_secs_f64();
        assert!((rate - 1000.0).abs() < 30.0, "rate {rate}");
        // For exponential gaps, the share of gaps shorter than the mean is 1 - 1/e.
        let short = times.windows(2).filter(|w| w[1] - w[0] < MS).count() as f64 / 19_999.0;
        assert!((short - 0.632).abs() < 0.02, "share of short gaps {short}");
        let mut u = Arrivals::new(
            Arrival::Uniform,
            1000.0,
            Duration::from_micros(5),
            Rng::new(5),
        );
        assert_eq!(u.next(), Some(Duration::from_micros(5)));
        assert_eq!(u.next(), Some(Duration::from_micros(1005)));
    }

    #[test]
    fn a_restart_keeps_the_pending_arrival_and_follows_the_new_rate() {
        let mut a = Arrivals::new(Arrival::Uniform, 100.0, Duration::ZERO, Rng::new(1));
        assert_eq!(a.next(), Some(Duration::ZERO));
        let pending = a.next().unwrap();
        assert_eq!(pending, 10 * MS);
        a.restart(pending, 1000.0);
        assert_eq!(
            a.next(),
            Some(11 * MS),
            "the pending one keeps 10 ms; the next is 1 ms later"
        );
        assert_eq!(a.next(), Some(12 * MS));
    }

    #[test]
    fn a_zero_rate_pauses_and_a_later_change_resumes() {
        let mut s = Schedule::constant(10.0, Duration::ZERO);
        s.change_rate(Duration::from_secs(1), 0.0);
        assert_eq!(s.intended(9), Some(900 * MS));
        assert_eq!(s.intended(10), None);
        s.change_rate(Duration::from_secs(3), 10.0);
        assert_eq!(s.intended(10), Some(Duration::from_secs(3)));
        assert_eq!(s.due_before(Duration::from_secs(4)), 20);
    }
}
