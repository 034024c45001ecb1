//! A PostgreSQL server of the test's own that checks passwords and takes them only over
//! TLS, as Aurora does (the machine's shared server trusts loopback, so a wrong
//! password would pass there): `initdb` into a temporary directory, a self-signed
//! certificate, `hostssl … scram-sha-256` and nothing else on TCP; administered over its
//! Unix socket. Stopped and removed on drop; as root, it runs as `postgres`. Needs
//! `pg_pair` (its PostgreSQL tools) beside it.
// Each test binary that includes this module uses part of it.
#![allow(dead_code)]

use crate::common::{free_port_number, is_root, self_signed_cert};
use crate::pg_pair::{as_postgres, pg_bin, stop};
use std::path::{Path, PathBuf};
use std::process::Command;

pub(crate) struct PgTls {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
}

impl PgTls {
    pub(crate) fn start() -> PgTls {
        let bin = pg_bin();
        let dir = tempfile::Builder::new()
            .prefix("fleetload-pgtls")
            .tempdir_in("/tmp")
            .unwrap();
        let data = dir.path().join("data");
        let s = |p: &Path| p.to_str().unwrap().to_string();
        let (cert, key) = self_signed_cert(dir.path());
        if is_root() {
            assert!(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap()
                .success());
        }
        as_postgres(
            &bin.join("initdb"),
            &[
                "-D",
                &s(&data),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=reject",
                "-E",
                "UTF8",
            ],
        );
        let port = free_port_number();
        let conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\nssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\nfsync = off\npassword_encryption = 'scram-sha-256'\n",
            s(dir.path()),
            s(&cert),
            s(&key),
        );
        let mut pg_conf = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
        pg_conf.push_str(&conf);
        std::fs::write(data.join("postgresql.conf"), pg_conf).unwrap();
        // Passwords over TLS only; plaintext TCP is refused outright.
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\nhostnossl all all 127.0.0.1/32 reject\n",
        )
        .unwrap();
        let log = dir.path().join("server.log");
        as_postgres(
            &bin.join("pg_ctl"),
            &["-D", &s(&data), "-l", &s(&log), "-w", "-t", "30", "start"],
        );
        PgTls { dir, bin, port }
    }

    /// Run SQL as the superuser over the Unix socket.
    pub(crate) fn admin(&self, sql: &str) -> String {
        let sock = self.dir.path().to_str().unwrap().to_string();
        as_postgres(
            &self.bin.join("psql"),
            &[
                "-h",
                &sock,
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-tAc",
                sql,
            ],
        )
    }
}

impl Drop for PgTls {
    fn drop(&mut self) {
        stop(&self.bin, &self.dir.path().join("data"));
    }
}
