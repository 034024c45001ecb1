//! How a worker's sessions share an open-loop schedule: the warmest free session takes
//! the next operation, but none is left idle for long, so every session keeps its
//! connection in use and is counted on its instance in every interval.

mod common;
use common::*;

#[test]
fn every_writer_session_runs_in_every_interval_at_a_light_rate() {
    let target = fresh_pg("sessions_every_interval");
    prepare_rows(&target, "point_select", 1000, &[]);
    let dir = tempfile::tempdir().unwrap();
    // 400 ops/s over 8 sessions: a point select takes well under a millisecond, so one
    // or two warm sessions could carry all of it; the others must still be used.
    run_on(
        &target,
        &[
            "--rows",
            "1000",
            "--rate",
            "400",
            "--sessions",
            "8",
            "--workers",
            "1",
            "--duration",
            "4s",
            "--interval",
            "1s",
        ],
        dir.path(),
    )
    .assert_ok();
    let r = read_report(dir.path());
    assert_eq!(r["status"], "passed", "{:#}", r["failures"]);
    let instances = r["instances"].as_array().expect("instances in the report");
    assert_eq!(instances.len(), 1, "{instances:#?}");
    let series = instances[0]["series"].as_array().expect("a series");
    assert!(series.len() >= 4, "{series:#?}");
    for point in series {
        assert_eq!(
            f(&point[1]),
            8.0,
            "every session ran in every interval: {series:?}"
        );
    }
}
