//! The report as a terminal table: the summary people read first.

use super::{OpSummary, Report, RunStatus};
use std::fmt::Write;

fn ms(x: f64) -> String {
    if x >= 1000.0 {
        format!("{:.2}s", x / 1000.0)
    } else if x >= 10.0 {
        format!("{x:.1}ms")
    } else {
        format!("{x:.3}ms")
    }
}

fn row(out: &mut String, label: &str, s: &OpSummary) {
    let r = &s.response_time;
    // Nothing succeeded: no latency was measured, which 0.000ms would hide.
    let at = |x: f64| {
        if s.count == 0 {
            "—".to_string()
        } else {
            ms(x)
        }
    };
    let _ = writeln!(
        out,
        "  {label:<22} {:>10} {:>10.1} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8}",
        s.count,
        s.ok_per_s,
        at(r.p50_ms),
        at(r.p90_ms),
        at(r.p99_ms),
        at(r.p999_ms),
        at(r.max_ms),
        s.error_total,
        s.dropped_backlog
    );
}

fn header(out: &mut String) {
    let _ = writeln!(
        out,
        "  {:<22} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8}",
        "operation", "count", "ok/s", "p50", "p90", "p99", "p99.9", "max", "errors", "dropped"
    );
}

/// A planned or offered load value: whole numbers without decimals.
fn fmt_value(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// Render the summary: status, per-operation cluster table with service time and
/// schedule lag, errors by class with samples, and per-worker rows.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    overview(r, &mut out);
    operation_notes(r, &mut out);
    per_worker(r, &mut out);
    events(r, &mut out);
    availability(r, &mut out);
    instances(r, &mut out);
    stages(r, &mut out);
    thresholds(r, &mut out);
    capacity(r, &mut out);
    clocks(r, &mut out);
    counters(r, &mut out);
    cloudwatch(r, &mut out);
    tpcc(r, &mut out);
    closing(r, &mut out);
    out
}

