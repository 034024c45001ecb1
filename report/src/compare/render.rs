//! The comparison as a terminal table, as Markdown for a CI comment, or as JSON.

use super::{
    compare, not_compared, partial_runs, plan_differences, Change, Gate, GateError, GateResult,
    Noise,
};
use crate::Report;
use serde::Serialize;
use std::fmt::Write as _;

/// How `report compare` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Text,
    Markdown,
    Json,
}

#[derive(Serialize)]
struct RunRef<'a> {
    run_id: &'a str,
    started_at: &'a str,
    target: &'a str,
}

impl<'a> RunRef<'a> {
    fn of(r: &'a Report) -> Self {
        RunRef {
            run_id: &r.run_id,
            started_at: &r.started_at,
            target: r.plan.target.as_deref().unwrap_or("?"),
        }
    }
}

#[derive(Serialize)]
struct ChangeJson<'a> {
    operation: &'a str,
    metric: &'a str,
    base: f64,
    new: f64,
    delta: f64,
    change_pct: Option<f64>,
    /// `null` when a run has fewer than two measured intervals.
    noise: Option<f64>,
    significant: bool,
}

#[derive(Serialize)]
struct ComparisonJson<'a> {
    base: RunRef<'a>,
    new: RunRef<'a>,
    warnings: &'a [String],
    changes: Vec<ChangeJson<'a>>,
    not_compared: &'a [String],
    /// How the noise was bounded (`--noise`).
    noise: Noise,
    gates: &'a [GateResult],
    passed: bool,
}

fn pct(c: &Change) -> Option<f64> {
    (c.base != 0.0).then(|| c.delta / c.base * 100.0)
}

fn pct_text(c: &Change) -> String {
    pct(c).map_or_else(|| format!("{:+.3}", c.delta), |p| format!("{p:+.1}%"))
}

fn noise_text(c: &Change) -> String {
    if c.noise.is_finite() {
        format!("{:.3}", c.noise)
    } else {
        "unknown".into()
    }
}

fn noise_note(noise: Noise) -> String {
    match noise {
        Noise::Off => "* the change is not zero (--noise off: no change is put down to noise).".into(),
        n => format!("* the change is larger than the noise: twice the standard error of the two runs' interval series (about 95 %, robust to wild intervals), {n}."),
    }
}

/// The comparison as a table, without gates.
pub fn render(base: &Report, new: &Report) -> String {
    render_with(base, new, &[], Format::Text, Noise::Auto)
        .map_or_else(|e| e.to_string(), |(text, _)| text)
}

/// The comparison in `format`, judged by `gates`; and whether every gate passed.
///
/// # Errors
/// A gate names an operation that is not in both reports.
pub fn render_with(
    base: &Report,
    new: &Report,
    gates: &[Gate],
    format: Format,
    noise: Noise,
) -> Result<(String, bool), GateError> {
    let changes = compare(base, new, noise);
    let mut verdicts = Vec::new();
    for g in gates {
        verdicts.extend(g.judge(&changes, base, new)?);
    }
    let passed = verdicts.iter().all(|v| !v.failed);
    let warnings: Vec<String> = partial_runs(base, new)
        .into_iter()
        .chain(
            plan_differences(base, new)
                .into_iter()
                .map(|d| format!("the plans differ, {d}")),
        )
        .collect();
    let only = not_compared(base, new);
    let note = noise_note(noise);
    let out = match format {
        Format::Text => text(base, new, &changes, &warnings, &only, &verdicts, &note),
        Format::Markdown => markdown(base, new, &changes, &warnings, &only, &verdicts, &note),
        Format::Json => {
            let json = ComparisonJson {
                base: RunRef::of(base),
                new: RunRef::of(new),
                warnings: &warnings,
                changes: changes
                    .iter()
                    .map(|c| ChangeJson {
                        operation: &c.operation,
                        metric: c.metric,
                        base: c.base,
                        new: c.new,
                        delta: c.delta,
                        change_pct: pct(c),
                        noise: c.noise.is_finite().then_some(c.noise),
                        significant: c.significant,
                    })
                    .collect(),
                not_compared: &only,
                noise,
                gates: &verdicts,
                passed,
            };
            let mut s = serde_json::to_string_pretty(&json).unwrap_or_default();
            s.push('\n');
            s
        }
    };
    Ok((out, passed))
}

