//! Helpers for end-to-end tests: real databases, the real `fleetload` binary, its report.
//!
//! The databases come from `scripts/test` (which installs and starts them and creates
//! the `fleetload` user); each test gets its own database so tests run in parallel.
#![allow(dead_code, unreachable_pub)]

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_fleetload");
/// Name of the variable the workers read the test password from.
pub const PASSWORD_ENV: &str = "FLEETLOAD_TEST_DB_PASSWORD";

pub fn password() -> String {
    std::env::var(PASSWORD_ENV).unwrap_or_else(|_| "fl-test-7731".into())
}

fn mysql_base() -> String {
    std::env::var("FLEETLOAD_TEST_MYSQL")
        .unwrap_or_else(|_| "mysql://fleetload@127.0.0.1:3306".into())
}

fn pg_base() -> String {
    std::env::var("FLEETLOAD_TEST_PG")
        .unwrap_or_else(|_| "postgres://fleetload@127.0.0.1:5432".into())
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

const SERVERS: &str =
    "run the suite with scripts/test, which installs, starts and configures MariaDB and PostgreSQL";

/// A new, empty database `fl_<name>` on the server at `base`, created through its
/// `admin` database; returns its URL (no password).
fn fresh_db(base: &str, admin: &str, drop_options: &str, name: &str) -> String {
    block_on(async {
        let mut s = session(&format!("{base}/{admin}")).await;
        for sql in [
            format!("DROP DATABASE IF EXISTS fl_{name}{drop_options}"),
            format!("CREATE DATABASE fl_{name}"),
        ] {
            s.run_text(&sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        s.close().await;
    });
    format!("{base}/fl_{name}")
}

/// A new, empty MariaDB database for one test.
pub fn fresh_mysql(name: &str) -> String {
    fresh_db(&mysql_base(), "mysql", "", name)
}

/// A new, empty PostgreSQL database for one test.
pub fn fresh_pg(name: &str) -> String {
    fresh_db(&pg_base(), "postgres", " WITH (FORCE)", name)
}

pub fn sqlite(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("t.db").display())
}

/// What one `fleetload` invocation did.
#[derive(Debug)]
pub struct Invocation {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Invocation {
    pub fn assert_ok(&self) -> &Self {
        assert_eq!(
            self.code,
            Some(0),
            "fleetload failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Everything it printed, stdout then stderr.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// `fleetload prepare`: `rows` rows of `scenario` on a server `target` (the password
/// from [`PASSWORD_ENV`]), with `extra` flags.
pub fn prepare_rows(target: &str, scenario: &str, rows: u64, extra: &[&str]) {
    let rows = rows.to_string();
    let mut args = vec![
        "prepare",
        "--target",
        target,
        "--password-env",
        PASSWORD_ENV,
        "--scenario",
        scenario,
        "--rows",
        &rows,
    ];
    args.extend_from_slice(extra);
    fleetload(&args).assert_ok();
}

/// `fleetload run` on a server `target` (the password from [`PASSWORD_ENV`]) with
/// `args`, its report in `report_dir`.
pub fn run_on(target: &str, args: &[&str], report_dir: &Path) -> Invocation {
    let dir = report_dir.to_string_lossy();
    let mut all = vec!["run", "--target", target, "--password-env", PASSWORD_ENV];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--report-dir", &dir]);
    fleetload(&all)
}

/// Run the real binary with the test password in its environment, at most `limit` long.
pub fn fleetload(args: &[&str]) -> Invocation {
    fleetload_within(args, Duration::from_secs(120))
}

pub fn fleetload_within(args: &[&str], limit: Duration) -> Invocation {
    let mut child = Command::new(BIN)
        .args(args)
        .env(PASSWORD_ENV, password())
        .env("FLEETLOAD_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start fleetload");
    let started = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "fleetload {args:?} ran longer than {limit:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    Invocation {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

pub fn read_report(dir: &Path) -> Value {
    let path = dir.join("report.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("no report at {}: {e}", path.display()));
    serde_json::from_str(&text).expect("report.json is JSON")
}

pub fn u(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("not an unsigned integer: {v}"))
}

pub fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// A fleetload session to any of the three targets (SQLite ones get the ML stand-in's
/// functions, as every fleetload connection does).
async fn session(url: &str) -> fleetload_db::session::Session {
    let spec = fleetload_db::connect::ConnectSpec {
        target: fleetload_common::target::Target::parse(url, None).expect("test URL"),
        credentials: if url.starts_with("sqlite") {
            fleetload_db::connect::Credentials::None
        } else {
            fleetload_db::connect::Credentials::Password(fleetload_aws::Sensitive::new(password()))
        },
        timeout: Duration::from_secs(10),
        create: false,
        application: "fleetload tests",
    };
    spec.connect()
        .await
        .unwrap_or_else(|e| panic!("{e}; {SERVERS}"))
}

/// Rows of a query returning (BIGINT, VARCHAR).
pub fn id_text_rows(url: &str, sql: &str) -> Vec<(i64, String)> {
    use fleetload_db::session::Session;
    block_on(async {
        match session(url).await {
            Session::MySql(mut c) => sqlx::query_as(sql).fetch_all(&mut c).await.unwrap(),
            Session::Postgres(mut c) => sqlx::query_as(sql).fetch_all(&mut c).await.unwrap(),
            Session::Sqlite(mut c) => sqlx::query_as(sql).fetch_all(&mut c).await.unwrap(),
        }
    })
}

/// A single BIGINT.
pub fn scalar(url: &str, sql: &str) -> i64 {
    block_on(async {
        session(url)
            .await
            .scalar_i64(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    })
}

/// Hold a lock for `hold` on a session of its own: `lock`, wait, `unlock`.
pub fn hold_lock(url: &str, lock: &str, unlock: &str, hold: Duration) {
    block_on(async {
        let mut s = session(url).await;
        s.run_text(lock)
            .await
            .unwrap_or_else(|e| panic!("{lock}: {e}"));
        tokio::time::sleep(hold).await;
        s.run_text(unlock)
            .await
            .unwrap_or_else(|e| panic!("{unlock}: {e}"));
        s.close().await;
    });
}

/// Run one statement.
pub fn exec(url: &str, sql: &str) {
    block_on(async {
        session(url)
            .await
            .run_text(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    });
}

/// A loopback TCP proxy that can cut every connection through it and refuse new ones
/// until healed. Its threads end by themselves within a minute.
pub struct Proxy {
    pub addr: String,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    live: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
    /// Where new connections go, in turn: a writer endpoint's DNS name (one server,
    /// moved by `flip`) or a reader endpoint's (replicas, `add`ed as they join).
    upstream: std::sync::Arc<std::sync::Mutex<(Vec<String>, usize)>>,
}

impl Proxy {
    pub fn start(upstream: String) -> Proxy {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let live = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let upstream = std::sync::Arc::new(std::sync::Mutex::new((vec![upstream], 0usize)));
        let (c, l, u) = (cut.clone(), live.clone(), upstream.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                match listener.accept() {
                    Ok((client, _)) if !c.load(Ordering::SeqCst) => {
                        client.set_nonblocking(false).unwrap();
                        let to = {
                            let mut u = u.lock().unwrap();
                            u.1 = u.1.wrapping_add(1);
                            u.0[u.1 % u.0.len()].clone()
                        };
                        let Ok(server) = std::net::TcpStream::connect(&to) else {
                            continue;
                        };
                        let mut conns = l.lock().unwrap();
                        conns.push(client.try_clone().unwrap());
                        conns.push(server.try_clone().unwrap());
                        for (mut from, mut to) in [
                            (client.try_clone().unwrap(), server.try_clone().unwrap()),
                            (server, client),
                        ] {
                            std::thread::spawn(move || {
                                let _ = std::io::copy(&mut from, &mut to);
                                let _ = to.shutdown(std::net::Shutdown::Both);
                            });
                        }
                    }
                    Ok((client, _)) => drop(client),
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Proxy {
            addr,
            cut,
            live,
            upstream,
        }
    }

    /// Send new connections to `upstream` from now on; connections already made stay
    /// where they are, as clients of a moved DNS name keep theirs.
    pub fn flip(&self, upstream: String) {
        *self.upstream.lock().unwrap() = (vec![upstream], 0);
    }

    /// Share new connections with `upstream` too, round robin (a replica joining a
    /// reader endpoint).
    pub fn add(&self, upstream: String) {
        self.upstream.lock().unwrap().0.push(upstream);
    }

    pub fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for s in self.live.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    pub fn heal(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A free loopback address (host:port).
/// A free loopback port, as a number.
pub fn free_port_number() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Whether the tests run as root (CI does): servers of their own then run as their
/// service users.
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

pub fn free_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// Wait until something listens on `addr` (a coordinator just spawned), at most 10 s.
pub fn wait_listening(addr: &str) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if std::net::TcpStream::connect(addr).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Start the binary in `cwd` with its output captured.
pub fn spawn(args: &[&str], cwd: &Path) -> std::process::Child {
    spawn_env(args, cwd, &[])
}

/// Start the binary in `cwd` with `env` added (a token from the test's own environment
/// is never inherited).
pub fn spawn_env(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> std::process::Child {
    let mut c = Command::new(BIN);
    c.args(args)
        .current_dir(cwd)
        .env("FLEETLOAD_LOG", "warn")
        .env(PASSWORD_ENV, password())
        .env_remove("FLEETLOAD_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    c.spawn().unwrap()
}

/// Wait for `child` (at most 90 s) and return its exit code and everything it printed.
pub fn output(mut child: std::process::Child) -> (Option<i32>, String) {
    let status = wait_within(&mut child, Duration::from_secs(90)).expect("process ended");
    let out = child.wait_with_output().unwrap();
    (
        status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A prepared SQLite table in a directory of its own, a free port for a coordinator, and
/// the coordinator flags every test of a file shares.
/// Wait until the run of the coordinator at `addr` has lasted `secs` by its own clock
/// (asked with `fleetload ctl status`), instead of sleeping a guess that a slow machine
/// makes wrong. Returns the elapsed time the coordinator reported.
pub fn wait_elapsed(addr: &str, secs: f64) -> f64 {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        let out = fleetload_within(
            &["ctl", "--coordinator", addr, "status"],
            Duration::from_secs(10),
        );
        let elapsed = serde_json::from_str::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|v| v["elapsed_s"].as_f64());
        if let Some(e) = elapsed.filter(|e| *e >= secs) {
            return e;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the run at {addr} did not reach {secs} s within a minute");
}

/// `n` worker processes `w0`, `w1`, … dialing `endpoint`, spooling into `dir`.
pub fn spooling_workers(endpoint: &str, n: usize, dir: &Path) -> Vec<std::process::Child> {
    spooling_workers_into(endpoint, n, dir, dir)
}

/// Workers started in `cwd` that spool into `spool_dir` (which may not exist yet).
pub fn spooling_workers_into(
    endpoint: &str,
    n: usize,
    cwd: &Path,
    spool_dir: &Path,
) -> Vec<std::process::Child> {
    (0..n)
        .map(|i| {
            spawn(
                &[
                    "worker",
                    "--coordinator",
                    endpoint,
                    "--name",
                    &format!("w{i}"),
                    "--spool-dir",
                    spool_dir.to_str().unwrap(),
                ],
                cwd,
            )
        })
        .collect()
}

pub struct Site {
    pub dir: tempfile::TempDir,
    pub target: String,
    pub addr: String,
    rows: String,
    defaults: Vec<String>,
}

impl Site {
    pub fn new(rows: u64, defaults: &[&str]) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let target = sqlite(dir.path());
        let rows = rows.to_string();
        fleetload(&["prepare", "--target", &target, "--rows", &rows]).assert_ok();
        Site {
            dir,
            target,
            addr: free_port(),
            rows,
            defaults: defaults.iter().map(|s| s.to_string()).collect(),
        }
    }

    pub fn report_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("report")
    }

    pub fn report(&self) -> Value {
        read_report(&self.report_dir())
    }

    /// A coordinator on this site with the shared flags and `flags`; it gets 300 ms to
    /// start listening.
    pub fn coordinator(&self, flags: &[&str], env: &[(&str, &str)]) -> std::process::Child {
        let report = self.report_dir();
        let mut args = vec![
            "coordinator",
            "--listen",
            &self.addr,
            "--target",
            &self.target,
            "--rows",
            &self.rows,
            "--report-dir",
            report.to_str().unwrap(),
        ];
        args.extend(self.defaults.iter().map(String::as_str));
        args.extend_from_slice(flags);
        let child = spawn_env(&args, self.dir.path(), env);
        wait_listening(&self.addr);
        child
    }

    /// Wait until this site's run has lasted `secs` (see [`wait_elapsed`]).
    pub fn wait_elapsed(&self, secs: f64) -> f64 {
        wait_elapsed(&self.addr, secs)
    }

    /// A worker dialing this site's coordinator over `scheme` (http or https).
    pub fn worker_at(
        &self,
        scheme: &str,
        flags: &[&str],
        env: &[(&str, &str)],
    ) -> std::process::Child {
        let url = format!("{scheme}://{}", self.addr);
        let mut args = vec!["worker", "--coordinator", &url, "--dial-timeout", "3s"];
        args.extend_from_slice(flags);
        spawn_env(&args, self.dir.path(), env)
    }

    pub fn worker(&self, flags: &[&str]) -> std::process::Child {
        self.worker_at("http", flags, &[])
    }
}

/// One test of `$check(target)` per server: MariaDB, PostgreSQL and SQLite.
#[macro_export]
macro_rules! on_every_target {
    ($($check:ident),* $(,)?) => {$(
        mod $check {
            #[test]
            fn mariadb() {
                super::$check(&super::fresh_mysql(stringify!($check)));
            }

            #[test]
            fn postgres() {
                super::$check(&super::fresh_pg(stringify!($check)));
            }

            #[test]
            fn sqlite() {
                let dir = tempfile::tempdir().unwrap();
                super::$check(&super::sqlite(dir.path()));
            }
        }
    )*};
}

/// Wait for `child` at most `limit`; None if it is still running.
pub fn wait_within(
    child: &mut std::process::Child,
    limit: Duration,
) -> Option<std::process::ExitStatus> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// A CA and certificates it signed, as PEM files in `dir`.
pub struct Pki {
    pub ca: std::path::PathBuf,
    pub server: (std::path::PathBuf, std::path::PathBuf),
    pub client: (std::path::PathBuf, std::path::PathBuf),
    /// A second client certificate from the same CA (another worker's identity).
    pub client2: (std::path::PathBuf, std::path::PathBuf),
}

pub fn pki(dir: &Path, name: &str, server_names: &[&str]) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("{name} test CA"));
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let write = |file: &str, text: &str| {
        let p = dir.join(format!("{name}-{file}"));
        std::fs::write(&p, text).unwrap();
        p
    };
    let leaf = |sans: Vec<String>| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(sans)
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (scert, skey) = leaf(server_names.iter().map(|s| s.to_string()).collect());
    let (ccert, ckey) = leaf(vec!["worker.fleet".into()]);
    let (c2cert, c2key) = leaf(vec!["worker2.fleet".into()]);
    Pki {
        ca: write("ca.pem", &ca.pem()),
        server: (write("server.pem", &scert), write("server.key", &skey)),
        client: (write("client.pem", &ccert), write("client.key", &ckey)),
        client2: (write("client2.pem", &c2cert), write("client2.key", &c2key)),
    }
}

/// Act as a worker between its Assignment and the Start: say Ready, then answer every
/// clock probe with the receive and send times `echo(probe id, now)` gives (honest:
/// `(now, now)`), until the Start arrives.
pub async fn ready_until_start(
    tx: &tokio::sync::mpsc::Sender<fleetload_proto::v1::WorkerMessage>,
    inbound: &mut tonic::Streaming<fleetload_proto::v1::CoordinatorMessage>,
    echo: impl Fn(u64, i64) -> (i64, i64),
) {
    use fleetload_proto::v1 as pb;
    use pb::coordinator_message::Msg as In;
    use pb::worker_message::Msg as Out;
    tx.send(pb::WorkerMessage {
        msg: Some(Out::Ready(pb::Ready {
            sessions_open: 1,
            rows_loaded: 0,
            spool: String::new(),
        })),
    })
    .await
    .unwrap();
    loop {
        match inbound.message().await.unwrap().unwrap().msg {
            Some(In::TimeProbe(p)) => {
                let (received, sent) = echo(p.id, fleetload_common::wire::unix_nanos_now());
                tx.send(pb::WorkerMessage {
                    msg: Some(Out::TimeEcho(pb::TimeEcho {
                        id: p.id,
                        coordinator_send_unix_nanos: p.coordinator_send_unix_nanos,
                        worker_receive_unix_nanos: received,
                        worker_send_unix_nanos: sent,
                    })),
                })
                .await
                .unwrap();
            }
            Some(In::Start(_)) => return,
            _ => {}
        }
    }
}

/// A self-signed certificate for `localhost` and its key (`cert.pem`, `key.pem` in
/// `dir`, the key readable by its owner only), for servers of a test's own.
pub fn self_signed_cert(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    (cert, key)
}
