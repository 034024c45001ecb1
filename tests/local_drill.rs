//! deploy/local/: the primary/replica pairs a user rehearses a failover drill with, run
//! as the docs walk through them (up, a run through `run --` on the writer's name,
//! `failover` mid-run, down), and the drill measured in the report. Needs root (the
//! scripts' `run` gives the command a mount namespace with the pair's hosts file).

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// One pair's script with its own port and state directory; `down` on drop.
struct Pair {
    script: PathBuf,
    state: tempfile::TempDir,
    port: u16,
}

impl Pair {
    fn new(name: &str) -> Pair {
        Pair {
            script: Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("deploy/local")
                .join(name),
            state: tempfile::tempdir().unwrap(),
            port: free_port_number(),
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.script);
        c.args(args)
            .env("PORT", self.port.to_string())
            .env("FLEETLOAD_LOCAL_DIR", self.state.path().join("pair"))
            .env("FLEETLOAD_LOG", "warn");
        c
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{args:?}: {text}");
        text
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = self.cmd(&["down"]).output();
    }
}

fn drill(script: &str, target: &str) {
    let pair = Pair::new(script);
    let up = pair.ok(&["up"]);
    let target = target.replace("PORT", &pair.port.to_string());
    assert!(up.contains(&target), "`up` names the writer endpoint: {up}");
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/scenarios");
    let setup = examples.join("point_select.toml");
    pair.ok(&[
        "run",
        "--",
        BIN,
        "prepare",
        "--target",
        &target,
        "--scenario",
        setup.to_str().unwrap(),
        "--rows",
        "2000",
    ]);
    let report = pair.state.path().join("report");
    let rw = examples.join("oltp_read_write.toml");
    let mut run = pair
        .cmd(&[
            "run",
            "--",
            BIN,
            "run",
            "--target",
            &target,
            "--scenario",
            rw.to_str().unwrap(),
            "--rows",
            "2000",
            "--rate",
            "100",
            "--duration",
            "12s",
            "--sessions",
            "4",
            "--workers",
            "2",
            "--connect-timeout",
            "2s",
            "--op-timeout",
            "2s",
            "--report-dir",
            report.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(5));
    let failover = pair.ok(&["failover"]);
    assert!(failover.contains("the writer is 127.0.0.2"), "{failover}");
    assert!(pair
        .ok(&["status"])
        .contains("writer.fleetload.test -> 127.0.0.2"));
    assert!(
        wait_within(&mut run, Duration::from_secs(60)).is_some(),
        "the run ends by itself"
    );
    let out = run.wait_with_output().unwrap();
    let r = read_report(&report);
    assert_eq!(
        r["status"],
        "passed",
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let windows = r["availability"]["windows"].as_array().unwrap();
    assert_eq!(
        windows.len(),
        1,
        "one failover, one window: {:#}",
        r["availability"]
    );
    let w = &windows[0];
    assert_eq!(w["unrecovered"], 0, "{w:#}");
    assert!(
        w["failed"]["read_only"].as_u64().unwrap_or(0) > 0,
        "the demoted writer refused writes: {w:#}"
    );
    let max = w["downtime_ms"]["max"].as_f64().unwrap();
    assert!(max > 0.0 && max < 5000.0, "{w:#}");
    // Instances: never more sessions at once than the fleet holds (2 workers × 4, however
    // often they reconnected), and a demoted writer read-only for a span, not the run.
    for i in r["instances"].as_array().unwrap() {
        let peak = i["series"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p[1].as_f64().unwrap())
            .fold(0.0, f64::max);
        assert!(peak <= 8.0, "{} up to {peak} sessions: {i:#}", i["name"]);
        if i["read_only"] == true {
            let spans = i["read_only_spans"].as_array().unwrap();
            assert!(
                !spans.is_empty() && spans[0][0].as_f64().unwrap() >= 3.0,
                "{i:#}"
            );
        }
    }
}

#[test]
fn a_postgresql_pair_rehearses_a_failover_drill() {
    drill(
        "pg-pair.sh",
        "postgres://postgres@writer.fleetload.test:PORT/postgres",
    );
}

#[test]
fn a_mariadb_pair_rehearses_a_failover_drill() {
    drill(
        "maria-pair.sh",
        "mysql://fleetload@writer.fleetload.test:PORT/test",
    );
}
