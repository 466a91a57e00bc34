//! A pool's `tls = { server_name, ca, cert, key }`: HTTPS to its backends.
//!
//! Parsing reads only names and paths; [`read_backend_tls_files`] (called by the loader,
//! as for `[certificates]`) reads the files' bytes into the config, so that a generation
//! keeps the exact CA bundle and client certificate it was checked with. The backend's
//! certificate is always verified: against `ca` when given, else against the system's
//! bundle ([`crate::defaults::SYSTEM_CA_BUNDLE`]), for `server_name` (or the backend's
//! IP address). `cert` and `key` together are a client certificate (mTLS).

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use crate::codes;
use crate::diagnostic::Diagnostic;
use crate::reader::{Sink, Table};
use crate::span::{Located, Span};
use crate::tls::read_bounded;

/// A pool's TLS settings toward its backends.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BackendTls {
    /// The span of the `tls` table.
    pub span: Span,
    /// The name the backends' certificates must carry (and SNI); `None`: their address.
    pub server_name: Option<Located<String>>,
    /// PEM bundle of the CAs that sign the backends' certificates (relative to the
    /// config file); `None`: the system's bundle.
    pub ca: Option<Located<String>>,
    /// PEM chain of Keel's client certificate, for backends that ask for one.
    pub cert: Option<Located<String>>,
    /// PEM private key of that client certificate.
    pub key: Option<Located<String>>,
    /// The files' bytes, once [`read_backend_tls_files`] read them.
    pub files: Option<Arc<BackendTlsFiles>>,
}

/// The bytes of a pool's TLS files, as read at load time.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct BackendTlsFiles {
    /// The CA bundle (`None`: the system's, read when the pool is compiled).
    pub ca_pem: Option<Vec<u8>>,
    /// The client certificate chain and key (mTLS).
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

impl fmt::Debug for BackendTlsFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendTlsFiles")
            .field("ca_pem", &self.ca_pem.as_ref().map(Vec::len))
            .field(
                "client",
                &self.client.as_ref().map(|(chain, key)| {
                    format!("{} bytes, key <redacted, {} bytes>", chain.len(), key.len())
                }),
            )
            .finish()
    }
}

impl fmt::Display for BackendTls {
    /// What `keel diff` shows: the name checked, the CA and the client certificate.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self
            .server_name
            .as_ref()
            .map_or("the backend's address", |n| &n.value);
        let ca = self.ca.as_ref().map_or("the system's CAs", |c| &c.value);
        write!(f, "verified for {name} against {ca}")?;
        if let Some(cert) = &self.cert {
            write!(f, ", client certificate {}", cert.value)?;
        }
        Ok(())
    }
}

/// Reads a pool's optional `tls` table.
pub(crate) fn pool_tls(sink: &mut Sink, pool: &Table<'_, '_>) -> Option<BackendTls> {
    let table = pool.table(sink, "tls", "the pool's `tls` table")?;
    table.deny_unknown(sink, &["server_name", "ca", "cert", "key"]);
    let mut path = |key: &str| {
        let value = table.string(sink, key)?;
        if value.value.trim().is_empty() {
            sink.invalid(
                value.span,
                format!("`{key}` is empty"),
                "write a path relative to the config file, such as \"certs/internal-ca.pem\"",
            );
            return None;
        }
        Some(value)
    };
    let ca = path("ca");
    let cert = path("cert");
    let key = path("key");
    let server_name = table.string(sink, "server_name");
    if let Some(name) = &server_name
        && (name.value.is_empty() || name.value.contains(|c: char| c.is_whitespace() || c == '/'))
    {
        sink.invalid(
            name.span,
            format!("bad server_name `{}`", name.value),
            "write the DNS name the backends' certificates carry, such as \"payments.internal\"",
        );
    }
    if cert.is_some() != key.is_some() {
        let at = cert
            .as_ref()
            .or(key.as_ref())
            .map_or(table.span, |p| p.span);
        sink.push(
            Diagnostic::error(
                codes::MISSING_KEY,
                "a client certificate needs both `cert` and `key`",
            )
            .at(at, "only one of the two is here")
            .with_help("add the other, or remove this one to connect without a client certificate"),
        );
    }
    Some(BackendTls {
        span: table.span,
        server_name,
        ca,
        cert,
        key,
        files: None,
    })
}

/// Reads every pool's TLS files (paths relative to `config_dir`) into the config. A
/// file that cannot be read is an error at its key (K123), and leaves the pool's TLS
/// without bytes, which the data plane refuses to connect with.
pub fn read_backend_tls_files(
    pools: &mut indexmap::IndexMap<String, crate::Pool>,
    config_dir: &Path,
) -> Vec<Diagnostic> {
    let mut findings = Vec::new();
    for tls in pools.values_mut().filter_map(|pool| pool.tls.as_mut()) {
        let mut read = |path: &Option<Located<String>>| {
            path.as_ref()
                .map(|path| read_bounded(&config_dir.join(&path.value), path, &mut findings))
        };
        let ca = read(&tls.ca);
        let cert = read(&tls.cert);
        let key = read(&tls.key);
        let unread = [&ca, &cert, &key]
            .iter()
            .any(|file| matches!(file, Some(None)));
        tls.files = (!unread).then(|| {
            Arc::new(BackendTlsFiles {
                ca_pem: ca.flatten(),
                client: cert.flatten().zip(key.flatten()),
            })
        });
    }
    findings
}
