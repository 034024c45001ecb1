//! `fleetload report compare base.json new.json`: per operation, how throughput and
//! latency changed, and whether the change is larger than the noise the two runs
//! themselves show; with `--fail-on` gates ([`Gate`]), a CI step that fails on a
//! regression beyond both its limit and that noise.
//!
//! The noise is estimated from both runs' per-interval series (measured intervals
//! only): each side's spread is its median absolute deviation scaled to a standard
//! deviation (robust: a few wild intervals of a degraded run do not widen it), and the
//! noise of the difference between the runs is 2·√(s₁²/n₁ + s₂²/n₂) (Welch's standard
//! error, about 95 %). That estimate is then capped by a bound the user sets
//! ([`Noise`]: `--noise auto`, the default, caps it at 25 % of the base value; `PCT`
//! at that percentage; `off` judges by the limits alone), because the less stable a
//! regressed run is, the wider its own spread: uncapped, the worst regressions
//! would pass as "noise".

mod gate;
mod render;

pub use gate::{Gate, GateError, GateResult};
pub use render::{render, render_with, Format};

use super::{OpSummary, Report};

/// One metric of one operation in both runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub operation: String,
    /// The metric's table label.
    pub metric: &'static str,
    pub base: f64,
    pub new: f64,
    /// new − base.
    pub delta: f64,
    /// The difference two runs of the same test would show (same units).
    pub noise: f64,
    pub significant: bool,
    /// The run in which this metric does not exist: a latency of an operation that
    /// never succeeded there. Such a figure is 0, which is no improvement.
    pub absent_in: Option<&'static str>,
}

/// How much of a change `compare` and its gates put down to run-to-run noise.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Noise {
    /// None: a gate fails as soon as its limit is passed.
    Off,
    /// Estimated from both runs' interval series, at most [`AUTO_NOISE_BOUND_PCT`] %
    /// of the base value.
    Auto,
    /// Estimated, at most this percentage of the base value.
    AtMostPct(f64),
}

/// The cap `--noise auto` puts on the estimated noise, percent of the base value.
pub const AUTO_NOISE_BOUND_PCT: f64 = 25.0;

impl Noise {
    /// The largest noise allowed for a base value, in its units.
    fn bound(self, base: f64) -> f64 {
        match self {
            Noise::Off => 0.0,
            Noise::Auto => AUTO_NOISE_BOUND_PCT / 100.0 * base.abs(),
            Noise::AtMostPct(p) => p / 100.0 * base.abs(),
        }
    }
}

impl std::fmt::Display for Noise {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Noise::Off => f.write_str("off"),
            Noise::Auto => write!(f, "auto (at most {AUTO_NOISE_BOUND_PCT}% of the base)"),
            Noise::AtMostPct(p) => write!(f, "at most {p}% of the base"),
        }
    }
}

impl std::str::FromStr for Noise {
    type Err = String;

    fn from_str(s: &str) -> Result<Noise, String> {
        match s.trim() {
            "off" => Ok(Noise::Off),
            "auto" => Ok(Noise::Auto),
            other => other
                .strip_suffix('%')
                .unwrap_or(other)
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|p| p.is_finite() && *p >= 0.0)
                .map(Noise::AtMostPct)
                .ok_or_else(|| {
                    format!("--noise {other:?}: write off, auto, or a percentage such as 10%")
                }),
        }
    }
}

/// A robust spread of `xs`: the median absolute deviation scaled to a normal standard
/// deviation (×1.4826), and the count.
fn robust_sd(xs: &[f64]) -> (f64, usize) {
    fn median(v: &mut [f64]) -> f64 {
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    }
    let n = xs.len();
    if n < 2 {
        return (0.0, n);
    }
    let mut v = xs.to_vec();
    let m = median(&mut v);
    let mut dev: Vec<f64> = xs.iter().map(|x| (x - m).abs()).collect();
    (1.4826 * median(&mut dev), n)
}

/// Whether `new` differs from `base` by more than the interval series' noise, capped
/// as `policy` says.
pub fn change(
    operation: &str,
    metric: &'static str,
    (base, new): (f64, f64),
    (base_series, new_series): (&[f64], &[f64]),
    policy: Noise,
) -> Change {
    let (sa, na) = robust_sd(base_series);
    let (sb, nb) = robust_sd(new_series);
    // With fewer than two intervals on a side there is no spread to judge by: the
    // bound alone decides.
    let se = if na >= 2 && nb >= 2 {
        (sa * sa / na as f64 + sb * sb / nb as f64).sqrt()
    } else {
        f64::INFINITY
    };
    let noise = (2.0 * se).min(policy.bound(base));
    let delta = new - base;
    Change {
        operation: operation.to_string(),
        metric,
        base,
        new,
        delta,
        noise,
        significant: delta.abs() > noise,
        absent_in: None,
    }
}

