//! Logging in without a static password, offline but real: IAM database tokens on a
//! PostgreSQL and a MariaDB server that check them over TLS, and Secrets Manager on a
//! local moto server (PyPI `moto[server]`). No credential, token or secret may appear
//! in anything fleetload prints or writes. CloudWatch: tests/cloudwatch.rs.

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
use moto::{run_env, Moto};
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
