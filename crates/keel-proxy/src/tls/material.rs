//! What a certificate's bytes say: the chain and key parsed for rustls (with the check
//! that the key belongs to the leaf), and the leaf's names, issuer and validity for
//! `keel check`, the SNI resolver and the expiry metric.
//!
//! Nothing here prints key material: errors name the file kind and the reason only.

use std::sync::Arc;

use keel_config::CertificateFiles;
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::Digest;

/// Why a certificate's files cannot be served.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MaterialError {
    /// The chain file holds no PEM certificate.
    #[error("the cert file holds no PEM certificate")]
    NoCertificate,
    /// The chain file is not valid PEM.
    #[error("the cert file is not valid PEM: {0}")]
    BadChain(String),
    /// The key file holds no usable private key.
    #[error("the key file holds no usable private key: {0}")]
    BadKey(String),
    /// The leaf certificate cannot be parsed as X.509.
    #[error("the leaf certificate is not valid X.509: {0}")]
    BadLeaf(String),
    /// The private key is not the leaf certificate's key.
    #[error("the private key does not belong to the leaf certificate")]
    KeyMismatch,
}

/// The facts about a leaf certificate that checks and metrics need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeafSummary {
    /// The subject, as an RFC 4514 string.
    pub subject: String,
    /// The issuer, as an RFC 4514 string.
    pub issuer: String,
    /// DNS names of the subject alternative name extension, lower case.
    pub dns_names: Vec<String>,
    /// Start of validity, seconds since the Unix epoch.
    pub not_before: i64,
    /// End of validity, seconds since the Unix epoch.
    pub not_after: i64,
    /// The public key's algorithm and size: `ECDSA P-256`, `RSA 2048`, `Ed25519`.
    pub key_type: String,
    /// SHA-256 of the leaf's DER bytes, lower-case hex (its usual fingerprint).
    pub sha256: String,
}

impl LeafSummary {
    /// The facts a config diff shows about the certificate (never the key).
    pub fn facts(&self) -> keel_config::CertificateFacts {
        keel_config::CertificateFacts {
            subject: self.subject.clone(),
            issuer: self.issuer.clone(),
            dns_names: self.dns_names.clone(),
            not_after: jiff::Timestamp::from_second(self.not_after)
                .map_or_else(|_| self.not_after.to_string(), |t| t.to_string()),
            key_type: self.key_type.clone(),
            sha256: self.sha256.clone(),
        }
    }
}

impl LeafSummary {
    /// True when the certificate is valid for `host`: an exact DNS name, or a wildcard
    /// `*.example.com` standing for exactly one label (RFC 6125 §6.4.3).
    pub fn covers(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.dns_names.iter().any(|name| name_covers(name, &host))
    }
}

/// True when the SAN `name` (lower case) covers `host` (lower case).
pub(crate) fn name_covers(name: &str, host: &str) -> bool {
    match name.strip_prefix("*.") {
        Some(suffix) => host
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
        None => name == host,
    }
}

/// A certificate ready to serve: rustls's key and the leaf's facts.
#[derive(Debug)]
pub struct ServableCertificate {
    /// The chain and signing key rustls presents.
    pub key: Arc<CertifiedKey>,
    /// The leaf's names and validity.
    pub leaf: LeafSummary,
}

/// The crypto provider every TLS listener uses: ring (see the workspace `Cargo.toml`).
///
/// rustls 0.23.48 deprecates the ring provider because it lacks the post-quantum
/// hybrid key exchange (X25519MLKEM768) that aws-lc-rs offers; clients still agree on
/// X25519 or P-256. aws-lc-rs costs minutes of C build on two cores; moving to it is
/// this one function and the workspace features.
#[allow(deprecated)]
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Parses a certificate's files and checks that its key belongs to its leaf.
pub fn servable(files: &CertificateFiles) -> Result<ServableCertificate, MaterialError> {
    let chain = parse_chain(&files.chain_pem)?;
    let leaf = summarize(&chain[0])?;
    let key = PrivateKeyDer::from_pem_slice(&files.key_pem)
        .map_err(|error| MaterialError::BadKey(pem_reason(&error)))?;
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|error| MaterialError::BadKey(error.to_string()))?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(MaterialError::KeyMismatch);
        }
        // The provider cannot tell (no public key for this key type): serve it; a
        // handshake with a wrong key fails at the client, and is counted.
        Err(_) => {}
    }
    Ok(ServableCertificate {
        key: Arc::new(certified),
        leaf,
    })
}

/// The leaf's facts only, from the chain file (no key needed).
pub fn leaf_summary(chain_pem: &[u8]) -> Result<LeafSummary, MaterialError> {
    summarize(&parse_chain(chain_pem)?[0])
}

fn parse_chain(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, MaterialError> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| MaterialError::BadChain(pem_reason(&error)))?;
    if chain.is_empty() {
        return Err(MaterialError::NoCertificate);
    }
    Ok(chain)
}

/// A PEM error without the bytes it was reading.
fn pem_reason(error: &rustls_pki_types::pem::Error) -> String {
    use rustls_pki_types::pem::Error;
    match error {
        Error::NoItemsFound => "no PEM item of the expected kind".to_string(),
        Error::MissingSectionEnd { .. } => "a PEM section has no END line".to_string(),
        Error::IllegalSectionStart { .. } => "a malformed BEGIN line".to_string(),
        Error::Base64Decode(_) => "bad base64 inside a PEM section".to_string(),
        _ => "unreadable PEM".to_string(),
    }
}

fn summarize(leaf: &CertificateDer<'_>) -> Result<LeafSummary, MaterialError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|error| MaterialError::BadLeaf(error.to_string()))?;
    let mut dns_names = Vec::new();
    if let Ok(Some(san)) = parsed.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(dns) = name {
                dns_names.push(dns.to_ascii_lowercase());
            }
        }
    }
    Ok(LeafSummary {
        subject: parsed.subject().to_string(),
        issuer: parsed.issuer().to_string(),
        dns_names,
        not_before: parsed.validity().not_before.timestamp(),
        not_after: parsed.validity().not_after.timestamp(),
        key_type: key_type(parsed.public_key()),
        sha256: hex(&sha2::Sha256::digest(leaf.as_ref())),
    })
}

/// `ECDSA P-256`, `RSA 2048`, `Ed25519`, or the algorithm's OID when unknown.
fn key_type(key: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> String {
    use x509_parser::public_key::PublicKey;
    match key.parsed() {
        Ok(PublicKey::RSA(rsa)) => format!("RSA {}", rsa.key_size()),
        Ok(PublicKey::EC(point)) => match point.key_size() {
            256 => "ECDSA P-256".to_string(),
            384 => "ECDSA P-384".to_string(),
            521 => "ECDSA P-521".to_string(),
            bits => format!("ECDSA {bits}-bit"),
        },
        _ => match key.algorithm.algorithm.to_id_string().as_str() {
            "1.3.101.112" => "Ed25519".to_string(),
            other => other.to_string(),
        },
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::name_covers;

    #[test]
    fn a_wildcard_covers_exactly_one_label() {
        assert!(name_covers("*.example.com", "api.example.com"));
        assert!(!name_covers("*.example.com", "example.com"));
        assert!(!name_covers("*.example.com", "a.b.example.com"));
        assert!(name_covers("shop.example.com", "shop.example.com"));
        assert!(!name_covers("shop.example.com", "www.shop.example.com"));
    }
}