fn series(r: &Report, op: &str, f: fn(&OpSummary) -> f64) -> Vec<f64> {
    r.intervals
        .iter()
        .filter(|i| !i.warmup)
        .filter_map(|i| {
            i.operations
                .iter()
                .find(|(k, _)| k.as_str() == op)
                .map(|(_, s)| s)
                .filter(|s| s.count > 0)
                .map(f)
        })
        .collect()
}

/// A figure of an operation's summary that runs are compared by.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    /// As gates name it: `p99`, `ok_per_s`.
    pub key: &'static str,
    /// As the table shows it.
    pub label: &'static str,
    pub read: fn(&OpSummary) -> f64,
}

/// Every metric compared, in the table's order.
pub const METRICS: [Metric; 8] = [
    Metric {
        key: "ok_per_s",
        label: "ok/s",
        read: |s| s.ok_per_s,
    },
    Metric {
        key: "p50",
        label: "p50 ms",
        read: |s| s.response_time.p50_ms,
    },
    Metric {
        key: "p90",
        label: "p90 ms",
        read: |s| s.response_time.p90_ms,
    },
    Metric {
        key: "p99",
        label: "p99 ms",
        read: |s| s.response_time.p99_ms,
    },
    Metric {
        key: "p99.9",
        label: "p99.9 ms",
        read: |s| s.response_time.p999_ms,
    },
    Metric {
        key: "service_p50",
        label: "svc p50",
        read: |s| s.service_time.p50_ms,
    },
    Metric {
        key: "service_p99",
        label: "svc p99",
        read: |s| s.service_time.p99_ms,
    },
    Metric {
        key: "error_pct",
        label: "error %",
        read: |s| s.error_rate * 100.0,
    },
];

/// Every metric of every operation both runs have.
pub fn compare(base: &Report, new: &Report, noise: Noise) -> Vec<Change> {
    let mut out = Vec::new();
    for (op, a) in &base.operations {
        let Some(b) = new.operations.get(op) else {
            continue;
        };
        for m in METRICS {
            // A latency exists only where some operation succeeded.
            let latency = !matches!(m.key, "ok_per_s" | "error_pct");
            let absent_in = match (a.count, b.count) {
                (0, _) if latency => Some("base"),
                (_, 0) if latency => Some("new"),
                _ => None,
            };
            // Interval rates are per interval; the whole run's figure is what changes.
            let mut c = change(
                op.as_str(),
                m.label,
                ((m.read)(a), (m.read)(b)),
                (
                    &series(base, op.as_str(), m.read),
                    &series(new, op.as_str(), m.read),
                ),
                noise,
            );
            c.absent_in = absent_in;
            out.push(c);
        }
    }
    out
}

/// Operations only one of the runs has.
pub fn not_compared(base: &Report, new: &Report) -> Vec<String> {
    base.operations
        .keys()
        .filter(|k| !new.operations.contains_key(*k))
        .map(|k| format!("{k} (base only)"))
        .chain(
            new.operations
                .keys()
                .filter(|k| !base.operations.contains_key(*k))
                .map(|k| format!("{k} (new only)")),
        )
        .collect()
}

/// Runs whose figures do not cover the whole plan: one that failed, was interrupted or
/// was recovered with a gap, or whose workers' data is missing. Comparing such a run
/// compares part of a test with a whole one.
pub fn partial_runs(base: &Report, new: &Report) -> Vec<String> {
    use super::RunStatus;
    let mut out = Vec::new();
    for (which, r) in [("base", base), ("new", new)] {
        let mut why = Vec::new();
        match r.status {
            RunStatus::Failed => why.push("it failed".to_string()),
            RunStatus::Interrupted => why.push("it was interrupted".to_string()),
            RunStatus::Passed | RunStatus::Recovered => {}
        }
        if let Some(p) = r.recovery.as_ref().and_then(|rec| rec.paused.as_ref()) {
            why.push(format!(
                "its load was paused from {:.1} s to {:.1} s (coordinator lost)",
                p.from_s, p.to_s
            ));
        }
        if r.verification.merged_equals_executed.is_none() && !r.workers.is_empty() {
            why.push(format!(
                "{} worker(s) never sent final totals",
                r.verification.missing.len()
            ));
        }
        if !why.is_empty() {
            out.push(format!(
                "the {which} run ({}) is partial: {}",
                r.run_id,
                why.join("; ")
            ));
        }
    }
    out
}

