//! From a [`RawPlan`] to a [`Plan`]: every key checked at once, each error naming the
//! key, the bad value and what is allowed, so an invalid plan cannot exist past parsing.

use super::*;
use bounds::Span;
use load::{catch_up, load_of, run_time_of, stages_of, thresholds_of, warmup_of};

mod load;

fn duration(
    key: &'static str,
    raw: Option<&str>,
    default: Duration,
) -> Result<Duration, PlanError> {
    match raw {
        None => Ok(default),
        Some(s) => humantime::parse_duration(s.trim()).map_err(|e| {
            PlanError::invalid(
                key,
                format!("{s:?}"),
                format!("a duration like \"500ms\", \"30s\" or \"5m\" ({e})"),
            )
        }),
    }
}

fn within(key: &'static str, value: Duration, span: bounds::Span) -> Result<Duration, PlanError> {
    let bounds::Span { lo, hi } = span;
    if value < lo || value > hi {
        return Err(PlanError::invalid(
            key,
            humantime::format_duration(value),
            format!(
                "must be between {} and {}",
                humantime::format_duration(lo),
                humantime::format_duration(hi)
            ),
        ));
    }
    Ok(value)
}

/// The reader endpoint: of the target's kind (a replica of it), with sessions, and
/// with read operations in the mix to send there.
fn reader(
    raw: &RawPlan,
    target: &Target,
    sessions: u32,
    scenario: &ScenarioRef,
    mix: &[(OpName, u32)],
) -> Result<Option<Reader>, PlanError> {
    let Some(url) = raw.reader.as_deref() else {
        if let Some(n) = raw.reader_sessions {
            return Err(PlanError::invalid(
                "reader_sessions",
                n,
                "only used with `reader`: name the reader endpoint, or drop reader_sessions",
            ));
        }
        return Ok(None);
    };
    let url = &match raw.tls_ca.as_deref() {
        Some(ca) => crate::target::with_tls_ca(url, ca, "reader")?,
        None => url.to_string(),
    };
    let reader = Target::parse(url, None)
        .and_then(|r| r.with_login(target.login().clone()))
        .map_err(|e| PlanError::invalid("reader", format!("{url:?}"), e.to_string()))?;
    if reader.driver() != target.driver() || target.driver() == crate::target::Driver::Sqlite {
        return Err(PlanError::invalid(
            "reader",
            format!("{url:?}"),
            format!(
                "a reader endpoint of the same MySQL or PostgreSQL cluster as the target ({}); SQLite has no replicas",
                target
            ),
        ));
    }
    let reads = mix
        .iter()
        .any(|(op, w)| *w > 0 && scenario.role_of(op) == crate::scenario::Role::Read);
    if !reads {
        return Err(PlanError::invalid(
            "reader",
            format!("{url:?}"),
            format!(
                "the mix has no read operation to send there; {} reads with its read operations (a scenario file marks them role = \"read\")",
                scenario.name()
            ),
        ));
    }
    let n = raw.reader_sessions.unwrap_or(sessions);
    if !(1..=MAX_SESSIONS).contains(&n) {
        return Err(PlanError::invalid(
            "reader_sessions",
            n,
            format!("between 1 and {MAX_SESSIONS} sessions per worker"),
        ));
    }
    Ok(Some(Reader {
        target: reader,
        sessions: n,
    }))
}

impl TryFrom<RawPlan> for Plan {
    type Error = PlanError;

