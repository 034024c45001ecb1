//! How the cluster's work is divided among workers: contiguous key shards and rate
//! shares by weight, with phase offsets so the union of the workers' schedules is the
//! cluster's schedule (docs/design.md, "Open loop without lying", "Shards and ids").

use serde::{Deserialize, Serialize};

/// An inclusive key range `[first, last]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub first: u64,
    pub last: u64,
}

/// As logs and messages show it: `1..=3334`.
impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}..={}", self.first, self.last)
    }
}

impl Shard {
    pub fn len(&self) -> u64 {
        self.last - self.first + 1
    }

    /// Never true: a shard holds at least one key (`split_keys` guarantees it).
    pub fn is_empty(&self) -> bool {
        self.first > self.last
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SplitError {
    #[error("cannot split {rows} rows among {workers} workers: every worker needs at least one row; load more rows (plan key `rows`) or run fewer workers")]
    TooFewRows { rows: u64, workers: usize },
    #[error("worker weights must be positive and finite, got {0:?}")]
    BadWeights(Vec<f64>),
}

fn check_weights(weights: &[f64]) -> Result<f64, SplitError> {
    let total: f64 = weights.iter().sum();
    if weights.is_empty() || weights.iter().any(|w| !w.is_finite() || *w <= 0.0) {
        return Err(SplitError::BadWeights(weights.to_vec()));
    }
    Ok(total)
}

/// Split keys `[1, rows]` into contiguous shards proportional to `weights` (largest
/// remainder, so the sizes sum to `rows` exactly).
pub fn split_keys(rows: u64, weights: &[f64]) -> Result<Vec<Shard>, SplitError> {
    let total = check_weights(weights)?;
    if rows < weights.len() as u64 {
        return Err(SplitError::TooFewRows {
            rows,
            workers: weights.len(),
        });
    }
    let exact: Vec<f64> = weights.iter().map(|w| rows as f64 * w / total).collect();
    let mut sizes: Vec<u64> = exact.iter().map(|e| (e.floor() as u64).max(1)).collect();
    let mut assigned: u64 = sizes.iter().sum();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| {
        (exact[b] - exact[b].floor())
            .partial_cmp(&(exact[a] - exact[a].floor()))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut k = 0;
    while assigned < rows {
        sizes[order[k % order.len()]] += 1;
        assigned += 1;
        k += 1;
    }
    while assigned > rows {
        // Only reachable when the max(1) floor over-assigned: take from the largest.
        let (i, _) = sizes
            .iter()
            .enumerate()
            .max_by_key(|(_, s)| **s)
            .expect("weights is not empty");
        sizes[i] -= 1;
        assigned -= 1;
    }
    let mut next = 1;
    Ok(sizes
        .into_iter()
        .map(|n| {
            let shard = Shard {
                first: next,
                last: next + n - 1,
            };
            next += n;
            shard
        })
        .collect())
}

/// One worker's share of an open-loop cluster rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateShare {
    /// The fraction of the cluster's load this worker carries.
    pub share: f64,
    /// Uniform arrivals: where in its own first period this worker's first operation
    /// falls (a fraction of one operation), so the workers interleave.
    pub phase: f64,
}

/// Split the cluster load by weight. Worker `i` carries `wᵢ/Σw` of it, with its first
/// operation a fraction `Σ_{k<i} w_k / Σw` into its own period: with equal weights the
/// workers interleave exactly (worker `i` takes cluster operations `i, i+N, i+2N, …`),
/// at every rate of a profile, since every share scales the same profile.
pub fn split_rate(weights: &[f64]) -> Result<Vec<RateShare>, SplitError> {
    let total = check_weights(weights)?;
    let mut before = 0.0;
    Ok(weights
        .iter()
        .map(|w| {
            let share = RateShare {
                share: w / total,
                phase: before / total,
            };
            before += w;
            share
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Profile;
    use crate::rng::Rng;
    use crate::schedule::{Arrival, Arrivals};
    use std::time::Duration;

    #[test]
    fn shards_cover_the_key_space_without_overlap() {
        for (rows, weights) in [
            (10_000u64, vec![1.0, 1.0]),
            (10_001, vec![1.0, 1.0, 1.0]),
            (7, vec![1.0; 7]),
            (1_000, vec![1.0, 3.0]),
            (100, vec![0.1, 5.0, 2.5, 1.0]),
        ] {
            let shards = split_keys(rows, &weights).unwrap();
            assert_eq!(shards[0].first, 1);
            assert_eq!(shards.last().unwrap().last, rows);
            for w in shards.windows(2) {
                assert_eq!(w[0].last + 1, w[1].first, "contiguous, disjoint");
            }
            assert_eq!(shards.iter().map(Shard::len).sum::<u64>(), rows);
            assert!(shards.iter().all(|s| s.first <= s.last));
        }
        let s = split_keys(1_000, &[1.0, 3.0]).unwrap();
        assert_eq!((s[0].len(), s[1].len()), (250, 750));
    }

    #[test]
    fn too_few_rows_or_bad_weights_are_errors() {
        assert_eq!(
            split_keys(2, &[1.0; 3]),
            Err(SplitError::TooFewRows {
                rows: 2,
                workers: 3
            })
        );
        assert!(split_keys(10, &[1.0, 0.0]).is_err());
        assert!(split_rate(&[]).is_err());
    }

    #[test]
    fn rate_shares_sum_to_the_cluster_rate_in_proportion() {
        let shares = split_rate(&[1.0, 3.0]).unwrap();
        assert!((shares[0].share - 0.25).abs() < 1e-12);
        assert!((shares[1].share - 0.75).abs() < 1e-12);
        let shares = split_rate(&[2.0, 2.0, 2.0]).unwrap();
        assert!((shares.iter().map(|s| s.share).sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn equal_shares_interleave_into_the_cluster_schedule_even_on_a_ramp() {
        let cluster = Profile::from_points(vec![(0.0, 300.0), (2.0, 900.0)]).unwrap();
        let shares = split_rate(&[1.0, 1.0, 1.0]).unwrap();
        let arrivals = |p: Profile, phase: f64| {
            Arrivals::new(Arrival::Uniform, p, phase, Rng::new(1))
                .take_while(|t| t.as_secs_f64() < 2.0)
        };
        let mut union: Vec<Duration> = shares
            .iter()
            .flat_map(|s| arrivals(cluster.scaled(s.share), s.phase))
            .collect();
        union.sort();
        let whole: Vec<Duration> = arrivals(cluster.clone(), 0.0).collect();
        assert_eq!(union.len(), whole.len());
        for (i, (t, want)) in union.iter().zip(&whole).enumerate() {
            let diff = t.as_nanos().abs_diff(want.as_nanos());
            assert!(diff <= 1_000, "op {i}: {t:?} vs {want:?}");
        }
    }
}