/// Where the two runs' plans differ in what decides the figures: comparing them
/// then compares two tests, not two versions of one.
pub fn plan_differences(base: &Report, new: &Report) -> Vec<String> {
    let (a, b) = (&base.plan, &new.plan);
    let kind = |t: &Option<String>| {
        t.as_deref()
            .and_then(|t| t.split_once("://").map(|(s, _)| s.to_string()))
            .or_else(|| t.clone())
            .unwrap_or_else(|| "?".into())
    };
    let show = |v: Option<String>| v.unwrap_or_else(|| "unset".into());
    let mut out = Vec::new();
    let mut differs = |what: &str, x: String, y: String| {
        if x != y {
            out.push(format!("{what} differs: {x} in base, {y} in new"));
        }
    };
    differs("target kind", kind(&a.target), kind(&b.target));
    differs(
        "scenario",
        show(a.scenario.clone()),
        show(b.scenario.clone()),
    );
    differs(
        "mode",
        show(a.mode.map(|m| format!("{m:?}").to_lowercase())),
        show(b.mode.map(|m| format!("{m:?}").to_lowercase())),
    );
    differs(
        "arrival",
        show(a.arrival.map(|m| format!("{m:?}").to_lowercase())),
        show(b.arrival.map(|m| format!("{m:?}").to_lowercase())),
    );
    differs(
        "sessions",
        show(a.sessions.map(|s| s.to_string())),
        show(b.sessions.map(|s| s.to_string())),
    );
    differs(
        "rate",
        show(a.rate.map(|r| format!("{r} ops/s"))),
        show(b.rate.map(|r| format!("{r} ops/s"))),
    );
    differs(
        "duration",
        show(a.duration.clone()),
        show(b.duration.clone()),
    );
    differs(
        "stages",
        show(a.stage.as_ref().map(|s| format!("{} stages", s.len()))),
        show(b.stage.as_ref().map(|s| format!("{} stages", s.len()))),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(base: f64, new: f64, a: &[f64], b: &[f64], noise: Noise) -> Change {
        change("op", "ok/s", (base, new), (a, b), noise)
    }

    #[test]
    fn a_shift_beyond_the_interval_spread_is_marked_and_one_within_it_is_not() {
        let base = [100.0, 102.0, 98.0, 101.0, 99.0, 100.0];
        let same = [99.0, 101.0, 100.0, 102.0, 98.0, 100.5];
        let faster = [120.0, 122.0, 118.0, 121.0, 119.0, 120.0];
        let c = ch(100.0, 100.08, &base, &same, Noise::Auto);
        assert!(!c.significant, "{c:?}");
        let c = ch(100.0, 120.0, &base, &faster, Noise::Auto);
        assert!(c.significant, "{c:?}");
        // MAD of each side is 1.0 → sd 1.4826.
        let sd = 1.4826_f64;
        assert!(
            (c.noise - 2.0 * (sd * sd / 6.0 + sd * sd / 6.0).sqrt()).abs() < 0.01,
            "{c:?}"
        );
    }

    #[test]
    fn noisy_runs_need_a_larger_change_up_to_the_bound() {
        let noisy_a = [50.0, 150.0, 80.0, 120.0, 60.0, 140.0];
        let noisy_b = [70.0, 170.0, 100.0, 140.0, 80.0, 160.0];
        let c = ch(100.0, 120.0, &noisy_a, &noisy_b, Noise::Auto);
        assert!(
            !c.significant,
            "20 % in a series that swings ±50 % is noise: {c:?}"
        );
        let c = ch(100.0, 120.0, &[100.0], &[120.0], Noise::Auto);
        assert!(
            !c.significant && c.noise == 25.0,
            "one interval says nothing of noise: the bound decides ({c:?})"
        );
        let c = ch(100.0, 120.0, &noisy_a, &noisy_b, Noise::Off);
        assert!(c.significant && c.noise == 0.0, "{c:?}");
        let c = ch(100.0, 120.0, &noisy_a, &noisy_b, Noise::AtMostPct(10.0));
        assert!(c.significant && c.noise == 10.0, "{c:?}");
    }

    #[test]
    fn a_regressed_run_that_swings_wildly_cannot_hide_behind_its_own_spread() {
        // The base is steady around 10 ms; the new run's p99 quadruples and swings.
        let base = [9.8, 10.1, 10.0, 10.3, 9.9, 10.2, 10.0, 9.7];
        let new = [12.0, 80.0, 25.0, 140.0, 30.0, 95.0, 18.0, 60.0];
        let c = change("op", "p99 ms", (10.0, 43.4), (&base, &new), Noise::Auto);
        assert!(c.significant, "{c:?}");
        assert!(c.noise <= 2.5 + 1e-9, "at most 25 % of the base: {c:?}");
    }

    #[test]
    fn noise_settings_parse_and_bad_ones_are_named() {
        assert_eq!("off".parse::<Noise>(), Ok(Noise::Off));
        assert_eq!("auto".parse::<Noise>(), Ok(Noise::Auto));
        assert_eq!("10%".parse::<Noise>(), Ok(Noise::AtMostPct(10.0)));
        assert_eq!("7.5".parse::<Noise>(), Ok(Noise::AtMostPct(7.5)));
        for bad in ["loud", "-5%", "NaN"] {
            let e = bad.parse::<Noise>().unwrap_err();
            assert!(e.contains("--noise") && e.contains("auto"), "{e}");
        }
    }
}