    fn try_from(raw: RawPlan) -> Result<Self, PlanError> {
        let (target, cloudwatch) = target_of(&raw)?;
        let scenario = scenario_of(&raw, &target)?;
        let mix = mix_of(&raw, &scenario)?;
        let rows = rows_of(&raw, &scenario)?;
        let batch = raw.batch.unwrap_or(DEFAULT_BATCH);
        if !(1..=MAX_BATCH).contains(&batch) {
            return Err(PlanError::invalid("batch", batch, format!("rows per batched model request, between 1 and {MAX_BATCH} (Aurora's MAX_BATCH_SIZE default is 10000)")));
        }
        let (ml, standin) = ml_of(&raw, &target, &scenario)?;
        let sessions = raw.sessions.unwrap_or(DEFAULT_SESSIONS);
        if !(1..=MAX_SESSIONS).contains(&sessions) {
            return Err(PlanError::invalid(
                "sessions",
                sessions,
                format!("between 1 and {MAX_SESSIONS} sessions per worker"),
            ));
        }
        let load = load_of(&raw)?;
        let interval = within(
            "interval",
            duration("interval", raw.interval.as_deref(), DEFAULT_INTERVAL)?,
            bounds::INTERVAL,
        )?;
        let operation_names: Vec<String> = mix.iter().map(|(o, _)| o.to_string()).collect();
        let op_refs: Vec<&str> = operation_names.iter().map(String::as_str).collect();
        let thresholds = thresholds_of("thresholds", &raw.thresholds, &op_refs)?;
        let (stages, at, start_value) = stages_of(&raw, &load, &op_refs)?;
        let run_time = run_time_of(&raw, &stages, at, &load, start_value, interval)?;
        let warmup = warmup_of(&raw, run_time, interval)?;
        let Timeouts {
            op_timeout,
            connect_timeout,
            lease,
            max_connection_age,
            on_worker_loss,
            checkpoint,
            rejoin,
        } = timeouts_of(&raw)?;
        let catch_up = catch_up(&raw, &load)?;
        let connect_rate = connect_rate_of(&raw)?;

        let reader = reader(&raw, &target, sessions, &scenario, &mix)?;
        let tpcc_wait = tpcc_wait_of(&raw, &scenario, &load)?;
        Ok(Plan {
            target,
            reader,
            scenario,
            mix,
            rows,
            rows_given: raw.rows.is_some() || raw.warehouses.is_some(),
            batch,
            ml,
            standin,
            sessions,
            load,
            duration: run_time,
            warmup,
            interval,
            seed: raw.seed.unwrap_or(DEFAULT_SEED),
            op_timeout,
            connect_timeout,
            connect_rate,
            lease,
            max_connection_age,
            on_worker_loss,
            checkpoint,
            rejoin,
            catch_up,
            stages,
            thresholds,
            cloudwatch,
            tpcc_wait,
            abort_on_fail: abort_on_fail_of(&raw)?,
        })
    }
}

/// The target, its login and TLS, and CloudWatch's settings.
fn target_of(raw: &RawPlan) -> Result<(Target, Option<CloudWatchPlan>), PlanError> {
    let target_url = raw.target.as_deref().ok_or(PlanError::Missing {
        key: "target",
        hint: "e.g. --target mysql://root@127.0.0.1:3306/test, postgres://postgres@127.0.0.1/test or sqlite://fleetload.db",
    })?;
    let login = super::aws::login(
        raw.auth,
        raw.password_env.as_deref(),
        raw.password_secret.as_deref(),
        raw.region.as_deref(),
        raw.cloudwatch.is_some(),
    )?;
    let target_url = match raw.tls_ca.as_deref() {
        Some(ca) => crate::target::with_tls_ca(target_url, ca, "target")?,
        None => target_url.to_string(),
    };
    let target = Target::parse(&target_url, None)?.with_login(login)?;
    let cloudwatch = super::aws::cloudwatch(raw.cloudwatch.as_ref(), raw.region.as_deref())?;
    Ok((target, cloudwatch))
}

/// The built-in scenario or scenario file the plan names (checked against the target's
/// dialect).
fn scenario_of(raw: &RawPlan, target: &Target) -> Result<ScenarioRef, PlanError> {
    let scenario_name = raw.scenario.as_deref().unwrap_or("point_select");
    let scenario = if is_scenario_file(scenario_name) {
        let file = ScenarioFile::from_file(Path::new(scenario_name))?;
        file.check_dialect(target.driver())?;
        ScenarioRef::File(std::sync::Arc::new(file))
    } else {
        ScenarioRef::Builtin(Scenario::from_name(scenario_name).ok_or_else(|| {
            PlanError::invalid(
                "scenario",
                format!("{scenario_name:?}"),
                format!(
                    "one of: {}, or the path of a scenario file ending in .toml",
                    scenario_names()
                ),
            )
        })?)
    };
    Ok(scenario)
}

/// The operations and their weights: the plan's, or the scenario's default.
fn mix_of(raw: &RawPlan, scenario: &ScenarioRef) -> Result<Vec<(OpName, u32)>, PlanError> {
    Ok(match &raw.mix {
        None => scenario.default_mix(),
        Some(m) => {
            let mut mix = Vec::new();
            let operations = scenario.operations();
            for (name, weight) in m {
                let op = operations
                    .iter()
                    .find(|op| op.as_str() == name)
                    .cloned()
                    .ok_or_else(|| {
                        let names: Vec<_> = operations.iter().map(OpName::as_str).collect();
                        PlanError::invalid(
                            "mix",
                            format!("{name:?}"),
                            format!(
                                "scenario {} has the operations: {}",
                                scenario.name(),
                                names.join(", ")
                            ),
                        )
                    })?;
                if *weight > 0 {
                    mix.push((op, *weight));
                }
            }
            if mix.is_empty() {
                return Err(PlanError::invalid(
                    "mix",
                    format!("{m:?}"),
                    "at least one operation needs a weight above 0",
                ));
            }
            mix
        }
    })
}

