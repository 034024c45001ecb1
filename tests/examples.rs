//! Every shipped example plan is valid: users copy them first.

use fleetload_common::plan::{Plan, RawPlan};

#[test]
fn every_example_plan_parses_and_validates() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let raw = RawPlan::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
            Plan::try_from(raw).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            seen += 1;
        }
    }
    assert!(seen >= 5, "found {seen} example plans");
}

/// Every shipped scenario file parses, and its operations have SQL for every dialect
/// (the set-up may skip a dialect on purpose, the operations may not).
#[test]
fn every_example_scenario_file_parses_for_every_dialect() {
    use fleetload_common::scenario_file::ScenarioFile;
    use fleetload_common::target::Driver;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/scenarios");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let file = ScenarioFile::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
            for d in [Driver::MySql, Driver::Postgres, Driver::Sqlite] {
                file.check_dialect(d).unwrap_or_else(|e| panic!("{e}"));
            }
            seen += 1;
        }
    }
    assert!(seen >= 3, "found {seen} example scenario files");
}
