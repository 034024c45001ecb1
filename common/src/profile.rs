//! Load shapes: a rate (open loop) or a session count (closed loop) as a function of
//! time since the start, piecewise linear through points. Stages of a plan become a
//! cluster profile; each worker runs its share of it; live changes splice a new tail
//! onto it.
//!
//! Open-loop arrivals follow the profile exactly: operation `k` is due when the
//! integral of the rate reaches `k + φ` (uniform) or the next sum of exponential gaps
//! (Poisson, by time rescaling), so a ramp is a ramp at every instant, not a staircase.

/// Most points a profile may have (stages, changes and their splits).
pub const MAX_POINTS: usize = 10_000;

/// A piecewise-linear function of time. Two points at the same time make a step (the
/// later one holds from that instant); before the first point the first value holds,
/// after the last the last value holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    points: Vec<(f64, f64)>,
}

impl Profile {
    pub fn constant(value: f64) -> Self {
        Profile {
            points: vec![(0.0, value.max(0.0))],
        }
    }

    /// A profile through `points` (seconds since the start, value).
    ///
    /// # Errors
    /// No points, too many, a time going backwards, or a value that is negative or not
    /// finite.
    pub fn from_points(points: Vec<(f64, f64)>) -> Result<Self, String> {
        if points.is_empty() {
            return Err("a load profile needs at least one point".into());
        }
        if points.len() > MAX_POINTS {
            return Err(format!("{} points; at most {MAX_POINTS}", points.len()));
        }
        for (i, (t, v)) in points.iter().enumerate() {
            if !t.is_finite() || *t < 0.0 || !v.is_finite() || *v < 0.0 {
                return Err(format!(
                    "point {i} ({t}, {v}) must have a time and value ≥ 0"
                ));
            }
            if i > 0 && *t < points[i - 1].0 {
                return Err(format!(
                    "point {i} at {t}s comes before the one at {}s",
                    points[i - 1].0
                ));
            }
        }
        Ok(Profile { points })
    }

    pub fn points(&self) -> &[(f64, f64)] {
        &self.points
    }

    /// The value at `t` (right-continuous at steps).
    pub fn value_at(&self, t: f64) -> f64 {
        let p = &self.points;
        let idx = p.partition_point(|(pt, _)| *pt <= t);
        if idx == 0 {
            return p[0].1;
        }
        if idx == p.len() {
            return p[idx - 1].1;
        }
        let (t0, v0) = p[idx - 1];
        let (t1, v1) = p[idx];
        if t1 <= t0 {
            return v1;
        }
        v0 + (v1 - v0) * (t - t0) / (t1 - t0)
    }

    /// Every value multiplied by `f` (a worker's share).
    pub fn scaled(&self, f: f64) -> Profile {
        Profile {
            points: self.points.iter().map(|(t, v)| (*t, v * f)).collect(),
        }
    }

    /// The largest value anywhere.
    pub fn max(&self) -> f64 {
        self.points.iter().map(|p| p.1).fold(0.0, f64::max)
    }

    /// This profile up to `at`, then `tail`'s values from `at` on (a step at `at` when
    /// they differ).
    pub fn splice(&self, at: f64, tail: &Profile) -> Profile {
        let mut points: Vec<(f64, f64)> = self
            .points
            .iter()
            .copied()
            .filter(|(t, _)| *t < at)
            .collect();
        points.push((at, self.value_at(at)));
        points.push((at, tail.value_at(at)));
        points.extend(tail.points.iter().copied().filter(|(t, _)| *t > at));
        // Drop repeated points so chains of splices stay small.
        points.dedup_by(|b, a| a == b);
        Profile { points }
    }