/// The key space: rows, or TPC-C's warehouses.
fn rows_of(raw: &RawPlan, scenario: &ScenarioRef) -> Result<u64, PlanError> {
    let tpcc = scenario.builtin() == Some(Scenario::Tpcc);
    let rows = match (raw.warehouses, raw.rows) {
        (Some(w), _) if !tpcc => {
            return Err(PlanError::invalid(
                "warehouses",
                w,
                format!(
                    "only the tpcc scenario has warehouses; {} counts rows (`rows`)",
                    scenario.name()
                ),
            ))
        }
        (Some(w), Some(r)) if w != r => {
            return Err(PlanError::invalid(
                "warehouses",
                w,
                format!(
                    "the plan also says rows = {r}; for tpcc they are the same key space: give one"
                ),
            ))
        }
        (Some(w), _) => w,
        (None, r) => r.unwrap_or_else(|| scenario.default_rows()),
    };
    if tpcc && rows > 100_000 {
        return Err(PlanError::invalid(
            "warehouses",
            rows,
            "between 1 and 100000 (each is about 500 000 rows, 70 MB)",
        ));
    }
    if !(1..=10_000_000_000).contains(&rows) {
        return Err(PlanError::invalid(
            "rows",
            rows,
            "between 1 and 10000000000",
        ));
    }
    Ok(rows)
}

/// Aurora ML or the stand-in, and the stand-in's settings (only for churn on the
/// stand-in).
fn ml_of(
    raw: &RawPlan,
    target: &Target,
    scenario: &ScenarioRef,
) -> Result<(MlMode, StandIn), PlanError> {
    let ml = match (raw.ml.unwrap_or(MlKind::Standin), &raw.ml_endpoint) {
        (MlKind::Standin, None) => MlMode::StandIn,
        (MlKind::Standin, Some(e)) => return Err(PlanError::invalid("ml_endpoint", format!("{e:?}"), "only used with ml = \"aurora\"")),
        (MlKind::Aurora, _) if target.driver() == crate::target::Driver::Sqlite => {
            return Err(PlanError::invalid("ml", "\"aurora\"", "Aurora ML needs an Aurora MySQL or Aurora PostgreSQL target; SQLite has only the stand-in"))
        }
        (MlKind::Aurora, Some(e)) if !e.is_empty() && e.len() <= 63 && e.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') => {
            MlMode::Aurora { endpoint: e.clone() }
        }
        (MlKind::Aurora, Some(e)) => return Err(PlanError::invalid("ml_endpoint", format!("{e:?}"), "a SageMaker endpoint name: 1 to 63 letters, digits and hyphens")),
        (MlKind::Aurora, None) => return Err(PlanError::Missing { key: "ml_endpoint", hint: "ml = \"aurora\" needs the SageMaker endpoint name, e.g. --ml-endpoint auroraml-churn-endpoint" }),
    };
    let standin = StandIn {
        delay: raw
            .ml_delay
            .as_deref()
            .map(|d| {
                within(
                    "ml_delay",
                    duration("ml_delay", Some(d), Duration::ZERO)?,
                    bounds::ML_DELAY,
                )
            })
            .transpose()?,
        row_cost: raw
            .ml_row_cost
            .as_deref()
            .map(|d| {
                within(
                    "ml_row_cost",
                    duration("ml_row_cost", Some(d), Duration::ZERO)?,
                    bounds::ML_ROW_COST,
                )
            })
            .transpose()?,
        capacity: match raw.ml_capacity {
            Some(c) if !(1..=MAX_ML_CAPACITY).contains(&c) => {
                return Err(PlanError::invalid(
                    "ml_capacity",
                    c,
                    format!("requests served at once, between 1 and {MAX_ML_CAPACITY}"),
                ))
            }
            c => c,
        },
    };
    if !standin.is_empty() {
        let churn = matches!(
            scenario,
            ScenarioRef::Builtin(crate::scenario::Scenario::Churn)
        );
        let key = if raw.ml_delay.is_some() {
            "ml_delay"
        } else if raw.ml_row_cost.is_some() {
            "ml_row_cost"
        } else {
            "ml_capacity"
        };
        if !churn || !matches!(ml, MlMode::StandIn) {
            return Err(PlanError::invalid(key, "set", "the ML stand-in's settings apply to the churn scenario with ml = \"standin\"; leave them out here"));
        }
    }
    Ok((ml, standin))
}

