//! fleetload's IAM database tokens against botocore's `generate_db_auth_token` (PyPI
//! `botocore`, which the AWS CLI uses), byte for byte, for fixed credentials, endpoint,
//! user, region and clock. `scripts/test` installs botocore; without it this fails.

use aws_credential_types::Credentials;
use fleetload_aws::token::{auth_token, TokenRequest};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

struct Case {
    key: &'static str,
    secret: &'static str,
    token: Option<&'static str>,
    host: &'static str,
    port: u16,
    user: &'static str,
    region: &'static str,
    unix: u64,
}

const CASES: &[Case] = &[
    Case {
        key: "AKIDEXAMPLE",
        secret: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        token: None,
        host: "churn.cluster-c9akciq32.us-east-1.rds.amazonaws.com",
        port: 5432,
        user: "fleetload",
        region: "us-east-1",
        unix: 1_764_930_000,
    },
    // Temporary credentials (IRSA, an instance role): the session token is signed too.
    Case {
        key: "ASIAEXAMPLE",
        secret: "secret/with+symbols=",
        token: Some("IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD+token/with=padding=="),
        host: "churn.cluster-ro-c9akciq32.eu-west-1.rds.amazonaws.com",
        port: 3306,
        user: "app_user",
        region: "eu-west-1",
        unix: 1_800_000_123,
    },
    // A user name that needs escaping, a loopback host and another port.
    Case {
        key: "AKID2",
        secret: "s",
        token: None,
        host: "127.0.0.1",
        port: 15432,
        user: "iam user+1@x",
        region: "ap-southeast-2",
        unix: 1_700_000_000,
    },
];

fn botocore(cases: &[Case]) -> Vec<String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/botocore_token.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (scripts/test installs it with botocore)");
    let mut input = String::new();
    for c in cases {
        input.push_str(
            &serde_json::json!({
                "key": c.key, "secret": c.secret, "token": c.token, "host": c.host,
                "port": c.port, "user": c.user, "region": c.region, "unix": c.unix,
            })
            .to_string(),
        );
        input.push('\n');
    }
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "botocore failed (pip3 install botocore; scripts/test does): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn tokens_match_botocore_byte_for_byte() {
    let expected = botocore(CASES);
    assert_eq!(expected.len(), CASES.len());
    for (c, want) in CASES.iter().zip(&expected) {
        let creds = Credentials::new(c.key, c.secret, c.token.map(str::to_string), None, "test");
        let request = TokenRequest {
            host: c.host,
            port: c.port,
            user: c.user,
            region: c.region,
        };
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(c.unix);
        let got = auth_token(&creds, &request, time).unwrap();
        assert_eq!(got.expose(), want, "{}@{}:{}", c.user, c.host, c.port);
    }
}
