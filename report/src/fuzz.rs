//! Rendering a report.json that holds anything: `fleetload report html|show` read files
//! a user (or an attacker) hands them. Every renderer must end, in bounded time, on any
//! value serde accepts; before, a histogram of more than 2^53 samples made report.html
//! loop forever.

use super::tests::fixture;
use super::{compare, files, html, text, Report};
use base64::Engine;
use proptest::prelude::*;
use serde_json::Value;
use std::time::Duration;

/// Render every format of `r` on another thread; false if that takes longer than
/// `limit` (the thread is then left behind: the test fails anyway).
fn renders_within(r: Report, limit: Duration) -> bool {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let base = fixture();
        let out = (
            text::render(&r).len(),
            html::render(&r).len(),
            files::csv(&r).len(),
            files::hlog(&r, 0.0).len(),
            compare::render(&base, &r).len(),
        );
        let _ = tx.send(out);
    });
    rx.recv_timeout(limit).is_ok()
}

/// A histogram holding `n` samples of 1 ms, as report.json stores it.
fn huge_histogram(n: u64) -> String {
    let mut h = fleetload_common::histogram::new_latency();
    h.record_n(1000, n).unwrap();
    base64::engine::general_purpose::STANDARD
        .encode(fleetload_common::histogram::encode(&h).unwrap())
}

#[test]
fn a_histogram_of_2_pow_62_samples_renders_in_bounded_time() {
    let mut r = fixture();
    for h in r.histograms.values_mut() {
        h.response_time = huge_histogram(1 << 62);
        h.service_time = huge_histogram(u64::MAX / 2);
    }
    assert!(renders_within(r, Duration::from_secs(60)));
}

/// Every numeric leaf of the fixture's JSON, by path.
fn numeric_paths(v: &Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match v {
        Value::Number(_) => out.push(path.clone()),
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                path.push(i.to_string());
                numeric_paths(x, path, out);
                path.pop();
            }
        }
        Value::Object(o) => {
            for (k, x) in o {
                path.push(k.clone());
                numeric_paths(x, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

fn leaf<'a>(v: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    path.iter().try_fold(v, |v, k| match v {
        Value::Array(a) => a.get_mut(k.parse::<usize>().ok()?),
        Value::Object(o) => o.get_mut(k),
        _ => None,
    })
}

fn extreme() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::from(u64::MAX)),
        Just(Value::from(1u64 << 62)),
        Just(Value::from(0)),
        Just(Value::from(i64::MIN)),
        Just(Value::from(f64::MAX)),
        Just(Value::from(-f64::MAX)),
        Just(Value::from(1e-300)),
        Just(Value::from(-1.0)),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(Value::from),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Any numbers in any places: the report reads back or is refused, and renders.
    #[test]
    fn any_numbers_anywhere_render_in_bounded_time(
        picks in proptest::collection::vec((any::<prop::sample::Index>(), extreme()), 1..12),
    ) {
        let mut json = serde_json::to_value(fixture()).unwrap();
        let mut paths = Vec::new();
        numeric_paths(&json, &mut Vec::new(), &mut paths);
        for (at, value) in picks {
            let path = &paths[at.index(paths.len())];
            if let Some(v) = leaf(&mut json, path) {
                *v = value;
            }
        }
        if let Ok(r) = serde_json::from_value::<Report>(json) {
            prop_assert!(renders_within(r, Duration::from_secs(60)));
        }
    }
}
