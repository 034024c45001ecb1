//! Parameter generators of scenario files, and the per-session state that draws from
//! them.
//!
//! A generator is defined once in the file; every session owns a [`Draw`] per parameter,
//! so sequences and cached distributions are never shared or locked.

use crate::rng::Rng;
use crate::split::Shard;
use crate::value::Arg;
use rand_distr::{Distribution, Zipf};

mod table;

pub use table::{GeneratorError, MAX_PICK_VALUES};

/// Every generator name, for error messages.
pub const NAMES: &str =
    "int, float, shard, zipf, scrambled_zipf, sequence, normal, string, pick, now, row, or from = \"column\"";

/// How a parameter gets its value.
#[derive(Debug, Clone, PartialEq)]
pub enum Generator {
    /// Uniform integer in `[min, max]`.
    Int { min: i64, max: i64 },
    /// Uniform float in `[min, max)`.
    Float { min: f64, max: f64 },
    /// Uniform over the worker's key ranges: ids stay in the worker's shard.
    Shard,
    /// Zipfian with exponent `s` over `[min, max]` (or the worker's key ranges); rank 1
    /// is the hottest key. Scrambled: ranks are hashed over the range, so hot keys are
    /// spread out as YCSB's scrambled Zipfian does, instead of crowding the low end.
    Zipf {
        s: f64,
        range: Option<(u64, u64)>,
        scrambled: bool,
    },
    /// Per-worker sequence: `start`, or one above `MAX(column)` of `table` read before
    /// the run starts, then stepping so no two sessions of any worker ever collide.
    Sequence {
        start: u64,
        above_max: Option<(String, String)>,
    },
    /// Normal distribution, clamped to `[min, max]` when given, rounded to `decimals`.
    Normal {
        mean: f64,
        stddev: f64,
        min: Option<f64>,
        max: Option<f64>,
        decimals: Option<u32>,
    },
    /// Random letters and digits, length uniform in `[min_len, max_len]`.
    Text { min_len: u32, max_len: u32 },
    /// One of `values`, with weights (cumulative, for the draw).
    Pick {
        values: Vec<Arg>,
        cumulative: Vec<u64>,
    },
    /// The current time (UTC), as a timestamp.
    Now,
    /// The row number being loaded (`[load]` only): 1, 2, …, rows.
    Row,
    /// A column of the first row an earlier statement of the same operation returned.
    From { column: String },
}

impl Generator {
    pub fn name(&self) -> &'static str {
        match self {
            Generator::Int { .. } => "int",
            Generator::Float { .. } => "float",
            Generator::Shard => "shard",
            Generator::Zipf {
                scrambled: false, ..
            } => "zipf",
            Generator::Zipf {
                scrambled: true, ..
            } => "scrambled_zipf",
            Generator::Sequence { .. } => "sequence",
            Generator::Normal { .. } => "normal",
            Generator::Text { .. } => "string",
            Generator::Pick { .. } => "pick",
            Generator::Now => "now",
            Generator::Row => "row",
            Generator::From { .. } => "from",
        }
    }
}

/// Which session a [`Draw`] belongs to: sequences interleave by these, so every session
/// of every worker draws distinct values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Streams {
    pub worker_index: u64,
    /// Workers in the run.
    pub fleet: u64,
    pub session: u64,
    /// Sessions per worker.
    pub sessions: u64,
}

/// What a draw may depend on besides the RNG.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// The worker's key ranges (its shard first, then any taken over).
    pub ranges: &'a [Shard],
    /// The row being loaded (`row`).
    pub row: u64,
    pub now_micros: i64,
    /// Columns returned so far by this execution's statements.
    pub captured: &'a [(String, Arg)],
}

/// One session's state for one parameter.
#[derive(Debug, Clone)]
pub struct Draw {
    generator: Generator,
    next: u64,
    stride: u64,
    /// The Zipf distribution for the key count it was built for.
    zipf: Option<(u64, Zipf<f64>)>,
}

impl Draw {
    /// `sequence_base` is the sequence's first value for the whole run (`start`, or one
    /// above the table's maximum); other generators ignore it.
    pub fn new(generator: Generator, streams: Streams, sequence_base: u64) -> Self {
        let fleet = streams.fleet.max(1);
        Draw {
            generator,
            // Worker w, session i: base + w + N·i, then steps of N·S.
            next: sequence_base
                .saturating_add(streams.worker_index)
                .saturating_add(fleet.saturating_mul(streams.session)),
            stride: fleet.saturating_mul(streams.sessions.max(1)),
            zipf: None,
        }
    }

