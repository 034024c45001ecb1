//! The control channel's security and the worker's limits, with real processes over
//! real sockets: tokens, TLS, mutual TLS, plaintext refused off loopback, targets a
//! worker refuses, secrets that never show, TLS to the database, hostile messages.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

/// A prepared site whose coordinator runs one worker at 50 ops/s for 2 s.
fn site() -> Site {
    Site::new(
        1000,
        &[
            "--workers",
            "1",
            "--rate",
            "50",
            "--duration",
            "2s",
            "--join-timeout",
            "8s",
        ],
    )
}

#[test]
fn a_worker_with_the_wrong_token_is_refused_and_the_right_one_runs() {
    let site = site();
    let secret = "tok-3f9a77c1-fleet";
    let c = site.coordinator(&[], &[("FLEETLOAD_TOKEN", secret)]);
    let (code, out) = output(site.worker_at("http", &[], &[("FLEETLOAD_TOKEN", "tok-wrong")]));
    assert_ne!(code, Some(0));
    assert!(out.contains("token"), "{out}");
    let (code, out) = output(site.worker_at("http", &[], &[]));
    assert_ne!(code, Some(0), "no token at all: {out}");
    let token_file = site.dir.path().join("token");
    std::fs::write(&token_file, format!("{secret}\n")).unwrap();
    let (code, out) =
        output(site.worker_at("http", &["--token-file", token_file.to_str().unwrap()], &[]));
    assert_eq!(code, Some(0), "{out}");
    let (code, log) = output(c);
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("refused a call without the fleet's token"),
        "{log}"
    );
    assert!(
        !log.contains(secret) && !log.contains("tok-wrong"),
        "a token was logged:\n{log}"
    );
}

/// A fleet whose only worker has the wrong token: the coordinator's error says how many
/// were refused and why, and where workers should dial (its own address, not a
/// placeholder).
#[test]
fn a_fleet_that_never_gathers_says_who_was_refused_and_where_to_dial() {
    let site = Site::new(
        1000,
        &[
            "--workers",
            "1",
            "--rate",
            "50",
            "--duration",
            "2s",
            "--join-timeout",
            "3s",
        ],
    );
    let c = site.coordinator(&[], &[("FLEETLOAD_TOKEN", "tok-right-5521")]);
    let (code, _) = output(site.worker_at("http", &[], &[("FLEETLOAD_TOKEN", "tok-wrong")]));
    assert_ne!(code, Some(0));
    let (code, log) = output(c);
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("only 0 of 1 workers joined")
            && log.contains("1 refused: 1 with a missing or wrong token")
            && log.contains("first from 127.0.0.1:"),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "fleetload worker --coordinator http://{}",
            site.addr
        )) && !log.contains("THIS_HOST"),
        "{log}"
    );
}

#[test]
fn tls_and_mutual_tls_protect_the_control_channel() {
    let site = site();
    let good = pki(site.dir.path(), "fleet", &["localhost", "127.0.0.1"]);
    let other = pki(site.dir.path(), "other", &["localhost", "127.0.0.1"]);
    let s = |p: &PathBuf| p.to_str().unwrap().to_string();
    let (cert, key, ca) = (s(&good.server.0), s(&good.server.1), s(&good.ca));
    // Mutual TLS: the coordinator asks for a client certificate signed by the fleet CA.
    let c = site.coordinator(
        &[
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--tls-client-ca",
            &ca,
        ],
        &[],
    );
    let (code, out) = output(site.worker_at("https", &["--tls-ca", &s(&other.ca)], &[]));
    assert_ne!(
        code,
        Some(0),
        "a worker trusting another CA must not connect: {out}"
    );
    let (code, out) = output(site.worker_at("https", &["--tls-ca", &ca], &[]));
    assert_ne!(
        code,
        Some(0),
        "a worker without a client certificate must be refused: {out}"
    );
    let (code, out) = output(site.worker_at(
        "https",
        &[
            "--tls-ca",
            &ca,
            "--tls-cert",
            &s(&other.client.0),
            "--tls-key",
            &s(&other.client.1),
        ],
        &[],
    ));
    assert_ne!(
        code,
        Some(0),
        "a client certificate from another CA must be refused: {out}"
    );
    let (code, out) = output(site.worker_at(
        "https",
        &[
            "--tls-ca",
            &ca,
            "--tls-cert",
            &s(&good.client.0),
            "--tls-key",
            &s(&good.client.1),
        ],
        &[],
    ));
    assert_eq!(code, Some(0), "{out}");
    let (code, log) = output(c);
    assert_eq!(code, Some(0), "{log}");
}

