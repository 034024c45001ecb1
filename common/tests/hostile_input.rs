//! Property tests ("fuzzing" with a fixed budget, so they run in every test pass): the
//! plan parser, scenario files and the snapshot and assignment decoders take hostile
//! input and answer with an error, never a panic, whatever they are fed.

use fleetload_common::plan::{Plan, RawPlan};
use fleetload_common::scenario_file::ScenarioFile;
use fleetload_common::wire::{Assignment, Snapshot};
use fleetload_proto::v1 as pb;
use hdrhistogram::serialization::Serializer;
use proptest::prelude::*;
use prost::Message;

/// Every plan key (from the one struct that defines them), and one that is not.
fn keys() -> Vec<String> {
    let mut keys = RawPlan::keys();
    keys.push("nonsense".into());
    keys
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| if v.is_finite() {
            format!("{v:?}")
        } else {
            "nan".into()
        }),
        "[a-z0-9:/@._ -]{0,30}".prop_map(|s| format!("{s:?}")),
        Just("true".to_string()),
        Just("\"sqlite:///tmp/fuzz.db\"".to_string()),
        Just("\"1s\"".to_string()),
        Just("[\"p99 < 5ms\", \"x\"]".to_string()),
        Just("{ a = 1 }".to_string()),
    ]
}

fn plan_text() -> impl Strategy<Value = String> {
    let line = (prop::sample::select(keys()), value()).prop_map(|(k, v)| format!("{k} = {v}"));
    let stage = prop_oneof![
        Just("[[stage]]\nramp = \"1s\"\nto = 10\n".to_string()),
        Just("[[stage]]\nhold = \"-1s\"\n".to_string()),
        Just("[[stage]]\nstep = 1e308\n".to_string()),
        Just("[[stage]]\nstep = 5\nramp = \"1s\"\n".to_string()),
    ];
    (
        prop::collection::vec(line, 0..12),
        prop::collection::vec(stage, 0..4),
    )
        .prop_map(|(lines, stages)| format!("{}\n{}", lines.join("\n"), stages.join("")))
}

fn snapshot_bytes() -> Vec<u8> {
    let mut h = fleetload_common::histogram::new_latency();
    fleetload_common::histogram::record(&mut h, std::time::Duration::from_micros(250));
    let enc = fleetload_common::histogram::encode(&h).unwrap();
    pb::Snapshot {
        run_id: "r".into(),
        worker_index: 0,
        sequence: 3,
        interval_index: 3,
        operations: vec![pb::OperationSnapshot {
            name: "point_select".into(),
            ok: 1,
            errors: vec![0, 1],
            response_time: enc.clone(),
            service_time: enc.clone(),
            schedule_lag: enc,
            ..Default::default()
        }],
        ..Default::default()
    }
    .encode_to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn plans_never_panic(text in plan_text()) {
        if let Ok(raw) = RawPlan::from_toml(&text) {
            let _ = Plan::try_from(raw);
        }
    }

    #[test]
    fn any_text_is_a_plan_error_or_a_plan(text in "\\PC{0,300}") {
        if let Ok(raw) = RawPlan::from_toml(&text) {
            let _ = Plan::try_from(raw);
        }
    }

    #[test]
    fn damaged_scenario_files_are_errors(cut in 0usize..2000, insert in "\\PC{0,8}") {
        let good = include_str!("../../examples/scenarios/oltp_read_write.toml");
        let at = cut.min(good.len());
        let at = (0..=at).rev().find(|i| good.is_char_boundary(*i)).unwrap_or(0);
        let damaged = format!("{}{insert}{}", &good[..at], &good[at..]);
        let _ = ScenarioFile::parse("fuzz.toml", "fuzz", &damaged);
    }

    #[test]
    fn damaged_snapshots_are_refused_not_crashes(flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6), truncate in any::<prop::sample::Index>()) {
        let mut bytes = snapshot_bytes();
        for (i, b) in &flips {
            let k = i.index(bytes.len());
            bytes[k] ^= b;
        }
        bytes.truncate(truncate.index(bytes.len() + 1));
        if let Ok(msg) = pb::Snapshot::decode(bytes.as_slice()) {
            let _ = Snapshot::try_from(msg);
        }
    }

    #[test]
    fn arbitrary_histogram_bytes_are_refused_not_crashes(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = fleetload_common::histogram::decode(&bytes);
    }

    #[test]
    fn arbitrary_assignments_are_refused_not_crashes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(msg) = pb::Assignment::decode(bytes.as_slice()) {
            let _ = Assignment::try_from(msg);
        }
    }
}

/// The specific malformed snapshots the issue names are refused with a reason.
#[test]
fn truncated_deflate_and_foreign_bounds_are_refused() {
    let mut msg = pb::Snapshot::decode(snapshot_bytes().as_slice()).unwrap();
    let op = &mut msg.operations[0];
    let n = op.response_time.len();
    op.response_time.truncate(n / 2);
    let e = Snapshot::try_from(msg).unwrap_err().to_string();
    assert!(e.contains("snapshot.response_time"), "{e}");

    let mut other = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 1_000, 2).unwrap();
    other.record(5).unwrap();
    let mut bytes = Vec::new();
    hdrhistogram::serialization::V2DeflateSerializer::new()
        .serialize(&other, &mut bytes)
        .unwrap();
    let mut msg = pb::Snapshot::decode(snapshot_bytes().as_slice()).unwrap();
    msg.operations[0].response_time = bytes;
    let e = Snapshot::try_from(msg).unwrap_err().to_string();
    assert!(e.contains("bounds") || e.contains("invalid"), "{e}");
}
