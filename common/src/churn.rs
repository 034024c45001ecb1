//! The telco-churn data set, generated: realistic rows (value ranges like the public
//! data set) from a seed and an id, and the fixed logistic churn model that the local
//! stand-in for the Aurora ML endpoint evaluates.
//!
//! Row `id` depends only on `(seed, id)`, so any worker can generate any shard and two
//! loads of the same plan produce identical tables.

use crate::rng::Rng;

/// US states and DC, as in the public data set.
pub const STATES: [&str; 51] = [
    "AK", "AL", "AR", "AZ", "CA", "CO", "CT", "DC", "DE", "FL", "GA", "HI", "IA", "ID", "IL", "IN",
    "KS", "KY", "LA", "MA", "MD", "ME", "MI", "MN", "MO", "MS", "MT", "NC", "ND", "NE", "NH", "NJ",
    "NM", "NV", "NY", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VA", "VT", "WA",
    "WI", "WV", "WY",
];

/// One customer row. Minutes have one decimal and charges two, as in the data set.
#[derive(Debug, Clone, PartialEq)]
pub struct Customer {
    pub id: u64,
    pub state: &'static str,
    pub account_length: i64,
    pub area_code: i64,
    pub phone: String,
    pub intl_plan: bool,
    pub vmail_plan: bool,
    pub vmail_message: i64,
    pub day_mins: f64,
    pub day_calls: i64,
    pub day_charge: f64,
    pub eve_mins: f64,
    pub eve_calls: i64,
    pub eve_charge: f64,
    pub night_mins: f64,
    pub night_calls: i64,
    pub night_charge: f64,
    pub intl_mins: f64,
    pub intl_calls: i64,
    pub intl_charge: f64,
    pub custserv_calls: i64,
    /// The observed label ("True." / "False." in the data set).
    pub churn: bool,
}

fn round(x: f64, places: i32) -> f64 {
    let m = 10f64.powi(places);
    (x * m).round() / m
}

fn minutes(rng: &mut Rng, mean: f64, sd: f64, max: f64) -> f64 {
    round(rng.normal(mean, sd).clamp(0.0, max), 1)
}

fn calls(rng: &mut Rng, mean: f64, sd: f64, max: f64) -> i64 {
    rng.normal(mean, sd).clamp(0.0, max).round() as i64
}

/// Generate customer `id` of the data set seeded with `seed`.
pub fn customer(seed: u64, id: u64) -> Customer {
    let mut rng = Rng::for_stream(seed, &[0xC0FFEE, id]);
    let state = STATES[rng.range(0, STATES.len() as u64 - 1) as usize];
    let account_length = calls(&mut rng, 101.0, 40.0, 243.0).max(1);
    let area_code = [408, 415, 510][rng.range(0, 2) as usize];
    let phone = format!("{:03}-{:04}", rng.range(327, 422), rng.range(1000, 9999));
    let intl_plan = rng.chance(0.097);
    let vmail_plan = rng.chance(0.277);
    let vmail_message = if vmail_plan {
        rng.range(4, 51) as i64
    } else {
        0
    };
    let day_mins = minutes(&mut rng, 179.8, 54.5, 350.8);
    let day_calls = calls(&mut rng, 100.4, 20.1, 165.0);
    let eve_mins = minutes(&mut rng, 201.0, 50.7, 363.7);
    let eve_calls = calls(&mut rng, 100.1, 19.9, 170.0);
    let night_mins = minutes(&mut rng, 200.9, 50.6, 395.0);
    let night_calls = calls(&mut rng, 100.1, 19.6, 175.0);
    let intl_mins = minutes(&mut rng, 10.2, 2.8, 20.0);
    let intl_calls = calls(&mut rng, 4.5, 2.5, 20.0);
    let custserv_calls = calls(&mut rng, 1.56, 1.3, 9.0);
    let mut c = Customer {
        id,
        state,
        account_length,
        area_code,
        phone,
        intl_plan,
        vmail_plan,
        vmail_message,
        day_mins,
        day_calls,
        day_charge: round(day_mins * 0.17, 2),
        eve_mins,
        eve_calls,
        eve_charge: round(eve_mins * 0.085, 2),
        night_mins,
        night_calls,
        night_charge: round(night_mins * 0.045, 2),
        intl_mins,
        intl_calls,
        intl_charge: round(intl_mins * 0.27, 2),
        custserv_calls,
        churn: false,
    };
    // Observed labels follow the model with some noise, as real labels would.
    let predicted = predict(&c);
    c.churn = if rng.chance(0.05) {
        !predicted
    } else {
        predicted
    };
    c
}

/// The model's linear term. It uses only the fifteen model inputs of the Aurora ML
/// labs' `will_churn` (phone and the four charges are not inputs; `state`,
/// `account_length`, `area_code`, `day_calls`, `eve_calls` and `night_calls` are inputs
/// with zero weight in this fixed model). Written with only `+`, `*` and comparisons so
/// every SQL dialect computes the same value.
pub fn linear_term(c: &Customer) -> f64 {
    -8.6 + 2.1 * f64::from(u8::from(c.intl_plan)) - 1.1 * f64::from(u8::from(c.vmail_plan))
        + 0.0153 * c.day_mins
        + 0.0071 * c.eve_mins
        + 0.0036 * c.night_mins
        + 0.09 * c.intl_mins
        - 0.08 * c.intl_calls as f64
        + 0.62 * c.custserv_calls as f64
        - 0.004 * c.vmail_message as f64
}

/// Churn probability: the logistic of the linear term.
pub fn score(c: &Customer) -> f64 {
    1.0 / (1.0 + (-linear_term(c)).exp())
}

/// The predicted label: churns when the score is at least 0.5, i.e. the linear term ≥ 0.
pub fn predict(c: &Customer) -> bool {
    linear_term(c) >= 0.0
}

/// The label as the Aurora ML churn endpoint returns it.
pub fn label(churns: bool) -> &'static str {
    if churns {
        "True."
    } else {
        "False."
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_deterministic_and_realistic() {
        assert_eq!(customer(1, 77), customer(1, 77));
        assert_ne!(customer(1, 77), customer(2, 77));
        let rows: Vec<Customer> = (1..=20_000).map(|id| customer(42, id)).collect();
        let churn_rate = rows.iter().filter(|c| c.churn).count() as f64 / rows.len() as f64;
        assert!(
            (0.08..0.25).contains(&churn_rate),
            "churn rate {churn_rate}"
        );
        let intl = rows.iter().filter(|c| c.intl_plan).count() as f64 / rows.len() as f64;
        assert!((0.07..0.13).contains(&intl), "intl plan share {intl}");
        assert!(rows.iter().all(|c| (0.0..=350.8).contains(&c.day_mins)));
        assert!(rows.iter().all(|c| [408, 415, 510].contains(&c.area_code)));
        assert!(rows.iter().all(|c| c.vmail_plan || c.vmail_message == 0));
    }
}
