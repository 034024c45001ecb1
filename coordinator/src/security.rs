//! The coordinator's side of the control channel's security: its TLS certificate,
//! optionally the CA that client certificates must chain to (mutual TLS), and the
//! fleet's token, checked on every call in constant time.

use std::sync::Arc;
use subtle::ConstantTimeEq;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

/// Largest message the coordinator accepts.
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// How the control channel is protected.
#[derive(Clone, Default)]
pub struct ServerSecurity {
    /// PEM certificate and key of the coordinator.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
    /// PEM CA that workers' client certificates must chain to (mutual TLS).
    pub client_ca: Option<Vec<u8>>,
    /// The fleet's shared secret.
    pub token: Option<Arc<str>>,
}

impl std::fmt::Debug for ServerSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerSecurity")
            .field("tls", &self.identity.is_some())
            .field("mutual_tls", &self.client_ca.is_some())
            .field("token", &self.token.as_ref().map(|_| "***"))
            .finish()
    }
}

impl ServerSecurity {
    pub fn tls(&self) -> Option<ServerTlsConfig> {
        let (cert, key) = self.identity.as_ref()?;
        let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(cert, key));
        if let Some(ca) = &self.client_ca {
            tls = tls.client_ca_root(Certificate::from_pem(ca));
        }
        Some(tls)
    }

    /// The check run on every call: the `authorization: Bearer <token>` header must
    /// carry the fleet's token. The token is never logged.
    /// A refused call is also told to `refused` (the controller counts it, to say why a
    /// fleet did not gather).
    pub fn authorize(
        &self,
        refused: Option<tokio::sync::mpsc::Sender<crate::service::Event>>,
    ) -> impl FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Clone {
        let expected = self.token.clone();
        move |req: tonic::Request<()>| {
            let Some(expected) = &expected else {
                return Ok(req);
            };
            let given = req
                .metadata()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or_default();
            if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
                Ok(req)
            } else {
                tracing::warn!(peer = %crate::shown(&req.remote_addr()), token_given = !given.is_empty(), "refused a call without the fleet's token");
                if let Some(tx) = &refused {
                    // Full or closed: the count is lost, the refusal is not.
                    let _ = tx.try_send(crate::service::Event::Unauthorized {
                        peer: req.remote_addr(),
                    });
                }
                Err(tonic::Status::unauthenticated(
                    "missing or wrong token: give workers and ctl the coordinator's token (FLEETLOAD_TOKEN or --token-file)",
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(token: Option<&str>) -> tonic::Request<()> {
        let mut r = tonic::Request::new(());
        if let Some(t) = token {
            r.metadata_mut()
                .insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        r
    }

    #[test]
    fn only_the_right_token_passes() {
        let s = ServerSecurity {
            token: Some(Arc::from("fleet-secret")),
            ..Default::default()
        };
        let mut check = s.authorize(None);
        assert!(check(call(Some("fleet-secret"))).is_ok());
        let e = check(call(Some("fleet-secreT"))).unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
        assert!(!e.message().contains("fleet-secret"));
        assert!(check(call(None)).is_err());
        let mut open = ServerSecurity::default().authorize(None);
        assert!(open(call(None)).is_ok());
        assert!(!format!("{s:?}").contains("fleet-secret"));
    }
}
