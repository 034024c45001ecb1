//! The one set of histogram bounds in fleetload, and the wire codec.
//!
//! Every histogram records microseconds from 1 µs to 1 h at 3 significant digits, so a
//! merge is exact (docs/design.md, "Histograms and the merge"). Values above the top are clamped. Histograms grow
//! (auto-resize) only as far as the largest value recorded: the bucket layout of a
//! value does not depend on the top, so merges stay exact, while a histogram of
//! millisecond latencies holds ~30 KB instead of the 360 KB a 1 h top costs. A histogram
//! with another lowest value or precision on the wire is a protocol error, never
//! something to convert.

use hdrhistogram::serialization::{Serializer, V2DeflateSerializer, V2Serializer};
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

/// Encode as plain HdrHistogram V2 for a snapshot on the control stream.
///
/// The worker gzips the whole stream, so each snapshot goes through one deflate stream
/// instead of one per histogram: fifteen histograms of five operations shared one
/// Huffman table instead of paying ~50 bytes of tables and checksums each, a closed
/// loop's service-time histogram (equal to its response-time one) compresses to a
/// back-reference, and the coordinator inflates once per snapshot
/// (`bench/wire_cost.rs` prints both encodings side by side). [`decode`] reads both.
///
/// # Errors
/// Never in practice (writes to memory); kept for the serializer's signature.
pub fn encode_for_wire(h: &Latency) -> Result<Vec<u8>, HistogramError> {
    serialize(V2Serializer::new(), h)
}

/// Encode as HdrHistogram V2+deflate, readable by every HdrHistogram implementation.
pub fn encode(h: &Latency) -> Result<Vec<u8>, HistogramError> {
    serialize(V2DeflateSerializer::new(), h)
}

fn serialize<S: Serializer>(mut with: S, h: &Latency) -> Result<Vec<u8>, HistogramError>
where
    S::SerializeError: std::fmt::Debug,
{
    let mut out = Vec::with_capacity(128);
    with.serialize(h, &mut out)
        .map_err(|e| HistogramError::Encode(format!("{e:?}")))?;
    Ok(out)
}

/// Decode V2 or V2+deflate bytes and check the bounds.
///
/// The coordinator decodes three histograms per operation and worker every interval
/// (15 000 a second for a thousand workers of five operations), so this does not go
/// through `hdrhistogram`'s deserializer, which allocates a fresh inflater and a 32 KB
/// read buffer for every histogram: each thread keeps one inflater and one buffer and
/// resets them. The format is HdrHistogram's V2 as every implementation writes it, and
/// the result equals that deserializer's (tested).
pub fn decode(bytes: &[u8]) -> Result<Latency, HistogramError> {
    if bytes.len() > MAX_ENCODED_BYTES {
        return Err(HistogramError::TooLarge { len: bytes.len() });
    }
    DECODER.with(|d| d.borrow_mut().decode(bytes))
}

/// HdrHistogram's V2 cookies (`| 0x10`: 8-byte words).
const V2_COOKIE: u32 = 0x1c84_9303 | 0x10;
const V2_DEFLATE_COOKIE: u32 = 0x1c84_9304 | 0x10;
/// Cookie, payload length, normalizing offset, digits, lowest, highest, ratio.
const V2_HEADER_BYTES: usize = 40;
/// Largest inflated V2 encoding accepted: the widest histogram fleetload accepts has
/// ~47 000 counts of at most 9 bytes each.
const MAX_INFLATED_BYTES: usize = 1 << 20;
/// log2 of half the sub-buckets per bucket at [`SIGFIG`] digits (HdrHistogram's layout:
/// 2·10^digits values at unit resolution, rounded up to a power of two).
const HALF_MAGNITUDE: u32 = {
    let largest_single_unit = 2 * 10u64.pow(SIGFIG as u32);
    64 - (largest_single_unit - 1).leading_zeros() - 1
};

thread_local! {
    static DECODER: std::cell::RefCell<Decoder> = std::cell::RefCell::new(Decoder::new());
}

/// One thread's reusable inflater and buffer.
struct Decoder {
    inflate: flate2::Decompress,
    inflated: Vec<u8>,
}

impl Decoder {
    fn new() -> Self {
        Decoder {
            inflate: flate2::Decompress::new(true),
            inflated: Vec::new(),
        }
    }

