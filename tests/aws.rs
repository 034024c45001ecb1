//! AWS around the database, offline but real: IAM database tokens logging in to a
//! PostgreSQL server that checks them over TLS, and (with a local moto server on
//! loopback, PyPI `moto[server]`) Secrets Manager and CloudWatch. No credential, token or
//! secret may appear in anything fleetload prints or writes.

mod common;

#[path = "common/pg_pair.rs"]
mod pg_pair;

#[path = "common/pg_tls.rs"]
mod pg_tls;

#[path = "common/maria_pair.rs"]
mod maria_pair;

#[path = "common/moto.rs"]
mod moto;

#[path = "common/maria_pam.rs"]
mod maria_pam;

use common::*;
use moto::Moto;
use pg_tls::PgTls;
use std::io::Write;
use std::process::{Command, Stdio};

const KEY_ID: &str = "AKIDFLEETLOADTEST";
const SECRET_KEY: &str = "fleetload/secret+access=key";
const SIGNING_TIME: &str = "2026-12-05T10:00:00Z";
const SIGNING_UNIX: u64 = 1_796_464_800;

/// botocore's token for these inputs at the fixed signing time: what a worker must
/// mint (aws/tests compares the two implementations byte for byte).
fn botocore_token(host: &str, port: u16, user: &str, region: &str) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/aws/tests/botocore_token.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 with botocore (scripts/test installs it)");
    let line = serde_json::json!({"key": KEY_ID, "secret": SECRET_KEY, "token": null, "host": host,
        "port": port, "user": user, "region": region, "unix": SIGNING_UNIX});
    writeln!(child.stdin.take().unwrap(), "{line}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The AWS environment of a fleetload process: fixed keys, no instance role to wait
/// for, no profile of this machine's, and the clock tokens are signed at.
fn aws_env(home: &std::path::Path) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", KEY_ID.into()),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("HOME", home.display().to_string()),
        ("FLEETLOAD_AWS_SIGNING_TIME", SIGNING_TIME.into()),
    ]
}

