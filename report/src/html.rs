//! `report.html`: one self-contained page (inline CSS and SVG, no script, no network)
//! with the run's charts and tables, built from the same [`Report`] as report.json, so
//! `fleetload report html report.json` renders it again later.

use super::charts::charts;
use super::svg::escape;
use super::{GapJson, OpSummary, Report, RunStatus, StallJson};
use std::fmt::Write as _;

const STYLE: &str = r#"
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1000px;color:#1b1b1b;padding:0 12px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#555}.badge{display:inline-block;padding:2px 10px;border-radius:10px;color:#fff;font-weight:600;font-size:13px}
.passed{background:#1a7f37}.failed{background:#cf222e}.interrupted{background:#9a6700}.recovered{background:#0969da}
table{border-collapse:collapse;margin:6px 0 12px;font-size:13px}th,td{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f6f8fa}td.l,th.l{text-align:left}.failure{color:#cf222e;font-weight:600}
figure{margin:10px 0 18px}svg.chart{max-width:100%;height:auto;background:#fff}
svg .grid{stroke:#eee;stroke-width:1}svg .mark{fill:#d55e00;fill-opacity:.12}svg .axis{stroke:#555;stroke-width:1}
svg .tick{font-size:11px;fill:#555}svg .label{font-size:12px;fill:#333}svg .title{font-size:14px;font-weight:600;fill:#1b1b1b}
svg .legend{font-size:12px;fill:#333}svg .empty{font-size:13px;fill:#999}
code{background:#f6f8fa;padding:1px 4px;border-radius:3px}
"#;

fn ms(x: f64) -> String {
    if x >= 1000.0 {
        format!("{:.2} s", x / 1000.0)
    } else if x >= 10.0 {
        format!("{x:.1} ms")
    } else {
        format!("{x:.3} ms")
    }
}

fn summary_table(out: &mut String, rows: &[(String, &OpSummary)]) {
    out.push_str("<table><tr><th class=l>operation</th><th>count</th><th>ok/s</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th><th>errors</th><th>error rate</th><th>dropped</th><th>retries</th></tr>");
    for (name, s) in rows {
        let t = &s.response_time;
        let _ = write!(
            out,
            "<tr><td class=l>{}</td><td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.3}%</td><td>{}</td><td>{}</td></tr>",
            escape(name),
            s.count,
            s.ok_per_s,
            ms(t.p50_ms),
            ms(t.p90_ms),
            ms(t.p99_ms),
            ms(t.p999_ms),
            ms(t.max_ms),
            s.error_total,
            s.error_rate * 100.0,
            s.dropped_backlog,
            s.retries
        );
    }
    out.push_str("</table>");
}

/// The whole page.
pub fn render(r: &Report) -> String {
    let mut out = String::with_capacity(64 * 1024);
    overview(r, &mut out);
    summary(r, &mut out);
    tpcc(r, &mut out);
    capacity(r, &mut out);
    charts_and_workers(r, &mut out);
    errors(r, &mut out);
    outages(r, &mut out);
    availability(r, &mut out);
    instances(r, &mut out);
    stages(r, &mut out);
    thresholds(r, &mut out);
    clocks(r, &mut out);
    membership(r, &mut out);
    plan_and_counters(r, &mut out);
    out
}

/// TPC-C's figures: tpmC, NOPM, the two counts of committed New-Orders, the mix.
fn tpcc(r: &Report, out: &mut String) {
    let Some(t) = &r.tpcc else {
        return;
    };
    let or_na = |v: Option<String>| v.unwrap_or_else(|| "unavailable".into());
    let verdict = t.verdict();
    let _ = write!(
        out,
        "<h2>TPC-C</h2><table><tr><th class=l>warehouses</th><td>{}</td></tr><tr><th class=l>tpmC (clients: committed New-Orders per minute)</th><td>{:.1}</td></tr><tr><th class=l>NOPM (database: change of sum(D_NEXT_O_ID) per minute)</th><td>{}</td></tr><tr><th class=l>efficiency (of 12.86 tpmC per warehouse, with keying and think times)</th><td>{}</td></tr><tr><th class=l>New-Orders committed over the run: clients / database</th><td>{} / {} ({verdict})</td></tr><tr><th class=l>New-Orders rolled back (unused item)</th><td>{} ({:.1} %)</td></tr><tr><th class=l>deadlocks and serialization failures retried</th><td>{}</td></tr>",
        t.warehouses,
        t.tpmc,
        or_na(t.nopm.map(|n| format!("{n:.1}"))),
        or_na(t.efficiency_percent.map(|e| format!("{e:.1} %"))),
        t.new_orders_committed,
        or_na(t.database_new_orders.map(|n| n.to_string())),
        t.rollbacks,
        t.rollback_percent,
        t.retries,
    );
    for (op, p) in &t.mix_percent {
        let remote = t.remote.get(op).map_or(String::new(), |n| {
            format!(", {n} touched a remote warehouse")
        });
        let _ = write!(
            out,
            "<tr><th class=l>{}</th><td>{p:.1} % of the mix{remote}</td></tr>",
            escape(op)
        );
    }
    out.push_str("</table>");
}

/// The head: status, target, failures and the cluster.
fn overview(r: &Report, out: &mut String) {
    let status = match r.status {
        RunStatus::Passed => "passed",
        RunStatus::Failed => "failed",
        RunStatus::Interrupted => "interrupted",
        RunStatus::Recovered => "recovered",
    };
    let plan = &r.plan;
    let target = fleetload_common::target::redact(plan.target.as_deref().unwrap_or("?"));
    let load = r.load_description();
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>fleetload {}</title><meta name=viewport content=\"width=device-width, initial-scale=1\"><style>{STYLE}</style></head><body>",
        escape(&r.run_id)
    );
    let _ = write!(
        out,
        "<h1>fleetload run {} <span class=\"badge {status}\">{}</span></h1><p class=meta>target <code>{}</code> · scenario <code>{}</code> · {} workers × {} sessions · {load}<br>started {} · measured {:.1} s (warm-up {:.1} s excluded) · interval {:.1} s · fleetload {}</p>",
        escape(&r.run_id),
        status.to_uppercase(),
        escape(&target),
        escape(plan.scenario.as_deref().unwrap_or("?")),
        r.workers.len(),
        plan.sessions.unwrap_or(0),
        escape(&r.started_at),
        r.measured_s,
        r.warmup_s,
        r.interval_s,
        escape(&r.fleetload_version)
    );
    for line in r.recovery.iter().flat_map(|rec| rec.lines()) {
        let _ = write!(out, "<p class=meta>{}</p>", escape(&line));
    }
    for f in &r.failures {
        let _ = write!(out, "<p class=failure>FAILURE: {}</p>", escape(f));
    }
    for (op, s) in r
        .operations
        .iter()
        .filter(|(_, s)| s.empty_results > 0 && s.count > 0)
    {
        let _ = write!(
            out,
            "<p class=failure>WARNING: {}: {} of {} successful operations ({:.1}%) found no row: the key space is larger than the table, or rows were deleted.</p>",
            escape(op.as_str()),
            s.empty_results,
            s.count,
            s.empty_results as f64 * 100.0 / s.count as f64
        );
    }
}

/// The cluster's summary table and what the counts say.
fn summary(r: &Report, out: &mut String) {
    out.push_str("<h2>Summary (cluster, measured intervals)</h2>");
    let rows: Vec<(String, &OpSummary)> = r
        .operations
        .iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    summary_table(out, &rows);
    let _ = write!(
        out,
        "<p class=meta>Response time = {}. Merge check: {}.</p>",
        r.response_time_definition(),
        escape(&r.verification.summary())
    );
}

/// The capacity search's verdict and curve.
fn capacity(r: &Report, out: &mut String) {
    if let Some(c) = &r.capacity {
        let _ = write!(
            out,
            "<h2>Capacity</h2><p><b>{}</b> meets {} for a whole stage{}.</p>",
            c.answer
                .map_or("No rate tried".to_string(), |a| format!("{a:.1} ops/s")),
            escape(&c.slos.join(", ")),
            match (c.breaking, c.converged) {
                (Some(b), true) => format!(
                    "; {b:.1} ops/s does not (within {:.0}%)",
                    c.precision * 100.0
                ),
                (Some(b), false) => format!(
                    "; {b:.1} ops/s does not (the run ended before the bracket was within {:.0}%)",
                    c.precision * 100.0
                ),
                (None, _) => "; no breaking rate was reached".into(),
            }
        );
        out.push_str("<table><tr><th>offered ops/s</th><th>achieved ops/s</th><th>p50</th><th>p99</th><th>error rate</th><th class=l>verdict</th></tr>");
        for p in &c.curve {
            let _ = write!(
                out,
                "<tr><td>{:.1}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{:.3}%</td><td class=l>{}</td></tr>",
                p.rate,
                p.achieved_ok_per_s,
                ms(p.p50_ms),
                ms(p.p99_ms),
                p.error_rate * 100.0,
                if p.passed { "meets the SLOs".to_string() } else { escape(&format!("breaks: {}", p.breaches.join("; "))) }
            );
        }
        out.push_str("</table>");
    }
}

/// The charts, and the workers' table.
fn charts_and_workers(r: &Report, out: &mut String) {
    out.push_str("<h2>Charts</h2>");
    // Every availability window shaded on every time chart.
    let marks: Vec<super::svg::Mark> = r
        .availability
        .windows
        .iter()
        .map(|w| super::svg::Mark {
            from_s: w.from_s,
            to_s: w.to_s,
            label: format!(
                "{} sessions down ({}): {:.1}s–{:.1}s, downtime max {:.0} ms",
                w.sessions,
                w.role.name(),
                w.from_s,
                w.to_s,
                w.downtime_ms.max
            ),
        })
        .chain(r.gaps.iter().map(|g| super::svg::Mark {
            from_s: g.lost_at_s,
            to_s: g.rejoined_at_s.unwrap_or(r.duration_s),
            label: g.sentence(),
        }))
        .chain(r.stalls.iter().map(|s| super::svg::Mark {
            from_s: s.at_s,
            to_s: s.at_s + s.duration_s,
            label: s.sentence(),
        }))
        .chain(
            r.recovery
                .iter()
                .filter_map(|rec| rec.paused.as_ref())
                .map(|p| super::svg::Mark {
                    from_s: p.from_s,
                    to_s: p.to_s,
                    label: p.sentence(),
                }),
        )
        .collect();
    for chart in charts(r) {
        let _ = write!(out, "<figure>{}</figure>", chart.render_marked(&marks));
    }

    out.push_str("<h2>Workers</h2><table><tr><th class=l>worker</th><th class=l>host</th><th class=l>shard</th><th>rate share</th><th>sessions</th><th class=l>state</th><th>snapshots</th><th>ok</th><th>errors</th></tr>");
    for w in &r.workers {
        // Saturating: a report.json read back may hold anything.
        let ok: u64 = w
            .operations
            .values()
            .map(|s| s.count)
            .fold(0, u64::saturating_add);
        let errors: u64 = w
            .operations
            .values()
            .map(|s| s.error_total)
            .fold(0, u64::saturating_add);
        let _ = write!(
            out,
            "<tr><td class=l>{}</td><td class=l>{}</td><td class=l>[{}, {}]</td><td>{}</td><td>{}</td><td class=l>{}{}</td><td>{}</td><td>{ok}</td><td>{errors}</td></tr>",
            escape(&w.name),
            escape(&w.host),
            w.shard.first,
            w.shard.last,
            w.rate.map_or("—".into(), |r| format!("{r:.1}/s")),
            w.sessions,
            escape(&w.state),
            w.message.as_deref().map_or(String::new(), |m| format!(": {}", escape(m))),
            w.snapshots
        );
    }
    out.push_str("</table>");
}

/// Errors by class and their samples.
fn errors(r: &Report, out: &mut String) {
    let mut any_error = false;
    for (op, s) in &r.operations {
        if s.error_samples.is_empty() {
            continue;
        }
        if !any_error {
            out.push_str("<h2>Errors</h2><table><tr><th class=l>operation</th><th class=l>class</th><th class=l>message</th></tr>");
            any_error = true;
        }
        for e in &s.error_samples {
            let _ = write!(
                out,
                "<tr><td class=l>{}</td><td class=l>{}</td><td class=l>{}</td></tr>",
                escape(op.as_str()),
                e.class.name(),
                escape(&e.message)
            );
        }
    }
    if any_error {
        out.push_str("</table>");
    }
}

/// Outage windows.
fn outages(r: &Report, out: &mut String) {
    if !r.outages.is_empty() {
        out.push_str("<h2>Outages</h2><table><tr><th>from (s)</th><th>to (s)</th><th>time to recover (s)</th><th class=l>errors</th><th>dropped</th><th>lowest ok/s</th></tr>");
        for o in &r.outages {
            let errors: Vec<String> = o.errors.iter().map(|(k, v)| format!("{k} {v}")).collect();
            let _ = write!(
                out,
                "<tr><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td class=l>{}</td><td>{}</td><td>{:.1}</td></tr>",
                o.from_s,
                o.to_s,
                o.duration_s,
                escape(&errors.join(", ")),
                o.dropped_backlog,
                o.min_ok_per_s
            );
        }
        out.push_str("</table>");
    }
}

/// Which instance served what.
fn instances(r: &Report, out: &mut String) {
    if r.instances.is_empty() {
        return;
    }
    out.push_str("<h2 id=instances>Instances</h2><table><tr><th class=l>instance</th><th class=l>served</th><th>read-only</th><th>ok/s</th><th>errors</th><th>p50 (ms)</th><th>p99 (ms)</th><th>max sessions</th></tr>");
    for i in &r.instances {
        let roles: Vec<&str> = i.roles.iter().map(|r| r.name()).collect();
        let peak = i.series.iter().map(|p| p[1]).fold(0.0, f64::max);
        let _ = write!(
            out,
            "<tr><td class=l>{}</td><td class=l>{}</td><td>{}</td><td>{:.1}</td><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{peak:.0}</td></tr>",
            escape(&i.name),
            escape(&roles.join(" + ")),
            escape(&i.read_only_text(r.duration_s).unwrap_or_else(|| "no".into())),
            i.ok_per_s,
            i.errors,
            i.p50_ms,
            i.p99_ms
        );
    }
    out.push_str("</table>");
}

/// What each outage or failover cost the sessions: downtime per session, by worker.
fn availability(r: &Report, out: &mut String) {
    if r.availability.windows.is_empty() {
        return;
    }
    out.push_str("<h2 id=availability>Availability (per session: first failure to first success after)</h2><table><tr><th class=l>endpoint</th><th>from (s)</th><th>to (s)</th><th>sessions down</th><th>not recovered</th><th>downtime p50 (ms)</th><th>p99 (ms)</th><th>max (ms)</th><th class=l>operations failed</th><th>rate back after (s)</th><th class=l>instance before → after</th><th class=l>per worker (max ms)</th></tr>");
    for w in &r.availability.windows {
        let failed: Vec<String> = w.failed.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let workers: Vec<String> = w
            .per_worker
            .iter()
            .map(|d| format!("{} {:.0}", d.name, d.downtime_ms.max))
            .collect();
        let _ = write!(
            out,
            "<tr><td class=l>{}</td><td>{:.1}</td><td>{:.1}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td class=l>{}</td><td>{}</td><td class=l>{}</td><td class=l>{}</td></tr>",
            w.role.name(),
            w.from_s,
            w.to_s,
            w.sessions,
            w.unrecovered,
            w.downtime_ms.p50,
            w.downtime_ms.p99,
            w.downtime_ms.max,
            escape(&failed.join(", ")),
            w.rate_back_s.map_or("—".to_string(), |s| format!("{s:.1}")),
            escape(&format!(
                "{} → {}",
                w.instance_before.as_deref().unwrap_or("?"),
                w.instance_after.as_deref().unwrap_or("?")
            )),
            escape(&workers.join(", "))
        );
    }
    out.push_str("</table>");
}

/// Each stage's planned and measured load.
fn stages(r: &Report, out: &mut String) {
    if !r.stages.is_empty() {
        out.push_str("<h2>Stages</h2><table><tr><th>#</th><th class=l>stage</th><th>from (s)</th><th>to (s)</th><th>ok/s</th><th>p50</th><th>p99</th><th>max</th><th>errors</th></tr>");
        for st in &r.stages {
            let _ = write!(
                out,
                "<tr><td>{}</td><td class=l>{}</td><td>{:.1}</td><td>{:.1}</td>",
                st.index,
                escape(&match (st.overridden, st.offered_from, st.offered_to) {
                    (true, Some(from), Some(to)) => format!(
                        "{} (overridden by a live change: offered {from:.0} → {to:.0})",
                        st.description
                    ),
                    _ => st.description.clone(),
                }),
                st.start_s,
                st.end_s
            );
            match &st.all {
                Some(a) => {
                    let _ = write!(
                        out,
                        "<td>{:.1}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                        a.ok_per_s,
                        ms(a.response_time.p50_ms),
                        ms(a.response_time.p99_ms),
                        ms(a.response_time.max_ms),
                        a.error_total
                    );
                }
                None => out.push_str("<td colspan=5 class=l>no measured interval</td></tr>"),
            }
        }
        out.push_str("</table>");
    }
}

/// Each threshold's verdict, and the live changes.
fn thresholds(r: &Report, out: &mut String) {
    out.push_str("<h2>Thresholds</h2>");
    if r.thresholds.is_empty() {
        out.push_str("<p class=meta>None set (plan keys <code>thresholds</code>, or <code>thresholds</code> in a stage).</p>");
    } else {
        out.push_str("<table><tr><th class=l>verdict</th><th class=l>threshold</th><th class=l>scope</th><th>measured</th></tr>");
        for t in &r.thresholds {
            let _ = write!(
                out,
                "<tr><td class=l><span class=\"badge {}\">{}</span></td><td class=l><code>{}</code></td><td class=l>{}</td><td>{}</td></tr>",
                if t.passed { "passed" } else { "failed" },
                if t.passed { "PASS" } else { "FAIL" },
                escape(&t.threshold),
                escape(&if t.overridden {
                    format!("{} (load overridden by a live change)", t.scope)
                } else {
                    t.scope.clone()
                }),
                escape(&t.measured_text())
            );
        }
        out.push_str("</table>");
    }
    if !r.changes.is_empty() {
        out.push_str("<h2>Live changes</h2><table><tr><th>t (s)</th><th class=l>change</th></tr>");
        for c in &r.changes {
            let _ = write!(
                out,
                "<tr><td>{:.1}</td><td class=l>{}</td></tr>",
                c.t_s,
                escape(&c.event)
            );
        }
        out.push_str("</table>");
    }
}

/// Each worker's clock offset and start.
fn clocks(r: &Report, out: &mut String) {
    out.push_str("<h2>Worker clocks</h2>");
    if r.workers.iter().all(|w| w.clock_offset_ms.is_none()) {
        out.push_str("<p class=meta>No clock estimate in this report.</p>");
    } else {
        out.push_str("<table><tr><th class=l>worker</th><th>offset</th><th>± uncertainty</th><th>probe round trip</th><th>started (vs planned)</th></tr>");
        for w in &r.workers {
            let f = |v: Option<f64>| v.map_or("—".to_string(), |x| format!("{x:+.3} ms"));
            let _ = write!(
                out,
                "<tr><td class=l>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&w.name),
                f(w.clock_offset_ms),
                w.clock_uncertainty_ms
                    .map_or("—".to_string(), |x| format!("{x:.3} ms")),
                w.clock_rtt_ms
                    .map_or("—".to_string(), |x| format!("{x:.3} ms")),
                f(w.start_delay_ms)
            );
        }
        out.push_str("</table>");
        if let Some(skew) = r.start_skew_ms {
            let _ = write!(
                out,
                "<p class=meta>Start skew across workers (clocks corrected): {skew:.3} ms.</p>"
            );
        }
    }
}

/// Who joined, left, and took over what.
fn membership(r: &Report, out: &mut String) {
    out.push_str("<h2>Membership</h2>");
    for line in r
        .gaps
        .iter()
        .map(GapJson::sentence)
        .chain(r.stalls.iter().map(StallJson::sentence))
    {
        let _ = write!(out, "<p class=failure>{}</p>", escape(&line));
    }
    if r.membership.is_empty() {
        out.push_str("<p class=meta>No worker joined late or was lost: the fleet was the same from start to end.</p>");
    } else {
        out.push_str("<table><tr><th>t (s)</th><th class=l>event</th></tr>");
        for m in &r.membership {
            let _ = write!(
                out,
                "<tr><td>{:.1}</td><td class=l>{}</td></tr>",
                m.t_s,
                escape(&m.event)
            );
        }
        out.push_str("</table>");
    }
}

/// The effective plan and the database's counters.
fn plan_and_counters(r: &Report, out: &mut String) {
    let plan = &r.plan;
    out.push_str("<h2>Effective plan</h2><table>");
    if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(plan) {
        for (k, v) in map {
            let shown = match (k.as_str(), &v) {
                ("target", serde_json::Value::String(s)) => fleetload_common::target::redact(s),
                (_, serde_json::Value::String(s)) => s.clone(),
                _ => v.to_string(),
            };
            let _ = write!(
                out,
                "<tr><th class=l>{}</th><td class=l><code>{}</code></td></tr>",
                escape(&k),
                escape(&shown)
            );
        }
    }
    out.push_str("</table><p class=meta>Passwords are never part of a plan: each worker reads its own from the variable <code>password_env</code> names or the Secrets Manager secret <code>password_secret</code> names, or mints an IAM token per connection (<code>auth = \"iam\"</code>).</p>");
    if let Some(cw) = &r.cloudwatch {
        let _ = write!(
            out,
            "<p class=meta>CloudWatch ({}, period {} s): {} series; points are drawn at the middle of their period.</p>",
            escape(cw.region.as_deref().unwrap_or("default region")),
            cw.period_s,
            cw.series.len()
        );
        for n in &cw.notes {
            let _ = write!(out, "<p class=meta>CloudWatch: {}</p>", escape(n));
        }
    }
    if let Some(why) = &r.database_counters.unavailable {
        let _ = write!(
            out,
            "<p class=meta>Database counters: not sampled ({}).</p>",
            escape(why)
        );
    }
    for g in &r.database_counters.gaps {
        let until = g
            .to_s
            .map_or("the end of the run".to_string(), |t| format!("{t:.1} s"));
        let _ = write!(
            out,
            "<p class=meta>Database counters unavailable from {:.1} s to {until} ({}): the counter chart has no points there.</p>",
            g.from_s,
            escape(&g.error)
        );
    }
    out.push_str("</body></html>\n");
}
