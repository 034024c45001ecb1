//! The charts of report.html, each a series of points from report.json: throughput,
//! latency and errors per interval, per worker, the latency distribution from the merged
//! histograms, capacity-search curves and the database's counters. Drawing them is
//! `svg`'s job, laying out the page `html`'s.

use super::svg::{Chart, Series, XAxis};
use super::{OpSummary, Report};
use base64::Engine;
use fleetload_common::histogram::decode;

/// Points of the percentile curve: 12 per decade up to 1/(1-q) = 10^20, beyond any
/// run's resolution.
const MAX_PERCENTILE_POINTS: u32 = 12 * 20;

/// Interval midpoints, seconds since the start.
fn mid(i: &super::IntervalJson) -> f64 {
    (i.start_s + i.end_s) / 2.0
}

/// The charts of a report, in page order.
pub fn charts(r: &Report) -> Vec<Chart> {
    let mut charts = Vec::new();
    throughput(r, &mut charts);
    latency(r, &mut charts);
    errors(r, &mut charts);
    per_worker(r, &mut charts);
    instances(r, &mut charts);
    percentiles(r, &mut charts);
    capacity(r, &mut charts);
    database(r, &mut charts);
    charts
}

/// Throughput per operation, the total, and the plan.
fn throughput(r: &Report, charts: &mut Vec<Chart>) {
    let ops: Vec<_> = r.operations.keys().cloned().collect();

    // Throughput per operation, the total, and the plan.
    let mut series: Vec<Series> = ops
        .iter()
        .map(|op| Series {
            name: op.to_string(),
            points: r
                .intervals
                .iter()
                .filter_map(|i| i.operations.get(op).map(|s| (mid(i), s.ok_per_s)))
                .collect(),
            dashed: false,
        })
        .collect();
    if ops.len() > 1 {
        series.push(Series {
            name: "all operations".into(),
            points: r
                .intervals
                .iter()
                .map(|i| (mid(i), i.operations.values().map(|s| s.ok_per_s).sum()))
                .collect(),
            dashed: false,
        });
    }
    if r.plan.rate.is_some() {
        // The planned load as it ended up: stages, then live changes.
        let mut points: Vec<(f64, f64)> = r.planned.iter().map(|p| (p[0], p[1])).collect();
        match points.last().copied() {
            Some((t, v)) if t < r.duration_s => points.push((r.duration_s, v)),
            Some(_) => {}
            None => {
                let rate = r.plan.rate.unwrap_or(0.0);
                points = vec![(0.0, rate), (r.duration_s, rate)];
            }
        }
        series.push(Series {
            name: "planned rate".into(),
            points,
            dashed: true,
        });
    }
    charts.push(Chart {
        id: "throughput".into(),
        title: "Throughput per operation (successful operations per second)".into(),
        y_label: "ops/s".into(),
        x: XAxis::Seconds,
        log_y: false,
        series,
    });
}

/// Latency over time, one chart per operation.
fn latency(r: &Report, charts: &mut Vec<Chart>) {
    let ops: Vec<_> = r.operations.keys().cloned().collect();
    // Latency over time, one chart per operation.
    for op in &ops {
        let pick = |f: fn(&OpSummary) -> f64| -> Vec<(f64, f64)> {
            r.intervals
                .iter()
                .filter_map(|i| {
                    i.operations
                        .get(op)
                        .filter(|s| s.count > 0)
                        .map(|s| (mid(i), f(s)))
                })
                .collect()
        };
        let series = vec![
            Series {
                name: "p50".into(),
                points: pick(|s| s.response_time.p50_ms),
                dashed: false,
            },
            Series {
                name: "p90".into(),
                points: pick(|s| s.response_time.p90_ms),
                dashed: false,
            },
            Series {
                name: "p99".into(),
                points: pick(|s| s.response_time.p99_ms),
                dashed: false,
            },
            Series {
                name: "max".into(),
                points: pick(|s| s.response_time.max_ms),
                dashed: false,
            },
        ];
        charts.push(Chart {
            id: format!("latency-{op}"),
            title: format!("{op}: response time per interval"),
            y_label: "ms (log scale)".into(),
            x: XAxis::Seconds,
            log_y: true,
            series,
        });
    }
}

