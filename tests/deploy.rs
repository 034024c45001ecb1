//! deploy/ validated offline (deploy/tests/validate.py: yamllint; the kustomize base and
//! the 100-worker overlay rendered by the real `kubectl kustomize`, the Helm chart by the
//! real `helm template` for each value, each checked for what a first run needs and
//! against the Kubernetes schemas; cfn-lint and the EC2 user data; hadolint;
//! systemd-analyze verify), and the plans it ships are valid fleetload plans.

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
    for name in [
        "kustomize-plan.toml",
        "helm-plan.toml",
        "overlay/plan.toml",
        "ec2-aurora-mysql-plan.toml",
        "ec2-aurora-postgresql-plan.toml",
    ] {
        let raw = fleetload_common::plan::RawPlan::from_file(&plans.path().join(name))
            .unwrap_or_else(|e| panic!("{e}"));
        fleetload_common::plan::Plan::try_from(raw).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}
