//! The TLS part of the model: `[certificates.NAME]` (a certificate chain and its key,
//! as files) and a listener's `tls` table (which certificates it serves, the default
//! one, the lowest protocol version).
//!
//! Parsing reads only names and paths. [`read_certificate_files`] (called by the
//! loader, never by `parse`) then reads the files' bytes into the config, so that a
//! generation carries the exact certificate and key it was checked with and serves
//! them, whatever happens to the files later. What the bytes say (names, expiry, key
//! match) is the data plane's business (`keel_proxy::tls`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::acme::AcmeCertificate;
use crate::codes;
use crate::diagnostic::Diagnostic;
use crate::span::{Located, Span};

/// Largest certificate or key file read (1 MiB): a chain is a few KiB.
pub const MAX_CERTIFICATE_FILE_BYTES: u64 = 1024 * 1024;

/// A certificate chain and its private key, read from files.
#[derive(Clone, Debug)]
pub struct Certificate {
    /// Its name (`[certificates.NAME]`).
    pub name: Located<String>,
    /// The span of the whole table.
    pub span: Span,
    /// The PEM file of the chain, leaf first, as written (relative to the config file).
    pub cert: Located<String>,
    /// The PEM file of the private key, as written (relative to the config file).
    pub key: Located<String>,
    /// The files' bytes, once [`read_certificate_files`] read them.
    pub files: Option<Arc<CertificateFiles>>,
    /// Obtained by ACME rather than read from `cert`/`key` (see [`crate::acme`]).
    pub acme: Option<AcmeCertificate>,
    /// What the leaf says, once the loader (`keel_check::load`) parsed it: shown by
    /// config diffs, so a file replaced at the same path is a visible change.
    pub facts: Option<Arc<CertificateFacts>>,
}

/// The facts about a certificate's leaf that a diff lists. Never anything of the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateFacts {
    /// Subject (RFC 4514).
    pub subject: String,
    /// Issuer (RFC 4514).
    pub issuer: String,
    /// DNS names of the subject alternative names, lower case.
    pub dns_names: Vec<String>,
    /// End of validity, RFC 3339.
    pub not_after: String,
    /// `ECDSA P-256`, `RSA 2048`, ...
    pub key_type: String,
    /// SHA-256 fingerprint of the leaf, lower-case hex.
    pub sha256: String,
}

impl CertificateFacts {
    /// The facts in one line, as `keel diff` and `keel show` print them: `subject …,
    /// SANs […], issuer …, not after …, ECDSA P-256 key, sha256 …`.
    pub fn summary(&self) -> String {
        format!(
            "subject {}, SANs [{}], issuer {}, not after {}, {} key, sha256 {}",
            self.subject,
            self.dns_names.join(", "),
            self.issuer,
            self.not_after,
            self.key_type,
            self.sha256
        )
    }
}

/// The bytes of a certificate's chain and key files, as read at load time.
#[derive(Clone, PartialEq, Eq)]
pub struct CertificateFiles {
    /// The PEM chain, leaf first.
    pub chain_pem: Vec<u8>,
    /// The PEM private key. Never printed: `Debug` shows its length only.
    pub key_pem: Vec<u8>,
}

impl fmt::Debug for CertificateFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateFiles")
            .field("chain_pem", &format_args!("{} bytes", self.chain_pem.len()))
            .field(
                "key_pem",
                &format_args!("<redacted, {} bytes>", self.key_pem.len()),
            )
            .finish()
    }
}

impl Certificate {
    /// The chain file, resolved against the directory of the config file.
    pub fn cert_path(&self, config_dir: &Path) -> PathBuf {
        config_dir.join(&self.cert.value)
    }

    /// The key file, resolved against the directory of the config file.
    pub fn key_path(&self, config_dir: &Path) -> PathBuf {
        config_dir.join(&self.key.value)
    }
}

/// TLS termination on a listener.
#[derive(Clone, Debug)]
pub struct ListenerTls {
    /// The span of the `tls` table.
    pub span: Span,
    /// Certificates the listener may present, chosen by SNI.
    pub certificates: Vec<Located<String>>,
    /// The certificate for clients without SNI, or whose name no certificate covers.
    pub default: Located<String>,
    /// The lowest protocol version accepted.
    pub min_version: Located<TlsVersion>,
    /// `Strict-Transport-Security` on every answer of this listener, if asked for.
    pub hsts: Option<Located<Hsts>>,
}