/// Errors per second by class, and dropped operations.
fn errors(r: &Report, charts: &mut Vec<Chart>) {
    // Errors per second by class (a zero line when there were none).
    let mut classes: Vec<String> = r
        .intervals
        .iter()
        .flat_map(|i| {
            i.operations
                .values()
                .flat_map(|s| s.errors.keys().map(|k| k.to_string()))
        })
        .collect();
    classes.sort();
    classes.dedup();
    let per_class = |class: Option<&str>| -> Vec<(f64, f64)> {
        r.intervals
            .iter()
            .map(|i| {
                let n: u64 = i
                    .operations
                    .values()
                    .map(|s| match class {
                        Some(c) => s.errors.get(c).copied().unwrap_or(0),
                        None => s.error_total,
                    })
                    .fold(0, u64::saturating_add);
                (mid(i), n as f64 / (i.end_s - i.start_s).max(1e-9))
            })
            .collect()
    };
    let mut series: Vec<Series> = classes
        .iter()
        .map(|c| Series {
            name: c.clone(),
            points: per_class(Some(c)),
            dashed: false,
        })
        .collect();
    if series.is_empty() {
        series.push(Series {
            name: "all classes (none)".into(),
            points: per_class(None),
            dashed: false,
        });
    }
    let dropped: Vec<(f64, f64)> = r
        .intervals
        .iter()
        .map(|i| {
            let n: u64 = i
                .operations
                .values()
                .map(|s| s.dropped_backlog)
                .fold(0, u64::saturating_add);
            (mid(i), n as f64 / (i.end_s - i.start_s).max(1e-9))
        })
        .collect();
    if dropped.iter().any(|p| p.1 > 0.0) {
        series.push(Series {
            name: "dropped (backlog)".into(),
            points: dropped,
            dashed: true,
        });
    }
    charts.push(Chart {
        id: "errors".into(),
        title: "Errors per second by class".into(),
        y_label: "errors/s".into(),
        x: XAxis::Seconds,
        log_y: false,
        series,
    });
}

/// Sessions and throughput per server instance over time: an uneven reader endpoint
/// or pools that never reconnect show at a glance.
fn instances(r: &Report, charts: &mut Vec<Chart>) {
    if r.instances.is_empty() {
        return;
    }
    let series = |col: usize| -> Vec<Series> {
        r.instances
            .iter()
            .map(|i| Series {
                name: i.name.clone(),
                points: i.series.iter().map(|p| (p[0], p[col])).collect(),
                dashed: false,
            })
            .collect()
    };
    charts.push(Chart {
        id: "instance-sessions".into(),
        title: "Sessions per instance".into(),
        y_label: "sessions".into(),
        x: XAxis::Seconds,
        log_y: false,
        series: series(1),
    });
    charts.push(Chart {
        id: "instance-throughput".into(),
        title: "Throughput per instance".into(),
        y_label: "ok/s".into(),
        x: XAxis::Seconds,
        log_y: false,
        series: series(2),
    });
}

/// Per-worker throughput, all operations.
fn per_worker(r: &Report, charts: &mut Vec<Chart>) {
    // Per-worker throughput, all operations.
    let series = r
        .workers
        .iter()
        .map(|w| Series {
            name: w.name.clone(),
            points: r
                .intervals
                .iter()
                .filter_map(|i| {
                    i.per_worker
                        .get(&w.index)
                        .map(|ops| (mid(i), ops.values().map(|b| b.ok_per_s).sum()))
                })
                .collect(),
            dashed: false,
        })
        .collect();
    charts.push(Chart {
        id: "workers".into(),
        title: "Throughput per worker (all operations)".into(),
        y_label: "ops/s".into(),
        x: XAxis::Seconds,
        log_y: false,
        series,
    });
}