    fn decode(&mut self, bytes: &[u8]) -> Result<Latency, HistogramError> {
        match be_u32(bytes, 0)? {
            V2_COOKIE => parse_v2(bytes),
            V2_DEFLATE_COOKIE => {
                let len = be_u32(bytes, 4)? as usize;
                let deflated = bytes.get(8..8 + len).ok_or_else(|| {
                    decode_error(format!(
                        "the header announces {len} compressed bytes, {} follow",
                        bytes.len().saturating_sub(8)
                    ))
                })?;
                self.inflate(deflated)?;
                parse_v2(&self.inflated)
            }
            other => Err(decode_error(format!(
                "cookie {other:#010x} is neither V2 ({V2_COOKIE:#010x}) nor V2+deflate ({V2_DEFLATE_COOKIE:#010x})"
            ))),
        }
    }

    /// Inflate a zlib stream into `self.inflated`, growing it up to [`MAX_INFLATED_BYTES`].
    fn inflate(&mut self, input: &[u8]) -> Result<(), HistogramError> {
        use flate2::{FlushDecompress, Status};
        self.inflate.reset(true);
        self.inflated.clear();
        loop {
            if self.inflated.len() == self.inflated.capacity() {
                if self.inflated.capacity() >= MAX_INFLATED_BYTES {
                    return Err(decode_error(format!(
                        "inflates to more than {MAX_INFLATED_BYTES} bytes"
                    )));
                }
                self.inflated.reserve(self.inflated.capacity().max(4096));
            }
            let (read, written) = (self.inflate.total_in(), self.inflated.len());
            let rest = input
                .get(usize::try_from(read).unwrap_or(usize::MAX)..)
                .unwrap_or_default();
            let status = self
                .inflate
                .decompress_vec(rest, &mut self.inflated, FlushDecompress::None)
                .map_err(|e| decode_error(format!("deflate: {e}")))?;
            if status == Status::StreamEnd {
                return Ok(());
            }
            let stuck = self.inflate.total_in() == read && self.inflated.len() == written;
            if stuck && self.inflated.len() < self.inflated.capacity() {
                return Err(decode_error("the deflate stream is truncated".into()));
            }
        }
    }
}

fn decode_error(message: String) -> HistogramError {
    HistogramError::Decode(message)
}

fn be_u32(b: &[u8], at: usize) -> Result<u32, HistogramError> {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_be_bytes)
        .ok_or_else(|| decode_error(format!("{} bytes end inside the header", b.len())))
}

fn be_u64(b: &[u8], at: usize) -> Result<u64, HistogramError> {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| decode_error(format!("{} bytes end inside the header", b.len())))
}

/// Parse an uncompressed V2 encoding (cookie included) with fleetload's bounds.
fn parse_v2(b: &[u8]) -> Result<Latency, HistogramError> {
    if be_u32(b, 0)? != V2_COOKIE {
        return Err(decode_error(
            "the inflated bytes are not a V2 histogram".into(),
        ));
    }
    let payload_len = be_u32(b, 4)? as usize;
    let offset = be_u32(b, 8)?;
    let digits = be_u32(b, 12)?;
    let (low, high) = (be_u64(b, 16)?, be_u64(b, 24)?);
    let ratio = f64::from_bits(be_u64(b, 32)?);
    if offset != 0 || ratio != 1.0 {
        return Err(decode_error(format!(
            "normalizing offset {offset} and value ratio {ratio} are not supported (0 and 1)"
        )));
    }
    if low != LOWEST_MICROS || high > MAX_GROWN_MICROS || digits != u32::from(SIGFIG) {
        return Err(HistogramError::Bounds {
            low,
            high,
            sigfig: u8::try_from(digits).unwrap_or(u8::MAX),
        });
    }
    let payload = b
        .get(V2_HEADER_BYTES..V2_HEADER_BYTES + payload_len)
        .ok_or_else(|| {
            decode_error(format!(
                "the header announces {payload_len} bytes of counts, {} follow",
                b.len().saturating_sub(V2_HEADER_BYTES)
            ))
        })?;
    // Sized once for the announced top (≤ 4 h, checked above) rather than grown value by
    // value; auto-resize stays on for what is merged in later.
    let mut h = Histogram::new_with_bounds(LOWEST_MICROS, high.max(2), SIGFIG)
        .map_err(|e| decode_error(format!("bounds: {e:?}")))?;
    h.auto(true);
    let mut index: u64 = 0;
    let mut at = 0;
    while at < payload.len() {
        let (zigzag, used) = varint(&payload[at..])
            .ok_or_else(|| decode_error("the counts end inside a number".into()))?;
        at += used;
        // Zig-zag: a negative number is a run of empty buckets, a positive one a count.
        let n = (zigzag >> 1) as i64 ^ -((zigzag & 1) as i64);
        if n < 0 {
            index = index.saturating_add(n.unsigned_abs());
            continue;
        }
        if n > 0 {
            let value = value_at_index(index)
                .filter(|v| *v <= MAX_GROWN_MICROS)
                .ok_or_else(|| {
                    decode_error(format!(
                        "a count at bucket {index} lies beyond the top of 4 h"
                    ))
                })?;
            record_n(&mut h, value, n.unsigned_abs());
        }
        index = index.saturating_add(1);
    }
    Ok(h)
}

