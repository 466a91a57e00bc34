//! The TLS part of the model: `[certificates.NAME]` (a certificate chain and its key,
//! as files) and a listener's `tls` table (which certificates it serves, the default
//! one, the lowest protocol version).
//!
//! Only names and paths live here: reading the files, and what their bytes say, is
//! the data plane's business (`keel_proxy::tls`), so that parsing stays pure.

use std::path::{Path, PathBuf};

use crate::span::{Located, Span};

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
