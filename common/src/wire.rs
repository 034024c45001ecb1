//! Conversions between generated proto messages and domain types.
//!
//! Everything that arrives over the wire passes through a `TryFrom` here, which checks
//! every field against bounds and returns a [`WireError`] naming the field. Nothing
//! generated travels past the edge of the coordinator or the worker.

use crate::outcome::ErrorClass;
use crate::plan::bounds::{self, Span};
use crate::plan::{MAX_RATE, MAX_SESSIONS};
use crate::profile::Profile;
use crate::scenario::{OpName, Scenario};
use crate::scenario_file::ScenarioFile;
use crate::scenario_ref::ScenarioRef;
use crate::split::Shard;
use crate::stats::{ErrorSample, OpStats, OpTotals};
use crate::target::Target;
use crate::WireError;
use fleetload_proto::v1 as pb;
use std::time::Duration;

mod measure;
pub use measure::{event_from_wire, event_to_wire};
mod messages;

pub use messages::*;

/// Longest error message carried per sample.
pub const MAX_ERROR_MESSAGE: usize = 1024;
const MAX_OPERATIONS: usize = 64;
/// Longest file path a worker may name (its spool).
pub const MAX_PATH: usize = 4096;

/// What a worker says of itself when it joins.
#[derive(Debug, Clone, PartialEq)]
pub struct Hello {
    pub protocol_version: u32,
    pub name: String,
    pub host: String,
    pub cores: u32,
    pub max_sessions: u32,
    /// Relative capacity: the worker's weight in the rate and key split.
    pub capacity: f64,
    /// Set when a worker rejoins its run after a broken stream.
    pub rejoin: Option<Rejoin>,
}

/// The slot a rejoining worker claims, and the proof that it is the slot's holder.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejoin {
    pub run_id: String,
    pub worker_index: u32,
    /// The `resume_secret` of the slot's Assignment.
    pub secret: ResumeSecret,
    /// Where it spools what it cannot deliver.
    pub spool: String,
}

/// A slot's resume secret: only the coordinator and the slot's holder know it, so a
/// holder of the fleet token alone cannot take over a running worker's slot. Its Debug
/// prints `***` so that no log line carries it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ResumeSecret(pub String);

impl std::fmt::Debug for ResumeSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Longest resume secret accepted (the coordinator makes 32 hex digits).
pub const MAX_RESUME_SECRET: usize = 128;

/// One worker's share of the load.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkerLoad {
    Open {
        /// Operations per second over time.
        profile: Profile,
        arrival: crate::schedule::Arrival,
        /// Uniform arrivals: the first is due when the rate's integral reaches this
        /// fraction of one operation, so the workers interleave.
        phase: f64,
        max_backlog: Duration,
        /// Arrivals missed during a stall of the worker itself go out at no more than
        /// this multiple of its rate (`None`: all at once).
        catch_up: Option<f64>,
    },
    Closed {
        think_time: Duration,
        /// Active sessions over time; `None`: every session, all run long.
        sessions: Option<Profile>,
        /// TPC-C's keying and think times around each transaction.
        tpcc_wait: bool,
    },
}

/// This host's wall clock, Unix nanoseconds: the unit of every instant on the wire.
pub fn unix_nanos_now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    )
    .unwrap_or(i64::MAX)
}

/// Points for the wire.
pub fn profile_points(p: &Profile) -> Vec<pb::ProfilePoint> {
    p.points()
        .iter()
        .map(|(t, v)| pb::ProfilePoint { t_s: *t, value: *v })
        .collect()
}

/// A profile from the wire, with every value at most `max`.
///
/// # Errors
/// Too many points, times going backwards, or a value out of bounds.
pub fn profile_from(
    field: &'static str,
    points: &[pb::ProfilePoint],
    max: f64,
) -> Result<Profile, WireError> {
    // NaN is caught by Profile::from_points; here only values above the bound.
    if let Some(p) = points.iter().find(|p| p.value > max) {
        return Err(WireError::invalid(
            field,
            format!("value {} is above {max}", p.value),
        ));
    }
    Profile::from_points(points.iter().map(|p| (p.t_s, p.value)).collect())
        .map_err(|e| WireError::invalid(field, e))
}