fn run_env(
    args: &[&str],
    cwd: &std::path::Path,
    env: &[(&'static str, String)],
) -> (Option<i32>, String) {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    output(spawn_env(args, cwd, &env))
}

/// Everything in a report directory, as text.
fn files_text(dir: &std::path::Path) -> String {
    let mut all = String::new();
    for f in std::fs::read_dir(dir).unwrap() {
        all.push_str(&String::from_utf8_lossy(
            &std::fs::read(f.unwrap().path()).unwrap(),
        ));
    }
    all
}

/// Prepare `target` and run a 2-worker, 3 s fleet on it with `auth = "iam"`, sessions
/// reconnecting every second (each logs in again with a token minted then): the run
/// passes with operations and no error. What both printed, and the report directory.
fn iam_prepare_and_run(
    target: &str,
    region: &str,
    dir: &std::path::Path,
    env: &[(&'static str, String)],
) -> (String, std::path::PathBuf) {
    let iam = [
        "--target", target, "--auth", "iam", "--region", region, "--rows", "500",
    ];
    let (code, prepared) = run_env(&[&["prepare"][..], &iam].concat(), dir, env);
    assert_eq!(code, Some(0), "{prepared}");
    let report = dir.join("report");
    let fleet = [
        "--workers",
        "2",
        "--rate",
        "60",
        "--duration",
        "3s",
        "--max-connection-age",
        "1s",
    ];
    let (code, ran) = run_env(
        &[
            &["run"][..],
            &iam,
            &fleet,
            &["--report-dir", report.to_str().unwrap()],
        ]
        .concat(),
        dir,
        env,
    );
    assert_eq!(code, Some(0), "{ran}");
    let r = read_report(&report);
    assert_eq!(r["status"], "passed", "{ran}");
    let ops = &r["operations"]["point_select"];
    assert!(
        u(&ops["count"]) > 100 && u(&ops["error_total"]) == 0,
        "{ops}"
    );
    (format!("{prepared}{ran}"), report)
}

/// `auth = "iam"` on a URL without TLS is refused before anything connects, naming
/// `flag`; what fleetload printed.
fn refused_without_tls(
    target: &str,
    flag: &str,
    dir: &std::path::Path,
    env: &[(&'static str, String)],
) -> String {
    let (code, refused) = run_env(
        &[
            "run",
            "--target",
            target,
            "--auth",
            "iam",
            "--workers",
            "1",
            "--rate",
            "10",
            "--duration",
            "1s",
        ],
        dir,
        env,
    );
    assert_ne!(code, Some(0));
    assert!(
        refused.contains("needs TLS") && refused.contains(flag),
        "{refused}"
    );
    refused
}

/// A fleet logs in with IAM tokens it mints itself (the server holds the token
/// botocore computes for the same credentials and clock as the user's password, checked
/// with SCRAM, over TLS only); a run without TLS is refused before connecting, naming
/// the flag; a token signed at another time is refused by the server with the reason.
#[test]
fn iam_tokens_log_in_over_tls_and_a_run_without_tls_is_refused() {
    let server = PgTls::start();
    let token = botocore_token("127.0.0.1", server.port, "fl_iam", "us-east-1");
    assert!(token.starts_with(&format!(
        "127.0.0.1:{}/?Action=connect&DBUser=fl_iam&",
        server.port
    )));
    server.admin(&format!("CREATE ROLE fl_iam LOGIN PASSWORD '{token}'"));
    server.admin("CREATE DATABASE fl OWNER fl_iam");
    let dir = tempfile::tempdir().unwrap();
    let env = aws_env(dir.path());
    let tls = format!(
        "postgres://fl_iam@127.0.0.1:{}/fl?sslmode=require",
        server.port
    );
    let (ran, report) = iam_prepare_and_run(&tls, "us-east-1", dir.path(), &env);
    // (The server takes passwords over TLS only: pg_hba rejects plaintext TCP.)
    let plain = format!("postgres://fl_iam@127.0.0.1:{}/fl", server.port);
    let refused = refused_without_tls(&plain, "sslmode=require", dir.path(), &env);

    // A token signed at another time is not the password: the server refuses it and
    // the error says authentication failed.
    let mut later = env.clone();
    later.retain(|(k, _)| *k != "FLEETLOAD_AWS_SIGNING_TIME");
    later.push(("FLEETLOAD_AWS_SIGNING_TIME", "2026-12-05T10:00:01Z".into()));
    let (code, wrong) = run_env(
        &[
            "prepare",
            "--target",
            &tls,
            "--auth",
            "iam",
            "--region",
            "us-east-1",
            "--rows",
            "10",
        ],
        dir.path(),
        &later,
    );
    assert_ne!(code, Some(0));
    assert!(
        wrong.contains("password authentication failed for user \"fl_iam\""),
        "{wrong}"
    );

    // Nothing printed or written shows the token or the secret key.
    let everything = format!("{ran}{refused}{wrong}{}", files_text(&report));
    for secret in [token.as_str(), SECRET_KEY, "X-Amz-Signature"] {
        assert!(
            !everything.contains(secret),
            "{secret} appeared in the output"
        );
    }
}

/// The live dashboard's event stream at `addr` (dialled until it listens), as read for
/// `within`.
fn live_events(addr: &str, within: std::time::Duration) -> String {
    use std::io::Read;
    let until = std::time::Instant::now() + within;
    let mut out = Vec::new();
    while std::time::Instant::now() < until {
        let Ok(mut s) = std::net::TcpStream::connect(addr) else {
            std::thread::sleep(std::time::Duration::from_millis(20));
            continue;
        };
        let _ = write!(s, "GET /events HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        let _ = s.set_read_timeout(Some(std::time::Duration::from_millis(200)));
        let mut buf = [0u8; 65536];
        while std::time::Instant::now() < until {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
        }
        break;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// GET `path` from `addr` over plain HTTP/1.0; the body ("" when it cannot connect).
fn http_get(addr: &str, path: &str) -> String {
    use std::io::Read;
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// Workers read the password (and the user) from a Secrets Manager secret in RDS's JSON
/// form. Mid-run the secret is rotated and then the database's password changed: sessions
/// that reconnect after it are refused once, read the secret again and go on, so the run
/// has no error at all and operations keep succeeding after the old password died. At
/// debug level, neither password shows in any output, report file, /metrics or `ctl
/// status`.
#[test]
fn a_secret_in_secrets_manager_logs_in_and_its_rotation_is_followed() {
    let moto = Moto::start();
    let server = PgTls::start();
    let (old, new) = ("pw-before-rotation-5521", "pw-after-rotation-8830");
    moto.put_secret(
        "fleetload/pg",
        &format!(r#"{{"engine":"postgres","username":"fl_sec","password":"{old}"}}"#),
    );
    server.admin(&format!("CREATE ROLE fl_sec LOGIN PASSWORD '{old}'"));
    server.admin("CREATE DATABASE fl OWNER fl_sec");
    let dir = tempfile::tempdir().unwrap();
    let mut env = moto.env(dir.path());
    // fleetload's own crates at debug (the SDK's debug output would fill the pipes
    // this test reads only at the end).
    env.push(("FLEETLOAD_LOG", "info,fleetload=debug,fleetload_coordinator=debug,fleetload_worker=debug,fleetload_db=debug,fleetload_aws=debug".into()));
    // The URL's user is a placeholder: the secret names the user.
    let target = format!(
        "postgres://placeholder@127.0.0.1:{}/fl?sslmode=require",
        server.port
    );
    let (code, prepared) = run_env(
        &[
            "prepare",
            "--target",
            &target,
            "--password-secret",
            "fleetload/pg",
            "--rows",
            "500",
        ],
        dir.path(),
        &env,
    );
    assert_eq!(code, Some(0), "{prepared}");

    let addr = free_port();
    let metrics = free_port();
    let report = dir.path().join("report");
    let envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let coordinator = spawn_env(
        &[
            "coordinator",
            "--listen",
            &addr,
            "--target",
            &target,
            "--password-secret",
            "fleetload/pg",
            "--rows",
            "500",
            "--workers",
            "2",
            "--rate",
            "100",
            "--duration",
            "7s",
            "--interval",
            "1s",
            "--max-connection-age",
            "1s",
            "--metrics-listen",
            &metrics,
            "--report-dir",
            report.to_str().unwrap(),
        ],
        dir.path(),
        &envs,
    );
    wait_listening(&addr);
    let url = format!("http://{addr}");
    let workers: Vec<_> = (0..2)
        .map(|_| spawn_env(&["worker", "--coordinator", &url], dir.path(), &envs))
        .collect();
    wait_elapsed(&addr, 2.5);
    // Rotation as RDS does it: the new secret first, then the database's password.
    moto.put_secret(
        "fleetload/pg",
        &format!(r#"{{"engine":"postgres","username":"fl_sec","password":"{new}"}}"#),
    );
    server.admin(&format!("ALTER ROLE fl_sec PASSWORD '{new}'"));
    let rotated_at = 2.5;
    let status = fleetload(&["ctl", "--coordinator", &addr, "status"]);
    let scraped = http_get(&metrics, "/metrics");
    let mut everything = format!("{prepared}{}{}{scraped}", status.stdout, status.stderr);
    for w in workers {
        everything.push_str(&output(w).1);
    }
    let (code, log) = output(coordinator);
    everything.push_str(&log);
    assert_eq!(code, Some(0), "{log}");
    everything.push_str(&files_text(&report));

    let r = read_report(&report);
    assert_eq!(r["status"], "passed", "{log}");
    let total = &r["operations"]["point_select"];
    assert_eq!(u(&total["error_total"]), 0, "{total}");
    // Every session reconnected at least once since the rotation (1 s ± 20 %), so the
    // operations of the last seconds ran on logins with the new password.
    let late_ok: u64 = r["intervals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| f(&i["start_s"]) >= rotated_at + 2.0)
        .map(|i| u(&i["operations"]["point_select"]["count"]))
        .sum();
    assert!(late_ok >= 150, "operations after the rotation: {late_ok}");
    assert!(
        scraped.contains("fleetload_"),
        "scraped nothing from /metrics: {scraped}"
    );
    assert!(
        everything.contains("re-read") || everything.contains("again after a refused login"),
        "no sign the secret was read again"
    );
    for secret in [old, new, SECRET_KEY_MOTO] {
        assert!(
            !everything.contains(secret),
            "{secret} appeared in the output"
        );
    }

    // Web identity, as a Kubernetes pod with IRSA has it: no keys, a token file and a
    // role; the chain trades them at STS (moto's) for credentials and the secret reads.
    let token_file = dir.path().join("web-identity-token");
    std::fs::write(&token_file, "eyJhbGciOiJSUzI1NiJ9.e30.c2lnbmF0dXJl").unwrap();
    let mut irsa: Vec<(&'static str, String)> = moto
        .env(dir.path())
        .into_iter()
        .filter(|(k, _)| !k.starts_with("AWS_ACCESS_KEY") && !k.starts_with("AWS_SECRET"))
        .collect();
    irsa.push((
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        token_file.display().to_string(),
    ));
    irsa.push((
        "AWS_ROLE_ARN",
        "arn:aws:iam::123456789012:role/fleetload".into(),
    ));
    irsa.push(("AWS_ROLE_SESSION_NAME", "fleetload-test".into()));
    let prepare = [
        "prepare",
        "--target",
        &target,
        "--password-secret",
        "fleetload/pg",
        "--rows",
        "500",
    ];
    let (code, out) = run_env(&prepare, dir.path(), &irsa);
    assert_eq!(code, Some(0), "{out}");
    // Without any credential, the error says where fleetload looked.
    let none: Vec<(&'static str, String)> = irsa
        .into_iter()
        .filter(|(k, _)| !k.starts_with("AWS_WEB") && !k.starts_with("AWS_ROLE"))
        .collect();
    let (code, out) = run_env(&prepare, dir.path(), &none);
    assert_ne!(code, Some(0));
    assert!(
        out.contains("no credentials found in chain")
            && out.contains("WebIdentityToken")
            && out.contains("fleetload/pg"),
        "{out}"
    );
}

const SECRET_KEY_MOTO: &str = moto::SECRET_KEY;

/// Put one high-resolution point per whole second into moto until `stop`: (metric,
/// dimensions) → value. Returns what it put: (metric, unix second, value).
fn put_points_every_second(
    moto: &Moto,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Vec<(String, u64, f64)>> {
    use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
    let endpoint_port = moto.port;
    std::thread::spawn(move || {
        let moto_port = endpoint_port;
        Moto::block_on(async move {
            let cfg = moto::config_for(moto_port).await;
            let cw = aws_sdk_cloudwatch::Client::new(&cfg);
            let dim = |n: &str, v: &str| Dimension::builder().name(n).value(v).build();
            let mut put = Vec::new();
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && n < 120 {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap();
                let second = now.as_secs();
                let at = aws_smithy_types::DateTime::from_secs(second as i64);
                n += 1;
                let points = [
                    (
                        "AWS/RDS",
                        "CPUUtilization",
                        vec![dim("DBClusterIdentifier", "churn-db")],
                        20.0 + n as f64,
                    ),
                    (
                        "AWS/SageMaker",
                        "ModelLatency",
                        vec![
                            dim("EndpointName", "churn-ep"),
                            dim("VariantName", "AllTraffic"),
                        ],
                        4000.0 + 10.0 * n as f64,
                    ),
                    (
                        "AWS/SageMaker",
                        "Invocations",
                        vec![
                            dim("EndpointName", "churn-ep"),
                            dim("VariantName", "AllTraffic"),
                        ],
                        40.0 + n as f64,
                    ),
                    // Another cluster's: not asked for, never in the report.
                    (
                        "AWS/RDS",
                        "CPUUtilization",
                        vec![dim("DBClusterIdentifier", "other-db")],
                        99.0,
                    ),
                ];
                for (namespace, metric, dims, value) in points {
                    let datum = MetricDatum::builder()
                        .metric_name(metric)
                        .set_dimensions(Some(dims.clone()))
                        .value(value)
                        .storage_resolution(1)
                        .timestamp(at)
                        .build();
                    cw.put_metric_data()
                        .namespace(namespace)
                        .metric_data(datum)
                        .send()
                        .await
                        .expect("put_metric_data");
                    if dims[0].value() != Some("other-db") {
                        put.push((metric.to_string(), second, value));
                    }
                }
                let next = std::time::Duration::from_secs(second + 1) - now
                    + std::time::Duration::from_millis(20);
                tokio::time::sleep(next).await;
            }
            put
        })
    })
}

/// CloudWatch series put into moto while a churn run runs come back in report.json
/// exactly (every point, value and second) on the run's timeline, only for the cluster
/// and endpoint the plan names, and beside the client's p99 in report.html.
#[test]
fn cloudwatch_series_land_on_the_run_s_timeline_exactly() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let target = sqlite(dir.path());
    fleetload(&[
        "prepare",
        "--scenario",
        "churn",
        "--target",
        &target,
        "--rows",
        "300",
    ])
    .assert_ok();
    // A point long before the run: outside its window.
    Moto::block_on(async {
        let cw = aws_sdk_cloudwatch::Client::new(&moto.config().await);
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(300);
        cw.put_metric_data()
            .namespace("AWS/RDS")
            .metric_data(
                aws_sdk_cloudwatch::types::MetricDatum::builder()
                    .metric_name("CPUUtilization")
                    .dimensions(
                        aws_sdk_cloudwatch::types::Dimension::builder()
                            .name("DBClusterIdentifier")
                            .value("churn-db")
                            .build(),
                    )
                    .value(1234.0)
                    .storage_resolution(1)
                    .timestamp(aws_smithy_types::DateTime::from(old))
                    .build(),
            )
            .send()
            .await
            .unwrap();
    });
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let putter = put_points_every_second(&moto, stop.clone());
    let ui = free_port();
    let sse = {
        let ui = ui.clone();
        std::thread::spawn(move || live_events(&ui, std::time::Duration::from_secs(9)))
    };
    let report = dir.path().join("report");
    let env = moto.env(dir.path());
    let (code, log) = run_env(
        &[
            "run",
            "--scenario",
            "churn",
            "--target",
            &target,
            "--rows",
            "300",
            "--workers",
            "2",
            "--rate",
            "40",
            "--duration",
            "5s",
            "--interval",
            "1s",
            "--cloudwatch",
            "db_cluster=churn-db,sagemaker_endpoint=churn-ep,period=1s",
            "--ui-listen",
            &ui,
            "--ui-hold",
            "0s",
            "--report-dir",
            report.to_str().unwrap(),
        ],
        dir.path(),
        &env,
    );
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let put = putter.join().unwrap();
    assert_eq!(code, Some(0), "{log}");
    let r = read_report(&report);
    assert_eq!(r["status"], "passed", "{log}");
    let cw = &r["cloudwatch"];
    let start = f(&cw["start_unix_s"]);
    assert_eq!(u(&cw["period_s"]), 1);
    let series = cw["series"].as_array().unwrap();
    let mut metrics: Vec<&str> = series
        .iter()
        .map(|s| s["metric"].as_str().unwrap())
        .collect();
    metrics.sort_unstable();
    assert_eq!(
        metrics,
        ["CPUUtilization", "Invocations", "ModelLatency"],
        "{cw}"
    );
    for s in series {
        let metric = s["metric"].as_str().unwrap();
        let got: Vec<(u64, f64)> = s["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let at = f(&p[0]) + start;
                assert!(
                    (at - at.round()).abs() < 0.01,
                    "{metric}: {p} is not on a whole second after {start}"
                );
                (at.round() as u64, f(&p[1]))
            })
            .collect();
        let wanted: Vec<(u64, f64)> = put
            .iter()
            .filter(|(m, _, _)| m == metric)
            .map(|(_, t, v)| (*t, *v))
            .collect();
        // Every point in the report is one that was put, at its second, with its value.
        for p in &got {
            assert!(
                wanted.contains(p),
                "{metric}: {p:?} was never put ({wanted:?})"
            );
        }
        // Every point put during the run is in the report.
        for p in wanted
            .iter()
            .filter(|(t, _)| *t as f64 >= start.ceil() && (*t as f64) < start + 5.0)
        {
            assert!(got.contains(p), "{metric}: {p:?} is missing ({got:?})");
        }
        assert!(got.len() >= 4, "{metric}: {got:?}");
        assert!(
            !got.iter().any(|(_, v)| *v == 1234.0 || *v == 99.0),
            "{metric}: a point from outside the window or another cluster"
        );
    }
    // The live dashboard got CloudWatch's series while the run ran.
    let events = sse.join().unwrap();
    assert!(
        events.contains("event: cloudwatch") && events.contains("CPUUtilization"),
        "no cloudwatch event on the live dashboard: {}",
        &events[..events.len().min(2000)]
    );
    let html = std::fs::read_to_string(report.join("report.html")).unwrap();
    for chart in [
        "cloudwatch-latency",
        "cloudwatch-load",
        "cloudwatch-cpuutilization",
        "p99 predict_one",
    ] {
        assert!(html.contains(chart), "report.html has no {chart}");
    }
    assert!(
        log.contains("CloudWatch") && log.contains("CPUUtilization"),
        "{log}"
    );
}

/// A CloudWatch that cannot be reached costs the run nothing: it passes, the report
/// says why there are no series, and the end is not held up past the bounded last
/// fetch.
#[test]
fn an_unreachable_cloudwatch_leaves_a_note_and_the_run_passes() {
    let dir = tempfile::tempdir().unwrap();
    let target = sqlite(dir.path());
    fleetload(&["prepare", "--target", &target, "--rows", "300"]).assert_ok();
    let closed = free_port_number();
    let env = vec![
        ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{closed}")),
        ("AWS_ACCESS_KEY_ID", "AKIDX".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "x".to_string()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
        ("HOME", dir.path().display().to_string()),
    ];
    let report = dir.path().join("report");
    let began = std::time::Instant::now();
    let (code, log) = run_env(
        &[
            "run",
            "--target",
            &target,
            "--rows",
            "300",
            "--workers",
            "1",
            "--rate",
            "20",
            "--duration",
            "2s",
            "--region",
            "eu-west-1",
            "--cloudwatch",
            "db_cluster=churn-db,period=60s",
            "--report-dir",
            report.to_str().unwrap(),
        ],
        dir.path(),
        &env,
    );
    assert_eq!(code, Some(0), "{log}");
    assert!(
        began.elapsed() < std::time::Duration::from_secs(40),
        "held up for {:?}",
        began.elapsed()
    );
    let r = read_report(&report);
    assert_eq!(r["status"], "passed");
    let cw = &r["cloudwatch"];
    assert_eq!(cw["region"], "eu-west-1");
    assert!(cw["series"].as_array().unwrap().is_empty(), "{cw}");
    let notes = cw["notes"].to_string();
    assert!(
        notes.contains("could not read CloudWatch after the run")
            || notes.contains("did not answer"),
        "{notes}"
    );
}

/// MariaDB, as far as it goes: a server that asks for the password in clear (the
/// `mysql_clear_password` plugin Aurora MySQL takes IAM tokens through) over TLS and
/// checks it against botocore's token. A fleet with `auth = "iam"` logs in and runs; the
/// same token given as a plain password (no cleartext plugin) is not sent and the login
/// fails, so the run above went through the plugin; without TLS the plan is refused.
#[test]
fn iam_tokens_reach_mariadb_through_the_cleartext_plugin_over_tls() {
    let port = free_port_number();
    let token = botocore_token("127.0.0.1", port, "fl_iam", "eu-central-1");
    let server = maria_pam::MariaPam::start_on(port, "fl_iam", &token);
    let dir = tempfile::tempdir().unwrap();
    let env = aws_env(dir.path());
    let tls = format!(
        "mysql://fl_iam@127.0.0.1:{}/fl?ssl-mode=REQUIRED",
        server.port
    );
    let (ran, report) = iam_prepare_and_run(&tls, "eu-central-1", dir.path(), &env);

    // The token as an ordinary password: sqlx will not answer the cleartext request.
    let mut plain = env.clone();
    plain.push(("FL_TOKEN", token.clone()));
    let (code, refused) = run_env(
        &[
            "prepare",
            "--target",
            &tls,
            "--password-env",
            "FL_TOKEN",
            "--rows",
            "10",
        ],
        dir.path(),
        &plain,
    );
    assert_ne!(code, Some(0), "{refused}");
    assert!(
        refused.contains("mysql_clear_password") || refused.contains("cleartext"),
        "{refused}"
    );
    let no_tls = format!("mysql://fl_iam@127.0.0.1:{}/fl", server.port);
    let refused_plan = refused_without_tls(&no_tls, "ssl-mode=REQUIRED", dir.path(), &env);
    let everything = format!("{ran}{refused}{refused_plan}{}", files_text(&report));
    assert!(
        !everything.contains(&token) && !everything.contains(SECRET_KEY),
        "a token or key appeared in the output"
    );
}
