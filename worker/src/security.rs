//! The worker's side of the control channel's security: TLS (verifying the coordinator
//! against a CA, optionally presenting a client certificate) and the shared token sent
//! with every call. `fleetload ctl` uses the same.
//!
//! Also what a worker agrees to load: `--allow-target` patterns, so a mistaken or
//! compromised coordinator cannot aim the fleet at systems it was not meant to hit.

use fleetload_common::target::{Driver, Target};
use fleetload_proto::v1::fleet_client::FleetClient;
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
            ep = ep.tls_config(tls).map_err(|e| e.to_string())?;
        } else if tls_wanted {
            return Err(
                "TLS files were given but the address is http://; use https://HOST:PORT".into(),
            );
        }
        Ok(ep)
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
    fn tokens_are_never_shown() {
        let tok = Token::new(" s3cr3t\n").unwrap();
        assert_eq!(tok.expose(), "s3cr3t");
        assert_eq!(format!("{tok:?}"), "Token(***)");
        assert!(Token::new("").is_err() && Token::new("has space").is_err());
    }
}