/// Everything a worker needs to run its part of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    pub run_id: String,
    pub worker_index: u32,
    pub target: Target,
    pub scenario: ScenarioRef,
    pub mix: Vec<(OpName, u32)>,
    pub shard: Shard,
    pub rows: u64,
    pub insert_id_base: u64,
    pub insert_id_stride: u64,
    pub batch_size: u32,
    /// True when the target's `will_churn` is a real Aurora ML function.
    pub aurora_ml: bool,
    /// Load the rows of `shard` before reporting ready.
    pub load_rows: bool,
    pub lease: Duration,
    pub sessions: u32,
    pub load: WorkerLoad,
    pub duration: Duration,
    pub interval: Duration,
    pub seed: u64,
    pub connect_rate: u32,
    pub op_timeout: Duration,
    pub connect_timeout: Duration,
    /// Presented on a rejoin: proves the rejoining stream is this slot's holder.
    pub resume_secret: ResumeSecret,
    /// Reconnect a session after this long (with jitter); `None`: keep connections.
    pub max_connection_age: Option<Duration>,
    /// The reader endpoint and the sessions to open there.
    pub reader: Option<crate::plan::Reader>,
    /// The plan's hash, named in the worker's spool.
    pub plan_hash: String,
    /// How long after the planned end a worker that lost its coordinator keeps trying
    /// to rejoin (`None`: it stops and spools after a lease).
    pub rejoin_after_end: Option<Duration>,
}

/// One interval of one worker.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub run_id: String,
    pub worker_index: u32,
    pub sequence: u64,
    pub interval_index: u64,
    pub operations: Vec<(OpName, OpStats)>,
    /// What happened to a session or to the worker, placed in this interval (see
    /// [`crate::events`]).
    pub events: Vec<crate::events::WorkerEvent>,
}

/// A worker's closing message: what it executed, so the merge can be proven.
#[derive(Debug, Clone, PartialEq)]
pub struct Done {
    pub run_id: String,
    pub worker_index: u32,
    pub snapshots_sent: u64,
    pub totals: Vec<(OpName, OpTotals)>,
    pub inserted: u64,
    pub insert_id_base: u64,
    pub insert_id_last: u64,
    /// When its first operation started, on the worker's clock (Unix nanoseconds).
    pub first_op_unix_nanos: Option<i64>,
}

fn text(field: &'static str, s: String, max: usize) -> Result<String, WireError> {
    if s.len() > max {
        return Err(WireError::invalid(
            field,
            format!("{} bytes, at most {max} allowed", s.len()),
        ));
    }
    Ok(s)
}

fn millis(field: &'static str, ms: u64, span: Span) -> Result<Duration, WireError> {
    let Span { lo, hi } = span;
    let d = Duration::from_millis(ms);
    if d < lo || d > hi {
        return Err(WireError::invalid(
            field,
            format!("{ms} ms is outside {lo:?}..={hi:?}"),
        ));
    }
    Ok(d)
}

fn operation(field: &'static str, name: &str) -> Result<OpName, WireError> {
    OpName::new(name).map_err(|e| WireError::invalid(field, e))
}

fn error_counts(field: &'static str, v: &[u64]) -> Result<[u64; ErrorClass::COUNT], WireError> {
    if v.len() > ErrorClass::COUNT {
        return Err(WireError::invalid(
            field,
            format!(
                "{} error classes, at most {} exist",
                v.len(),
                ErrorClass::COUNT
            ),
        ));
    }
    let mut out = [0; ErrorClass::COUNT];
    out[..v.len()].copy_from_slice(v);
    Ok(out)
}

impl From<&Hello> for pb::Hello {
    fn from(h: &Hello) -> Self {
        pb::Hello {
            protocol_version: h.protocol_version,
            name: h.name.clone(),
            host: h.host.clone(),
            cores: h.cores,
            max_sessions: h.max_sessions,
            capacity: h.capacity,
            rejoin_run_id: h
                .rejoin
                .as_ref()
                .map(|r| r.run_id.clone())
                .unwrap_or_default(),
            rejoin_worker_index: h.rejoin.as_ref().map_or(0, |r| r.worker_index),
            rejoin_secret: h
                .rejoin
                .as_ref()
                .map(|r| r.secret.0.clone())
                .unwrap_or_default(),
            rejoin_spool: h
                .rejoin
                .as_ref()
                .map(|r| r.spool.clone())
                .unwrap_or_default(),
        }
    }
}

