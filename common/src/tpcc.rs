//! TPC-C's generators (TPC-C 5.11, clauses 2.1.6 and 4.3): NURand and its constants,
//! customer last names, random strings, and the sizes. Shared by the loader (`prepare`)
//! and the transactions, so both draw from the same distributions with the same
//! constants.

use crate::rng::Rng;

/// Items in the catalogue.
/// TPC-C's New-Orders the database committed, as a database counter: the sum of the
/// districts' `D_NEXT_O_ID`. The coordinator samples it; the report's tpmC reads it.
pub const NEW_ORDERS_COUNTER: &str = "tpcc_new_orders";

pub const ITEMS: u64 = 100_000;
/// Districts per warehouse.
pub const DISTRICTS: u64 = 10;
/// Customers per district.
pub const CUSTOMERS: u64 = 3_000;
/// Orders per district at load time (the last 900 undelivered: new orders).
pub const ORDERS: u64 = 3_000;
/// First order id of the undelivered ones at load time.
pub const FIRST_NEW_ORDER: u64 = 2_101;
/// The specification's most New-Order transactions per minute per warehouse with keying
/// and think times (clause 4.2): the efficiency denominator.
pub const MAX_TPMC_PER_WAREHOUSE: f64 = 12.86;

/// The syllables of customer last names (clause 4.3.2.3).
const SYLLABLES: [&str; 10] = [
    "BAR", "OUGHT", "ABLE", "PRI", "PRES", "ESE", "ANTI", "CALLY", "ATION", "EING",
];

/// NURand's run-time constant C for each of its three uses (clause 2.1.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Constants {
    /// For C_LAST (A = 255).
    pub c_last: u64,
    /// For C_ID (A = 1023).
    pub c_id: u64,
    /// For OL_I_ID (A = 8191).
    pub ol_i_id: u64,
}

impl Constants {
    /// The constants the loader used: fixed by the seed.
    pub fn load(seed: u64) -> Self {
        let mut rng = Rng::for_stream(seed, &[0x7C_C0]);
        Constants {
            c_last: rng.range(0, 255),
            c_id: rng.range(0, 1023),
            ol_i_id: rng.range(0, 8191),
        }
    }

    /// The run's constants: C_ID and OL_I_ID drawn again, C_LAST at a distance from the
    /// load's that clause 2.1.6.1 allows (65..=119, not 96 or 112).
    pub fn run(seed: u64) -> Self {
        let load = Self::load(seed);
        let mut rng = Rng::for_stream(seed, &[0x7C_C1]);
        let delta = loop {
            let d = rng.range(65, 119);
            if d != 96 && d != 112 {
                break d;
            }
        };
        Constants {
            c_last: (load.c_last + delta) % 256,
            c_id: rng.range(0, 1023),
            ol_i_id: rng.range(0, 8191),
        }
    }
}

/// NURand(A, x, y) = (((random(0, A) | random(x, y)) + C) % (y − x + 1)) + x.
pub fn nurand(rng: &mut Rng, a: u64, x: u64, y: u64, c: u64) -> u64 {
    (((rng.range(0, a) | rng.range(x, y)) + c) % (y - x + 1)) + x
}

/// The last name of number `n` in 0..=999: three syllables by its digits.
pub fn last_name(n: u64) -> String {
    let n = n % 1000;
    let mut s = String::with_capacity(15);
    for digit in [n / 100, (n / 10) % 10, n % 10] {
        s.push_str(SYLLABLES[digit as usize]);
    }
    s
}

/// A customer's last name at load time: ids 1..=1000 take the names in order, the rest
/// NURand(255, 0, 999) with the load constant.
pub fn load_last_name(rng: &mut Rng, c_id: u64, constants: &Constants) -> String {
    if c_id <= 1000 {
        last_name(c_id - 1)
    } else {
        last_name(nurand(rng, 255, 0, 999, constants.c_last))
    }
}

/// A random alphanumeric string of `lo..=hi` characters (an "a-string").
pub fn a_string(rng: &mut Rng, lo: u64, hi: u64) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let len = rng.range(lo, hi);
    (0..len)
        .map(|_| char::from(CHARS[rng.range(0, CHARS.len() as u64 - 1) as usize]))
        .collect()
}

/// A random numeric string of `lo..=hi` digits (an "n-string").
pub fn n_string(rng: &mut Rng, lo: u64, hi: u64) -> String {
    let len = rng.range(lo, hi);
    (0..len)
        .map(|_| char::from(b'0' + rng.range(0, 9) as u8))
        .collect()
}

