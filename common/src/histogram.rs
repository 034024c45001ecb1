//! The one set of histogram bounds in fleetload, and the wire codec.
//!
//! Every histogram records microseconds from 1 µs to 1 h at 3 significant digits, so a
//! merge is exact (DESIGN-NOTES §3). Values above the top are clamped. Histograms grow
//! (auto-resize) only as far as the largest value recorded: the bucket layout of a
//! value does not depend on the top, so merges stay exact, while a histogram of
//! millisecond latencies holds ~30 KB instead of the 360 KB a 1 h top costs. A histogram
//! with another lowest value or precision on the wire is a protocol error, never
//! something to convert.

use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;

/// Lowest discernible value, microseconds.
pub const LOWEST_MICROS: u64 = 1;
/// Highest trackable value, microseconds (one hour).
pub const HIGHEST_MICROS: u64 = 3_600_000_000;
/// Significant decimal digits kept.
pub const SIGFIG: u8 = 3;
/// Highest top a histogram may have grown to (auto-resize rounds up past 1 h).
const MAX_GROWN_MICROS: u64 = 4 * HIGHEST_MICROS;
/// Largest encoded histogram accepted from the wire.
pub const MAX_ENCODED_BYTES: usize = 1 << 20;

/// A latency histogram in microseconds with fleetload's fixed bounds.
pub type Latency = Histogram<u64>;

#[derive(Debug, thiserror::Error)]
pub enum HistogramError {
    #[error("{len} bytes is more than the {MAX_ENCODED_BYTES} allowed")]
    TooLarge { len: usize },
    #[error("cannot decode V2+deflate bytes: {0}")]
    Decode(String),
    #[error("bounds {low}..{high} µs at {sigfig} digits differ from fleetload's {LOWEST_MICROS}..{HIGHEST_MICROS} µs at {SIGFIG}; both sides must run the same fleetload version")]
    Bounds { low: u64, high: u64, sigfig: u8 },
    #[error("cannot encode histogram: {0}")]
    Encode(String),
}

/// A new, empty histogram with the fixed bounds.
pub fn new_latency() -> Latency {
    // The bounds are constants that hdrhistogram accepts; failure would be a bug in
    // this file, caught by every test that records anything.
    let mut h = Histogram::new_with_bounds(LOWEST_MICROS, 2, SIGFIG)
        .expect("fleetload's fixed histogram bounds are valid");
    h.auto(true);
    h
}

/// Significant digits of per-worker run totals on the coordinator: per-worker rows are
/// read at a glance, the cluster's histograms keep [`SIGFIG`], and at 2 digits a worker's
/// histograms take an eighth of the memory (it adds up over a thousand workers).
pub const COARSE_SIGFIG: u8 = 2;

/// A new, empty histogram at [`COARSE_SIGFIG`] digits (same range; merging a
/// [`SIGFIG`]-digit histogram into it is exact to 2 digits).
pub fn new_coarse_latency() -> Latency {
    let mut h = Histogram::new_with_bounds(LOWEST_MICROS, 2, COARSE_SIGFIG)
        .expect("fleetload's fixed histogram bounds are valid");
    h.auto(true);
    h
}

/// Record a duration, clamped into the bounds (sub-microsecond values count as 1 µs).
pub fn record(h: &mut Latency, d: std::time::Duration) {
    let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    record_n(h, micros.clamp(LOWEST_MICROS, HIGHEST_MICROS), 1);
}

/// Encode as HdrHistogram V2+deflate, readable by every HdrHistogram implementation.
pub fn encode(h: &Latency) -> Result<Vec<u8>, HistogramError> {
    let mut out = Vec::with_capacity(256);
    V2DeflateSerializer::new()
        .serialize(h, &mut out)
        .map_err(|e| HistogramError::Encode(format!("{e:?}")))?;
    Ok(out)
}

/// Decode V2 or V2+deflate bytes and check the bounds.
pub fn decode(bytes: &[u8]) -> Result<Latency, HistogramError> {
    if bytes.len() > MAX_ENCODED_BYTES {
        return Err(HistogramError::TooLarge { len: bytes.len() });
    }
    let mut reader = bytes;
    let h: Latency = Deserializer::new()
        .deserialize(&mut reader)
        .map_err(|e| HistogramError::Decode(format!("{e:?}")))?;
    let mut h = h;
    h.auto(true);
    if h.low() != LOWEST_MICROS || h.high() > MAX_GROWN_MICROS || h.sigfig() != SIGFIG {
        return Err(HistogramError::Bounds {
            low: h.low(),
            high: h.high(),
            sigfig: h.sigfig(),
        });
    }
    Ok(h)
}