impl TryFrom<pb::Hello> for Hello {
    type Error = WireError;
    fn try_from(h: pb::Hello) -> Result<Self, WireError> {
        if !h.capacity.is_finite() || h.capacity <= 0.0 || h.capacity > 1e6 {
            return Err(WireError::invalid(
                "hello.capacity",
                format!("{} is not in (0, 1e6]", h.capacity),
            ));
        }
        if h.name.is_empty() {
            return Err(WireError::Missing {
                field: "hello.name",
            });
        }
        Ok(Hello {
            protocol_version: h.protocol_version,
            name: text("hello.name", h.name, 256)?,
            host: text("hello.host", h.host, 256)?,
            cores: h.cores,
            max_sessions: h.max_sessions,
            capacity: h.capacity,
            rejoin: if h.rejoin_run_id.is_empty() {
                None
            } else {
                Some(Rejoin {
                    run_id: text("hello.rejoin_run_id", h.rejoin_run_id, 128)?,
                    worker_index: h.rejoin_worker_index,
                    secret: ResumeSecret(text(
                        "hello.rejoin_secret",
                        h.rejoin_secret,
                        MAX_RESUME_SECRET,
                    )?),
                    spool: text("hello.rejoin_spool", h.rejoin_spool, MAX_PATH)?,
                })
            },
        })
    }
}

