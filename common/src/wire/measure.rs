//! What a worker measured, on the wire: snapshots (with their histograms) and the final
//! Done, each checked where it enters (counts that agree with their histograms, known
//! classes, bounded text). What is possible in a run is the coordinator's to judge.

use super::*;
use crate::events::{EventKind, SessionOutage, Stall, WorkerEvent};
use crate::histogram::{decode, encode_for_wire, HistogramError};
use crate::stats::OpCounters;

impl Snapshot {
    /// Encode for the wire.
    ///
    /// # Errors
    /// A histogram cannot be serialized (a bug, not a runtime condition).
    pub fn to_proto(&self) -> Result<pb::Snapshot, HistogramError> {
        let mut operations = Vec::with_capacity(self.operations.len());
        for (op, s) in &self.operations {
            operations.push(pb::OperationSnapshot {
                name: op.name().to_string(),
                ok: s.ok,
                errors: s.errors.to_vec(),
                dropped_backlog: s.dropped_backlog,
                retries: s.retries,
                rows: s.rows,
                empty: s.empty,
                rolled_back: s.rolled_back,
                remote: s.remote,
                response_time: encode_for_wire(&s.response)?,
                service_time: encode_for_wire(&s.service)?,
                schedule_lag: encode_for_wire(&s.lag)?,
                error_samples: s
                    .samples
                    .iter()
                    .map(|e| pb::ErrorSample {
                        class: e.class as u32,
                        message: e.message.clone(),
                    })
                    .collect(),
                instances: s
                    .instances
                    .iter()
                    .map(|i| {
                        Ok(pb::InstanceSnapshot {
                            name: i.name.clone(),
                            read_only: i.read_only,
                            sessions: i.sessions,
                            ok: i.ok,
                            errors: i.errors,
                            response_time: encode_for_wire(&i.response)?,
                        })
                    })
                    .collect::<Result<_, HistogramError>>()?,
            });
        }
        Ok(pb::Snapshot {
            run_id: self.run_id.clone(),
            worker_index: self.worker_index,
            sequence: self.sequence,
            interval_index: self.interval_index,
            operations,
            events: self.events.iter().map(event_to_wire).collect(),
        })
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// An event as the wire carries it (a checkpoint keeps it so, too).
pub fn event_to_wire(e: &WorkerEvent) -> pb::WorkerEvent {
    let kind = match e {
        WorkerEvent::SessionOutage(o) => pb::worker_event::Kind::SessionOutage(outage_to_wire(o)),
        WorkerEvent::Stall(s) => pb::worker_event::Kind::Stall(pb::Stall {
            at_nanos: nanos(s.at),
            duration_nanos: nanos(s.duration),
        }),
    };
    pb::WorkerEvent { kind: Some(kind) }
}

fn outage_to_wire(o: &SessionOutage) -> pb::SessionOutage {
    pb::SessionOutage {
        session: o.session,
        last_ok_nanos: o.last_ok.map(nanos),
        first_failure_nanos: nanos(o.first_failure),
        recovered_nanos: o.recovered.map(nanos),
        failed: o.failed.to_vec(),
        reader: o.role == crate::scenario::Role::Read,
        from_instance: o.from_instance.clone().unwrap_or_default(),
        to_instance: o.to_instance.clone().unwrap_or_default(),
    }
}

/// Per-instance counts from the wire: a bounded list, each with as many response times
/// as successes.
fn instances_from(
    list: Vec<pb::InstanceSnapshot>,
) -> Result<Vec<crate::stats::InstanceStats>, WireError> {
    const FIELD: &str = "snapshot.operations.instances";
    if list.len() > crate::stats::MAX_INSTANCES {
        return Err(WireError::invalid(
            FIELD,
            format!(
                "{} instances, at most {}",
                list.len(),
                crate::stats::MAX_INSTANCES
            ),
        ));
    }
    list.into_iter()
        .map(|i| {
            let response = histogram(
                "snapshot.operations.instances.response_time",
                &i.response_time,
            )?;
            if response.len() != i.ok {
                return Err(WireError::invalid(
                    FIELD,
                    format!(
                        "{} ok operations but {} response times on {}",
                        i.ok,
                        response.len(),
                        i.name
                    ),
                ));
            }
            Ok(crate::stats::InstanceStats {
                name: instance_name(i.name)?.unwrap_or_default(),
                read_only: i.read_only,
                sessions: i.sessions,
                ok: i.ok,
                errors: i.errors,
                response,
            })
        })
        .collect()
}

/// An instance's name as a session saw it: at most 256 bytes, empty for none.
fn instance_name(name: String) -> Result<Option<String>, WireError> {
    let name = text("snapshot.instance", name, 256)?;
    Ok((!name.is_empty()).then_some(name))
}

/// One event from the wire, checked: a known kind, its times in order.
///
/// # Errors
/// No kind (a newer worker's), or its times are not in order.
pub fn event_from_wire(e: pb::WorkerEvent) -> Result<WorkerEvent, WireError> {
    const FIELD: &str = "snapshot.events";
    match e.kind {
        Some(pb::worker_event::Kind::SessionOutage(o)) => {
            outage_from_wire(o).map(WorkerEvent::SessionOutage)
        }
        Some(pb::worker_event::Kind::Stall(s)) => Ok(WorkerEvent::Stall(Stall {
            at: Duration::from_nanos(s.at_nanos),
            duration: Duration::from_nanos(s.duration_nanos),
        })),
        None => Err(WireError::invalid(
            FIELD,
            "an event of no kind this coordinator knows (a newer worker?)",
        )),
    }
}

/// A snapshot's events from the wire: each checked, at most each kind's cap.
fn events_from(list: Vec<pb::WorkerEvent>) -> Result<Vec<WorkerEvent>, WireError> {
    let events = list
        .into_iter()
        .map(event_from_wire)
        .collect::<Result<Vec<_>, _>>()?;
    for kind in EventKind::ALL {
        let n = events.iter().filter(|e| e.kind() == kind).count();
        if n > kind.snapshot_cap() {
            return Err(WireError::invalid(
                "snapshot.events",
                format!(
                    "{n} events of kind {}, at most {}",
                    kind.name(),
                    kind.snapshot_cap()
                ),
            ));
        }
    }
    Ok(events)
}

/// One session outage from the wire: its times in order.
fn outage_from_wire(o: pb::SessionOutage) -> Result<SessionOutage, WireError> {
    const FIELD: &str = "snapshot.events.session_outage";
    let last_ok = o.last_ok_nanos.map(Duration::from_nanos);
    let first_failure = Duration::from_nanos(o.first_failure_nanos);
    let recovered = o.recovered_nanos.map(Duration::from_nanos);
    if last_ok.is_some_and(|l| l > first_failure) || recovered.is_some_and(|r| r < first_failure) {
        return Err(WireError::invalid(
            FIELD,
            format!(
                "session {}: last success {last_ok:?}, first failure {first_failure:?}, recovery {recovered:?} are not in order",
                o.session
            ),
        ));
    }
    Ok(SessionOutage {
        session: o.session,
        role: if o.reader {
            crate::scenario::Role::Read
        } else {
            crate::scenario::Role::Write
        },
        last_ok,
        first_failure,
        recovered,
        failed: error_counts("snapshot.events.session_outage.failed", &o.failed)?,
        from_instance: instance_name(o.from_instance)?,
        to_instance: instance_name(o.to_instance)?,
    })
}

fn histogram(field: &'static str, bytes: &[u8]) -> Result<crate::histogram::Latency, WireError> {
    decode(bytes).map_err(|source| WireError::Histogram { field, source })
}

impl TryFrom<pb::Snapshot> for Snapshot {
    type Error = WireError;
    fn try_from(s: pb::Snapshot) -> Result<Self, WireError> {
        if s.operations.len() > MAX_OPERATIONS {
            return Err(WireError::invalid(
                "snapshot.operations",
                format!(
                    "{} operations, at most {MAX_OPERATIONS}",
                    s.operations.len()
                ),
            ));
        }
        let mut operations = Vec::with_capacity(s.operations.len());
        for o in s.operations {
            let op = operation("snapshot.operations.name", &o.name)?;
            if operations.iter().any(|(seen, _)| *seen == op) {
                return Err(WireError::invalid(
                    "snapshot.operations.name",
                    format!("{} appears twice", op.name()),
                ));
            }
            let response = histogram("snapshot.response_time", &o.response_time)?;
            if response.len() != o.ok {
                return Err(WireError::invalid(
                    "snapshot.operations.ok",
                    format!(
                        "{} ok operations but {} response times for {}",
                        o.ok,
                        response.len(),
                        op.name()
                    ),
                ));
            }
            let mut samples = Vec::new();
            for e in o
                .error_samples
                .into_iter()
                .take(ErrorClass::COUNT * crate::stats::ERROR_SAMPLES_PER_CLASS)
            {
                let class = ErrorClass::from_index(e.class as usize).ok_or_else(|| {
                    WireError::invalid(
                        "snapshot.error_samples.class",
                        format!("unknown class {}", e.class),
                    )
                })?;
                let mut message = e.message;
                if message.len() > MAX_ERROR_MESSAGE {
                    let mut cut = MAX_ERROR_MESSAGE;
                    while !message.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    message.truncate(cut);
                }
                samples.push(ErrorSample { class, message });
            }
            for (field, n) in [
                ("snapshot.operations.rolled_back", o.rolled_back),
                ("snapshot.operations.remote", o.remote),
            ] {
                if n > o.ok {
                    return Err(WireError::invalid(
                        field,
                        format!("{n} of {} ok operations for {}", o.ok, op.name()),
                    ));
                }
            }
            if o.empty > o.ok {
                return Err(WireError::invalid(
                    "snapshot.operations.empty",
                    format!(
                        "{} of {} ok operations found no row for {}",
                        o.empty,
                        o.ok,
                        op.name()
                    ),
                ));
            }
            // Every success records a service time, and in open loop a schedule lag.
            let service = histogram("snapshot.service_time", &o.service_time)?;
            let lag = histogram("snapshot.schedule_lag", &o.schedule_lag)?;
            if service.len() != o.ok || lag.len() > o.ok {
                return Err(WireError::invalid(
                    "snapshot.operations.ok",
                    format!(
                        "{} ok operations but {} service times and {} schedule lags for {}",
                        o.ok,
                        service.len(),
                        lag.len(),
                        op.name()
                    ),
                ));
            }
            // The wire's fields, one per counter of `OpCounters`.
            let counters = OpCounters {
                dropped_backlog: o.dropped_backlog,
                retries: o.retries,
                rows: o.rows,
                empty: o.empty,
                rolled_back: o.rolled_back,
                remote: o.remote,
            };
            let mut stats = OpStats::from_parts(
                o.ok,
                error_counts("snapshot.operations.errors", &o.errors)?,
                counters,
                response,
                service,
                lag,
                samples,
            );
            stats.instances = instances_from(o.instances)?;
            operations.push((op, stats));
        }
        Ok(Snapshot {
            run_id: s.run_id,
            worker_index: s.worker_index,
            sequence: s.sequence,
            interval_index: s.interval_index,
            operations,
            events: events_from(s.events)?,
        })
    }
}

impl From<&Done> for pb::Done {
    fn from(d: &Done) -> Self {
        pb::Done {
            run_id: d.run_id.clone(),
            worker_index: d.worker_index,
            snapshots_sent: d.snapshots_sent,
            totals: d
                .totals
                .iter()
                .map(|(op, t)| pb::OperationTotals {
                    name: op.name().to_string(),
                    ok: t.ok,
                    errors: t.errors.to_vec(),
                    dropped_backlog: t.dropped_backlog,
                    retries: t.retries,
                })
                .collect(),
            inserted: d.inserted,
            insert_id_base: d.insert_id_base,
            insert_id_last: d.insert_id_last,
            first_op_unix_nanos: d.first_op_unix_nanos.unwrap_or(0),
        }
    }
}

impl TryFrom<pb::Done> for Done {
    type Error = WireError;
    fn try_from(d: pb::Done) -> Result<Self, WireError> {
        if d.totals.len() > MAX_OPERATIONS {
            return Err(WireError::invalid("done.totals", "too many operations"));
        }
        let mut totals = Vec::with_capacity(d.totals.len());
        for t in d.totals {
            totals.push((
                operation("done.totals.name", &t.name)?,
                OpTotals {
                    ok: t.ok,
                    errors: error_counts("done.totals.errors", &t.errors)?,
                    dropped_backlog: t.dropped_backlog,
                    retries: t.retries,
                },
            ));
        }
        Ok(Done {
            run_id: d.run_id,
            worker_index: d.worker_index,
            snapshots_sent: d.snapshots_sent,
            totals,
            inserted: d.inserted,
            insert_id_base: d.insert_id_base,
            insert_id_last: d.insert_id_last,
            first_op_unix_nanos: (d.first_op_unix_nanos > 0).then_some(d.first_op_unix_nanos),
        })
    }
}