/// Add `other` into `into`. Both have the fixed bounds, so this cannot fail.
///
/// Only `other`'s non-empty buckets are visited: an interval's histogram holds a few
/// hundred distinct values at most, while the bounds give ~45 000 buckets, and `add`
/// walks them all (it dominated the coordinator's CPU with a thousand workers). Each
/// bucket is recorded at its highest equivalent value, which lands in the same bucket
/// (same bounds on both sides), so counts, percentiles, min and max stay exact.
pub fn merge(into: &mut Latency, other: &Latency) {
    if other.is_empty() {
        return;
    }
    for v in other.iter_recorded() {
        record_n(into, v.value_iterated_to(), v.count_at_value());
    }
}

/// Record `count` at `value` (≤ 1 h), growing the histogram when needed.
fn record_n(h: &mut Latency, value: u64, count: u64) {
    h.auto(true);
    if h.record_n(value, count).is_err() {
        // Only if growing failed (it cannot below 1 h): clamp rather than lose it.
        h.saturating_record_n(value, count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn sparse_merge_equals_add() {
        let mut rng = crate::rng::Rng::new(11);
        let (mut a, mut b) = (new_latency(), new_latency());
        for _ in 0..5_000 {
            a.record(1 + rng.range(0, 3_000_000)).unwrap();
            b.record(1 + (rng.next_f64().powi(3) * 50_000_000.0) as u64)
                .unwrap();
        }
        let mut via_add = a.clone();
        via_add.add(&b).unwrap();
        let mut via_merge = a.clone();
        merge(&mut via_merge, &b);
        assert_eq!(via_merge.len(), via_add.len());
        for q in [0.0, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999, 1.0] {
            assert_eq!(
                via_merge.value_at_quantile(q),
                via_add.value_at_quantile(q),
                "q {q}"
            );
        }
        assert_eq!(via_merge.max(), via_add.max());
        assert_eq!(via_merge.min(), via_add.min());
        assert_eq!(via_merge, via_add);
    }

    #[test]
    fn round_trip_keeps_every_count() {
        let mut h = new_latency();
        for v in [1u64, 7, 250, 999, 1_000, 12_345, 1_000_000, 59_000_000] {
            h.record(v).unwrap();
        }
        let back = decode(&encode(&h).unwrap()).unwrap();
        assert_eq!(back, h);
        assert_eq!(back.len(), 8);
    }

    #[test]
    fn merged_percentiles_equal_those_of_one_histogram_fed_everything() {
        let mut all = new_latency();
        let mut parts: Vec<Latency> = (0..5).map(|_| new_latency()).collect();
        let mut rng = crate::rng::Rng::new(3);
        for i in 0..50_000u64 {
            let v = 1 + (rng.next_f64().powi(4) * 5_000_000.0) as u64;
            all.record(v).unwrap();
            parts[(i % 5) as usize].record(v).unwrap();
        }
        let mut merged = new_latency();
        for p in &parts {
            let wire = decode(&encode(p).unwrap()).unwrap();
            merge(&mut merged, &wire);
        }
        for q in [0.5, 0.9, 0.99, 0.999, 1.0] {
            assert_eq!(
                merged.value_at_quantile(q),
                all.value_at_quantile(q),
                "q={q}"
            );
        }
        assert_eq!(merged.len(), all.len());
        assert_eq!(merged.max(), all.max());
    }

    #[test]
    fn other_bounds_and_garbage_are_refused() {
        let foreign = Histogram::<u64>::new_with_bounds(1, 60_000_000, 2).unwrap();
        let mut bytes = Vec::new();
        V2DeflateSerializer::new()
            .serialize(&foreign, &mut bytes)
            .unwrap();
        assert!(matches!(decode(&bytes), Err(HistogramError::Bounds { .. })));
        assert!(matches!(
            decode(b"not a histogram"),
            Err(HistogramError::Decode(_))
        ));
        assert!(matches!(decode(&[]), Err(HistogramError::Decode(_))));
    }

    #[test]
    fn values_outside_the_bounds_are_clamped_not_lost() {
        let mut h = new_latency();
        record(&mut h, Duration::from_nanos(10));
        record(&mut h, Duration::from_secs(7200));
        assert_eq!(h.len(), 2);
        assert!(h.max() >= HIGHEST_MICROS / 2);
    }
}
#[cfg(test)]
mod grow_tests {
    use super::*;
    use std::time::Duration;
    #[test]
    fn grown_histograms_round_trip_and_merge() {
        let mut h = new_latency();
        for us in [300u64, 2_000, 290_000] {
            record(&mut h, Duration::from_micros(us));
        }
        let back = decode(&encode(&h).unwrap()).unwrap();
        assert_eq!(back.len(), 3);
        let mut into = new_latency();
        merge(&mut into, &back);
        assert_eq!(into.len(), 3, "merged {} values", into.len());
        assert_eq!(into.value_at_quantile(1.0), h.value_at_quantile(1.0));
        let empty = decode(&encode(&new_latency()).unwrap()).unwrap();
        merge(&mut into, &empty);
        assert_eq!(into.len(), 3);
    }
}