/// "every gate passed", or how many gate checks failed.
fn gate_summary(verdicts: &[GateResult], passed: &str, failed_word: &str) -> String {
    match verdicts.iter().filter(|v| v.failed).count() {
        0 => passed.to_string(),
        1 => format!("1 gate check {failed_word}"),
        n => format!("{n} gate checks {failed_word}"),
    }
}

fn text(
    base: &Report,
    new: &Report,
    changes: &[Change],
    warnings: &[String],
    only: &[String],
    verdicts: &[GateResult],
    note: &str,
) -> String {
    let mut out = String::new();
    for w in warnings {
        let _ = writeln!(out, "WARNING: {w}");
    }
    for (tag, r) in [("base", base), ("new ", new)] {
        let _ = writeln!(
            out,
            "{tag} {}  ({}, {})",
            r.run_id,
            r.started_at,
            r.plan.target.as_deref().unwrap_or("?")
        );
    }
    let _ = writeln!(
        out,
        "\n  {:<22} {:<9} {:>12} {:>12} {:>10} {:>12}",
        "operation", "metric", "base", "new", "change", "noise (±)"
    );
    for c in changes {
        let _ = writeln!(
            out,
            "  {:<22} {:<9} {:>12.3} {:>12.3} {:>10} {:>12} {}",
            c.operation,
            c.metric,
            c.base,
            c.new,
            pct_text(c),
            noise_text(c),
            if c.significant { "*" } else { "" }
        );
    }
    if !only.is_empty() {
        let _ = writeln!(out, "\nnot compared: {}", only.join(", "));
    }
    let _ = writeln!(out, "\n{note}");
    if !verdicts.is_empty() {
        let _ = writeln!(out);
        for v in verdicts {
            let _ = writeln!(out, "gate {:?} on {}: {}", v.gate, v.operation, v.verdict);
        }
        let _ = writeln!(
            out,
            "{}",
            gate_summary(verdicts, "every gate passed", "FAILED")
        );
    }
    out
}

fn markdown(
    base: &Report,
    new: &Report,
    changes: &[Change],
    warnings: &[String],
    only: &[String],
    verdicts: &[GateResult],
    note: &str,
) -> String {
    let cell = |s: &str| s.replace('|', "\\|");
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### fleetload: `{}` against base `{}`\n",
        cell(&new.run_id),
        cell(&base.run_id)
    );
    for w in warnings {
        let _ = writeln!(out, "> **Warning:** {}", cell(w));
    }
    if !warnings.is_empty() {
        out.push('\n');
    }
    if !verdicts.is_empty() {
        let failed = verdicts.iter().filter(|v| v.failed).count();
        let _ = writeln!(
            out,
            "**{}**\n",
            gate_summary(verdicts, "Every gate passed", "failed")
        );
        for v in verdicts.iter().filter(|v| v.failed) {
            let _ = writeln!(out, "- ❌ `{}` {}", cell(&v.gate), cell(&v.verdict));
        }
        if failed > 0 {
            out.push('\n');
        }
    }
    out.push_str("| operation | metric | base | new | change | noise (±) | |\n|---|---|---:|---:|---:|---:|---|\n");
    for c in changes {
        let _ = writeln!(
            out,
            "| {} | {} | {:.3} | {:.3} | {} | {} | {} |",
            cell(&c.operation),
            c.metric,
            c.base,
            c.new,
            pct_text(c),
            noise_text(c),
            if c.significant { "*" } else { "" }
        );
    }
    if !only.is_empty() {
        let _ = writeln!(out, "\nNot compared: {}", cell(&only.join(", ")));
    }
    let _ = writeln!(out, "\n{note}");
    out
}
