//! The merge as a checkpoint holds it: every interval, every worker's aggregate and
//! held sequences, the instances and the session outages, in a form that reads back
//! into the very same [`Merge`]. So a recovered run adds a worker's spooled snapshots
//! through the same `add` (which ignores a sequence already held) and the report is
//! built by the same code: exact, not approximated from report.json's summaries.
//!
//! Histograms are HdrHistogram V2+deflate in base64, read back at the precision they
//! were written with (the per-worker ones are coarser, see `OpStats::coarse`).

use super::{Brief, Held, InstanceAgg, IntervalAgg, Merge, WorkerAgg};
use base64::Engine;
use fleetload_common::histogram::{encode, Latency};
use fleetload_common::outcome::ErrorClass;
use fleetload_common::scenario::OpName;
use fleetload_common::stats::{ErrorSample, InstanceStats, OpCounters, OpStats, OpTotals};
use prost::Message;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A [`Merge`], serializable.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MergeImage {
    operations: Vec<OpName>,
    warmup_intervals: u64,
    grand_total: u64,
    intervals: Vec<IntervalImage>,
    workers: Vec<WorkerImage>,
    instances: Vec<InstanceImage>,
    /// Every event kept (session outages, stalls, …) as the wire carries it (base64
    /// of a `WorkerEvent`), with the worker's slot.
    events: Vec<(u32, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct IntervalImage {
    index: u64,
    closed: bool,
    late: u64,
    cluster: Vec<StatsImage>,
    /// Each reporting worker's briefs: `[ok, errors, dropped, p50, p99, max]` per op.
    per_worker: BTreeMap<u32, Vec<[u64; 6]>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct WorkerImage {
    worker: u32,
    measured: Vec<StatsImage>,
    received: Vec<TotalsImage>,
    next_sequence: u64,
    ahead: Vec<u64>,
    intervals: Vec<u64>,
    duplicates: u64,
    #[serde(default)]
    last_interval: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StatsImage {
    ok: u64,
    errors: Vec<u64>,
    /// Every other counter, by its own name.
    #[serde(flatten)]
    counters: OpCounters,
    response: String,
    service: String,
    lag: String,
    samples: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TotalsImage {
    ok: u64,
    errors: Vec<u64>,
    dropped_backlog: u64,
    retries: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct InstanceImage {
    name: String,
    read_only: bool,
    slots: Vec<usize>,
    sessions: u32,
    ok: u64,
    errors: u64,
    response: String,
    /// `(interval, sessions, ok, errors)`.
    series: Vec<(u64, u64, u64, u64)>,
    /// Intervals it was read-only in (older checkpoints: none recorded).
    #[serde(default)]
    read_only_in: Vec<u64>,
}

/// What does not read back: the checkpoint's bytes are damaged or not ours.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ImageError(String);

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn hist_out(h: &Latency) -> String {
    encode(h).map(|b| b64().encode(b)).unwrap_or_default()
}

/// A histogram back, at the precision it was written with.
fn hist_in(text: &str) -> Result<Latency, ImageError> {
    let bytes = b64()
        .decode(text)
        .map_err(|e| ImageError(format!("a histogram is not base64: {e}")))?;
    let mut h: Latency = hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| ImageError(format!("a histogram does not decode: {e:?}")))?;
    h.auto(true);
    Ok(h)
}

fn class(name: &str) -> Result<ErrorClass, ImageError> {
    ErrorClass::ALL
        .iter()
        .copied()
        .find(|c| c.name() == name)
        .ok_or_else(|| ImageError(format!("unknown error class {name:?}")))
}

fn errors_in(v: &[u64]) -> Result<[u64; ErrorClass::COUNT], ImageError> {
    let mut out = [0; ErrorClass::COUNT];
    if v.len() > out.len() {
        return Err(ImageError(format!("{} error classes", v.len())));
    }
    out[..v.len()].copy_from_slice(v);
    Ok(out)
}

impl StatsImage {
    fn of(s: &OpStats) -> Self {
        StatsImage {
            ok: s.ok,
            errors: s.errors.to_vec(),
            counters: s.counters(),
            response: hist_out(&s.response),
            service: hist_out(&s.service),
            lag: hist_out(&s.lag),
            samples: s
                .samples
                .iter()
                .map(|e| (e.class.name().to_string(), e.message.clone()))
                .collect(),
        }
    }

    fn stats(&self) -> Result<OpStats, ImageError> {
        let samples = self
            .samples
            .iter()
            .map(|(c, m)| {
                Ok(ErrorSample {
                    class: class(c)?,
                    message: m.clone(),
                })
            })
            .collect::<Result<_, ImageError>>()?;
        Ok(OpStats::from_parts(
            self.ok,
            errors_in(&self.errors)?,
            self.counters,
            hist_in(&self.response)?,
            hist_in(&self.service)?,
            hist_in(&self.lag)?,
            samples,
        ))
    }
}

impl TotalsImage {
    fn of(t: &OpTotals) -> Self {
        TotalsImage {
            ok: t.ok,
            errors: t.errors.to_vec(),
            dropped_backlog: t.dropped_backlog,
            retries: t.retries,
        }
    }

    fn totals(&self) -> Result<OpTotals, ImageError> {
        Ok(OpTotals {
            ok: self.ok,
            errors: errors_in(&self.errors)?,
            dropped_backlog: self.dropped_backlog,
            retries: self.retries,
        })
    }
}

impl MergeImage {
    /// The image of `m` (its histograms encoded: do this off the controller's task).
    pub fn of(m: &Merge) -> MergeImage {
        MergeImage {
            operations: m.operations.clone(),
            warmup_intervals: m.warmup_intervals,
            grand_total: m.grand_total,
            intervals: m
                .intervals
                .iter()
                .map(|(k, agg)| IntervalImage {
                    index: *k,
                    closed: agg.closed,
                    late: agg.late,
                    cluster: agg.cluster().iter().map(StatsImage::of).collect(),
                    per_worker: agg
                        .per_worker()
                        .iter()
                        .map(|(w, briefs)| (*w, briefs.iter().map(Brief::fields).collect()))
                        .collect(),
                })
                .collect(),
            workers: m
                .workers
                .iter()
                .map(|(w, agg)| WorkerImage {
                    worker: *w,
                    measured: agg.measured.iter().map(StatsImage::of).collect(),
                    received: agg.received.iter().map(TotalsImage::of).collect(),
                    next_sequence: agg.next_sequence,
                    ahead: agg.ahead.iter().copied().collect(),
                    intervals: agg.intervals.iter().copied().collect(),
                    duplicates: agg.duplicates,
                    last_interval: agg.last_interval,
                })
                .collect(),
            instances: m
                .instances
                .iter()
                .map(|(name, i)| InstanceImage {
                    name: name.clone(),
                    read_only: i.read_only,
                    slots: i.slots.iter().copied().collect(),
                    sessions: i.measured.sessions,
                    ok: i.measured.ok,
                    errors: i.measured.errors,
                    response: hist_out(&i.measured.response),
                    series: i
                        .series
                        .iter()
                        .map(|(k, (s, ok, e))| (*k, *s, *ok, *e))
                        .collect(),
                    read_only_in: i.read_only_in.iter().copied().collect(),
                })
                .collect(),
            events: m
                .events
                .iter()
                .map(|(w, e)| {
                    let wire = fleetload_common::wire::event_to_wire(e);
                    (*w, b64().encode(wire.encode_to_vec()))
                })
                .collect(),
        }
    }

    /// The merge back.
    ///
    /// # Errors
    /// A histogram, a class or an outage does not read back.
    pub fn merge(&self) -> Result<Merge, ImageError> {
        let n = self.operations.len();
        let mut m = Merge::new(self.operations.clone(), self.warmup_intervals);
        m.grand_total = self.grand_total;
        for i in &self.intervals {
            if i.cluster.len() != n {
                return Err(ImageError(format!(
                    "interval {} has {} operations, the run {n}",
                    i.index,
                    i.cluster.len()
                )));
            }
            let mut agg = IntervalAgg {
                held: Held::Open {
                    cluster: i
                        .cluster
                        .iter()
                        .map(StatsImage::stats)
                        .collect::<Result<_, _>>()?,
                    per_worker: i
                        .per_worker
                        .iter()
                        .map(|(w, rows)| {
                            (*w, rows.iter().copied().map(Brief::from_fields).collect())
                        })
                        .collect(),
                },
                closed: i.closed,
                late: i.late,
            };
            if i.closed {
                agg.pack();
            }
            m.intervals.insert(i.index, agg);
        }
        for w in &self.workers {
            let agg = WorkerAgg {
                measured: w
                    .measured
                    .iter()
                    .map(StatsImage::stats)
                    .collect::<Result<_, _>>()?,
                received: w
                    .received
                    .iter()
                    .map(TotalsImage::totals)
                    .collect::<Result<_, _>>()?,
                next_sequence: w.next_sequence,
                ahead: w.ahead.iter().copied().collect(),
                intervals: w.intervals.iter().copied().collect(),
                duplicates: w.duplicates,
                last_interval: w.last_interval,
            };
            if agg.measured.len() != n || agg.received.len() != n {
                return Err(ImageError(format!(
                    "worker {} has totals of other operations than the run's",
                    w.worker
                )));
            }
            m.workers.insert(w.worker, agg);
        }
        for i in &self.instances {
            m.instances.insert(
                i.name.clone(),
                InstanceAgg {
                    read_only: i.read_only,
                    slots: i.slots.iter().copied().collect(),
                    measured: InstanceStats {
                        name: i.name.clone(),
                        read_only: i.read_only,
                        sessions: i.sessions,
                        ok: i.ok,
                        errors: i.errors,
                        response: hist_in(&i.response)?,
                    },
                    series: i
                        .series
                        .iter()
                        .map(|(k, s, ok, e)| (*k, (*s, *ok, *e)))
                        .collect(),
                    read_only_in: i.read_only_in.iter().copied().collect(),
                },
            );
        }
        for (w, text) in &self.events {
            let bytes = b64()
                .decode(text)
                .map_err(|e| ImageError(format!("an event is not base64: {e}")))?;
            let wire = fleetload_proto::v1::WorkerEvent::decode(bytes.as_slice())
                .map_err(|e| ImageError(format!("an event does not decode: {e}")))?;
            let e = fleetload_common::wire::event_from_wire(wire)
                .map_err(|e| ImageError(e.to_string()))?;
            m.keep_event(*w, e);
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetload_common::histogram::record;
    use fleetload_common::scenario::Operation;
    use fleetload_common::wire::Snapshot;
    use std::time::Duration;

    fn snap(worker: u32, seq: u64, values_us: &[u64]) -> Snapshot {
        let mut s = OpStats::default();
        for v in values_us {
            record(&mut s.response, Duration::from_micros(*v));
            record(&mut s.service, Duration::from_micros(*v));
        }
        s.ok = values_us.len() as u64;
        s.add_error(ErrorClass::Deadlock, || "Deadlock found".into());
        Snapshot {
            run_id: "r".into(),
            worker_index: worker,
            sequence: seq,
            interval_index: seq,
            operations: vec![(Operation::PointSelect.into(), s)],
            events: vec![fleetload_common::events::WorkerEvent::Stall(
                fleetload_common::events::Stall {
                    at: Duration::from_millis(1_000 * seq + 3),
                    duration: Duration::from_millis(150),
                },
            )],
        }
    }

    #[test]
    fn a_merge_reads_back_exactly_and_still_ignores_what_it_held() {
        let mut m = Merge::new(vec![Operation::PointSelect.into()], 1);
        for seq in 0..4 {
            m.add(&snap(0, seq, &[100 + seq * 7, 900, 15_000])).unwrap();
            m.add(&snap(1, seq, &[250])).unwrap();
        }
        m.pack(1);
        let text = serde_json::to_string(&MergeImage::of(&m)).unwrap();
        let image: MergeImage = serde_json::from_str(&text).unwrap();
        let mut back = image.merge().unwrap();
        let (a, b) = (m.cluster_measured(), back.cluster_measured());
        assert_eq!(a[0].ok, b[0].ok);
        assert_eq!(a[0].errors, b[0].errors);
        assert_eq!(a[0].response, b[0].response);
        assert_eq!(
            m.workers[&0].measured[0].response,
            back.workers[&0].measured[0].response
        );
        assert_eq!(m.workers[&1].contiguous(), back.workers[&1].contiguous());
        assert_eq!(m.events, back.events);
        assert_eq!(back.stalls().count(), 8);
        // Held sequences stay held; the next one counts.
        assert_eq!(
            back.add(&snap(0, 2, &[1])).unwrap(),
            super::super::Accepted::Duplicate
        );
        assert_eq!(
            back.add(&snap(0, 4, &[1])).unwrap(),
            super::super::Accepted::New
        );
        assert_eq!(back.cluster_measured()[0].ok, a[0].ok + 1);
    }
}

#[cfg(test)]
mod every_counter {
    use super::*;
    use fleetload_common::stats::PackedStats;

    /// Stats whose every declared counter holds its own value (1, 2, 3, …).
    fn distinct() -> OpStats {
        let by_name: serde_json::Map<String, serde_json::Value> = OpCounters::NAMES
            .iter()
            .enumerate()
            .map(|(i, n)| ((*n).to_string(), serde_json::Value::from(i as u64 + 1)))
            .collect();
        let counters: OpCounters =
            serde_json::from_value(serde_json::Value::Object(by_name)).expect("counters by name");
        let s = OpStats::default();
        let fresh = OpStats::from_parts(
            7,
            s.errors,
            counters,
            s.response.clone(),
            s.service.clone(),
            s.lag.clone(),
            Vec::new(),
        );
        assert_eq!(
            fresh.counters().values(),
            (1..=OpCounters::NAMES.len() as u64).collect::<Vec<_>>()
        );
        fresh
    }

    #[test]
    fn a_checkpoint_a_packed_interval_and_a_merge_keep_every_declared_counter() {
        let s = distinct();
        let image = StatsImage::of(&s);
        let text = serde_json::to_string(&image).expect("image encodes");
        for name in OpCounters::NAMES {
            assert!(
                text.contains(&format!("\"{name}\":")),
                "{name} kept by name"
            );
        }
        let back: StatsImage = serde_json::from_str(&text).expect("image decodes");
        assert_eq!(back.stats().expect("reads back").counters(), s.counters());
        let packed = PackedStats::pack(&s).expect("packs");
        assert_eq!(packed.unpack().expect("unpacks").counters(), s.counters());
        let mut merged = s.clone();
        merged.merge(&s);
        let doubled: Vec<u64> = s.counters().values().iter().map(|v| v * 2).collect();
        assert_eq!(merged.counters().values(), doubled);
        merged.reset();
        assert!(merged.counters().values().iter().all(|v| *v == 0));
    }

    #[test]
    fn a_checkpoint_written_before_a_counter_existed_reads_it_as_zero() {
        let s = distinct();
        let mut value = serde_json::to_value(StatsImage::of(&s)).expect("image encodes");
        let last = OpCounters::NAMES[OpCounters::NAMES.len() - 1];
        value.as_object_mut().expect("an object").remove(last);
        let back: StatsImage = serde_json::from_value(value).expect("older image decodes");
        let counters = back.stats().expect("reads back").counters().values();
        assert_eq!(counters[counters.len() - 1], 0);
    }
}
