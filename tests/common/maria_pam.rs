//! A MariaDB server of the test's own that logs one user in as Aurora MySQL does with
//! IAM: over TLS only, asking the client for its password in clear (the
//! `mysql_clear_password` plugin, which is how Aurora's AWSAuthenticationPlugin takes the
//! token) and checking it outside the database: PAM's `pam_exec` compares it with the
//! token the test expects. Needs root (a PAM service in /etc/pam.d), as CI has.
//! Stopped, and the PAM service removed, on drop. Needs `maria_pair` beside it.
// Each test binary that includes this module uses part of it.
#![allow(dead_code)]

use crate::common::is_root;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) struct MariaPam {
    dir: tempfile::TempDir,
    child: Child,
    pam_service: PathBuf,
    pub port: u16,
}

fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run a setup command");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?}: {text}");
    text
}

impl MariaPam {
    /// A server on `port` whose user `user` logs in with exactly `token`, through the
    /// cleartext plugin over TLS.
    pub(crate) fn start_on(port: u16, user: &str, token: &str) -> MariaPam {
        assert!(
            is_root(),
            "the MariaDB IAM test writes a PAM service to /etc/pam.d: run it as root (CI does)"
        );
        let dir = tempfile::Builder::new()
            .prefix("fleetload-mariapam")
            .tempdir_in("/tmp")
            .unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("data")).unwrap();
        let (cert, key) = crate::common::self_signed_cert(d);
        std::fs::write(d.join("expected"), token).unwrap();
        // pam_exec hands the password on stdin, NUL-terminated.
        let check = d.join("check.sh");
        std::fs::write(
            &check,
            format!(
                "#!/bin/sh\ntok=$(head -c 65536 | tr -d '\\000')\n[ \"$tok\" = \"$(cat {})\" ]\n",
                d.join("expected").display()
            ),
        )
        .unwrap();
        let world = |p: &std::path::Path, mode: u32| {
            std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(mode))
                .unwrap();
        };
        world(&check, 0o755);
        world(&d.join("expected"), 0o644);
        world(d, 0o755);
        ok(Command::new("chown").args(["-R", "mysql:mysql"]).arg(d));
        let service = format!("fleetload-iam-{}", std::process::id());
        let pam_service = PathBuf::from("/etc/pam.d").join(&service);
        std::fs::write(
            &pam_service,
            format!("auth required pam_exec.so expose_authtok quiet {}\naccount required pam_permit.so\n", check.display()),
        )
        .unwrap();
        ok(Command::new("mariadb-install-db")
            .arg(format!("--datadir={}", d.join("data").display()))
            .args([
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--user=mysql",
            ]));
        let socket = d.join("s.sock");
        let child = Command::new("/usr/sbin/mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", d.join("data").display()))
            .arg(format!("--port={port}"))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--pid-file={}", d.join("p.pid").display()))
            .arg(format!("--log-error={}", d.join("err").display()))
            .args([
                "--bind-address=127.0.0.1",
                "--skip-name-resolve",
                "--user=mysql",
            ])
            .args([
                "--plugin-load-add=auth_pam_v1.so",
                "--pam-use-cleartext-plugin=ON",
            ])
            .arg(format!("--ssl-cert={}", cert.display()))
            .arg(format!("--ssl-key={}", key.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mariadbd");
        let server = MariaPam {
            dir,
            child,
            pam_service,
            port,
        };
        let started = Instant::now();
        while server.try_root("SELECT 1").is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "mariadbd did not come up: {}",
                std::fs::read_to_string(server.dir.path().join("err")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server.root(&format!(
            "CREATE USER '{user}'@'127.0.0.1' IDENTIFIED VIA pam USING '{service}' REQUIRE SSL;
             GRANT ALL PRIVILEGES ON *.* TO '{user}'@'127.0.0.1'; CREATE DATABASE fl;"
        ));
        server
    }

    fn try_root(&self, sql: &str) -> Result<String, String> {
        crate::maria_pair::root_over(&self.dir.path().join("s.sock"), sql)
    }

    pub(crate) fn root(&self, sql: &str) -> String {
        self.try_root(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

impl Drop for MariaPam {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.pam_service);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