/// HdrHistogram's LEB128-64b9B: up to 8 bytes of 7 bits, then a 9th of 8.
fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for i in 0..8 {
        let byte = *b.get(i)?;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    Some((value | u64::from(*b.get(8)?) << 56, 9))
}

/// The lowest value of the bucket at `index` (lowest value 1, [`SIGFIG`] digits).
fn value_at_index(index: u64) -> Option<u64> {
    let half = 1u64 << HALF_MAGNITUDE;
    let sub = (index & (half - 1)) + half;
    match (index >> HALF_MAGNITUDE).checked_sub(1) {
        None => Some(sub - half),
        Some(bucket) if bucket < 40 => Some(sub << bucket),
        Some(_) => None,
    }
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

    /// Our decoder against hdrhistogram's own, on histograms of every shape we send.
    #[test]
    fn decode_equals_hdrhistogram_deserializer() {
        use hdrhistogram::serialization::{Deserializer, V2Serializer};
        let mut rng = crate::rng::Rng::new(5);
        for case in 0..200u64 {
            let mut h = new_latency();
            let top = [10, 3_000, 300_000, 60_000_000, HIGHEST_MICROS][(case % 5) as usize];
            for _ in 0..rng.range(0, 3_000) {
                let v = 1 + (rng.next_f64().powi(3) * top as f64) as u64;
                record_n(&mut h, v.min(HIGHEST_MICROS), rng.range(1, 3));
            }
            let mut plain = Vec::new();
            V2Serializer::new().serialize(&h, &mut plain).unwrap();
            for bytes in [encode(&h).unwrap(), plain] {
                let theirs: Latency = Deserializer::new().deserialize(&mut &bytes[..]).unwrap();
                let ours = decode(&bytes).unwrap();
                assert_eq!(ours, theirs, "case {case}");
                assert_eq!(ours, h, "case {case}");
                assert_eq!(
                    (ours.len(), ours.max(), ours.min()),
                    (h.len(), h.max(), h.min())
                );
            }
        }
    }

    #[test]
    fn truncated_and_oversized_encodings_are_refused_with_a_reason() {
        let mut h = new_latency();
        for v in 1..2_000u64 {
            h.record(v * 37).unwrap();
        }
        let bytes = encode(&h).unwrap();
        for cut in [4, 8, 20, bytes.len() / 2, bytes.len() - 1] {
            let err = decode(&bytes[..cut]).unwrap_err();
            assert!(matches!(err, HistogramError::Decode(_)), "cut {cut}: {err}");
        }
        // A count far beyond the top: one huge zero run, then a count.
        let mut v2 = Vec::new();
        hdrhistogram::serialization::V2Serializer::new()
            .serialize(&new_latency(), &mut v2)
            .unwrap();
        let mut counts = vec![0xff, 0xff, 0xff, 0xff, 0x0f]; // zig-zag of -2^31: a zero run
        counts.push(2); // count 1
        v2[4..8].copy_from_slice(&(counts.len() as u32).to_be_bytes());
        v2.truncate(V2_HEADER_BYTES);
        v2.extend_from_slice(&counts);
        let err = decode(&v2).unwrap_err().to_string();
        assert!(err.contains("beyond the top"), "{err}");
        // The same decoder keeps working after errors.
        assert_eq!(decode(&bytes).unwrap(), h);
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
