//! A MariaDB primary and its replica of the test's own: `mariadb-install-db` into a
//! temporary directory, each `mariadbd` on a free loopback port with its own socket,
//! GTID replication from the primary's first binlog event, an `app` user without the
//! privileges that bypass `read_only`. Stopped and removed on drop.
// Each test binary that includes this module uses part of it.
#![allow(dead_code)]

use crate::common::{free_port_number as free_port, is_root};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) struct MariaPair {
    dir: tempfile::TempDir,
    servers: Vec<Child>,
    pub primary: u16,
    pub replica: u16,
}

/// The application user's password (the tests' usual one).
pub(crate) fn app_password() -> String {
    crate::common::password()
}

impl MariaPair {
    pub(crate) fn start() -> MariaPair {
        let dir = tempfile::Builder::new()
            .prefix("fleetload-mariapair")
            .tempdir_in("/tmp")
            .unwrap();
        let mut pair = MariaPair {
            servers: Vec::new(),
            primary: free_port(),
            replica: free_port(),
            dir,
        };
        for (name, port, id) in [("primary", pair.primary, 1), ("replica", pair.replica, 2)] {
            let data = pair.dir.path().join(name);
            pair.install(&data);
            pair.servers.push(pair.serve(&data, port, id));
        }
        for port in [pair.primary, pair.replica] {
            pair.wait_up(port);
        }
        let pw = app_password();
        pair.root(
            pair.primary,
            &format!(
                "CREATE USER 'app'@'127.0.0.1' IDENTIFIED BY '{pw}';
                 GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER ON *.* TO 'app'@'127.0.0.1';
                 CREATE USER 'repl'@'127.0.0.1' IDENTIFIED BY '{pw}';
                 GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1';
                 CREATE DATABASE test;"
            ),
        );
        pair.root(
            pair.replica,
            &format!(
                "SET GLOBAL read_only = 1;
                 CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = {}, MASTER_USER = 'repl',
                   MASTER_PASSWORD = '{pw}', MASTER_USE_GTID = slave_pos;
                 START SLAVE;",
                pair.primary
            ),
        );
        pair.wait_for_replica();
        pair
    }

    fn socket(&self, port: u16) -> PathBuf {
        self.dir.path().join(format!("{port}.sock"))
    }

    fn install(&self, data: &Path) {
        std::fs::create_dir_all(data).unwrap();
        if is_root() {
            let ok = Command::new("chown")
                .args(["-R", "mysql:mysql"])
                .arg(self.dir.path())
                .status()
                .unwrap();
            assert!(ok.success());
        }
        let install = || {
            let mut cmd = Command::new("mariadb-install-db");
            cmd.arg(format!("--datadir={}", data.display()))
                .args(["--auth-root-authentication-method=normal", "--skip-test-db"]);
            if is_root() {
                cmd.arg("--user=mysql");
            }
            cmd.output().expect("run mariadb-install-db")
        };
        let mut out = install();
        if !out.status.success() {
            // Seen once in a full suite run, silent on stderr and gone on a rerun: say
            // everything it printed, and try once more on a clean data directory.
            eprintln!(
                "mariadb-install-db failed ({}): {}{}; retrying once",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let _ = std::fs::remove_dir_all(data);
            std::fs::create_dir_all(data).unwrap();
            if is_root() {
                let _ = Command::new("chown")
                    .args(["-R", "mysql:mysql"])
                    .arg(self.dir.path())
                    .status();
            }
            out = install();
        }
        assert!(
            out.status.success(),
            "mariadb-install-db ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn serve(&self, data: &Path, port: u16, id: u32) -> Child {
        let mut cmd = Command::new("/usr/sbin/mariadbd");
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--port={port}"))
            .arg(format!("--socket={}", self.socket(port).display()))
            .arg(format!(
                "--pid-file={}/{port}.pid",
                self.dir.path().display()
            ))
            .arg(format!(
                "--log-error={}/{port}.err",
                self.dir.path().display()
            ))
            .args(["--bind-address=127.0.0.1", "--skip-name-resolve"])
            .arg(format!("--server-id={id}"))
            .arg(format!("--log-bin={}/bin-{id}", data.display()))
            .args([
                "--innodb-flush-log-at-trx-commit=2",
                "--max-connections=300",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if is_root() {
            cmd.arg("--user=mysql");
        }
        cmd.spawn().expect("start mariadbd")
    }

    fn wait_up(&self, port: u16) {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if self.try_root(port, "SELECT 1").is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = std::fs::read_to_string(self.dir.path().join(format!("{port}.err")))
            .unwrap_or_default();
        panic!("mariadbd on {port} did not come up:\n{log}");
    }

    fn try_root(&self, port: u16, sql: &str) -> Result<String, String> {
        root_over(&self.socket(port), sql)
    }

    /// Run `sql` as root on the server at `port` (through its socket).
    pub(crate) fn root(&self, port: u16, sql: &str) -> String {
        self.try_root(port, sql)
            .unwrap_or_else(|e| panic!("{sql} on {port}: {e}"))
    }

    /// Wait until the replica has applied everything the primary logged.
    pub(crate) fn wait_for_replica(&self) {
        let target = self.root(self.primary, "SELECT @@gtid_binlog_pos");
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            let applied = self.root(self.replica, "SELECT @@gtid_slave_pos");
            if applied == target {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let status = self.root(self.replica, "SHOW SLAVE STATUS\\G");
        panic!("the replica did not catch up to {target}:\n{status}");
    }

    /// Demote the primary as a failover does: writes of ordinary users fail with 1290.
    pub(crate) fn make_primary_read_only(&self) {
        self.root(self.primary, "SET GLOBAL read_only = 1");
    }

    /// Once the replica applied everything, make it the writer.
    pub(crate) fn promote_replica(&self) {
        self.wait_for_replica();
        self.root(
            self.replica,
            "STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = 0",
        );
    }
}

impl Drop for MariaPair {
    fn drop(&mut self) {
        for s in &mut self.servers {
            let _ = s.kill();
            let _ = s.wait();
        }
    }
}

/// Run `sql` as root on the server listening on `socket`: its output, or its error.
pub(crate) fn root_over(socket: &Path, sql: &str) -> Result<String, String> {
    let out = Command::new("mariadb")
        .arg(format!("--socket={}", socket.display()))
        .args(["-uroot", "-N", "-B", "-e", sql])
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).to_string())
    }
}
