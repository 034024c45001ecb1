//! `fleetload report compare base.json new.json`: per operation, how throughput and
//! latency changed, and whether the change is larger than the noise the two runs
//! themselves show; with `--fail-on` gates ([`gate`]), a CI step that fails on a
//! regression beyond both its limit and that noise.
//!
//! Each run's per-interval series (measured intervals only) gives a spread for every
//! metric; the noise of the difference between the runs' means is
//! 2·√(s₁²/n₁ + s₂²/n₂) (Welch's standard error, about 95 %). A change beyond it is
//! marked; one within it is what rerunning the same test would give.

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
}

fn mean_sd(xs: &[f64]) -> (f64, f64, usize) {
    let n = xs.len();
    if n == 0 {
        return (0.0, 0.0, 0);
    }
    let mean = xs.iter().sum::<f64>() / n as f64;
    let var = if n > 1 {
        xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64
    } else {
        0.0
    };
    (mean, var.sqrt(), n)
}

/// Whether `new` differs from `base` by more than the interval series' noise.
pub fn change(
    operation: &str,
    metric: &'static str,
    base: f64,
    new: f64,
    base_series: &[f64],
    new_series: &[f64],
) -> Change {
    let (_, sa, na) = mean_sd(base_series);
    let (_, sb, nb) = mean_sd(new_series);
    // With fewer than two intervals on a side there is no spread to judge by.
    let se = if na >= 2 && nb >= 2 {
        (sa * sa / na as f64 + sb * sb / nb as f64).sqrt()
    } else {
        f64::INFINITY
    };
    let noise = 2.0 * se;
    let delta = new - base;
    Change {
        operation: operation.to_string(),
        metric,
        base,
        new,
        delta,
        noise,
        significant: delta.abs() > noise,
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
pub fn compare(base: &Report, new: &Report) -> Vec<Change> {
    let mut out = Vec::new();
    for (op, a) in &base.operations {
        let Some(b) = new.operations.get(op) else {
            continue;
        };
        for m in METRICS {
            // Interval rates are per interval; the whole run's figure is what changes.
            out.push(change(
                op.as_str(),
                m.label,
                (m.read)(a),
                (m.read)(b),
                &series(base, op.as_str(), m.read),
                &series(new, op.as_str(), m.read),
            ));
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

    #[test]
    fn a_shift_beyond_the_interval_spread_is_marked_and_one_within_it_is_not() {
        let base = [100.0, 102.0, 98.0, 101.0, 99.0, 100.0];
        let same = [99.0, 101.0, 100.0, 102.0, 98.0, 100.5];
        let faster = [120.0, 122.0, 118.0, 121.0, 119.0, 120.0];
        let c = change("op", "ok/s", 100.0, 100.08, &base, &same);
        assert!(!c.significant, "{c:?}");
        let c = change("op", "ok/s", 100.0, 120.0, &base, &faster);
        assert!(c.significant, "{c:?}");
        assert!(
            (c.noise - 2.0 * (2.0_f64 / 6.0 + 2.0 / 6.0).sqrt()).abs() < 0.01,
            "{c:?}"
        );
    }

    #[test]
    fn noisy_runs_need_a_larger_change() {
        let noisy_a = [50.0, 150.0, 80.0, 120.0, 60.0, 140.0];
        let noisy_b = [70.0, 170.0, 100.0, 140.0, 80.0, 160.0];
        let c = change("op", "p99 ms", 100.0, 120.0, &noisy_a, &noisy_b);
        assert!(
            !c.significant,
            "20 % in a series that swings ±50 % is noise: {c:?}"
        );
        let c = change("op", "p99 ms", 100.0, 120.0, &[100.0], &[120.0]);
        assert!(
            !c.significant && c.noise.is_infinite(),
            "one interval says nothing of noise"
        );
    }
}