    pub fn generator(&self) -> &Generator {
        &self.generator
    }

    /// The next value.
    ///
    /// # Errors
    /// A `from` parameter whose column no earlier statement returned.
    pub fn next(&mut self, rng: &mut Rng, inputs: &Inputs<'_>) -> Result<Arg, String> {
        Ok(match &self.generator {
            Generator::Int { min, max } => {
                let span = max.abs_diff(*min);
                Arg::Int(min.wrapping_add(rng_span(rng, span) as i64))
            }
            Generator::Float { min, max } => Arg::Real(min + (max - min) * rng.next_f64()),
            Generator::Shard => {
                let total = total_keys(inputs.ranges);
                Arg::Int(nth_key(inputs.ranges, rng_span(rng, total.saturating_sub(1))) as i64)
            }
            Generator::Zipf {
                s,
                range,
                scrambled,
            } => {
                let n = match range {
                    Some((lo, hi)) => hi - lo + 1,
                    None => total_keys(inputs.ranges),
                }
                .max(1);
                let s = *s;
                let zipf = match &self.zipf {
                    Some((k, z)) if *k == n => z,
                    _ => {
                        let z = Zipf::new(n, s).map_err(|e| format!("zipf over {n} keys: {e}"))?;
                        &self.zipf.insert((n, z)).1
                    }
                };
                let rank = (zipf.sample(&mut RngAdapter(rng)) as u64).clamp(1, n);
                let offset = if *scrambled {
                    fnv1a(rank) % n
                } else {
                    rank - 1
                };
                Arg::Int(match range {
                    Some((lo, _)) => lo + offset,
                    None => nth_key(inputs.ranges, offset),
                } as i64)
            }
            Generator::Sequence { .. } => {
                let v = self.next;
                self.next = self.next.saturating_add(self.stride);
                Arg::Int(i64::try_from(v).unwrap_or(i64::MAX))
            }
            Generator::Normal {
                mean,
                stddev,
                min,
                max,
                decimals,
            } => {
                let mut v = rng.normal(*mean, *stddev);
                if let Some(lo) = min {
                    v = v.max(*lo);
                }
                if let Some(hi) = max {
                    v = v.min(*hi);
                }
                if let Some(d) = decimals {
                    let f = 10f64.powi(*d as i32);
                    v = (v * f).round() / f;
                }
                Arg::Real(v)
            }
            Generator::Text { min_len, max_len } => {
                const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
                let len = rng.range(u64::from(*min_len), u64::from(*max_len)) as usize;
                Arg::Text(
                    (0..len)
                        .map(|_| ALNUM[rng.range(0, ALNUM.len() as u64 - 1) as usize] as char)
                        .collect(),
                )
            }
            Generator::Pick { values, cumulative } => {
                let total = cumulative.last().copied().unwrap_or(1).max(1);
                let x = rng.range(1, total);
                let i = cumulative.partition_point(|c| *c < x).min(values.len() - 1);
                values[i].clone()
            }
            Generator::Now => Arg::Timestamp(inputs.now_micros),
            Generator::Row => Arg::Int(i64::try_from(inputs.row).unwrap_or(i64::MAX)),
            Generator::From { column } => inputs
                .captured
                .iter()
                .find(|(c, _)| c.eq_ignore_ascii_case(column))
                .map(|(_, v)| v.clone())
                .ok_or_else(|| {
                    format!("no earlier statement of this operation returned a row with a column `{column}`")
                })?,
        })
    }
}

/// Uniform in `[0, span]`.
fn rng_span(rng: &mut Rng, span: u64) -> u64 {
    if span == u64::MAX {
        rng.next_u64()
    } else {
        rng.range(0, span)
    }
}

fn total_keys(ranges: &[Shard]) -> u64 {
    ranges.iter().map(Shard::len).sum::<u64>().max(1)
}

/// The key at position `p` of the ranges laid end to end.
fn nth_key(ranges: &[Shard], mut p: u64) -> u64 {
    for r in ranges {
        if p < r.len() {
            return r.first + p;
        }
        p -= r.len();
    }
    ranges.last().map_or(1, |r| r.last)
}

