//! The standard credential chain as a worker uses it: environment variables, then a
//! shared profile under HOME (named by AWS_PROFILE), and a clear error when there is
//! none. One test function: the environment is the process's.

use fleetload_aws::token::Minter;

fn credential_of(token: &str) -> String {
    let start = token.find("X-Amz-Credential=").expect("credential") + "X-Amz-Credential=".len();
    token[start..]
        .split('&')
        .next()
        .unwrap_or_default()
        .to_string()
}

fn clear() {
    for v in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ] {
        // SAFETY-free: edition 2021, this binary's only test, before any thread of ours.
        std::env::remove_var(v);
    }
    // No instance role here: do not wait on the metadata endpoint.
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
}

#[tokio::test]
async fn environment_then_profile_then_a_clear_error() {
    let home = tempfile::tempdir().unwrap();
    std::env::set_var("HOME", home.path());
    clear();

    // Nothing anywhere: the error names where fleetload looked.
    let e = Minter::new(Some("us-east-1".into()))
        .mint("db", 5432, "u")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no AWS credentials") && e.contains("IRSA"),
        "{e}"
    );
    // No region anywhere either.
    let e = Minter::new(None)
        .mint("db", 5432, "u")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("region"), "{e}");

    // A profile file in HOME, and the region from the profile's config.
    std::fs::create_dir_all(home.path().join(".aws")).unwrap();
    std::fs::write(
        home.path().join(".aws/credentials"),
        "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = s1\n\n[loadtest]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = s2\n",
    )
    .unwrap();
    std::fs::write(
        home.path().join(".aws/config"),
        "[default]\nregion = us-west-2\n\n[profile loadtest]\nregion = eu-central-1\n",
    )
    .unwrap();
    let t = Minter::new(None).mint("db", 5432, "u").await.unwrap();
    assert!(
        credential_of(t.expose()).starts_with("AKIDDEFAULT%2F")
            && credential_of(t.expose()).contains("%2Fus-west-2%2Frds-db"),
        "{}",
        t.expose()
    );
    std::env::set_var("AWS_PROFILE", "loadtest");
    let t = Minter::new(None).mint("db", 5432, "u").await.unwrap();
    assert!(
        credential_of(t.expose()).starts_with("AKIDPROFILE%2F")
            && credential_of(t.expose()).contains("%2Feu-central-1%2F"),
        "{}",
        t.expose()
    );
    // The plan's region wins over the profile's.
    let t = Minter::new(Some("ap-south-1".into()))
        .mint("db", 5432, "u")
        .await
        .unwrap();
    assert!(
        credential_of(t.expose()).contains("%2Fap-south-1%2F"),
        "{}",
        t.expose()
    );

    // The environment comes first in the chain.
    std::env::set_var("AWS_ACCESS_KEY_ID", "AKIDENVIRONMENT");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "s3");
    std::env::set_var("AWS_SESSION_TOKEN", "session-from-env");
    let t = Minter::new(None).mint("db", 5432, "u").await.unwrap();
    assert!(
        credential_of(t.expose()).starts_with("AKIDENVIRONMENT%2F"),
        "{}",
        t.expose()
    );
    assert!(
        t.expose().contains("X-Amz-Security-Token=session-from-env"),
        "{}",
        t.expose()
    );
}
