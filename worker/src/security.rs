//! The worker's side of the control channel's security: TLS (verifying the coordinator
//! against a CA, optionally presenting a client certificate) and the shared token sent
//! with every call. `fleetload ctl` uses the same.
//!
//! Also what a worker agrees to load: `--allow-target` patterns, so a mistaken or
//! compromised coordinator cannot aim the fleet at systems it was not meant to hit.

use fleetload_common::target::{Driver, Target};
use fleetload_common::wire::FleetClient;
use std::sync::Arc;
use tonic::codegen::InterceptedService;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// Largest message either side accepts (an assignment with a scenario file is at most
/// a few hundred KiB; a snapshot of 64 operations a few tens).
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// The shared secret of a fleet.
#[derive(Clone)]
pub struct Token(Arc<str>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(***)")
    }
}

impl Token {
    /// A token as read from a file or an environment variable (surrounding whitespace
    /// trimmed).
    ///
    /// # Errors
    /// Empty, longer than 4 KiB, or with characters an HTTP header cannot carry.
    pub fn new(raw: &str) -> Result<Token, String> {
        let t = raw.trim();
        if t.is_empty() || t.len() > 4096 || !t.chars().all(|c| c.is_ascii_graphic()) {
            return Err(
                "the token must be 1 to 4096 printable ASCII characters without spaces".into(),
            );
        }
        Ok(Token(Arc::from(t)))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// How a client reaches the coordinator.
#[derive(Debug, Clone, Default)]
pub struct ClientSecurity {
    /// PEM of the CA that signed the coordinator's certificate (https:// addresses).
    pub ca_pem: Option<Vec<u8>>,
    /// PEM certificate and key this client presents (mutual TLS).
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
    /// The name the coordinator's certificate must carry, when not the address's host.
    pub domain: Option<String>,
    pub token: Option<Token>,
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<tonic::metadata::Ascii>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

pub type Client = FleetClient<InterceptedService<Channel, Bearer>>;

impl ClientSecurity {
    /// An endpoint for `url`: TLS for `https://`, verified against the CA given (or the
    /// system's roots when none is).
    ///
    /// # Errors
    /// Not a URL, or TLS asked for over `http://`.
    pub fn endpoint(&self, url: &str) -> Result<Endpoint, String> {
        let mut ep = Endpoint::from_shared(url.to_string()).map_err(|e| e.to_string())?;
        let tls_wanted = self.ca_pem.is_some() || self.identity.is_some();
        if url.starts_with("https://") {
            let mut tls = ClientTlsConfig::new();
            match &self.ca_pem {
                Some(ca) => tls = tls.ca_certificate(Certificate::from_pem(ca)),
                None => tls = tls.with_webpki_roots(),
            }
            if let Some((cert, key)) = &self.identity {
                tls = tls.identity(Identity::from_pem(cert, key));
            }
            if let Some(d) = &self.domain {
                tls = tls.domain_name(d.clone());
            }
            ep = ep.tls_config(tls).map_err(|e| {
                format!(
                    "TLS set-up: {} (check --tls-ca, and that --tls-cert/--tls-key hold a PEM X.509 v3 certificate and its key; `fleetload certs` makes them)",
                    error_chain(&e)
                )
            })?;
        } else if tls_wanted {
            return Err(
                "TLS files were given but the address is http://; use https://HOST:PORT".into(),
            );
        }
        Ok(ep)
    }

    /// What a failed call on an open connection means: the connection was made, so
    /// the cause is what the two sides disagree on (plaintext against TLS, a client
    /// certificate the coordinator wanted), which the error text alone rarely says.
    pub fn explain_stream_error(&self, status: &tonic::Status, endpoint: &str) -> String {
        let mut chain = status.message().to_string();
        if let Some(source) = std::error::Error::source(status) {
            let below = error_chain(source);
            chain = if below.starts_with(&chain) {
                below
            } else {
                format!("{chain}: {below}")
            };
        }
        let c = chain.to_ascii_lowercase();
        let cut_off = [
            "broken pipe",
            "connection reset",
            "connection error",
            "connection closed",
            "h2 protocol",
            "frame with invalid size",
            "certificate",
            // hyper's word for a connection that died before the call could be sent
            // (the peer's TLS alert or close lost in the race with the call).
            "connection was not ready",
        ]
        .iter()
        .any(|w| c.contains(w));
        if !cut_off {
            return chain;
        }
        let hint = if endpoint.starts_with("http://") {
            "the coordinator closed a plaintext HTTP/2 connection: if it serves TLS, dial https:// with --tls-ca"
        } else if self.identity.is_none() {
            "the coordinator closed the TLS connection: it may require a client certificate (mutual TLS); give --tls-cert and --tls-key"
        } else {
            "the coordinator closed the TLS connection: it may not accept this client certificate; give one signed by the CA of its --tls-client-ca"
        };
        format!("{chain} ({hint})")
    }

    /// A client of the Fleet service on `channel`, sending the token with every call.
    pub fn client(&self, channel: Channel) -> Client {
        let bearer = self
            .token
            .as_ref()
            .and_then(|t| MetadataValue::try_from(format!("Bearer {}", t.expose())).ok());
        FleetClient::with_interceptor(channel, Bearer(bearer))
            .send_compressed(tonic::codec::CompressionEncoding::Gzip)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }
}

/// An error and every error beneath it, joined: tonic's transport errors say only
/// "transport error" at the top, and the cause (a refused connection, a certificate
/// rustls would not trust) is further down.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// Whether a failure to connect is about certificates: not transient, so not retried.
/// (A broken handshake alone may be a coordinator that is still starting: retried.)
pub fn is_certificate_error(chain: &str) -> bool {
    let c = chain.to_ascii_lowercase();
    ["certificate", "unknownissuer", "notvalidforname"]
        .iter()
        .any(|w| c.contains(w))
}

/// What a failed connection to the coordinator means, and the flag that fixes it.
pub fn explain_connect_error(e: &dyn std::error::Error, endpoint: &str) -> String {
    let chain = error_chain(e);
    let c = chain.to_ascii_lowercase();
    let hint = if c.contains("unknownissuer") || c.contains("unknown issuer") {
        "the coordinator's certificate is not signed by a CA this side trusts: give --tls-ca with the CA that signed it"
    } else if c.contains("notvalidforname") || c.contains("not valid for name") {
        "the coordinator's certificate does not name this address: dial a name it carries, or give --tls-domain NAME"
    } else if c.contains("expired") || c.contains("notvalidyet") {
        "the coordinator's certificate is expired or not valid yet: renew it (fleetload certs create-coordinator)"
    } else if c.contains("certificate required") || c.contains("certificaterequired") {
        "the coordinator asks for a client certificate (mutual TLS): give --tls-cert and --tls-key"
    } else if c.contains("bad certificate")
        || c.contains("unknown ca")
        || c.contains("badcertificate")
    {
        "the coordinator refused this side's client certificate: give --tls-cert/--tls-key signed by the CA the coordinator trusts (its --tls-client-ca)"
    } else if c.contains("connection refused") {
        "nothing listens there: check the address and port, and that `fleetload coordinator` is running"
    } else if is_certificate_error(&chain) {
        "a TLS failure: check --tls-ca, --tls-cert/--tls-key and that the address uses https://"
    } else if endpoint.starts_with("http://")
        && (c.contains("h2 protocol")
            || c.contains("frame with invalid size")
            || c.contains("connection reset"))
    {
        "the coordinator did not answer in plaintext HTTP/2; if it serves TLS, use https:// and --tls-ca"
    } else {
        return chain;
    };
    format!("{chain} ({hint})")
}

/// One `--allow-target` pattern: `host[:port]`, `*.domain[:port]`, or `sqlite` (any
/// SQLite file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowTarget {
    Host { host: String, port: Option<u16> },
    Suffix { suffix: String, port: Option<u16> },
    Sqlite,
}

impl std::str::FromStr for AllowTarget {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s == "sqlite" {
            return Ok(AllowTarget::Sqlite);
        }
        // host, host:port, [v6 address] or [v6 address]:port.
        let bad = || {
            format!("--allow-target {s:?}: write host[:port], [v6 address][:port], *.domain[:port] or sqlite")
        };
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            match rest.split_once(']') {
                Some((h, "")) => (h, None),
                Some((h, p)) if p.starts_with(':') => (h, Some(&p[1..])),
                _ => return Err(bad()),
            }
        } else {
            match s.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (s, None),
            }
        };
        let port = port
            .map(|p| {
                p.parse::<u16>()
                    .map_err(|_| format!("--allow-target {s:?}: port {p:?} is not a number"))
            })
            .transpose()?;
        let host = host.to_ascii_lowercase();
        if host.is_empty()
            || host.contains('/')
            || host.contains('@')
            || (host.contains(':') && !s.starts_with('['))
        {
            return Err(bad());
        }
        Ok(match host.strip_prefix("*.") {
            Some(suffix) if !suffix.is_empty() => AllowTarget::Suffix {
                suffix: format!(".{suffix}"),
                port,
            },
            _ => AllowTarget::Host { host, port },
        })
    }
}