/// The head: status, target, failures and the cluster.
fn overview(r: &Report, out: &mut String) {
    let status = match r.status {
        RunStatus::Passed => "PASSED",
        RunStatus::Failed => "FAILED",
        RunStatus::Interrupted => "INTERRUPTED",
        RunStatus::Recovered => "RECOVERED",
    };
    let _ = writeln!(out, "fleetload run {} — {status}", r.run_id);
    let plan = &r.plan;
    let _ = writeln!(
        out,
        "target {}  scenario {}  {} × {} sessions  {}",
        plan.target.as_deref().unwrap_or("?"),
        plan.scenario.as_deref().unwrap_or("?"),
        super::count_of(r.workers.len(), "worker", "workers"),
        plan.sessions.unwrap_or(0),
        r.load_description()
    );
    let _ = writeln!(
        out,
        "started {}  measured {:.1}s (warm-up {:.1}s excluded)  interval {:.1}s",
        r.started_at, r.measured_s, r.warmup_s, r.interval_s
    );
    for f in &r.failures {
        let _ = writeln!(out, "FAILURE: {f}");
    }
    for line in r.recovery.iter().flat_map(|rec| rec.lines()) {
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(
        out,
        "\nresponse time ({}), cluster:",
        r.response_time_definition()
    );
    header(out);
    for (name, s) in &r.operations {
        row(out, name.as_str(), s);
    }
}

/// Service times, schedule lag and what the counts say, per operation.
fn operation_notes(r: &Report, out: &mut String) {
    for (name, s) in &r.operations {
        let v = &s.service_time;
        let _ = writeln!(
            out,
            "  {name}: service time p50 {} p99 {} max {}",
            ms(v.p50_ms),
            ms(v.p99_ms),
            ms(v.max_ms)
        );
        if s.retries > 0 {
            let _ = writeln!(
                out,
                "  {name}: {} deadlock/serialization retries",
                s.retries
            );
        }
        if let Some(l) = &s.schedule_lag {
            let _ = writeln!(
                out,
                "  {name}: schedule lag p50 {} p99 {} max {}",
                ms(l.p50_ms),
                ms(l.p99_ms),
                ms(l.max_ms)
            );
        }
        if s.error_total > 0 {
            let classes: Vec<String> = s.errors.iter().map(|(c, n)| format!("{c} {n}")).collect();
            let _ = writeln!(
                out,
                "  {name}: errors {} ({:.2}%): {}",
                s.error_total,
                s.error_rate * 100.0,
                classes.join(", ")
            );
            for (e, n) in super::distinct_samples(&s.error_samples) {
                let _ = writeln!(
                    out,
                    "    [{}] {}{}",
                    serde_json::to_value(e.class)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default(),
                    e.message,
                    if n > 1 {
                        format!(" (×{n} in the samples)")
                    } else {
                        String::new()
                    }
                );
            }
        }
        if s.empty_results > 0 && s.count > 0 {
            let _ = writeln!(
                out,
                "  WARNING {name}: {} of {} successful operations ({:.1}%) found no row: the plan's key space is larger than the table, or rows were deleted; latencies of empty lookups flatter the database",
                s.empty_results,
                s.count,
                s.empty_results as f64 * 100.0 / s.count as f64
            );
        }
        if s.dropped_backlog > 0 {
            let _ = writeln!(out, "  {name}: {} operations dropped: the workers fell more than max_backlog behind schedule (the generator, not only the database, could not keep up)", s.dropped_backlog);
        }
    }
}

/// Each worker's latencies, shard and state.
fn per_worker(r: &Report, out: &mut String) {
    let _ = writeln!(out, "\nper worker:");
    header(out);
    for w in &r.workers {
        for (name, s) in &w.operations {
            row(out, &format!("{}/{}", w.name, name), s);
        }
        let rate = w
            .rate
            .map(|r| format!(" rate {r:.1}/s"))
            .unwrap_or_default();
        // TPC-C's key space is warehouses, each of many rows: say which unit it is.
        let tpcc = r.plan.scenario.as_deref() == Some("tpcc");
        let unit = |n: u64, one: &'static str, many: &'static str| if n == 1 { one } else { many };
        let loaded = w
            .rows_loaded
            .map(|n| match tpcc {
                true => format!(", loaded {n} {}", unit(n, "warehouse", "warehouses")),
                false => format!(", loaded {n} {}", unit(n, "row", "rows")),
            })
            .unwrap_or_default();
        let keys = if tpcc { "warehouses" } else { "shard" };
        let _ = writeln!(
            out,
            "    {} on {}: {keys} [{}, {}]{rate}{loaded}, {}{}",
            w.name,
            w.host,
            w.shard.first,
            w.shard.last,
            w.state,
            w.message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        );
    }
}

/// Refused messages, outages, the fleet's and the load's changes.
fn events(r: &Report, out: &mut String) {
    for w in r.workers.iter().filter(|w| w.rejected_messages > 0) {
        let _ = writeln!(
            out,
            "\n{}: {} invalid messages refused ({})",
            w.name,
            w.rejected_messages,
            w.rejected_samples.join("; ")
        );
    }
    for o in &r.outages {
        let classes: Vec<String> = o.errors.iter().map(|(c, n)| format!("{c} {n}")).collect();
        let _ = writeln!(
            out,
            "\nOUTAGE {:.1}s–{:.1}s ({:.1}s): {}{}; lowest rate {:.0} ok/s",
            o.from_s,
            o.to_s,
            o.duration_s,
            classes.join(", "),
            if o.dropped_backlog > 0 {
                format!(", {} dropped", o.dropped_backlog)
            } else {
                String::new()
            },
            o.min_ok_per_s
        );
        if let Some(e) = o.error_samples.first() {
            let _ = writeln!(out, "  first error: {}", e.message);
        }
    }
    for m in &r.membership {
        let _ = writeln!(out, "fleet at {:.1}s: {}", m.t_s, m.event);
    }
    for g in &r.gaps {
        let _ = writeln!(out, "gap: {}", g.sentence());
    }
    for s in r.stalls.iter().take(20) {
        let _ = writeln!(out, "STALL: {}", s.sentence());
    }
    if r.stalls.len() > 20 {
        let _ = writeln!(
            out,
            "  … {} more stalls in report.json",
            r.stalls.len() - 20
        );
    }
    for c in &r.changes {
        let _ = writeln!(out, "change at {:.1}s: {}", c.t_s, c.event);
    }
}

/// Which instance served what.
fn instances(r: &Report, out: &mut String) {
    if r.instances.is_empty() {
        return;
    }
    let _ = writeln!(out, "\ninstances (as the servers name themselves):");
    for i in &r.instances {
        let roles: Vec<&str> = i.roles.iter().map(|r| r.name()).collect();
        let peak = i.series.iter().map(|p| p[1]).fold(0.0, f64::max);
        let _ = writeln!(
            out,
            "  {}{}: {} ({}), ok/s {:.0}, errors {}, p50 {} p99 {}, up to {peak:.0} sessions at once",
            i.name,
            i.read_only_text(r.duration_s)
                .map(|t| format!(" ({t})"))
                .unwrap_or_default(),
            roles.join("+"),
            i.operations
                .iter()
                .map(|o| o.name())
                .collect::<Vec<_>>()
                .join(", "),
            i.ok_per_s,
            i.errors,
            ms(i.p50_ms),
            ms(i.p99_ms)
        );
    }
}

/// What each outage or failover cost the sessions.
fn availability(r: &Report, out: &mut String) {
    for w in &r.availability.windows {
        let failed: Vec<String> = w.failed.iter().map(|(c, n)| format!("{c} {n}")).collect();
        let _ = writeln!(
            out,
            "\nAVAILABILITY ({}) {:.1}s–{:.1}s: {} sessions down{}; downtime per session p50 {} p99 {} max {}; {} operations failed ({}){}",
            w.role.name(),
            w.from_s,
            w.to_s,
            w.sessions,
            if w.unrecovered > 0 {
                format!(" ({} not recovered by the end)", w.unrecovered)
            } else {
                String::new()
            },
            ms(w.downtime_ms.p50),
            ms(w.downtime_ms.p99),
            ms(w.downtime_ms.max),
            w.failed.values().sum::<u64>(),
            failed.join(", "),
            w.rate_back_s
                .map(|s| format!("; rate back at target {s:.1}s after"))
                .unwrap_or_default()
        );
        if let (Some(a), Some(b)) = (&w.instance_before, &w.instance_after) {
            let _ = writeln!(out, "  sessions failed on {a} and recovered on {b}");
        }
        for d in &w.per_worker {
            let _ = writeln!(
                out,
                "  {}: {} sessions, downtime p50 {} max {}",
                d.name,
                d.sessions,
                ms(d.downtime_ms.p50),
                ms(d.downtime_ms.max)
            );
        }
    }
}

/// Each stage's planned and measured load.
fn stages(r: &Report, out: &mut String) {
    if !r.stages.is_empty() {
        let _ = writeln!(
            out,
            "
stages:"
        );
        let _ = writeln!(
            out,
            "  {:<44} {:>10} {:>9} {:>9} {:>8}",
            "stage", "ok/s", "p50", "p99", "errors"
        );
        for st in &r.stages {
            let label = match (st.overridden, st.offered_from, st.offered_to) {
                (true, Some(from), Some(to)) => format!(
                    "{}. {} [overridden: offered {} → {}]",
                    st.index,
                    st.description,
                    fmt_value(from),
                    fmt_value(to)
                ),
                _ => format!("{}. {}", st.index, st.description),
            };
            match &st.all {
                Some(a) => {
                    let _ = writeln!(
                        out,
                        "  {label:<44} {:>10.1} {:>9} {:>9} {:>8}",
                        a.ok_per_s,
                        ms(a.response_time.p50_ms),
                        ms(a.response_time.p99_ms),
                        a.error_total
                    );
                }
                None => {
                    let _ = writeln!(out, "  {label:<44} (no measured interval)");
                }
            }
        }
    }
}

/// Each threshold's verdict.
fn thresholds(r: &Report, out: &mut String) {
    if !r.thresholds.is_empty() {
        let _ = writeln!(
            out,
            "
thresholds:"
        );
        for t in &r.thresholds {
            let _ = writeln!(
                out,
                "  {} {:<36} ({}{}) measured {}",
                if t.passed { "PASS" } else { "FAIL" },
                t.threshold,
                t.scope,
                if t.overridden {
                    "; load overridden by a live change, not as planned"
                } else {
                    ""
                },
                t.measured_text()
            );
        }
    }
}

/// The capacity search's curve and verdict.
fn capacity(r: &Report, out: &mut String) {
    if let Some(c) = &r.capacity {
        let _ = writeln!(
            out,
            "\ncapacity ({}): {}{}",
            c.slos.join(", "),
            c.answer
                .map_or("no rate tried met them".to_string(), |a| format!(
                    "{a:.1} ops/s holds"
                )),
            match (c.breaking, c.converged) {
                (Some(b), true) =>
                    format!(", {b:.1} does not (within {:.0}%)", c.precision * 100.0),
                (Some(b), false) =>
                    format!(", {b:.1} does not (not converged: the run ended first)"),
                (None, _) => ", no breaking rate reached".to_string(),
            }
        );
        let _ = writeln!(
            out,
            "  {:>10} {:>10} {:>9} {:>9} {:>8}  verdict",
            "offered", "achieved", "p50", "p99", "errors"
        );
        for p in &c.curve {
            let _ = writeln!(
                out,
                "  {:>10.1} {:>10.1} {:>9} {:>9} {:>7.2}%  {}",
                p.rate,
                p.achieved_ok_per_s,
                ms(p.p50_ms),
                ms(p.p99_ms),
                p.error_rate * 100.0,
                if p.passed {
                    "ok".to_string()
                } else {
                    format!("breaks: {}", p.breaches.join("; "))
                }
            );
        }
    }
}

/// Each worker's clock offset and start.
fn clocks(r: &Report, out: &mut String) {
    let clocks: Vec<String> = r
        .workers
        .iter()
        .filter_map(|w| {
            let offset = w.clock_offset_ms?;
            Some(format!(
                "{} {offset:+.3}ms ±{:.3}ms (rtt {:.3}ms{})",
                w.name,
                w.clock_uncertainty_ms.unwrap_or(0.0),
                w.clock_rtt_ms.unwrap_or(0.0),
                w.start_delay_ms
                    .map(|d| format!(", started {d:+.3}ms"))
                    .unwrap_or_default()
            ))
        })
        .collect();
    if !clocks.is_empty() {
        let _ = writeln!(
            out,
            "
worker clocks: {}{}",
            clocks.join("; "),
            r.start_skew_ms
                .map(|s| format!("; start skew {s:.3}ms"))
                .unwrap_or_default()
        );
    }
}

/// The database's counters and levels.
fn counters(r: &Report, out: &mut String) {
    let c = &r.database_counters;
    if let Some(why) = &c.unavailable {
        let _ = writeln!(out, "\ndatabase counters unavailable: {why}");
    } else if !c.deltas.is_empty() || !c.gauges.is_empty() {
        let deltas: Vec<String> = c.deltas.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(
            out,
            "\ndatabase counters over the run ({} samples): {}",
            c.samples.len(),
            deltas.join(", ")
        );
        if !c.gauges.is_empty() {
            let levels: Vec<String> = c
                .gauges
                .iter()
                .map(|(k, g)| format!("{k} {} (max {})", g.last, g.max))
                .collect();
            let _ = writeln!(out, "database levels at the end: {}", levels.join(", "));
        }
    }
    for g in &c.gaps {
        let until = g
            .to_s
            .map_or("the end of the run".to_string(), |t| format!("{t:.1}s"));
        let _ = writeln!(
            out,
            "database counters unavailable from {:.1}s to {until}: {}",
            g.from_s, g.error
        );
    }
}

/// CloudWatch's series, in one line each: the mean and the highest point.
fn cloudwatch(r: &Report, out: &mut String) {
    let Some(cw) = &r.cloudwatch else {
        return;
    };
    let _ = writeln!(
        out,
        "
CloudWatch ({}, period {}s): {} series",
        cw.region.as_deref().unwrap_or("default region"),
        cw.period_s,
        cw.series.len()
    );
    for s in &cw.series {
        let values: Vec<f64> = s.points.iter().map(|p| p[1]).collect();
        let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
        let max = values.iter().copied().fold(f64::NAN, f64::max);
        let source: Vec<&str> = s.dimensions.values().map(String::as_str).collect();
        let _ = writeln!(
            out,
            "  {} {} ({}): {} points, mean {mean:.3}, max {max:.3} {}",
            s.metric,
            s.stat,
            source.join("/"),
            values.len(),
            s.unit
        );
    }
    for n in &cw.notes {
        let _ = writeln!(out, "  note: {n}");
    }
}

/// TPC-C's figures: tpmC and NOPM, the two counts of committed New-Orders, the mix.
fn tpcc(r: &Report, out: &mut String) {
    let Some(t) = &r.tpcc else {
        return;
    };
    let nopm = t
        .nopm
        .map_or("unavailable".to_string(), |n| format!("{n:.1}"));
    let _ = writeln!(
        out,
        "\nTPC-C, {} warehouses: tpmC {:.1} (clients, committed New-Orders per minute), NOPM {nopm} (database){}",
        t.warehouses,
        t.tpmc,
        t.efficiency_percent.map_or(String::new(), |e| format!(", efficiency {e:.1}% of 12.86 tpmC per warehouse"))
    );
    let db = t
        .database_new_orders
        .map_or("unavailable".to_string(), |n| n.to_string());
    let verdict = t.verdict();
    let _ = writeln!(
        out,
        "  New-Orders committed over the run: clients {}, database {db} ({verdict}); rolled back {} ({:.1}%); retried {}",
        t.new_orders_committed, t.rollbacks, t.rollback_percent, t.retries
    );
    let mix: Vec<String> = t
        .mix_percent
        .iter()
        .map(|(op, p)| format!("{op} {p:.1}%"))
        .collect();
    let remote: Vec<String> = t.remote.iter().map(|(op, n)| format!("{op} {n}")).collect();
    let _ = writeln!(
        out,
        "  mix: {}; remote warehouses: {}",
        mix.join(", "),
        if remote.is_empty() {
            "none".to_string()
        } else {
            remote.join(", ")
        }
    );
}

/// Rows inserted and the merge check.
fn closing(r: &Report, out: &mut String) {
    if r.inserted_rows > 0 && r.scratch_target {
        let _ = writeln!(
            out,
            "rows inserted: {} (into the demo's temporary database, removed with it; on your own database, `fleetload verify` checks them)",
            r.inserted_rows
        );
    } else if r.inserted_rows > 0 {
        let _ = writeln!(
            out,
            "rows inserted: {} (ids per worker in report.json; check them with `fleetload verify`)",
            r.inserted_rows
        );
    }
    let _ = writeln!(out, "\nmerge check: {}", r.verification.summary());
}
