//! SplitMix64: tiny, fast and stable. Data generation must give the same rows for the
//! same seed on every version, so the algorithm is fixed here rather than borrowed from
//! a crate whose streams may change.

/// A seedable pseudo-random generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    /// A generator for one stream of a run (worker, session, ...): distinct streams of
    /// one seed do not overlap in practice.
    pub fn for_stream(seed: u64, stream: &[u64]) -> Self {
        let mut rng = Rng::new(seed);
        for part in stream {
            rng.state ^= part.wrapping_mul(0xD6E8_FEB8_6659_FD93);
            rng.next_u64();
        }
        rng
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in the inclusive range `[lo, hi]`; `lo <= hi` is the caller's promise.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        let span = hi - lo + 1;
        // Lemire's multiply-shift: unbiased enough for load generation, no division.
        lo + ((u128::from(self.next_u64()) * u128::from(span)) >> 64) as u64
    }

    /// Normal(mean, sd) by Box-Muller.
    pub fn normal(&mut self, mean: f64, sd: f64) -> f64 {
        let u1 = self.next_f64().max(f64::MIN_POSITIVE);
        let u2 = self.next_f64();
        mean + sd * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.next_f64() < p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_range_stays_inside() {
        let mut a = Rng::for_stream(7, &[1, 2]);
        let mut b = Rng::for_stream(7, &[1, 2]);
        let mut c = Rng::for_stream(7, &[1, 3]);
        let xs: Vec<u64> = (0..100).map(|_| a.range(10, 20)).collect();
        let ys: Vec<u64> = (0..100).map(|_| b.range(10, 20)).collect();
        let zs: Vec<u64> = (0..100).map(|_| c.range(10, 20)).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
        assert!(xs.iter().all(|x| (10..=20).contains(x)));
        assert!(xs.contains(&10) && xs.contains(&20));
    }
}