impl AllowTarget {
    fn allows(&self, target: &Target) -> bool {
        let endpoint = target.host_port();
        match (self, target.driver(), endpoint) {
            (AllowTarget::Sqlite, Driver::Sqlite, _) => true,
            (AllowTarget::Host { host, port }, _, Some((h, p))) => {
                *host == h && port.is_none_or(|x| x == p)
            }
            (AllowTarget::Suffix { suffix, port }, _, Some((h, p))) => {
                h.ends_with(suffix.as_str()) && port.is_none_or(|x| x == p)
            }
            _ => false,
        }
    }
}

/// Whether `target` may be loaded under `patterns` (no pattern: anything).
///
/// # Errors
/// The target matches none; the message names it and the patterns.
pub fn check_target(target: &Target, patterns: &[AllowTarget]) -> Result<(), String> {
    if patterns.is_empty() || patterns.iter().any(|p| p.allows(target)) {
        return Ok(());
    }
    let shown = match target.host_port() {
        Some((h, p)) => format!("{h}:{p}"),
        None => "an SQLite file".into(),
    };
    let allowed: Vec<String> = patterns
        .iter()
        .map(|p| match p {
            AllowTarget::Host { host, port } => {
                port.map_or(host.clone(), |x| format!("{host}:{x}"))
            }
            AllowTarget::Suffix { suffix, port } => {
                port.map_or(format!("*{suffix}"), |x| format!("*{suffix}:{x}"))
            }
            AllowTarget::Sqlite => "sqlite".into(),
        })
        .collect();
    Err(format!(
        "this worker may not load {shown}: it was started with --allow-target {} and refuses other targets",
        allowed.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(url: &str) -> Target {
        Target::parse(url, None).unwrap()
    }

    #[test]
    fn targets_match_hosts_ports_and_domains() {
        let p: Vec<AllowTarget> = [
            "127.0.0.1:3306",
            "*.cluster-abc.rds.amazonaws.com",
            "sqlite",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        assert!(check_target(&t("mysql://u@127.0.0.1:3306/db"), &p).is_ok());
        let e = check_target(&t("postgres://u@127.0.0.1:5432/db"), &p).unwrap_err();
        assert!(
            e.contains("may not load 127.0.0.1:5432") && e.contains("127.0.0.1:3306"),
            "{e}"
        );
        assert!(check_target(&t("mysql://u@db1.cluster-abc.rds.amazonaws.com/db"), &p).is_ok());
        assert!(check_target(&t("mysql://u@evil.example.com:3306/db"), &p).is_err());
        assert!(check_target(&t("sqlite:///tmp/x.db"), &p).is_ok());
        assert!(check_target(&t("sqlite:///tmp/x.db"), &["127.0.0.1".parse().unwrap()]).is_err());
        assert!(check_target(&t("postgres://u@10.0.0.1/db"), &[]).is_ok());
        assert!("db:port".parse::<AllowTarget>().is_err());
        assert!("a:b:c".parse::<AllowTarget>().is_err());
        assert!(check_target(
            &t("postgres://u@[::1]:5432/db"),
            &["[::1]:5432".parse().unwrap()]
        )
        .is_ok());
        assert!("u@host".parse::<AllowTarget>().is_err());
    }

    #[test]
    fn a_connection_that_died_before_the_call_is_explained() {
        let status = tonic::Status::unavailable(
            "operation was canceled: transport error: operation was canceled: connection was not ready",
        );
        let plain = ClientSecurity::default();
        let said = plain.explain_stream_error(&status, "http://127.0.0.1:7000");
        assert!(said.contains("dial https://"), "{said}");
        let said = plain.explain_stream_error(&status, "https://127.0.0.1:7000");
        assert!(said.contains("--tls-cert and --tls-key"), "{said}");
        // A call refused for what it asked keeps its own words.
        let refused = tonic::Status::unavailable("the run has ended");
        assert_eq!(
            plain.explain_stream_error(&refused, "http://127.0.0.1:7000"),
            "the run has ended"
        );
    }

    #[test]
    fn tokens_are_never_shown() {
        let tok = Token::new(" s3cr3t\n").unwrap();
        assert_eq!(tok.expose(), "s3cr3t");
        assert_eq!(format!("{tok:?}"), "Token(***)");
        assert!(Token::new("").is_err() && Token::new("has space").is_err());
    }
}
