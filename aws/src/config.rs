//! The SDK's configuration, loaded once per process: region, the credential chain, an
//! HTTPS client on the rustls and ring that the rest of fleetload already uses, and
//! timeouts and retries that keep a slow or throttling AWS from holding anything up.

use crate::AwsError;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::Credentials;
use std::time::Duration;

/// A loaded configuration: what the clients of this crate are built from.
#[derive(Clone, Debug)]
pub struct AwsConfig {
    pub(crate) sdk: SdkConfig,
}

impl AwsConfig {
    /// The region in force (the plan's, else the environment's or profile's).
    pub fn region(&self) -> Option<&str> {
        self.sdk.region().map(Region::as_ref)
    }

    /// Credentials from the chain, now (the chain caches and refreshes them).
    ///
    /// # Errors
    /// No provider of the chain has any.
    pub async fn credentials(&self) -> Result<Credentials, AwsError> {
        let provider = self
            .sdk
            .credentials_provider()
            .ok_or_else(|| AwsError::NoCredentials("no credential provider".into()))?;
        provider
            .provide_credentials()
            .await
            .map_err(|e| AwsError::NoCredentials(crate::describe(&e)))
    }
}

/// Load the configuration: `region` when the plan names one, else the chain's.
///
/// Throttling and transient errors are retried with exponential backoff and jitter (the
/// SDK's standard mode, up to 4 attempts); one attempt may take 10 s, one call 30 s.
///
/// # Errors
/// No region is named anywhere.
pub async fn load(region: Option<&str>) -> Result<AwsConfig, AwsError> {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .retry_config(RetryConfig::standard().with_max_attempts(4))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(3))
                .operation_attempt_timeout(Duration::from_secs(10))
                .operation_timeout(Duration::from_secs(30))
                .build(),
        );
    if let Some(r) = region {
        loader = loader.region(Region::new(r.to_string()));
    }
    let sdk = loader.load().await;
    if sdk.region().is_none() {
        return Err(AwsError::NoRegion);
    }
    Ok(AwsConfig { sdk })
}