/// TPC-C's keying and think times: only for tpcc, in closed loop.
fn tpcc_wait_of(
    raw: &RawPlan,
    scenario: &ScenarioRef,
    load: &LoadModel,
) -> Result<bool, PlanError> {
    let tpcc = scenario.builtin() == Some(Scenario::Tpcc);
    Ok(match raw.tpcc_wait {
    Some(true) if !tpcc => {
        return Err(PlanError::invalid(
            "tpcc_wait",
            "true",
            "keying and think times are TPC-C's: only with scenario = \"tpcc\"",
        ))
    }
    Some(true) if !matches!(*load, LoadModel::Closed { .. }) => {
        return Err(PlanError::invalid(
            "tpcc_wait",
            "true",
            "keying and think times pace the sessions themselves: use closed loop (no rate), with about 10 sessions per warehouse as the specification's terminals",
        ))
    }
    w => w.unwrap_or(false),
})
}

/// How long a failing threshold may fail before the run is stopped, when it is.
fn abort_on_fail_of(raw: &RawPlan) -> Result<Option<Duration>, PlanError> {
    Ok(match raw.abort_on_fail {
        Some(true) => Some(within(
            "abort_grace",
            duration(
                "abort_grace",
                raw.abort_grace.as_deref(),
                Duration::from_secs(10),
            )?,
            bounds::ABORT_GRACE,
        )?),
        _ if raw.abort_grace.is_some() => {
            return Err(PlanError::invalid(
                "abort_grace",
                raw.abort_grace.clone().unwrap_or_default(),
                "only used with abort_on_fail = true",
            ))
        }
        _ => None,
    })
}

/// How long operations, connections and silences may last, and when the run's state is
/// saved.
struct Timeouts {
    op_timeout: Duration,
    connect_timeout: Duration,
    lease: Duration,
    max_connection_age: Option<Duration>,
    on_worker_loss: OnWorkerLoss,
    checkpoint: Option<Duration>,
    rejoin: Option<Duration>,
}

fn timeouts_of(raw: &RawPlan) -> Result<Timeouts, PlanError> {
    let op_timeout = within(
        "op_timeout",
        duration("op_timeout", raw.op_timeout.as_deref(), DEFAULT_OP_TIMEOUT)?,
        bounds::OP_TIMEOUT,
    )?;
    let connect_timeout = within(
        "connect_timeout",
        duration(
            "connect_timeout",
            raw.connect_timeout.as_deref(),
            DEFAULT_CONNECT_TIMEOUT,
        )?,
        bounds::CONNECT_TIMEOUT,
    )?;
    let lease = within(
        "lease",
        duration("lease", raw.lease.as_deref(), DEFAULT_LEASE)?,
        bounds::LEASE,
    )?;
    let max_connection_age = match raw.max_connection_age.as_deref() {
        None => None,
        Some(text) => Some(within(
            "max_connection_age",
            duration("max_connection_age", Some(text), Duration::ZERO)?,
            bounds::MAX_CONNECTION_AGE,
        )?),
    };
    let on_worker_loss = raw.on_worker_loss.unwrap_or(OnWorkerLoss::Rebalance);
    let checkpoint = match duration("checkpoint", raw.checkpoint.as_deref(), DEFAULT_CHECKPOINT)? {
        d if d.is_zero() => None,
        d => Some(within("checkpoint", d, bounds::CHECKPOINT)?),
    };
    let rejoin = match raw.rejoin.as_deref().map(str::trim) {
        Some("off") => None,
        text => Some(within(
            "rejoin",
            duration("rejoin", text, lease)?,
            bounds::REJOIN,
        )?),
    };
    Ok(Timeouts {
        op_timeout,
        connect_timeout,
        lease,
        max_connection_age,
        on_worker_loss,
        checkpoint,
        rejoin,
    })
}

/// Sessions opened per second per worker.
fn connect_rate_of(raw: &RawPlan) -> Result<u32, PlanError> {
    let connect_rate = raw.connect_rate.unwrap_or(DEFAULT_CONNECT_RATE);
    if connect_rate == 0 {
        return Err(PlanError::invalid(
            "connect_rate",
            connect_rate,
            "sessions opened per second per worker, at least 1",
        ));
    }
    Ok(connect_rate)
}