#[test]
fn plaintext_off_loopback_needs_insecure() {
    let dir = tempfile::tempdir().unwrap();
    let target = sqlite(dir.path());
    let port = free_port();
    let any = format!("0.0.0.0:{}", port.rsplit(':').next().unwrap());
    let args = [
        "coordinator",
        "--listen",
        &any,
        "--target",
        &target,
        "--workers",
        "1",
        "--join-timeout",
        "1s",
        "--duration",
        "1s",
    ];
    let (code, out) = output(spawn_env(&args, dir.path(), &[]));
    assert_eq!(code, Some(1));
    assert!(
        out.contains("refusing to serve the control channel in plaintext")
            && out.contains("--tls-cert"),
        "{out}"
    );
    let mut insecure = args.to_vec();
    insecure.push("--insecure");
    let (_, out) = output(spawn_env(&insecure, dir.path(), &[]));
    assert!(
        out.contains("WARNING: serving the control channel in plaintext"),
        "{out}"
    );
}

#[test]
fn a_worker_refuses_a_target_it_was_not_allowed() {
    let pg = fresh_pg("allow_target");
    let dir = tempfile::tempdir().unwrap();
    let addr = free_port();
    let report = dir.path().join("report");
    let c = spawn_env(
        &[
            "coordinator",
            "--listen",
            &addr,
            "--target",
            &pg,
            "--password-env",
            PASSWORD_ENV,
            "--workers",
            "1",
            "--rate",
            "10",
            "--duration",
            "2s",
            "--report-dir",
            report.to_str().unwrap(),
        ],
        dir.path(),
        &[],
    );
    wait_listening(&addr);
    let url = format!("http://{addr}");
    let (code, out) = output(spawn_env(
        &[
            "worker",
            "--coordinator",
            &url,
            "--allow-target",
            "127.0.0.1:3306",
        ],
        dir.path(),
        &[],
    ));
    assert_ne!(code, Some(0));
    assert!(
        out.contains("may not load 127.0.0.1:5432") && out.contains("127.0.0.1:3306"),
        "{out}"
    );
    let (code, log) = output(c);
    assert_eq!(code, Some(1));
    assert!(
        log.contains("refuses the assignment") && log.contains("5432"),
        "{log}"
    );
}

/// The database password is in the workers' environment only: it never shows in any
/// output, log line, report file or `ctl status`, even at debug level.
#[test]
fn the_database_password_never_shows_anywhere() {
    let target = fresh_mysql("secret");
    let dir = tempfile::tempdir().unwrap();
    fleetload(&[
        "prepare",
        "--target",
        &target,
        "--password-env",
        PASSWORD_ENV,
        "--rows",
        "1000",
    ])
    .assert_ok();
    let addr = free_port();
    let report = dir.path().join("report");
    let debug = [("FLEETLOAD_LOG", "debug")];
    let c = spawn_env(
        &[
            "coordinator",
            "--listen",
            &addr,
            "--target",
            &target,
            "--password-env",
            PASSWORD_ENV,
            "--rows",
            "1000",
            "--workers",
            "2",
            "--rate",
            "50",
            "--duration",
            "3s",
            "--report-dir",
            report.to_str().unwrap(),
        ],
        dir.path(),
        &debug,
    );
    wait_listening(&addr);
    let url = format!("http://{addr}");
    let workers: Vec<Child> = (0..2)
        .map(|_| spawn_env(&["worker", "--coordinator", &url], dir.path(), &debug))
        .collect();
    std::thread::sleep(Duration::from_millis(1800));
    let status = fleetload(&["ctl", "--coordinator", &addr, "status"]);
    let mut everything = format!("{}{}", status.stdout, status.stderr);
    for w in workers {
        everything.push_str(&output(w).1);
    }
    let (code, log) = output(c);
    assert_eq!(code, Some(0), "{log}");
    everything.push_str(&log);
    for f in std::fs::read_dir(&report).unwrap() {
        everything.push_str(&String::from_utf8_lossy(
            &std::fs::read(f.unwrap().path()).unwrap(),
        ));
    }
    assert!(
        everything.contains("run-") && everything.len() > 10_000,
        "captured too little to mean anything"
    );
    assert!(
        !everything.contains(&password()),
        "the password appeared in the captured output"
    );
}