    /// The pieces of the profile as (start, end, value at start, value at end), with a
    /// final open piece to infinity.
    fn pieces(&self) -> impl Iterator<Item = (f64, f64, f64, f64)> + '_ {
        let first = self.points[0];
        std::iter::once((f64::NEG_INFINITY, first.0, first.1, first.1))
            .chain(
                self.points
                    .windows(2)
                    .map(|w| (w[0].0, w[1].0, w[0].1, w[1].1)),
            )
            .chain(std::iter::once({
                let last = self.points[self.points.len() - 1];
                (last.0, f64::INFINITY, last.1, last.1)
            }))
    }

    /// The integral of the value from `t0` to `t1` (operations, for a rate).
    pub fn integral(&self, t0: f64, t1: f64) -> f64 {
        if t1 <= t0 {
            return 0.0;
        }
        let mut sum = 0.0;
        for (a, b, va, vb) in self.pieces() {
            let (lo, hi) = (a.max(t0), b.min(t1));
            if hi <= lo {
                continue;
            }
            let at = |t: f64| {
                if b.is_finite() && a.is_finite() && b > a {
                    va + (vb - va) * (t - a) / (b - a)
                } else {
                    va
                }
            };
            sum += (at(lo) + at(hi)) / 2.0 * (hi - lo);
        }
        sum
    }

    /// The time after `t0` at which the integral from `t0` reaches `amount`; `None` when
    /// it never does (the value drops to 0 for good).
    pub fn advance(&self, t0: f64, amount: f64) -> Option<f64> {
        let mut need = amount.max(0.0);
        for (a, b, va, vb) in self.pieces() {
            if b <= t0 {
                continue;
            }
            let lo = a.max(t0);
            let slope = if a.is_finite() && b.is_finite() && b > a {
                (vb - va) / (b - a)
            } else {
                0.0
            };
            let v_lo = va + slope * (lo - if a.is_finite() { a } else { lo });
            if !b.is_finite() {
                return (v_lo > 0.0).then(|| lo + need / v_lo);
            }
            let v_hi = vb;
            let area = (v_lo + v_hi) / 2.0 * (b - lo);
            if area >= need {
                // v_lo·τ + slope·τ²/2 = need
                let tau = if slope.abs() < 1e-12 {
                    if v_lo <= 0.0 {
                        continue;
                    }
                    need / v_lo
                } else {
                    let disc = (v_lo * v_lo + 2.0 * slope * need).max(0.0);
                    (disc.sqrt() - v_lo) / slope
                };
                return Some(lo + tau.clamp(0.0, b - lo));
            }
            need -= area;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp() -> Profile {
        // 100/s for 10 s, ramp to 300/s over 10 s, hold, step to 50 at 30 s.
        Profile::from_points(vec![
            (0.0, 100.0),
            (10.0, 100.0),
            (20.0, 300.0),
            (30.0, 300.0),
            (30.0, 50.0),
        ])
        .unwrap()
    }

    #[test]
    fn values_interpolate_and_steps_take_the_later_value() {
        let p = ramp();
        assert_eq!(p.value_at(5.0), 100.0);
        assert_eq!(p.value_at(15.0), 200.0);
        assert_eq!(p.value_at(29.999), 300.0);
        assert_eq!(p.value_at(30.0), 50.0);
        assert_eq!(p.value_at(99.0), 50.0);
    }

    #[test]
    fn the_integral_counts_operations_of_every_piece() {
        let p = ramp();
        assert!((p.integral(0.0, 10.0) - 1000.0).abs() < 1e-9);
        assert!((p.integral(10.0, 20.0) - 2000.0).abs() < 1e-9);
        assert!((p.integral(0.0, 40.0) - (1000.0 + 2000.0 + 3000.0 + 500.0)).abs() < 1e-6);
    }

    #[test]
    fn advance_inverts_the_integral_even_on_a_ramp() {
        let p = ramp();
        for (t0, amount) in [
            (0.0, 1.0),
            (9.5, 120.0),
            (12.0, 777.0),
            (25.0, 2000.0),
            (0.0, 6000.0),
        ] {
            let t1 = p.advance(t0, amount).unwrap();
            assert!(
                (p.integral(t0, t1) - amount).abs() < 1e-6,
                "{t0} {amount} -> {t1}"
            );
        }
        let stop = Profile::from_points(vec![(0.0, 10.0), (1.0, 10.0), (1.0, 0.0)]).unwrap();
        assert!((stop.advance(0.0, 5.0).unwrap() - 0.5).abs() < 1e-12);
        assert_eq!(
            stop.advance(0.0, 11.0),
            None,
            "the rate drops to 0 for good"
        );
        let from_zero = Profile::from_points(vec![(0.0, 0.0), (10.0, 100.0)]).unwrap();
        // ∫0^t 10 s ds = 5 t² = 20 → t = 2
        assert!((from_zero.advance(0.0, 20.0).unwrap() - 2.0).abs() < 1e-9);
    }

    #[test]
    fn a_splice_keeps_the_past_and_steps_to_the_new_tail() {
        let p = ramp().splice(15.0, &Profile::constant(500.0));
        assert_eq!(p.value_at(14.0), 180.0);
        assert_eq!(p.value_at(15.0), 500.0);
        assert_eq!(p.value_at(40.0), 500.0);
        assert!((p.integral(0.0, 15.0) - ramp().integral(0.0, 15.0)).abs() < 1e-9);
    }

    #[test]
    fn bad_points_are_refused() {
        assert!(Profile::from_points(vec![]).is_err());
        assert!(Profile::from_points(vec![(1.0, 1.0), (0.5, 1.0)]).is_err());
        assert!(Profile::from_points(vec![(0.0, -1.0)]).is_err());
        assert!(Profile::from_points(vec![(0.0, f64::NAN)]).is_err());
    }
}