impl From<&Assignment> for pb::Assignment {
    fn from(a: &Assignment) -> Self {
        let load = match &a.load {
            WorkerLoad::Open {
                profile,
                arrival,
                phase,
                max_backlog,
                catch_up,
            } => pb::assignment::Load::OpenLoop(pb::OpenLoop {
                catch_up_factor: catch_up.unwrap_or(0.0),
                rate: profile.value_at(0.0),
                arrival: match arrival {
                    crate::schedule::Arrival::Uniform => pb::Arrival::Uniform as i32,
                    crate::schedule::Arrival::Poisson => pb::Arrival::Poisson as i32,
                },
                phase_fraction: *phase,
                profile: profile_points(profile),
                max_backlog_millis: u64::try_from(max_backlog.as_millis()).unwrap_or(u64::MAX),
            }),
            WorkerLoad::Closed {
                think_time,
                sessions,
                tpcc_wait,
            } => pb::assignment::Load::ClosedLoop(pb::ClosedLoop {
                think_time_micros: u64::try_from(think_time.as_micros()).unwrap_or(u64::MAX),
                sessions_profile: sessions.as_ref().map(profile_points).unwrap_or_default(),
                tpcc_wait: *tpcc_wait,
            }),
        };
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        pb::Assignment {
            run_id: a.run_id.clone(),
            worker_index: a.worker_index,
            target_url: a.target.url().to_string(),
            password_env: a.target.password_env().unwrap_or_default().to_string(),
            password_secret: match a.target.login() {
                crate::target::Login::Secret { id, .. } => id.clone(),
                _ => String::new(),
            },
            iam_auth: matches!(a.target.login(), crate::target::Login::Iam { .. }),
            aws_region: a.target.login().region().unwrap_or_default().to_string(),
            scenario: match &a.scenario {
                ScenarioRef::Builtin(s) => s.name().to_string(),
                ScenarioRef::File(f) => f.origin.clone(),
            },
            scenario_source: match &a.scenario {
                ScenarioRef::Builtin(_) => String::new(),
                ScenarioRef::File(f) => f.source.clone(),
            },
            mix: a
                .mix
                .iter()
                .map(|(op, w)| pb::OperationWeight {
                    name: op.name().to_string(),
                    weight: *w,
                })
                .collect(),
            shard: Some(pb::Shard {
                first: a.shard.first,
                last: a.shard.last,
            }),
            rows: a.rows,
            insert_id_base: a.insert_id_base,
            insert_id_stride: a.insert_id_stride,
            batch_size: a.batch_size,
            aurora_ml: a.aurora_ml,
            load_rows: a.load_rows,
            lease_millis: u64::try_from(a.lease.as_millis()).unwrap_or(u64::MAX),
            sessions: a.sessions,
            load: Some(load),
            duration_millis: ms(a.duration),
            interval_millis: ms(a.interval),
            seed: a.seed,
            connect_rate: a.connect_rate,
            op_timeout_millis: ms(a.op_timeout),
            connect_timeout_millis: ms(a.connect_timeout),
            resume_secret: a.resume_secret.0.clone(),
            max_connection_age_millis: a.max_connection_age.map_or(0, ms),
            reader_url: a
                .reader
                .as_ref()
                .map(|r| r.target.url().to_string())
                .unwrap_or_default(),
            reader_sessions: a.reader.as_ref().map_or(0, |r| r.sessions),
            plan_hash: a.plan_hash.clone(),
            rejoin_after_end_millis: a
                .rejoin_after_end
                .map_or(-1, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        }
    }
}

impl TryFrom<pb::Assignment> for Assignment {
    type Error = WireError;
    fn try_from(a: pb::Assignment) -> Result<Self, WireError> {
        if a.run_id.is_empty() {
            return Err(WireError::Missing {
                field: "assignment.run_id",
            });
        }
        let region = (!a.aws_region.is_empty()).then_some(a.aws_region);
        let login = match (
            a.iam_auth,
            a.password_env.is_empty(),
            a.password_secret.is_empty(),
        ) {
            (false, true, true) => crate::target::Login::None,
            (false, false, true) => crate::target::Login::PasswordEnv(a.password_env),
            (false, true, false) => crate::target::Login::Secret {
                id: a.password_secret,
                region,
            },
            (true, true, true) => crate::target::Login::Iam { region },
            _ => {
                return Err(WireError::invalid(
                    "assignment.iam_auth",
                    "more than one of password_env, password_secret and iam_auth",
                ))
            }
        };
        let target = Target::parse(&a.target_url, None)
            .and_then(|t| t.with_login(login.clone()))
            .map_err(|e| WireError::invalid("assignment.target_url", e.to_string()))?;
        let reader = if a.reader_url.is_empty() {
            None
        } else {
            if a.reader_sessions == 0 || a.reader_sessions > MAX_SESSIONS {
                return Err(WireError::invalid(
                    "assignment.reader_sessions",
                    format!("{} is not in 1..={MAX_SESSIONS}", a.reader_sessions),
                ));
            }
            Some(crate::plan::Reader {
                target: Target::parse(&a.reader_url, None)
                    .and_then(|t| t.with_login(login))
                    .map_err(|e| WireError::invalid("assignment.reader_url", e.to_string()))?,
                sessions: a.reader_sessions,
            })
        };
        let scenario = if a.scenario_source.is_empty() {
            ScenarioRef::Builtin(Scenario::from_name(&a.scenario).ok_or_else(|| {
                WireError::invalid(
                    "assignment.scenario",
                    format!(
                        "unknown scenario {:?}; this worker knows {}",
                        a.scenario,
                        crate::scenario::scenario_names()
                    ),
                )
            })?)
        } else {
            let origin = text("assignment.scenario", a.scenario.clone(), 4096)?;
            let stem = std::path::Path::new(&origin)
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("custom")
                .to_string();
            let file = ScenarioFile::parse(&origin, &stem, &a.scenario_source)
                .map_err(|e| WireError::invalid("assignment.scenario_source", e.to_string()))?;
            ScenarioRef::File(std::sync::Arc::new(file))
        };
        let operations = scenario.operations();
        let mut mix = Vec::with_capacity(a.mix.len());
        for w in &a.mix {
            let op = operation("assignment.mix", &w.name)?;
            if !operations.contains(&op) {
                return Err(WireError::invalid(
                    "assignment.mix",
                    format!("{} is not an operation of {}", op.name(), scenario.name()),
                ));
            }
            if w.weight > 0 {
                mix.push((op, w.weight));
            }
        }
        if mix.is_empty() {
            return Err(WireError::invalid(
                "assignment.mix",
                "no operation has a weight above 0",
            ));
        }
        let shard = a.shard.ok_or(WireError::Missing {
            field: "assignment.shard",
        })?;
        if shard.first == 0 || shard.first > shard.last || shard.last > a.rows {
            return Err(WireError::invalid(
                "assignment.shard",
                format!(
                    "[{}, {}] is not inside [1, {}]",
                    shard.first, shard.last, a.rows
                ),
            ));
        }
        if a.sessions == 0 || a.sessions > MAX_SESSIONS {
            return Err(WireError::invalid(
                "assignment.sessions",
                format!("{} is not in 1..={MAX_SESSIONS}", a.sessions),
            ));
        }
        let load = match a.load.ok_or(WireError::Missing {
            field: "assignment.load",
        })? {
            pb::assignment::Load::OpenLoop(o) => {
                if o.profile.is_empty()
                    && (!o.rate.is_finite() || o.rate <= 0.0 || o.rate > MAX_RATE)
                {
                    return Err(WireError::invalid(
                        "assignment.open_loop.rate",
                        format!("{} is not in (0, {MAX_RATE}]", o.rate),
                    ));
                }
                if !(0.0..1.0).contains(&o.phase_fraction) {
                    return Err(WireError::invalid(
                        "assignment.open_loop.phase_fraction",
                        format!("{} is not in [0, 1)", o.phase_fraction),
                    ));
                }
                WorkerLoad::Open {
                    profile: if o.profile.is_empty() {
                        Profile::constant(o.rate)
                    } else {
                        profile_from("assignment.open_loop.profile", &o.profile, MAX_RATE)?
                    },
                    arrival: match pb::Arrival::try_from(o.arrival) {
                        Ok(pb::Arrival::Uniform) => crate::schedule::Arrival::Uniform,
                        Ok(pb::Arrival::Poisson) => crate::schedule::Arrival::Poisson,
                        Err(_) => {
                            return Err(WireError::invalid(
                                "assignment.open_loop.arrival",
                                format!("unknown arrival process {}", o.arrival),
                            ))
                        }
                    },
                    phase: o.phase_fraction,
                    max_backlog: millis(
                        "assignment.open_loop.max_backlog_millis",
                        o.max_backlog_millis,
                        bounds::MAX_BACKLOG,
                    )?,
                    catch_up: match o.catch_up_factor {
                        0.0 => None,
                        f if f.is_finite() && (1.0..=100.0).contains(&f) => Some(f),
                        f => {
                            return Err(WireError::invalid(
                                "assignment.open_loop.catch_up_factor",
                                format!("{f} is neither 0 nor in [1, 100]"),
                            ))
                        }
                    },
                }
            }
            pb::assignment::Load::ClosedLoop(c) => WorkerLoad::Closed {
                tpcc_wait: c.tpcc_wait,
                think_time: Duration::from_micros(c.think_time_micros).min(bounds::THINK_TIME.hi),
                sessions: if c.sessions_profile.is_empty() {
                    None
                } else {
                    Some(profile_from(
                        "assignment.closed_loop.sessions_profile",
                        &c.sessions_profile,
                        f64::from(MAX_SESSIONS),
                    )?)
                },
            },
        };
        let interval = millis(
            "assignment.interval_millis",
            a.interval_millis,
            bounds::INTERVAL,
        )?;
        Ok(Assignment {
            run_id: text("assignment.run_id", a.run_id, 128)?,
            worker_index: a.worker_index,
            target,
            scenario,
            mix,
            shard: Shard {
                first: shard.first,
                last: shard.last,
            },
            rows: a.rows,
            insert_id_base: a.insert_id_base,
            insert_id_stride: a.insert_id_stride.max(1),
            aurora_ml: a.aurora_ml,
            load_rows: a.load_rows,
            lease: millis("assignment.lease_millis", a.lease_millis, bounds::LEASE)?,
            batch_size: if (1..=crate::plan::MAX_BATCH).contains(&a.batch_size) {
                a.batch_size
            } else {
                return Err(WireError::invalid(
                    "assignment.batch_size",
                    format!("{} is not in 1..={}", a.batch_size, crate::plan::MAX_BATCH),
                ));
            },
            sessions: a.sessions,
            load,
            duration: millis(
                "assignment.duration_millis",
                a.duration_millis,
                Span {
                    lo: interval,
                    hi: bounds::LONGEST_RUN,
                },
            )?,
            interval,
            seed: a.seed,
            connect_rate: a.connect_rate.max(1),
            op_timeout: millis(
                "assignment.op_timeout_millis",
                a.op_timeout_millis,
                bounds::OP_TIMEOUT,
            )?,
            connect_timeout: millis(
                "assignment.connect_timeout_millis",
                a.connect_timeout_millis,
                bounds::CONNECT_TIMEOUT,
            )?,
            reader,
            max_connection_age: match a.max_connection_age_millis {
                0 => None,
                m => Some(millis(
                    "assignment.max_connection_age_millis",
                    m,
                    bounds::MAX_CONNECTION_AGE,
                )?),
            },
            resume_secret: ResumeSecret(text(
                "assignment.resume_secret",
                a.resume_secret,
                MAX_RESUME_SECRET,
            )?),
            plan_hash: text("assignment.plan_hash", a.plan_hash, 128)?,
            rejoin_after_end: match u64::try_from(a.rejoin_after_end_millis) {
                Ok(m) => Some(millis(
                    "assignment.rejoin_after_end_millis",
                    m,
                    crate::plan::bounds::REJOIN,
                )?),
                Err(_) => None,
            },
        })
    }
}

#[cfg(test)]
mod tests;
