//! The plan's load over time: open or closed loop, the stages and their thresholds,
//! how long the run lasts and its warm-up, and the catch-up after a stall.

use super::*;

/// `catch_up` and `catch_up_factor`: the factor while pacing, `None` for a burst.
pub(super) fn catch_up(raw: &RawPlan, load: &LoadModel) -> Result<Option<f64>, PlanError> {
    let factor = raw.catch_up_factor;
    if let Some(f) = factor {
        if !f.is_finite() || !(1.0..=100.0).contains(&f) {
            return Err(PlanError::invalid(
                "catch_up_factor",
                f,
                "a multiple of the worker's rate between 1 and 100, e.g. 2",
            ));
        }
        if raw.catch_up == Some(super::CatchUp::Burst) {
            return Err(PlanError::invalid(
                "catch_up_factor",
                f,
                "only used with catch_up = \"pace\"",
            ));
        }
    }
    if !matches!(load, LoadModel::Open { .. }) && (factor.is_some() || raw.catch_up.is_some()) {
        return Err(PlanError::invalid(
            "catch_up",
            "set",
            "only used in open loop (a rate); a closed loop has no schedule to catch up on",
        ));
    }
    if !matches!(load, LoadModel::Open { .. }) {
        return Ok(None);
    }
    Ok(match raw.catch_up.unwrap_or(super::CatchUp::Pace) {
        super::CatchUp::Pace => Some(factor.unwrap_or(DEFAULT_CATCH_UP_FACTOR)),
        super::CatchUp::Burst => None,
    })
}

/// Open loop at a rate or closed loop with a think time.
pub(super) fn load_of(raw: &RawPlan) -> Result<LoadModel, PlanError> {
    let mode = raw.mode.unwrap_or(if raw.rate.is_some() {
        Mode::Open
    } else {
        Mode::Closed
    });
    let staged = raw.stage.as_ref().is_some_and(|s| !s.is_empty());
    let load = match mode {
        Mode::Open => {
            let rate = match (raw.rate, staged) {
                (Some(r), _) => r,
                // Stages without a starting rate start from 0.
                (None, true) => 0.0,
                (None, false) => {
                    return Err(PlanError::Missing {
                        key: "rate",
                        hint: "open-loop load needs a cluster rate in operations per second, e.g. --rate 2000 (or mode = \"closed\")",
                    })
                }
            };
            if !rate.is_finite() || rate < 0.0 || (rate == 0.0 && !staged) || rate > MAX_RATE {
                return Err(PlanError::invalid(
                    "rate",
                    rate,
                    format!(
                        "operations per second across the cluster, above 0 and at most {MAX_RATE}"
                    ),
                ));
            }
            if raw.think_time.is_some() {
                return Err(PlanError::invalid(
                    "think_time",
                    raw.think_time.clone().unwrap_or_default(),
                    "only closed-loop load has a think time; drop it or set mode = \"closed\"",
                ));
            }
            let max_backlog = within(
                "max_backlog",
                duration(
                    "max_backlog",
                    raw.max_backlog.as_deref(),
                    DEFAULT_MAX_BACKLOG,
                )?,
                bounds::MAX_BACKLOG,
            )?;
            let arrival = raw.arrival.unwrap_or(Arrival::Uniform);
            LoadModel::Open {
                rate,
                arrival,
                max_backlog,
            }
        }
        Mode::Closed => {
            if let Some(rate) = raw.rate {
                return Err(PlanError::invalid(
                    "rate",
                    rate,
                    "closed-loop load has no rate; drop it or set mode = \"open\"",
                ));
            }
            let think_time = within(
                "think_time",
                duration("think_time", raw.think_time.as_deref(), Duration::ZERO)?,
                bounds::THINK_TIME,
            )?;
            LoadModel::Closed { think_time }
        }
    };
    Ok(load)
}

/// Thresholds as the plan gives them, for the run or one stage (`key`).
pub(super) fn thresholds_of(
    key: &'static str,
    list: &Option<Vec<String>>,
    op_refs: &[&str],
) -> Result<Vec<Threshold>, PlanError> {
    let list = list.as_deref().unwrap_or_default();
    if list.len() > 100 {
        return Err(PlanError::invalid(
            key,
            format!("{} thresholds", list.len()),
            "at most 100",
        ));
    }
    list.iter()
        .map(|t| {
            Threshold::parse(t, op_refs).map_err(|e| PlanError::invalid(key, format!("{t:?}"), e))
        })
        .collect()
}

/// The stages in order, where they end (their sum), and the value the first starts
/// from.
pub(super) fn stages_of(
    raw: &RawPlan,
    load: &LoadModel,
    op_refs: &[&str],
) -> Result<(Vec<Stage>, Duration, f64), PlanError> {
    let (start_value, unit_max) = match *load {
        LoadModel::Open { rate, .. } => (rate, MAX_RATE),
        LoadModel::Closed { .. } => (0.0, f64::from(MAX_SESSIONS) * 10_000.0),
    };
    let mut stages = Vec::new();
    let mut at = Duration::ZERO;
    let mut current = start_value;
    let raw_stages = raw.stage.as_deref().unwrap_or_default();
    if raw_stages.len() > MAX_STAGES {
        return Err(PlanError::invalid(
            "stage",
            format!("{} stages", raw_stages.len()),
            format!("at most {MAX_STAGES}"),
        ));
    }
    for (i, st) in raw_stages.iter().enumerate() {
        let n = i + 1;
        let (kind, from, to, length) = stage_shape(n, st, current, unit_max)?;
        stages.push(Stage {
            kind,
            start: at,
            duration: length,
            from,
            to,
            thresholds: thresholds_of("stage", &st.thresholds, op_refs)?,
        });
        at += length;
        current = to;
    }
    Ok((stages, at, start_value))
}

