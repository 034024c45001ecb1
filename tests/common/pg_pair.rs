//! A PostgreSQL primary and a streaming replica of the test's own: `initdb` and
//! `pg_basebackup -R` into a temporary directory, each server on a free loopback port,
//! stopped and removed on drop. As root (CI), the servers run as `postgres`.
// Each test binary that includes this module uses part of it.
#![allow(dead_code)]

use crate::common::{free_port_number as free_port, is_root};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub(crate) struct PgPair {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub primary: u16,
    pub replica: u16,
    /// Replicas added by `add_replica`.
    more: std::cell::RefCell<Vec<u16>>,
    /// The replica's loopback address: 127.0.0.1, or 127.0.0.2 on the primary's port
    /// (`start_same_port`), so a host name can move from one to the other.
    pub replica_host: &'static str,
}

/// The newest installed PostgreSQL's binaries.
pub(crate) fn pg_bin() -> PathBuf {
    let mut versions: Vec<u32> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (scripts/test installs it)")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    versions.sort_unstable();
    let v = versions.last().expect("a PostgreSQL version");
    PathBuf::from(format!("/usr/lib/postgresql/{v}/bin"))
}

/// `program args…`, as `postgres` when we are root; panics with its output on failure.
pub(crate) fn as_postgres(program: &Path, args: &[&str]) -> String {
    try_as_postgres(program, args).unwrap_or_else(|e| panic!("{e}"))
}

fn try_as_postgres(program: &Path, args: &[&str]) -> Result<String, String> {
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    let out = cmd.args(args).output().expect("start a PostgreSQL tool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!("{program:?} {args:?}: {text}"))
    }
}

impl PgPair {
    pub(crate) fn start() -> PgPair {
        Self::start_at("127.0.0.1", None)
    }

    /// The primary on 127.0.0.1 and the replica on 127.0.0.2, on the same port: one
    /// URL with a host name reaches either, as the name resolves.
    pub(crate) fn start_same_port() -> PgPair {
        Self::start_at("127.0.0.2", Some(free_port()))
    }

    fn start_at(replica_host: &'static str, port: Option<u16>) -> PgPair {
        let bin = pg_bin();
        let dir = tempfile::Builder::new()
            .prefix("fleetload-pgpair")
            .tempdir_in("/tmp")
            .unwrap();
        if is_root() {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(ok.success());
        }
        let (primary, replica) = match port {
            Some(p) => (p, p),
            None => (free_port(), free_port()),
        };
        let p = dir.path().join("primary");
        let r = dir.path().join("replica");
        let s = |p: &Path| p.to_str().unwrap().to_string();
        as_postgres(
            &bin.join("initdb"),
            &["-D", &s(&p), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        );
        let conf = format!(
            "listen_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nwal_level = replica\nmax_wal_senders = 4\nhot_standby = on\nfsync = off\nmax_connections = 200\n",
            s(dir.path())
        );
        append(&p.join("postgresql.conf"), &conf);
        let pair = PgPair {
            bin,
            primary,
            replica,
            dir,
            more: std::cell::RefCell::new(Vec::new()),
            replica_host,
        };
        pair.ctl(&p, "127.0.0.1", primary, "start");
        pair.clone_primary(&r, replica_host, replica);
        pair
    }

    /// A streaming replica of the primary in `data`, serving on `port`.
    fn clone_primary(&self, data: &Path, host: &str, port: u16) {
        as_postgres(
            &self.bin.join("pg_basebackup"),
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.primary.to_string(),
                "-U",
                "postgres",
                "-D",
                data.to_str().unwrap(),
                "-R",
                "-X",
                "stream",
            ],
        );
        self.ctl(data, host, port, "start");
    }

    /// Another streaming replica, started now; its port.
    pub(crate) fn add_replica(&self) -> u16 {
        let port = free_port();
        let data = self.dir.path().join(format!("replica-{port}"));
        self.clone_primary(&data, "127.0.0.1", port);
        self.more.borrow_mut().push(port);
        port
    }

    fn ctl(&self, data: &Path, host: &str, port: u16, action: &str) {
        let log = self.dir.path().join(format!("{host}-{port}.log"));
        // Each server its own socket directory, outside its data directory (a base
        // backup would copy the socket's lock file): two on one port must not share.
        let sockets = self.dir.path().join(format!("sock-{host}-{port}"));
        std::fs::create_dir_all(&sockets).unwrap();
        if is_root() {
            let _ = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&sockets)
                .status();
        }
        let done = try_as_postgres(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &format!(
                    "-p {port} -c listen_addresses={host} -k {}",
                    sockets.display()
                ),
                "-w",
                "-t",
                "30",
                action,
            ],
        );
        if let Err(e) = done {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("{e}\nserver log:\n{log}");
        }
    }

    /// Run `sql` on the server at 127.0.0.1:`port` and return its output (unaligned,
    /// no headers).
    pub(crate) fn psql(&self, port: u16, sql: &str) -> String {
        self.psql_at("127.0.0.1", port, sql)
    }

    /// Run `sql` on the primary.
    pub(crate) fn on_primary(&self, sql: &str) -> String {
        self.psql_at("127.0.0.1", self.primary, sql)
    }

    /// Run `sql` on the replica.
    pub(crate) fn on_replica(&self, sql: &str) -> String {
        self.psql_at(self.replica_host, self.replica, sql)
    }

    fn psql_at(&self, host: &str, port: u16, sql: &str) -> String {
        let out = Command::new("psql")
            .args(["-h", host, "-p", &port.to_string(), "-U", "postgres"])
            .args([
                "-d",
                "postgres",
                "-XAtq",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Demote the primary as a failover does to its clients: every new transaction
    /// there is read-only from now on (writes fail with SQLSTATE 25006).
    pub(crate) fn make_primary_read_only(&self) {
        self.on_primary("ALTER SYSTEM SET default_transaction_read_only = on");
        self.on_primary("SELECT pg_reload_conf()");
    }

    /// Wait until the replica has replayed everything the primary wrote so far.
    pub(crate) fn wait_for_replica(&self) {
        self.catch_up();
    }

    fn catch_up(&self) {
        let lsn = self.on_primary("SELECT pg_current_wal_lsn()");
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            let caught_up = self.on_replica(&format!(
                "SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn"
            ));
            if caught_up == "t" {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait until the replica has replayed everything the primary wrote, then promote
    /// it: every write the primary acknowledged is on the new writer.
    pub(crate) fn promote_replica(&self) {
        self.catch_up();
        as_postgres(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                self.dir.path().join("replica").to_str().unwrap(),
                "-w",
                "promote",
            ],
        );
    }
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

impl Drop for PgPair {
    fn drop(&mut self) {
        let more: Vec<(String, u16)> = self
            .more
            .borrow()
            .iter()
            .map(|p| (format!("replica-{p}"), *p))
            .collect();
        let all = more.into_iter().chain([
            ("replica".to_string(), self.replica),
            ("primary".to_string(), self.primary),
        ]);
        for (name, _) in all {
            stop(&self.bin, &self.dir.path().join(name));
        }
    }
}

/// Stop the server of `data` at once, ignoring failure (for `Drop`).
pub(crate) fn stop(bin: &Path, data: &Path) {
    let _ = try_as_postgres(
        &bin.join("pg_ctl"),
        &[
            "-D",
            data.to_str().unwrap_or_default(),
            "-m",
            "immediate",
            "-w",
            "stop",
        ],
    );
}
