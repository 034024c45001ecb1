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
pub(crate) fn charts(r: &Report) -> Vec<Chart> {
    let mut charts = Vec::new();
    throughput(r, &mut charts);
    latency(r, &mut charts);
    errors(r, &mut charts);
    per_worker(r, &mut charts);
    instances(r, &mut charts);
    percentiles(r, &mut charts);
    capacity(r, &mut charts);
    database(r, &mut charts);
    cloudwatch(r, &mut charts);
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
    if let Some(points) = planned_rate(r) {
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

/// The planned load as it ended up (stages, then live changes), to the run's end; `None`
/// in closed loop.
fn planned_rate(r: &Report) -> Option<Vec<(f64, f64)>> {
    r.plan.rate?;
    let mut points: Vec<(f64, f64)> = r.planned.iter().map(|p| (p[0], p[1])).collect();
    match points.last().copied() {
        Some((t, v)) if t < r.duration_s => points.push((r.duration_s, v)),
        Some(_) => {}
        None => {
            let rate = r.plan.rate.unwrap_or(0.0);
            points = vec![(0.0, rate), (r.duration_s, rate)];
        }
    }
    Some(points)
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
        let pick = |f: fn(&crate::capacity::CurvePoint) -> f64| {
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

/// A CloudWatch series as chart points, scaled (microseconds to ms, per period to per
/// second), named with its source when the plan reads several.
fn cw_series(s: &crate::cloudwatch::CloudWatchSeries, scale: f64, several: bool) -> Series {
    let source = s
        .dimensions
        .iter()
        .filter(|(k, _)| k.as_str() != "VariantName")
        .map(|(_, v)| v.as_str())
        .collect::<Vec<_>>()
        .join("/");
    Series {
        name: if several {
            format!("{} ({source})", s.metric)
        } else {
            s.metric.clone()
        },
        points: s.points.iter().map(|[t, v]| (*t, v * scale)).collect(),
        dashed: false,
    }
}

/// The server's view beside the client's: client p99 of the model operations next to
/// SageMaker's ModelLatency and OverheadLatency; the offered rate next to Invocations;
/// then each other CloudWatch metric on its own chart.
fn cloudwatch(r: &Report, charts: &mut Vec<Chart>) {
    let Some(cw) = &r.cloudwatch else {
        return;
    };
    let period = cw.period_s.max(1) as f64;
    let half = period / 2.0;
    let shift = |mut s: Series| {
        for p in &mut s.points {
            p.0 += half;
        }
        s
    };
    let count = |metric: &str| cw.series.iter().filter(|s| s.metric == metric).count();
    let mut used = std::collections::BTreeSet::new();
    // Latency: the client's p99 of each model operation, SageMaker's latencies in ms.
    let model_ops: Vec<_> = r
        .operations
        .keys()
        .filter(|op| op.name().starts_with("predict") || op.name() == "score_new")
        .cloned()
        .collect();
    let latencies: Vec<Series> = cw
        .series
        .iter()
        .filter(|s| matches!(s.metric.as_str(), "ModelLatency" | "OverheadLatency"))
        .map(|s| shift(cw_series(s, 1e-3, count(&s.metric) > 1)))
        .collect();
    if !latencies.is_empty() {
        used.extend(["ModelLatency", "OverheadLatency"]);
        let mut series: Vec<Series> = model_ops
            .iter()
            .map(|op| Series {
                name: format!("p99 {op}"),
                points: r
                    .intervals
                    .iter()
                    .filter_map(|i| {
                        i.operations
                            .get(op)
                            .filter(|s| s.count > 0)
                            .map(|s| (mid(i), s.response_time.p99_ms))
                    })
                    .collect(),
                dashed: false,
            })
            .collect();
        series.extend(latencies);
        charts.push(Chart {
            id: "cloudwatch-latency".into(),
            title: "Model latency: client p99 beside SageMaker's (CloudWatch)".into(),
            y_label: "ms".into(),
            x: XAxis::Seconds,
            log_y: false,
            series,
        });
    }
    // Load: what the clients offered and did, per second, beside SageMaker's invocations.
    let invocations: Vec<Series> = cw
        .series
        .iter()
        .filter(|s| s.metric == "Invocations")
        .map(|s| shift(cw_series(s, 1.0 / period, count("Invocations") > 1)))
        .collect();
    if !invocations.is_empty() {
        used.insert("Invocations");
        let mut series = vec![Series {
            name: "client ops/s".into(),
            points: r
                .intervals
                .iter()
                .map(|i| {
                    let secs = (i.end_s - i.start_s).max(1e-9);
                    let attempts: f64 = i
                        .operations
                        .values()
                        .map(|s| s.ok_per_s + s.error_total as f64 / secs)
                        .sum();
                    (mid(i), attempts)
                })
                .collect(),
            dashed: false,
        }];
        if let Some(points) = planned_rate(r) {
            series.push(Series {
                name: "offered rate".into(),
                points,
                dashed: true,
            });
        }
        series.extend(invocations);
        charts.push(Chart {
            id: "cloudwatch-load".into(),
            title: "Load: offered and done beside SageMaker Invocations".into(),
            y_label: "per second".into(),
            x: XAxis::Seconds,
            log_y: false,
            series,
        });
    }
    // Every other metric: one chart each, every source on it.
    let mut metrics: Vec<&str> = Vec::new();
    for s in &cw.series {
        if !used.contains(s.metric.as_str()) && !metrics.contains(&s.metric.as_str()) {
            metrics.push(&s.metric);
        }
    }
    for metric in metrics {
        let of: Vec<_> = cw.series.iter().filter(|s| s.metric == metric).collect();
        let unit = of.first().map_or("", |s| s.unit.as_str());
        let (scale, y) = match unit {
            "Bytes" => (1.0 / (1024.0 * 1024.0), "MiB".to_string()),
            "Microseconds" => (1e-3, "ms".to_string()),
            u => (1.0, u.to_string()),
        };
        charts.push(Chart {
            id: format!("cloudwatch-{}", metric.to_ascii_lowercase()),
            title: format!(
                "{metric} (CloudWatch {} per {} s)",
                of.first().map_or("", |s| s.stat.as_str()),
                cw.period_s
            ),
            y_label: y,
            x: XAxis::Seconds,
            log_y: false,
            series: of
                .iter()
                .map(|s| shift(cw_series(s, scale, of.len() > 1)))
                .collect(),
        });
    }
}