/// How long the run lasts: `duration`, or the stages' sum (which `duration` may repeat).
pub(super) fn run_time_of(
    raw: &RawPlan,
    stages: &[Stage],
    at: Duration,
    load: &LoadModel,
    start_value: f64,
    interval: Duration,
) -> Result<Duration, PlanError> {
    Ok(if stages.is_empty() {
        within(
            "duration",
            duration("duration", raw.duration.as_deref(), DEFAULT_DURATION)?,
            Span {
                lo: interval,
                hi: bounds::LONGEST_RUN,
            },
        )?
    } else {
        if let Some(d) = raw.duration.as_deref() {
            let given = duration("duration", Some(d), DEFAULT_DURATION)?;
            if given != at {
                return Err(PlanError::invalid("duration", d, format!("the stages last {}; drop `duration` (it is the stages' sum) or make them add up", humantime::format_duration(at))));
            }
        }
        if matches!(load, LoadModel::Open { .. })
            && stages.iter().all(|s| s.to == 0.0)
            && start_value == 0.0
        {
            return Err(PlanError::invalid(
                "stage",
                "every rate 0",
                "at least one stage must offer load",
            ));
        }
        within(
            "stage",
            at,
            Span {
                lo: interval,
                hi: bounds::LONGEST_RUN,
            },
        )?
    })
}

/// The warm-up: shorter than the run, a whole number of intervals.
pub(super) fn warmup_of(
    raw: &RawPlan,
    run_time: Duration,
    interval: Duration,
) -> Result<Duration, PlanError> {
    let warmup = duration("warmup", raw.warmup.as_deref(), Duration::ZERO)?;
    if warmup >= run_time {
        return Err(PlanError::invalid(
            "warmup",
            humantime::format_duration(warmup),
            format!(
                "must be shorter than the duration ({})",
                humantime::format_duration(run_time)
            ),
        ));
    }
    if warmup.as_nanos() % interval.as_nanos() != 0 {
        return Err(PlanError::invalid("warmup", humantime::format_duration(warmup), format!("must be a whole number of intervals ({} each), so intervals are either warm-up or measured", humantime::format_duration(interval))));
    }
    Ok(warmup)
}

/// Stage `n`'s kind, the values it goes from and to, and its length, starting from
/// `current`.
fn stage_shape(
    n: usize,
    st: &RawStage,
    current: f64,
    unit_max: f64,
) -> Result<(StageKind, f64, f64, Duration), PlanError> {
    let value = |v: f64| -> Result<f64, PlanError> {
        if v.is_finite() && (0.0..=unit_max).contains(&v) {
            Ok(v)
        } else {
            Err(PlanError::invalid(
                "stage",
                format!("stage {n}: {v}"),
                format!("a value between 0 and {unit_max}"),
            ))
        }
    };
    let dur = |d: &Option<String>| -> Result<Duration, PlanError> {
        match d {
            None => Ok(Duration::ZERO),
            Some(text) => humantime::parse_duration(text.trim()).map_err(|e| {
                PlanError::invalid(
                    "stage",
                    format!("stage {n}: {text:?}"),
                    format!("a duration like \"30s\" or \"5m\" ({e})"),
                )
            }),
        }
    };
    Ok(match (st.ramp.as_ref(), st.step, st.hold.as_ref()) {
        (Some(_), None, None) => {
            let to = value(st.to.ok_or_else(|| PlanError::invalid("stage", format!("stage {n}: ramp without `to`"), "a ramp needs the value it ramps to, e.g. { ramp = \"60s\", to = 5000 }"))?)?;
            (StageKind::Ramp, current, to, dur(&st.ramp)?)
        }
        (None, Some(step), hold) => {
            if st.to.is_some() {
                return Err(PlanError::invalid("stage", format!("stage {n}"), "a step names its value in `step`; `to` belongs to ramps"));
            }
            let v = value(step)?;
            (StageKind::Step, v, v, dur(&hold.cloned())?)
        }
        (None, None, Some(hold)) => {
            if st.to.is_some() {
                return Err(PlanError::invalid("stage", format!("stage {n}"), "a hold keeps the current value; use a step or a ramp to change it"));
            }
            (StageKind::Hold, current, current, dur(&Some(hold.clone()))?)
        }
        _ => {
            return Err(PlanError::invalid(
                "stage",
                format!("stage {n}"),
                "give exactly one of { ramp = \"60s\", to = 5000 }, { hold = \"2m\" } or { step = 8000, hold = \"1m\" }",
            ))
        }
    })
}
