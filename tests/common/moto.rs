//! A moto server (PyPI `moto[server]`, which scripts/test installs) on a free loopback
//! port: Secrets Manager and CloudWatch as AWS's own APIs, offline. Killed on drop.
// Each test binary that includes this module uses part of it.
#![allow(dead_code)]

use crate::common::{free_port_number, output, spawn_env};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) struct Moto {
    child: Child,
    pub port: u16,
}

pub(crate) const REGION: &str = "us-east-1";
pub(crate) const KEY_ID: &str = "AKIDMOTOTEST";
pub(crate) const SECRET_KEY: &str = "moto/secret+key";

impl Moto {
    pub(crate) fn start() -> Moto {
        let port = free_port_number();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m moto.server (pip3 install 'moto[server]'; scripts/test does)");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "moto did not listen on {port}; is moto[server] installed?"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Moto { child, port }
    }

    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment that points a fleetload process at this server.
    pub(crate) fn env(&self, home: &std::path::Path) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", KEY_ID.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_REGION", REGION.into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("HOME", home.display().to_string()),
        ]
    }

    /// The SDK's configuration for the test's own calls.
    pub(crate) async fn config(&self) -> aws_config::SdkConfig {
        config_for(self.port).await
    }

    pub(crate) fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    pub(crate) fn put_secret(&self, name: &str, value: &str) {
        Self::block_on(async {
            let sm = aws_sdk_secretsmanager::Client::new(&self.config().await);
            if sm.describe_secret().secret_id(name).send().await.is_ok() {
                sm.put_secret_value()
                    .secret_id(name)
                    .secret_string(value)
                    .send()
                    .await
                    .expect("put_secret_value");
            } else {
                sm.create_secret()
                    .name(name)
                    .secret_string(value)
                    .send()
                    .await
                    .expect("create_secret");
            }
        });
    }
}

/// The SDK's configuration for a moto server on `port`.
pub(crate) async fn config_for(port: u16) -> aws_config::SdkConfig {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http)
        .region(aws_config::Region::new(REGION))
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .credentials_provider(aws_credential_types::Credentials::new(
            KEY_ID, SECRET_KEY, None, None, "test",
        ))
        .load()
        .await
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run the binary in `cwd` with `env` added; its exit code and everything it printed.
pub(crate) fn run_env(
    args: &[&str],
    cwd: &std::path::Path,
    env: &[(&'static str, String)],
) -> (Option<i32>, String) {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    output(spawn_env(args, cwd, &env))
}