/// HTTP Strict Transport Security (RFC 6797) for a TLS listener's answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hsts {
    /// How long browsers remember to use HTTPS only.
    pub max_age: std::time::Duration,
    /// The rule covers every subdomain too.
    pub include_subdomains: bool,
    /// The site asks to be on browsers' preload lists.
    pub preload: bool,
}

impl Hsts {
    /// The header value: `max-age=31536000; includeSubDomains; preload`.
    pub fn header_value(&self) -> String {
        let mut value = format!("max-age={}", self.max_age.as_secs());
        if self.include_subdomains {
            value.push_str("; includeSubDomains");
        }
        if self.preload {
            value.push_str("; preload");
        }
        value
    }
}

/// A TLS protocol version Keel can speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TlsVersion {
    /// TLS 1.2 (RFC 5246).
    Tls12,
    /// TLS 1.3 (RFC 8446).
    Tls13,
}

impl TlsVersion {
    /// As written in the config: `"1.2"` or `"1.3"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tls12 => "1.2",
            Self::Tls13 => "1.3",
        }
    }
}

/// Where a config's relative certificate paths start: the directory of the config
/// file (`"."` for a bare file name).
pub fn config_dir(config_file: &str) -> PathBuf {
    match Path::new(config_file).parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Reads every certificate's chain and key file (paths relative to `config_dir`) into
/// the config. A file that cannot be read is an error pointing at its key in the
/// config (K123), and leaves that certificate without bytes. A certificate whose bytes
/// are already there (a stored generation's pinned copy, put there by the loader's
/// caller) is not read again.
pub fn read_certificate_files(
    certificates: &mut indexmap::IndexMap<String, Certificate>,
    config_dir: &Path,
) -> Vec<Diagnostic> {
    let mut findings = Vec::new();
    let acme_material = crate::acme::acme_material();
    for certificate in certificates.values_mut() {
        if certificate.files.is_some() {
            continue;
        }
        if let Some(acme) = &certificate.acme {
            // No hook (a bare `keel check`): nothing to read; the lints on bytes skip it.
            let Some(material) = &acme_material else {
                continue;
            };
            match material.files(&certificate.name.value, acme) {
                Ok(files) => certificate.files = Some(Arc::new(files)),
                Err(reason) => findings.push(
                    Diagnostic::error(
                        codes::CERT_UNREADABLE,
                        format!(
                            "no certificate for ACME certificate `{}`: {reason}",
                            certificate.name.value
                        ),
                    )
                    .at(acme.span, "this ACME certificate")
                    .with_help("check the state directory's acme/ folder and its permissions"),
                ),
            }
            continue;
        }
        let chain = read_bounded(
            &certificate.cert_path(config_dir),
            &certificate.cert,
            &mut findings,
        );
        let key = read_bounded(
            &certificate.key_path(config_dir),
            &certificate.key,
            &mut findings,
        );
        certificate.files = match (chain, key) {
            (Some(chain_pem), Some(key_pem)) => {
                Some(Arc::new(CertificateFiles { chain_pem, key_pem }))
            }
            _ => None,
        };
    }
    findings
}

pub(crate) fn read_bounded(
    path: &Path,
    key: &Located<String>,
    findings: &mut Vec<Diagnostic>,
) -> Option<Vec<u8>> {
    use std::io::Read;
    let unreadable = |reason: String| {
        Diagnostic::error(
            codes::CERT_UNREADABLE,
            format!("cannot read `{}`: {reason}", path.display()),
        )
        .at(key.span, "this file")
        .with_help("check the path (relative to the config file) and its permissions")
    };
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) => {
            findings.push(unreadable(error.to_string()));
            return None;
        }
    };
    let mut bytes = Vec::new();
    match file
        .take(MAX_CERTIFICATE_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
    {
        Ok(_) if bytes.len() as u64 > MAX_CERTIFICATE_FILE_BYTES => {
            findings.push(unreadable(format!(
                "larger than {MAX_CERTIFICATE_FILE_BYTES} bytes"
            )));
            None
        }
        Ok(_) => Some(bytes),
        Err(error) => {
            findings.push(unreadable(error.to_string()));
            None
        }
    }
}
