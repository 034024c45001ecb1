//! Open-loop schedules: the intended start of every operation as a function of time,
//! never of the previous operation (docs/design.md, "Open loop without lying").
//!
//! Arrivals follow a [`Profile`] of the rate: operation `k` is due when the integral of
//! the rate reaches `φ + k`. A new profile takes over from the pending arrival, so no
//! operation is skipped or issued twice across a change.

use crate::profile::Profile;
use crate::rng::Rng;
use serde::Serialize;
use std::time::Duration;

/// How open-loop operations are spaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum)]
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

/// Successive intended starts of one worker, for either arrival process, following a
/// rate profile: operation `k` is due when the integral of the rate since the start
/// reaches `φ + k` (uniform), or the next sum of unit exponential gaps (Poisson: time
/// rescaling turns a unit-rate Poisson process into one of the profile's rate).
#[derive(Debug, Clone)]
pub struct Arrivals {
    profile: Profile,
    arrival: Arrival,
    rng: Rng,
    /// Seconds since the start of the last arrival returned (or 0).
    t: f64,
    /// Integral of the rate still to pass before the next arrival.
    need: f64,
}

impl Arrivals {
    /// Arrivals following `profile`; uniform ones start at the fraction `phase` of an
    /// operation, Poisson ones after an exponential gap.
    pub fn new(arrival: Arrival, profile: Profile, phase: f64, mut rng: Rng) -> Self {
        let need = match arrival {
            Arrival::Uniform => phase.clamp(0.0, 1.0),
            Arrival::Poisson => unit_exponential(&mut rng),
        };
        Arrivals {
            profile,
            arrival,
            rng,
            t: 0.0,
            need,
        }
    }

    /// Follow `profile` from the arrival pending now (the one `next` returned last and
    /// not yet released): it keeps its time, the following ones follow the new profile,
    /// so no arrival is skipped or repeated across the change.
    pub fn set_profile(&mut self, profile: Profile) {
        self.profile = profile;
    }

    pub fn profile(&self) -> &Profile {
        &self.profile
    }
}

/// Successive intended starts relative to the run start; ends when the rate stays 0.
impl Iterator for Arrivals {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let t = self.profile.advance(self.t, self.need)?;
        self.t = t;
        self.need = match self.arrival {
            Arrival::Uniform => 1.0,
            Arrival::Poisson => unit_exponential(&mut self.rng),
        };
        Some(Duration::from_secs_f64(t.max(0.0)))
    }
}

fn unit_exponential(rng: &mut Rng) -> f64 {
    // 1 - U lies in (0, 1], so the logarithm is finite.
    -(1.0 - rng.next_f64()).ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn poisson_arrivals_have_the_planned_mean_rate_and_exponential_gaps() {
        let mut a = Arrivals::new(
            Arrival::Poisson,
            Profile::constant(1000.0),
            0.0,
            Rng::new(5),
        );
        let times: Vec<Duration> = (0..20_000).map(|_| a.next().unwrap()).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
        let rate = 20_000.0 / times.last().unwrap().as_secs_f64();
        assert!((rate - 1000.0).abs() < 30.0, "rate {rate}");
        // For exponential gaps, the share of gaps shorter than the mean is 1 - 1/e.
        let short = times.windows(2).filter(|w| w[1] - w[0] < MS).count() as f64 / 19_999.0;
        assert!((short - 0.632).abs() < 0.02, "share of short gaps {short}");
        let mut u = Arrivals::new(
            Arrival::Uniform,
            Profile::constant(1000.0),
            0.005,
            Rng::new(5),
        );
        assert_eq!(u.next(), Some(Duration::from_micros(5)));
        assert_eq!(u.next(), Some(Duration::from_micros(1005)));
    }

    #[test]
    fn a_new_profile_keeps_the_pending_arrival_and_follows_the_new_rate() {
        let mut a = Arrivals::new(Arrival::Uniform, Profile::constant(100.0), 0.0, Rng::new(1));
        assert_eq!(a.next(), Some(Duration::ZERO));
        let pending = a.next().unwrap();
        assert_eq!(pending, 10 * MS);
        a.set_profile(Profile::constant(100.0).splice(0.010, &Profile::constant(1000.0)));
        assert_eq!(
            a.next(),
            Some(11 * MS),
            "the pending one keeps 10 ms; the next is 1 ms later"
        );
        assert_eq!(a.next(), Some(12 * MS));
    }

    #[test]
    fn a_ramp_is_followed_at_every_instant() {
        // 0 → 1000/s over 10 s: ∫ = 50 t², so the 5000 operations of the ramp split
        // 500 / 1500 / … per 2 s, and arrival k is due at √(k/50).
        let ramp = Profile::from_points(vec![(0.0, 0.0), (10.0, 1000.0)]).unwrap();
        let times: Vec<f64> = Arrivals::new(Arrival::Uniform, ramp, 0.0, Rng::new(1))
            .take_while(|t| t.as_secs_f64() < 10.0)
            .map(|t| t.as_secs_f64())
            .collect();
        assert_eq!(times.len(), 5000);
        for k in [1usize, 100, 2500, 4999] {
            assert!(
                (times[k] - (k as f64 / 50.0).sqrt()).abs() < 1e-6,
                "{k}: {}",
                times[k]
            );
        }
        let in_first_2s = times.iter().filter(|t| **t < 2.0).count();
        assert_eq!(in_first_2s, 200);
    }

    #[test]
    fn a_zero_rate_pauses_and_a_later_rate_resumes() {
        let paused = Profile::from_points(vec![
            (0.0, 10.0),
            (1.0, 10.0),
            (1.0, 0.0),
            (3.0, 0.0),
            (3.0, 10.0),
        ])
        .unwrap();
        let times: Vec<Duration> = Arrivals::new(Arrival::Uniform, paused, 0.0, Rng::new(1))
            .take(20)
            .collect();
        assert_eq!(times[9], 900 * MS);
        assert!(
            times
                .iter()
                .all(|t| *t <= Duration::from_secs(1) || *t >= Duration::from_secs(3)),
            "nothing is due while paused: {times:?}"
        );
        assert_eq!(
            times
                .iter()
                .filter(|t| **t >= Duration::from_secs(3))
                .count(),
            9
        );
        assert_eq!(times[19] - times[18], 100 * MS);
    }
}
