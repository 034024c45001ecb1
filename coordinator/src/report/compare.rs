//! `fleetload report compare base.json new.json`: per operation, how throughput and
//! latency changed, and whether the change is larger than the noise the two runs
//! themselves show.
//!
//! Each run's per-interval series (measured intervals only) gives a spread for every
//! metric; the noise of the difference between the runs' means is
//! 2·√(s₁²/n₁ + s₂²/n₂) (Welch's standard error, about 95 %). A change beyond it is
//! marked; one within it is what rerunning the same test would give.

use super::{OpSummary, Report};
use std::fmt::Write as _;

/// One metric of one operation in both runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub operation: String,
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

/// How one figure is read off a summary.
type Metric = fn(&OpSummary) -> f64;

/// Every metric of every operation both runs have.
pub fn compare(base: &Report, new: &Report) -> Vec<Change> {
    let metrics: [(&'static str, Metric); 4] = [
        ("ok/s", |s| s.ok_per_s),
        ("p50 ms", |s| s.response_time.p50_ms),
        ("p99 ms", |s| s.response_time.p99_ms),
        ("error %", |s| s.error_rate * 100.0),
    ];
    let mut out = Vec::new();
    for (op, a) in &base.operations {
        let Some(b) = new.operations.get(op) else {
            continue;
        };
        for (metric, f) in metrics {
            // Interval rates are per interval; the whole run's figure is what changes.
            out.push(change(
                op.as_str(),
                metric,
                f(a),
                f(b),
                &series(base, op.as_str(), f),
                &series(new, op.as_str(), f),
            ));
        }
    }
    out
}

/// The comparison as a table.
pub fn render(base: &Report, new: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "base {}  ({}, {})",
        base.run_id,
        base.started_at,
        base.plan.target.as_deref().unwrap_or("?")
    );
    let _ = writeln!(
        out,
        "new  {}  ({}, {})",
        new.run_id,
        new.started_at,
        new.plan.target.as_deref().unwrap_or("?")
    );
    let _ = writeln!(
        out,
        "\n  {:<22} {:<8} {:>12} {:>12} {:>10} {:>12}",
        "operation", "metric", "base", "new", "change", "noise (±)"
    );
    let changes = compare(base, new);
    for c in &changes {
        let pct = if c.base != 0.0 {
            format!("{:+.1}%", c.delta / c.base * 100.0)
        } else {
            format!("{:+.3}", c.delta)
        };
        let noise = if c.noise.is_finite() {
            format!("{:.3}", c.noise)
        } else {
            "unknown".into()
        };
        let _ = writeln!(
            out,
            "  {:<22} {:<8} {:>12.3} {:>12.3} {:>10} {:>12} {}",
            c.operation,
            c.metric,
            c.base,
            c.new,
            pct,
            noise,
            if c.significant { "*" } else { "" }
        );
    }
    let only: Vec<String> = base
        .operations
        .keys()
        .filter(|k| !new.operations.contains_key(*k))
        .map(|k| format!("{k} (base only)"))
        .chain(
            new.operations
                .keys()
                .filter(|k| !base.operations.contains_key(*k))
                .map(|k| format!("{k} (new only)")),
        )
        .collect();
    if !only.is_empty() {
        let _ = writeln!(out, "\nnot compared: {}", only.join(", "));
    }
    let _ = writeln!(
        out,
        "\n* the change is larger than the noise: twice the standard error of the two runs' interval series (about 95 %)."
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
