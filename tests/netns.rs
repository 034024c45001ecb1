//! A many-host fleet on one machine: the coordinator and every worker in their own
//! network namespace with their own address (deploy/netns/fleet-netns.sh), the control
//! channel over TLS with a token across real interfaces. Also the harness for partition
//! tests: a worker's link is cut and restored. Needs root (CI runs as root).

mod common;
use common::*;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Namespaces for one test; removed on drop.
struct Net {
    id: u32,
    script: std::path::PathBuf,
}

impl Net {
    fn up(id: u32, workers: usize) -> Net {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/netns/fleet-netns.sh");
        let _ = Command::new(&script)
            .args(["down", &id.to_string()])
            .status();
        let st = Command::new(&script)
            .args(["up", &id.to_string(), &workers.to_string()])
            .status()
            .expect("run fleet-netns.sh");
        assert!(
            st.success(),
            "creating network namespaces failed: this test needs root (CI runs as root)"
        );
        Net { id, script }
    }

    fn coordinator_ip(&self) -> String {
        format!("10.77.{}.1", self.id)
    }

    /// Run the fleetload binary in namespace `ns` (c, w1, …).
    fn spawn(&self, ns: &str, args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Child {
        let mut c = Command::new(&self.script);
        c.args(["exec", &self.id.to_string(), ns, BIN])
            .args(args)
            .current_dir(cwd)
            .env("FLEETLOAD_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            c.env(k, v);
        }
        c.spawn().unwrap()
    }

    fn cut(&self, worker: &str, secs: &str) -> Child {
        Command::new(&self.script)
            .args(["cut", &self.id.to_string(), worker, secs])
            .spawn()
            .unwrap()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = Command::new(&self.script)
            .args(["down", &self.id.to_string()])
            .status();
    }
}

/// Three worker "hosts" and a coordinator "host": a real run over TLS with a token;
/// halfway, one worker's network is cut for 1.5 s (a partition shorter than the lease):
/// it rejoins, and the merge still equals what every worker executed.
#[test]
fn a_fleet_across_network_namespaces_survives_a_partition() {
    let net = Net::up(90 + (std::process::id() % 100), 3);
    let dir = tempfile::tempdir().unwrap();
    let target = sqlite(dir.path());
    fleetload(&["prepare", "--target", &target, "--rows", "3000"]).assert_ok();
    let ip = net.coordinator_ip();
    let pki = pki(dir.path(), "netns", &[&ip]);
    let token = [("FLEETLOAD_TOKEN", "netns-fleet-token")];
    let listen = format!("{ip}:7400");
    let report = dir.path().join("report");
    let s = |p: &std::path::PathBuf| p.to_str().unwrap().to_string();
    let coord = net.spawn(
        "c",
        &[
            "coordinator",
            "--listen",
            &listen,
            "--tls-cert",
            &s(&pki.server.0),
            "--tls-key",
            &s(&pki.server.1),
            "--target",
            &target,
            "--rows",
            "3000",
            "--workers",
            "3",
            "--rate",
            "150",
            "--duration",
            "8s",
            "--lease",
            "5s",
            "--report-dir",
            report.to_str().unwrap(),
        ],
        dir.path(),
        &token,
    );
    std::thread::sleep(Duration::from_millis(400));
    let url = format!("https://{listen}");
    let workers: Vec<Child> = (1..=3)
        .map(|k| {
            net.spawn(
                &format!("w{k}"),
                &[
                    "worker",
                    "--coordinator",
                    &url,
                    "--tls-ca",
                    &s(&pki.ca),
                    "--name",
                    &format!("host-{k}"),
                ],
                dir.path(),
                &token,
            )
        })
        .collect();
    std::thread::sleep(Duration::from_millis(3500));
    let mut cut = net.cut("w2", "1.5");
    assert!(cut.wait().unwrap().success());
    let (code, log) = output(coord);
    for w in workers {
        let (wc, wlog) = output(w);
        assert_eq!(wc, Some(0), "{wlog}");
    }
    assert_eq!(code, Some(0), "{log}");
    let r = read_report(&report);
    assert_eq!(r["status"], "passed", "{:#}", r["failures"]);
    assert_eq!(r["verification"]["merged_equals_executed"], true);
    let peers: Vec<String> = r["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["peer"].as_str().unwrap_or_default().to_string())
        .collect();
    for k in 1..=3 {
        let addr = format!("10.77.{}.{}", net.id, 10 + k);
        assert!(
            peers.iter().any(|p| p.starts_with(&addr)),
            "no worker from {addr}: {peers:?}"
        );
    }
    let total: u64 = r["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| u(&w["executed"]["point_select"]["ok"]))
        .sum();
    assert!(
        (total as i64 - 1200).abs() <= 12,
        "150/s for 8 s across the partition: {total}"
    );
}