/// TLS to the database: the run goes over TLS with the server's certificate checked
/// against the CA file named in the URL, and a certificate that does not match is
/// refused with the reason.
#[test]
fn the_database_connection_can_require_and_verify_tls() {
    let snakeoil = "/etc/ssl/certs/ssl-cert-snakeoil.pem";
    assert!(
        Path::new(snakeoil).exists(),
        "PostgreSQL's Debian certificate is missing: {snakeoil}"
    );
    let pg = fresh_pg("db_tls");
    let dir = tempfile::tempdir().unwrap();
    // Debian's certificate names `localhost` (snakeoil: self-signed, so it is its own CA).
    let verified = format!(
        "{}?sslmode=verify-full&sslrootcert={snakeoil}",
        pg.replace("127.0.0.1", "localhost")
    );
    fleetload(&[
        "prepare",
        "--target",
        &verified,
        "--password-env",
        PASSWORD_ENV,
        "--rows",
        "500",
    ])
    .assert_ok();
    let report = dir.path().join("r");
    fleetload(&[
        "run",
        "--target",
        &verified,
        "--password-env",
        PASSWORD_ENV,
        "--rows",
        "500",
        "--rate",
        "50",
        "--duration",
        "2s",
        "--workers",
        "1",
        "--report-dir",
        report.to_str().unwrap(),
    ])
    .assert_ok();
    // The same certificate does not name 127.0.0.1.
    let wrong_name = format!("{pg}?sslmode=verify-full&sslrootcert={snakeoil}");
    let out = fleetload(&[
        "check",
        "--target",
        &wrong_name,
        "--password-env",
        PASSWORD_ENV,
    ]);
    assert_ne!(out.code, Some(0));
    assert!(
        out.stderr
            .contains("certificate not valid for name \"127.0.0.1\""),
        "{}",
        out.stderr
    );
    let missing = format!("{pg}?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem");
    let out = fleetload(&[
        "check",
        "--target",
        &missing,
        "--password-env",
        PASSWORD_ENV,
    ]);
    assert_ne!(out.code, Some(0));
    assert!(
        out.stderr.contains("/nonexistent/ca.pem")
            || out.stderr.to_lowercase().contains("no such file"),
        "{}",
        out.stderr
    );
}

