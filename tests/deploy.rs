//! deploy/ validated offline (deploy/tests/validate.py: yamllint, kubernetes-validate on
//! the kustomize base, the 100-worker overlay and the rendered Helm chart, cfn-lint,
//! hadolint, systemd-analyze verify), and the plans it ships are valid fleetload plans.

mod common;
use common::BIN;
use std::process::Command;

#[test]
fn every_deploy_file_validates_and_its_plans_parse() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let plans = tempfile::tempdir().unwrap();
    let out = Command::new("python3")
        .arg(root.join("deploy/tests/validate.py"))
        .arg(BIN)
        .arg(plans.path())
        .output()
        .expect("python3 runs deploy/tests/validate.py (scripts/test installs its tools)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    for name in ["kustomize-plan.toml", "helm-plan.toml"] {
        let raw = fleetload_common::plan::RawPlan::from_file(&plans.path().join(name))
            .unwrap_or_else(|e| panic!("{e}"));
        fleetload_common::plan::Plan::try_from(raw).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}
