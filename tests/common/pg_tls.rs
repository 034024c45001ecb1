//! A PostgreSQL server of the test's own that checks passwords and takes them only over
//! TLS, as Aurora does (the machine's shared server trusts loopback, so a wrong
//! password would pass there): `initdb` into a temporary directory, a self-signed
//! certificate, `hostssl … scram-sha-256` and nothing else on TCP; administered over its
//! Unix socket. Stopped and removed on drop; as root, it runs as `postgres`.

use crate::common::{free_port_number, is_root};
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct PgTls {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
}

fn pg_bin() -> PathBuf {
    let mut versions: Vec<u32> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (scripts/test installs it)")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    versions.sort_unstable();
    PathBuf::from(format!(
        "/usr/lib/postgresql/{}/bin",
        versions.last().expect("a version")
    ))
}

fn run(program: &Path, args: &[&str]) -> String {
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
    assert!(out.status.success(), "{program:?} {args:?}: {text}");
    text
}

impl PgTls {
    pub fn start() -> PgTls {
        let bin = pg_bin();
        let dir = tempfile::Builder::new()
            .prefix("fleetload-pgtls")
            .tempdir_in("/tmp")
            .unwrap();
        let data = dir.path().join("data");
        let s = |p: &Path| p.to_str().unwrap().to_string();
        let ok = Command::new("openssl")
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
            .arg(dir.path().join("server.key"))
            .arg("-out")
            .arg(dir.path().join("server.crt"))
            .output()
            .expect("openssl");
        assert!(
            ok.status.success(),
            "{}",
            String::from_utf8_lossy(&ok.stderr)
        );
        if is_root() {
            assert!(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap()
                .success());
        }
        std::fs::set_permissions(
            dir.path().join("server.key"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        run(
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
        let conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{sock}'\nssl = on\nssl_cert_file = '{crt}'\nssl_key_file = '{key}'\nfsync = off\npassword_encryption = 'scram-sha-256'\n",
            port = 0,
            sock = s(dir.path()),
            crt = s(&dir.path().join("server.crt")),
            key = s(&dir.path().join("server.key")),
        );
        let port = free_port_number();
        let conf = conf.replace("port = 0", &format!("port = {port}"));
        append(&data.join("postgresql.conf"), &conf);
        // Passwords over TLS only; plaintext TCP is refused outright.
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\nhostnossl all all 127.0.0.1/32 reject\n",
        )
        .unwrap();
        let log = dir.path().join("server.log");
        run(
            &bin.join("pg_ctl"),
            &["-D", &s(&data), "-l", &s(&log), "-w", "-t", "30", "start"],
        );
        PgTls { dir, bin, port }
    }

    /// Run SQL as the superuser over the Unix socket.
    pub fn admin(&self, sql: &str) -> String {
        let sock = self.dir.path().to_str().unwrap().to_string();
        run(
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

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

impl Drop for PgTls {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"));
            c
        } else {
            Command::new(self.bin.join("pg_ctl"))
        };
        let _ = cmd
            .args([
                "-D",
                data.to_str().unwrap_or_default(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ])
            .output();
    }
}