/// Latency by percentile over the measured run, from the merged histograms.
fn percentiles(r: &Report, charts: &mut Vec<Chart>) {
    // Latency by percentile over the measured run, from the merged histograms.
    let series = r
        .histograms
        .iter()
        .filter_map(|(op, h)| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(&h.response_time)
                .ok()?;
            let hist = decode(&bytes).ok()?;
            if hist.is_empty() {
                return None;
            }
            let n = hist.len() as f64;
            // x = 1/(1-q) from 1 to the run's resolution (x < n), 12 points per
            // decade. Bounded by count, not by comparing probabilities: with more than
            // 2^53 samples 1 - 1/n rounds to 1.0 and such a loop would never end.
            let mut points: Vec<(f64, f64)> = (0..MAX_PERCENTILE_POINTS)
                .map(|k| 10f64.powf(k as f64 / 12.0))
                .take_while(|x| *x == 1.0 || *x < n)
                .map(|x| (x, hist.value_at_quantile(1.0 - 1.0 / x) as f64 / 1000.0))
                .collect();
            points.push((n.max(10.0), hist.max() as f64 / 1000.0));
            Some(Series {
                name: op.to_string(),
                points,
                dashed: false,
            })
        })
        .collect();
    charts.push(Chart {
        id: "distribution".into(),
        title: "Response time by percentile (measured intervals, cluster)".into(),
        y_label: "ms (log scale)".into(),
        x: XAxis::PercentileTail,
        log_y: true,
        series,
    });
}

/// The capacity search: latency and throughput against the offered rate.
fn capacity(r: &Report, charts: &mut Vec<Chart>) {
    // Capacity search: latency and throughput against the offered rate.
    if let Some(c) = &r.capacity {
        let mut curve = c.curve.clone();
        curve.sort_by(|a, b| a.rate.total_cmp(&b.rate));
        let pick = |f: fn(&crate::search::CurvePoint) -> f64| {
            curve.iter().map(|p| (p.rate, f(p))).collect()
        };
        charts.push(Chart {
            id: "capacity".into(),
            title: "Capacity search: response time by offered rate".into(),
            y_label: "ms (log scale)".into(),
            x: XAxis::Rate,
            log_y: true,
            series: vec![
                Series {
                    name: "p50".into(),
                    points: pick(|p| p.p50_ms),
                    dashed: false,
                },
                Series {
                    name: "p99".into(),
                    points: pick(|p| p.p99_ms),
                    dashed: false,
                },
            ],
        });
        charts.push(Chart {
            id: "capacity-throughput".into(),
            title: "Capacity search: achieved vs offered rate".into(),
            y_label: "ops/s".into(),
            x: XAxis::Rate,
            log_y: false,
            series: vec![
                Series {
                    name: "achieved".into(),
                    points: pick(|p| p.achieved_ok_per_s),
                    dashed: false,
                },
                Series {
                    name: "offered".into(),
                    points: pick(|p| p.rate),
                    dashed: true,
                },
            ],
        });
    }
}

/// The database's counters: rates of those that only grow.
fn database(r: &Report, charts: &mut Vec<Chart>) {
    // The database's counters: rates of those that only grow.
    let samples = &r.database_counters.samples;
    if samples.len() >= 2 {
        let mut names: Vec<(&String, i64)> = samples[0]
            .values
            .keys()
            .filter_map(|k| {
                let vals: Vec<i64> = samples
                    .iter()
                    .filter_map(|s| s.values.get(k).copied())
                    .collect();
                let monotonic = vals.windows(2).all(|w| w[1] >= w[0]);
                let change = vals.last()? - vals.first()?;
                (monotonic && change > 0).then_some((k, change))
            })
            .collect();
        names.sort_by_key(|(_, change)| std::cmp::Reverse(*change));
        let series: Vec<Series> = names
            .iter()
            .take(8)
            .map(|(k, _)| Series {
                name: (*k).clone(),
                points: samples
                    .windows(2)
                    // No rate across a time the counters could not be read.
                    .filter(|w| {
                        !r.database_counters
                            .gaps
                            .iter()
                            .any(|g| g.from_s < w[1].t_s && g.to_s.is_none_or(|to| to > w[0].t_s))
                    })
                    .filter_map(|w| {
                        let (a, b) = (w[0].values.get(*k)?, w[1].values.get(*k)?);
                        let dt = (w[1].t_s - w[0].t_s).max(1e-9);
                        Some(((w[0].t_s + w[1].t_s) / 2.0, (b - a) as f64 / dt))
                    })
                    .collect(),
                dashed: false,
            })
            .collect();
        if !series.is_empty() {
            charts.push(Chart {
                id: "database".into(),
                title: "Database counters (per second, the busiest 8)".into(),
                y_label: "per second".into(),
                x: XAxis::Seconds,
                log_y: false,
                series,
            });
        }
    }
}