/// I_DATA and S_DATA: 26..=50 characters, 10 % with "ORIGINAL" at a random place.
pub fn data_with_original(rng: &mut Rng) -> String {
    let mut s = a_string(rng, 26, 50);
    if rng.range(1, 10) == 1 {
        let at = rng.range(0, s.len() as u64 - 8) as usize;
        s.replace_range(at..at + 8, "ORIGINAL");
    }
    s
}

/// A zip code: four random digits and "11111".
pub fn zip(rng: &mut Rng) -> String {
    format!("{}11111", n_string(rng, 4, 4))
}

/// A uniformly random amount in cents, `lo..=hi`, as a decimal text ("12.34").
pub fn cents(rng: &mut Rng, lo: u64, hi: u64) -> String {
    let c = rng.range(lo, hi);
    format!("{}.{:02}", c / 100, c % 100)
}

/// A rate in ten-thousandths, `lo..=hi`, as a decimal text ("0.1234").
pub fn fraction(rng: &mut Rng, lo: u64, hi: u64) -> String {
    format!("0.{:04}", rng.range(lo, hi))
}

/// A transaction's keying time and mean think time (clause 5.2.5.7): what a terminal
/// waits before and after it with `tpcc_wait`.
pub fn waits(op: crate::scenario::Operation) -> (std::time::Duration, std::time::Duration) {
    use crate::scenario::Operation;
    let s = std::time::Duration::from_secs;
    match op {
        Operation::NewOrder => (s(18), s(12)),
        Operation::Payment => (s(3), s(12)),
        Operation::OrderStatus => (s(2), s(10)),
        _ => (s(2), s(5)),
    }
}

/// A think time: exponential with `mean`, cut at ten times the mean (clause 5.2.5.4).
pub fn think_time(rng: &mut Rng, mean: std::time::Duration) -> std::time::Duration {
    let r = rng.next_f64().max(1e-12);
    mean.mul_f64((-r.ln()).min(10.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_constants_and_nurand_follow_the_specification() {
        assert_eq!(last_name(0), "BARBARBAR");
        assert_eq!(last_name(371), "PRICALLYOUGHT");
        assert_eq!(last_name(999), "EINGEINGEING");
        for seed in 0..200 {
            let (load, run) = (Constants::load(seed), Constants::run(seed));
            let delta = (run.c_last + 256 - load.c_last) % 256;
            assert!(
                (65..=119).contains(&delta) && delta != 96 && delta != 112,
                "{delta}"
            );
            assert!(run.c_id <= 1023 && run.ol_i_id <= 8191);
        }
        let mut rng = Rng::new(7);
        let mut hits = vec![0u32; 3000];
        for _ in 0..300_000 {
            let v = nurand(&mut rng, 1023, 1, 3000, 259);
            assert!((1..=3000).contains(&v));
            hits[(v - 1) as usize] += 1;
        }
        // Non-uniform: some customers are far busier than the mean of 100.
        assert!(
            hits.iter().copied().max().unwrap() > 300,
            "{:?}",
            hits.iter().max()
        );
        let mut rng = Rng::new(1);
        let originals = (0..10_000)
            .filter(|_| data_with_original(&mut rng).contains("ORIGINAL"))
            .count();
        assert!((800..1200).contains(&originals), "{originals}");
        let z = zip(&mut rng);
        assert!(z.len() == 9 && z.ends_with("11111"), "{z}");
        assert_eq!(cents(&mut Rng::new(3), 100, 100), "1.00");
    }

    #[test]
    fn think_times_are_exponential_with_the_mean_and_cut_at_ten_times_it() {
        use crate::scenario::Operation;
        let (keying, mean) = waits(Operation::NewOrder);
        assert_eq!((keying.as_secs(), mean.as_secs()), (18, 12));
        assert_eq!(waits(Operation::Payment).0.as_secs(), 3);
        assert_eq!(waits(Operation::StockLevel).1.as_secs(), 5);
        let mut rng = Rng::new(11);
        let n = 200_000;
        let draws: Vec<f64> = (0..n)
            .map(|_| think_time(&mut rng, mean).as_secs_f64())
            .collect();
        let avg = draws.iter().sum::<f64>() / n as f64;
        assert!((avg - 12.0).abs() < 0.15, "{avg}");
        assert!(draws.iter().all(|d| *d <= 120.0 + 1e-9));
        // Exponential: about e^-1 of the draws exceed the mean.
        let above = draws.iter().filter(|d| **d > 12.0).count() as f64 / n as f64;
        assert!((above - (-1f64).exp()).abs() < 0.01, "{above}");
    }
}
