//! `fleetload certs`: the PEM files of a secure fleet. A CA, a server certificate for
//! the coordinator and client certificates for workers, each with what rustls checks
//! (X.509 v3, subject alternative names, key usage and extended key usage), so a quick
//! set-up does not fail on a certificate made by hand without them.

use crate::cli::CertsCommand;
use anyhow::{bail, Context};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use std::path::{Path, PathBuf};

/// Carry out one `certs` command; returns what it wrote.
pub(crate) fn run(command: &CertsCommand) -> anyhow::Result<Vec<PathBuf>> {
    match command {
        CertsCommand::Ca { dir, days, force } => create_ca(dir, *days, *force),
        CertsCommand::Coordinator {
            hosts,
            dir,
            days,
            force,
        } => {
            let names = hosts
                .iter()
                .map(|h| match h.parse::<std::net::IpAddr>() {
                    Ok(ip) => Ok(SanType::IpAddress(ip)),
                    Err(_) if !is_host_name(h) => Err(anyhow::anyhow!(
                        "{h:?} is neither a host name (letters, digits and '-' in dot-separated labels, a leading '*.' allowed) nor an IP address"
                    )),
                    Err(_) => h.clone().try_into().map(SanType::DnsName).map_err(|_| {
                        anyhow::anyhow!("{h:?} is neither a host name nor an IP address")
                    }),
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            leaf(
                dir,
                "coordinator",
                "fleetload coordinator",
                names,
                ExtendedKeyUsagePurpose::ServerAuth,
                (*days, *force),
            )
        }
        CertsCommand::Worker {
            name,
            dir,
            days,
            force,
        } => {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                bail!("worker name {name:?}: use letters, digits, '-', '_' and '.'");
            }
            let san = name
                .clone()
                .try_into()
                .map(SanType::DnsName)
                .map_err(|_| anyhow::anyhow!("worker name {name:?} is not a valid DNS name"))?;
            leaf(
                dir,
                &format!("worker-{name}"),
                name,
                vec![san],
                ExtendedKeyUsagePurpose::ClientAuth,
                (*days, *force),
            )
        }
    }
}

/// A DNS name a certificate can carry: labels of letters, digits and '-', optionally
/// under a leading wildcard.
fn is_host_name(h: &str) -> bool {
    let name = h.strip_prefix("*.").unwrap_or(h);
    name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Valid from today (UTC) for `days` days: rcgen's default runs to the year 4096, which
/// no one rotates.
fn validity(params: &mut CertificateParams, days: u32) -> anyhow::Result<()> {
    let ymd = |t: std::time::SystemTime| -> anyhow::Result<_> {
        let text = humantime::format_rfc3339_seconds(t).to_string();
        let parse = |r: std::ops::Range<usize>| text.get(r).and_then(|s| s.parse::<i32>().ok());
        match (parse(0..4), parse(5..7), parse(8..10)) {
            (Some(y), Some(m), Some(d)) => Ok(rcgen::date_time_ymd(y, m as u8, d as u8)),
            _ => bail!("cannot read today's date from {text}"),
        }
    };
    let now = std::time::SystemTime::now();
    params.not_before = ymd(now)?;
    params.not_after = ymd(now + std::time::Duration::from_secs(u64::from(days) * 86_400))?;
    Ok(())
}

fn create_ca(dir: &Path, days: u32, force: bool) -> anyhow::Result<Vec<PathBuf>> {
    let (cert_path, key_path) = (dir.join("ca.pem"), dir.join("ca.key"));
    refuse_to_overwrite(&[&cert_path, &key_path], force)?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    validity(&mut params, days)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "fleetload fleet CA");
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    write(dir, (cert_path, key_path), &cert.pem(), &key)
}

/// A certificate for `names`, signed by the CA in `dir`.
fn leaf(
    dir: &Path,
    file: &str,
    common_name: &str,
    names: Vec<SanType>,
    usage: ExtendedKeyUsagePurpose,
    (days, force): (u32, bool),
) -> anyhow::Result<Vec<PathBuf>> {
    let (ca_pem, ca_key) = (dir.join("ca.pem"), dir.join("ca.key"));
    let read = |p: &Path| {
        std::fs::read_to_string(p).with_context(|| {
            format!(
                "cannot read {}: make the CA first with `fleetload certs create-ca --dir {}`",
                p.display(),
                dir.display()
            )
        })
    };
    let ca_key = KeyPair::from_pem(&read(&ca_key)?).context("ca.key is not a PEM private key")?;
    let issuer = Issuer::from_ca_cert_pem(&read(&ca_pem)?, ca_key)
        .context("ca.pem is not a PEM CA certificate")?;
    let (cert_path, key_path) = (
        dir.join(format!("{file}.pem")),
        dir.join(format!("{file}.key")),
    );
    refuse_to_overwrite(&[&cert_path, &key_path], force)?;
    let mut params = CertificateParams::default();
    params.subject_alt_names = names;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![usage];
    validity(&mut params, days)?;
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    write(dir, (cert_path, key_path), &cert.pem(), &key)
}

fn refuse_to_overwrite(paths: &[&Path], force: bool) -> anyhow::Result<()> {
    if let Some(p) = paths.iter().find(|p| p.exists()) {
        if !force {
            bail!("{} exists; give --force to replace it", p.display());
        }
    }
    Ok(())
}

/// Write the certificate, and the key readable by its owner only; returns both paths.
fn write(
    dir: &Path,
    (cert_path, key_path): (PathBuf, PathBuf),
    cert: &str,
    key: &KeyPair,
) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(&cert_path, cert)
        .with_context(|| format!("cannot write {}", cert_path.display()))?;
    let _ = std::fs::remove_file(&key_path);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    use std::io::Write;
    options
        .open(&key_path)
        .and_then(|mut f| f.write_all(key.serialize_pem().as_bytes()))
        .with_context(|| format!("cannot write {}", key_path.display()))?;
    Ok(vec![cert_path, key_path])
}