/// FNV-1a over the rank's bytes: YCSB's scrambling hash.
fn fnv1a(x: u64) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for byte in x.to_le_bytes() {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x0100_0000_01B3);
    }
    h
}

/// Our RNG seen through `rand_core`, for `rand_distr`'s samplers.
struct RngAdapter<'a>(&'a mut Rng);

impl rand_core::RngCore for RngAdapter<'_> {
    fn next_u32(&mut self) -> u32 {
        (self.0.next_u64() >> 32) as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        rand_core::impls::fill_bytes_via_next(self, dest);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashSet};

    const ONE: Streams = Streams {
        worker_index: 0,
        fleet: 1,
        session: 0,
        sessions: 1,
    };

    fn inputs(ranges: &[Shard]) -> Inputs<'_> {
        Inputs {
            ranges,
            row: 0,
            now_micros: 0,
            captured: &[],
        }
    }

    fn ints(g: Generator, ranges: &[Shard], n: usize) -> Vec<i64> {
        let mut d = Draw::new(g, ONE, 1);
        let mut rng = Rng::new(11);
        (0..n)
            .map(|_| match d.next(&mut rng, &inputs(ranges)).unwrap() {
                Arg::Int(v) => v,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    const SHARD: Shard = Shard {
        first: 1,
        last: 1000,
    };

    #[test]
    fn uniform_int_stays_in_bounds_and_reaches_both_ends() {
        let xs = ints(Generator::Int { min: -5, max: 5 }, &[SHARD], 20_000);
        assert!(xs.iter().all(|x| (-5..=5).contains(x)));
        assert!(xs.contains(&-5) && xs.contains(&5));
        // Each of 11 values about 1/11 of the draws (chi-square-ish bound: ±10 %).
        let mut counts = BTreeMap::new();
        for x in xs {
            *counts.entry(x).or_insert(0) += 1;
        }
        for (v, c) in counts {
            assert!((1636..2000).contains(&c), "value {v}: {c} of 20000");
        }
    }

    #[test]
    fn shard_draws_only_the_workers_ranges() {
        let ranges = [
            Shard {
                first: 101,
                last: 200,
            },
            Shard {
                first: 901,
                last: 950,
            },
        ];
        let xs = ints(Generator::Shard, &ranges, 30_000);
        assert!(xs
            .iter()
            .all(|x| (101..=200).contains(x) || (901..=950).contains(x)));
        let second = xs.iter().filter(|x| **x > 900).count();
        // The second range holds a third of the keys.
        assert!((9_400..10_600).contains(&second), "{second}");
    }

    #[test]
    fn zipf_rank_frequencies_follow_the_power_law() {
        let s = 0.99;
        let xs = ints(
            Generator::Zipf {
                s,
                range: Some((1, 1000)),
                scrambled: false,
            },
            &[SHARD],
            200_000,
        );
        let count = |k: i64| xs.iter().filter(|x| **x == k).count() as f64;
        // f(k) ∝ 1/k^s: the expected share of rank 1 is 1/H(n,s).
        let h: f64 = (1..=1000).map(|k| 1.0 / f64::from(k).powf(s)).sum();
        let expected_top = 200_000.0 / h;
        assert!(
            (count(1) / expected_top - 1.0).abs() < 0.05,
            "rank 1: {} vs {expected_top}",
            count(1)
        );
        for k in [2, 4, 10] {
            let ratio = count(1) / count(k);
            let expected = f64::from(k as i32).powf(s);
            assert!(
                (ratio / expected - 1.0).abs() < 0.1,
                "f(1)/f({k}) = {ratio}, expected {expected}"
            );
        }
    }

    #[test]
    fn scrambled_zipf_spreads_hot_keys_over_the_range() {
        let xs = ints(
            Generator::Zipf {
                s: 0.99,
                range: Some((1, 10_000)),
                scrambled: true,
            },
            &[SHARD],
            100_000,
        );
        assert!(xs.iter().all(|x| (1..=10_000).contains(x)));
        let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
        for x in &xs {
            *counts.entry(*x).or_insert(0) += 1;
        }
        let mut by_count: Vec<_> = counts.into_iter().collect();
        by_count.sort_by_key(|e| std::cmp::Reverse(e.1));
        let hottest: Vec<i64> = by_count.iter().take(10).map(|(k, _)| *k).collect();
        // Still skewed: the hottest key takes far more than a uniform share (10)...
        assert!(by_count[0].1 > 500, "{:?}", &by_count[..3]);
        // ...but the ten hottest keys are not crowded at the low end of the range.
        assert!(
            hottest.iter().filter(|k| **k > 5_000).count() >= 2,
            "{hottest:?}"
        );
        assert!(hottest.iter().any(|k| *k > 100), "{hottest:?}");
    }

    #[test]
    fn sequences_never_collide_across_workers_and_sessions() {
        let mut seen = HashSet::new();
        for worker in 0..3 {
            for session in 0..4 {
                let streams = Streams {
                    worker_index: worker,
                    fleet: 3,
                    session,
                    sessions: 4,
                };
                let mut d = Draw::new(
                    Generator::Sequence {
                        start: 1000,
                        above_max: None,
                    },
                    streams,
                    1000,
                );
                let mut rng = Rng::new(1);
                for _ in 0..500 {
                    let Ok(Arg::Int(v)) = d.next(&mut rng, &inputs(&[SHARD])) else {
                        panic!()
                    };
                    assert!(v >= 1000);
                    assert!(seen.insert(v), "{v} drawn twice");
                }
            }
        }
        // Dense: 3 workers × 4 sessions × 500 values fill [1000, 7000) exactly.
        assert_eq!(seen.len(), 6000);
        assert_eq!(seen.iter().max(), Some(&6999));
    }

    #[test]
    fn normal_has_its_mean_and_spread_and_respects_clamps() {
        let mut d = Draw::new(
            Generator::Normal {
                mean: 100.0,
                stddev: 15.0,
                min: Some(60.0),
                max: None,
                decimals: Some(1),
            },
            ONE,
            1,
        );
        let mut rng = Rng::new(3);
        let xs: Vec<f64> = (0..50_000)
            .map(|_| match d.next(&mut rng, &inputs(&[SHARD])).unwrap() {
                Arg::Real(v) => v,
                other => panic!("{other:?}"),
            })
            .collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64).sqrt();
        assert!((mean - 100.0).abs() < 0.5, "mean {mean}");
        assert!((sd - 15.0).abs() < 0.5, "sd {sd}");
        assert!(xs.iter().all(|x| *x >= 60.0));
        assert!(xs
            .iter()
            .all(|x| (x * 10.0 - (x * 10.0).round()).abs() < 1e-9));
    }

    #[test]
    fn strings_picks_and_floats_stay_in_their_definitions() {
        let mut rng = Rng::new(5);
        let mut d = Draw::new(
            Generator::Text {
                min_len: 3,
                max_len: 8,
            },
            ONE,
            1,
        );
        let mut lens = HashSet::new();
        for _ in 0..2000 {
            let Ok(Arg::Text(s)) = d.next(&mut rng, &inputs(&[SHARD])) else {
                panic!()
            };
            assert!(s.chars().all(|c| c.is_ascii_alphanumeric()));
            lens.insert(s.len());
        }
        assert_eq!(lens, (3..=8).collect());

        let mut d = Draw::new(
            Generator::Pick {
                values: vec![Arg::Text("a".into()), Arg::Text("b".into())],
                cumulative: vec![1, 4],
            },
            ONE,
            1,
        );
        let b = (0..40_000)
            .filter(|_| d.next(&mut rng, &inputs(&[SHARD])).unwrap() == Arg::Text("b".into()))
            .count();
        assert!(
            (29_400..30_600).contains(&b),
            "weights 1:3 gave {b} of 40000 b"
        );

        let mut d = Draw::new(Generator::Float { min: 2.0, max: 3.0 }, ONE, 1);
        for _ in 0..1000 {
            let Ok(Arg::Real(v)) = d.next(&mut rng, &inputs(&[SHARD])) else {
                panic!()
            };
            assert!((2.0..3.0).contains(&v));
        }
    }

    #[test]
    fn from_takes_an_earlier_column_or_says_which_is_missing() {
        let captured = [("ID".to_string(), Arg::Int(7))];
        let mut d = Draw::new(
            Generator::From {
                column: "id".into(),
            },
            ONE,
            1,
        );
        let mut rng = Rng::new(1);
        let mut i = inputs(&[SHARD]);
        i.captured = &captured;
        assert_eq!(d.next(&mut rng, &i).unwrap(), Arg::Int(7));
        let e = d.next(&mut rng, &inputs(&[SHARD])).unwrap_err();
        assert!(e.contains("`id`"), "{e}");
    }
}
