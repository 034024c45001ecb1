//! Outage windows: stretches of intervals where operations failed as the database was
//! unreachable, found in the merged interval series.

use super::*;
use fleetload_common::outcome::ErrorClass;

/// Find outage windows in the interval series (warm-up included: an outage is an
/// outage). Constraint errors are the workload's, not an outage, and do not count.
pub(super) fn outages(merge: &Merge, interval_s: f64, duration_s: f64) -> Vec<Outage> {
    let mut out: Vec<Outage> = Vec::new();
    let mut open: Option<Outage> = None;
    for (k, agg) in &merge.intervals {
        let mut errors = [0u64; ErrorClass::COUNT];
        let (mut ok, mut dropped) = (0u64, 0u64);
        let mut samples = Vec::new();
        for s in agg.cluster().iter() {
            for (e, n) in errors.iter_mut().zip(s.errors) {
                *e += n;
            }
            ok += s.ok;
            dropped += s.dropped_backlog;
            samples.extend(
                s.samples
                    .iter()
                    .filter(|e| e.class != ErrorClass::Constraint)
                    .cloned(),
            );
        }
        errors[ErrorClass::Constraint.index()] = 0;
        let start = *k as f64 * interval_s;
        let end = (start + interval_s).min(duration_s);
        let rate = ok as f64 / (end - start).max(1e-9);
        let bad = errors.iter().sum::<u64>() > 0 || dropped > 0;
        match (&mut open, bad) {
            (Some(o), true) => {
                o.to_s = end;
                o.duration_s = end - o.from_s;
                for (c, n) in ErrorClass::ALL.iter().zip(errors) {
                    if n > 0 {
                        *o.errors.entry(Cow::Borrowed(c.name())).or_default() += n;
                    }
                }
                o.dropped_backlog += dropped;
                o.min_ok_per_s = o.min_ok_per_s.min(rate);
            }
            (None, true) => {
                open = Some(Outage {
                    from_s: start,
                    to_s: end,
                    duration_s: end - start,
                    errors: error_map(&errors),
                    dropped_backlog: dropped,
                    min_ok_per_s: rate,
                    error_samples: samples
                        .iter()
                        .take(3)
                        .map(|e| ErrorSampleJson {
                            class: e.class,
                            message: e.message.clone(),
                        })
                        .collect(),
                });
            }
            (Some(_), false) => out.extend(open.take()),
            (None, false) => {}
        }
    }
    out.extend(open);
    out
}
