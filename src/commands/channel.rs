//! The control channel's TLS, client certificates and fleet token, from the flags.

use super::*;

/// The fleet's token: from `file`, else the FLEETLOAD_TOKEN environment variable.
pub(super) fn read_token(file: Option<&Path>) -> anyhow::Result<Option<String>> {
    let raw = match file {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .with_context(|| format!("--token-file {}: cannot read it", p.display()))?,
        ),
        None => std::env::var("FLEETLOAD_TOKEN").ok(),
    };
    Ok(match raw {
        Some(t) => Some(
            fleetload_worker::security::Token::new(&t)
                .map_err(|e| anyhow::anyhow!("fleet token: {e}"))?
                .expose()
                .to_string(),
        ),
        None => None,
    })
}

pub(super) fn read_pem(what: &str, p: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(p).with_context(|| format!("{what} {}: cannot read it", p.display()))
}

/// A worker's or ctl's TLS and token.
pub(super) fn client_security(
    a: &crate::cli::ChannelArgs,
) -> anyhow::Result<fleetload_worker::security::ClientSecurity> {
    Ok(fleetload_worker::security::ClientSecurity {
        ca_pem: a
            .tls_ca
            .as_deref()
            .map(|p| read_pem("--tls-ca", p))
            .transpose()?,
        identity: match (&a.tls_cert, &a.tls_key) {
            (Some(c), Some(k)) => Some((read_pem("--tls-cert", c)?, read_pem("--tls-key", k)?)),
            _ => None,
        },
        domain: a.tls_domain.clone(),
        token: read_token(a.token_file.as_deref())?
            .map(|t| fleetload_worker::security::Token::new(&t))
            .transpose()
            .map_err(anyhow::Error::msg)?,
    })
}

/// The coordinator's TLS and token; plaintext only on loopback unless --insecure.
pub(super) fn server_security(
    a: &crate::cli::ServeSecurityArgs,
    listen: std::net::SocketAddr,
) -> anyhow::Result<fleetload_coordinator::security::ServerSecurity> {
    let identity = match (&a.tls_cert, &a.tls_key) {
        (Some(c), Some(k)) => Some((read_pem("--tls-cert", c)?, read_pem("--tls-key", k)?)),
        _ => None,
    };
    let token = read_token(a.token_file.as_deref())?;
    if identity.is_none() && !listen.ip().is_loopback() {
        if !a.insecure {
            bail!(
                "refusing to serve the control channel in plaintext on {listen}: give --tls-cert and --tls-key (and workers --tls-ca with an https:// address), or --insecure to accept that anyone on the network can read it{}",
                if token.is_none() { " and steer the fleet (no token is set either)" } else { "" }
            );
        }
        eprintln!(
            "WARNING: serving the control channel in plaintext on {listen} (--insecure){}",
            if token.is_none() {
                "; without a token anyone who can reach it can steer the fleet"
            } else {
                ""
            }
        );
    }
    let security = fleetload_coordinator::security::ServerSecurity {
        identity,
        client_ca: a
            .tls_client_ca
            .as_deref()
            .map(|p| read_pem("--tls-client-ca", p))
            .transpose()?,
        token: token.map(std::sync::Arc::from),
    };
    // Load the certificate now, so a bad file is named before "listening", not after.
    if let Some(tls) = security.tls() {
        tonic::transport::Server::builder()
            .tls_config(tls)
            .map_err(|e| {
                anyhow::anyhow!(
                    "--tls-cert/--tls-key/--tls-client-ca: {} (each must be PEM: an X.509 v3 certificate, its private key, a CA certificate; `fleetload certs` makes them)",
                    fleetload_worker::security::error_chain(&e)
                )
            })?;
    }
    Ok(security)
}