/// `fleetload ctl` dials exactly as a worker does: over TLS, with a client certificate
/// under mutual TLS, and with the fleet token. Each missing piece is named, with the
/// flag that fixes it.
#[test]
fn ctl_steers_a_fleet_behind_mutual_tls_and_a_token() {
    let site = Site::new(
        1000,
        &[
            "--workers",
            "1",
            "--rate",
            "50",
            "--duration",
            "6s",
            "--join-timeout",
            "8s",
        ],
    );
    let good = pki(site.dir.path(), "fleet", &["localhost", "127.0.0.1"]);
    let other = pki(site.dir.path(), "other", &["localhost", "127.0.0.1"]);
    let s = |p: &PathBuf| p.to_str().unwrap().to_string();
    let token = site.dir.path().join("token");
    std::fs::write(&token, "tok-ctl-5d1e0c\n").unwrap();
    let tok = s(&token);
    let (ca, cert, key) = (s(&good.ca), s(&good.client.0), s(&good.client.1));
    let c = site.coordinator(
        &[
            "--tls-cert",
            &s(&good.server.0),
            "--tls-key",
            &s(&good.server.1),
            "--tls-client-ca",
            &ca,
            "--token-file",
            &tok,
        ],
        &[],
    );
    let all = [
        "--tls-ca",
        ca.as_str(),
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--token-file",
        &tok,
    ];
    let w = site.worker_at("https", &all, &[]);
    let https = format!("https://{}", site.addr);
    let ctl = |url: &str, extra: &[&str], action: &[&str]| {
        let mut args = vec!["ctl", "--coordinator", url];
        args.extend_from_slice(extra);
        args.extend_from_slice(action);
        fleetload(&args)
    };
    // Until the run starts, status says it has not; then it answers.
    let started = std::time::Instant::now();
    let status = loop {
        let o = ctl(&https, &all, &["status"]);
        if o.code == Some(0) || started.elapsed() > Duration::from_secs(10) {
            break o;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(status.code, Some(0), "{}", status.text());
    assert!(status.text().contains("run_id"), "{}", status.text());
    ctl(&https, &all, &["set-rate", "20"]).assert_ok();

    // Each missing piece is refused, naming what fixes it.
    let http = format!("http://{}", site.addr);
    let other_ca = s(&other.ca);
    let lacking: [(&str, Vec<&str>, &str); 4] = [
        (
            &https,
            vec!["--tls-ca", &ca, "--tls-cert", &cert, "--tls-key", &key],
            "token",
        ),
        (
            &https,
            vec!["--tls-ca", &ca, "--token-file", &tok],
            "--tls-cert",
        ),
        (&http, vec!["--token-file", &tok], "https://"),
        (
            &https,
            vec![
                "--tls-ca",
                &other_ca,
                "--tls-cert",
                &cert,
                "--tls-key",
                &key,
                "--token-file",
                &tok,
            ],
            "--tls-ca",
        ),
    ];
    for (url, flags, named) in &lacking {
        let o = ctl(url, flags, &["status"]);
        assert_ne!(o.code, Some(0), "{flags:?}");
        assert!(
            o.text().contains(named),
            "{flags:?} should name {named}: {}",
            o.text()
        );
        assert!(
            o.text().matches("UnknownIssuer").count() <= 1,
            "said once: {}",
            o.text()
        );
    }

    let (code, out) = output(w);
    assert_eq!(code, Some(0), "{out}");
    let (code, log) = output(c);
    assert_eq!(code, Some(0), "{log}");
    let r = site.report();
    assert!(
        r["changes"].to_string().contains("20"),
        "the set-rate took effect: {}",
        r["changes"]
    );
}

/// Certificate failures are not transient: a worker that does not trust the
/// coordinator says why at once, naming the flag, instead of retrying for its whole dial
/// timeout; a coordinator with an unreadable certificate says so before it listens.
#[test]
fn certificate_errors_name_the_flag_and_are_not_retried() {
    let site = site();
    let good = pki(site.dir.path(), "fleet", &["localhost", "127.0.0.1"]);
    let other = pki(site.dir.path(), "other", &["localhost", "127.0.0.1"]);
    let s = |p: &PathBuf| p.to_str().unwrap().to_string();
    let c = site.coordinator(
        &[
            "--tls-cert",
            &s(&good.server.0),
            "--tls-key",
            &s(&good.server.1),
        ],
        &[],
    );
    let started = std::time::Instant::now();
    let url = format!("https://{}", site.addr);
    let (code, out) = output(spawn(
        &[
            "worker",
            "--coordinator",
            &url,
            "--tls-ca",
            &s(&other.ca),
            "--dial-timeout",
            "30s",
        ],
        site.dir.path(),
    ));
    assert_ne!(code, Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "retried: {out}"
    );
    assert!(out.contains("--tls-ca") && out.contains("TLS"), "{out}");
    let (code, out) = output(site.worker_at("http", &[], &[]));
    assert_ne!(code, Some(0));
    assert!(
        out.contains("https://"),
        "plaintext to a TLS coordinator: {out}"
    );
    // The real worker still runs.
    let (code, out) = output(site.worker_at("https", &["--tls-ca", &s(&good.ca)], &[]));
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(output(c).0, Some(0));

    let garbage = site.dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let o = fleetload(&[
        "coordinator",
        "--listen",
        &free_port(),
        "--target",
        &site.target,
        "--workers",
        "1",
        "--tls-cert",
        &s(&garbage),
        "--tls-key",
        &s(&good.server.1),
    ]);
    assert_ne!(o.code, Some(0));
    assert!(o.text().contains("--tls-cert"), "{}", o.text());
    assert!(
        !o.text().contains("listening"),
        "reported after listening: {}",
        o.text()
    );
}

/// `fleetload certs` makes what a mutual-TLS fleet needs, in one command each: the
/// coordinator's certificate and a worker's pass rustls's checks, a run goes through,
/// keys are private to their owner, and nothing is overwritten unasked.
#[test]
fn certs_made_by_fleetload_run_a_mutual_tls_fleet() {
    let site = site();
    let dir = site.dir.path().join("certs");
    let d = dir.to_str().unwrap();
    fleetload(&["certs", "create-ca", "--dir", d]).assert_ok();
    fleetload(&[
        "certs",
        "create-coordinator",
        "--dir",
        d,
        "localhost",
        "127.0.0.1",
    ])
    .assert_ok();
    fleetload(&["certs", "create-worker", "--dir", d, "w1", "--days", "30"]).assert_ok();
    // Valid for the days asked (defaults: 5 years for the CA, 397 days for a leaf),
    // never until the year 4096.
    let valid_for = |f: &str, secs: u64| {
        std::process::Command::new("openssl")
            .args(["x509", "-noout", "-checkend", &secs.to_string(), "-in"])
            .arg(dir.join(f))
            .stdout(std::process::Stdio::null())
            .status()
            .expect("openssl reads the certificate")
            .success()
    };
    for (file, at_least, less_than) in [
        ("ca.pem", 1824, 1826),
        ("coordinator.pem", 396, 398),
        ("worker-w1.pem", 29, 31),
    ] {
        assert!(
            valid_for(file, at_least * 86_400) && !valid_for(file, less_than * 86_400),
            "{file} is not valid for {at_least}..{less_than} days"
        );
    }
    let again = fleetload(&["certs", "create-ca", "--dir", d]);
    assert_ne!(again.code, Some(0));
    assert!(again.text().contains("--force"), "{}", again.text());
    use std::os::unix::fs::PermissionsExt;
    for key in ["ca.key", "coordinator.key", "worker-w1.key"] {
        let mode = std::fs::metadata(dir.join(key))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{key} is readable by others: {mode:o}");
    }
    let p = |f: &str| dir.join(f).to_str().unwrap().to_string();
    let c = site.coordinator(
        &[
            "--tls-cert",
            &p("coordinator.pem"),
            "--tls-key",
            &p("coordinator.key"),
            "--tls-client-ca",
            &p("ca.pem"),
        ],
        &[],
    );
    let (code, out) = output(site.worker_at(
        "https",
        &[
            "--tls-ca",
            &p("ca.pem"),
            "--tls-cert",
            &p("worker-w1.pem"),
            "--tls-key",
            &p("worker-w1.key"),
        ],
        &[],
    ));
    assert_eq!(code, Some(0), "{out}");
    let (code, log) = output(c);
    assert_eq!(code, Some(0), "{log}");
    let bad = fleetload(&["certs", "create-worker", "--dir", d, "no spaces"]);
    assert_ne!(bad.code, Some(0));
    let bad = fleetload(&[
        "certs",
        "create-coordinator",
        "--dir",
        d,
        "--force",
        "bad host!",
    ]);
    assert_ne!(bad.code, Some(0));
    assert!(bad.text().contains("neither a host name"), "{}", bad.text());
}
