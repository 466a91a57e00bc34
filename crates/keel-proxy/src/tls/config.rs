//! The TLS side of one generation: a rustls `ServerConfig` per TLS listener, built
//! from the certificate bytes the generation's config carries (read at load time), so
//! a generation serves the certificates it was checked with, and a rollback to it
//! serves them again whatever the files on disk hold now. It also holds the
//! generation's handshake counters, one per TLS listener of its config (split by the
//! listener's certificates).

use std::collections::HashMap;
use std::sync::Arc;

use http::HeaderValue;
use keel_config::{Config, TlsVersion};
use rustls::ServerConfig;

use super::counters::HandshakeCounters;
use super::material::{LeafSummary, MaterialError, ServableCertificate, provider, servable};
use super::resolver::SniResolver;

/// ALPN protocols offered, in order of preference: HTTP/2, then HTTP/1.1.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// One TLS listener's server config and its SNI choice (kept by each connection, to
/// judge whether a request's host is one the connection may answer).
#[derive(Clone, Debug)]
pub(crate) struct ServedListener {
    pub(crate) server: Arc<ServerConfig>,
    pub(crate) resolver: Arc<SniResolver>,
    /// The `strict-transport-security` value its answers carry, if any.
    pub(crate) hsts: Option<HeaderValue>,
}

/// A generation's TLS listeners and certificates.
#[derive(Debug, Default)]
pub struct GenerationTls {
    /// Server config per TLS listener name; absent when a certificate could not be
    /// built (the loader refuses such configs, so this is a defence only).
    listeners: HashMap<String, ServedListener>,
    /// Every certificate's leaf facts, by certificate name, in config order.
    certificates: Vec<(String, LeafSummary)>,
    /// Certificates that could not be built, with the reason.
    failures: Vec<(String, MaterialError)>,
    /// Handshakes this generation served, per TLS listener of its config (servable or
    /// not), in config order.
    handshakes: Vec<Arc<HandshakeCounters>>,
}

impl GenerationTls {
    /// Builds the server configs of every TLS listener of `config`.
    pub fn build(config: &Config) -> Self {
        let mut built: HashMap<&str, ServableCertificate> = HashMap::new();
        let mut out = Self::default();
        for (name, certificate) in &config.certificates {
            let Some(files) = &certificate.files else {
                continue;
            };
            match servable(files) {
                Ok(ready) => {
                    out.certificates.push((name.clone(), ready.leaf.clone()));
                    built.insert(name.as_str(), ready);
                }
                Err(error) => {
                    tracing::error!(certificate = %name, %error, "certificate cannot be served");
                    out.failures.push((name.clone(), error));
                }
            }
        }
        for (name, listener) in &config.listeners {
            let Some(tls) = &listener.tls else { continue };
            let names: Vec<&str> = tls.certificates.iter().map(|c| c.value.as_str()).collect();
            out.handshakes
                .push(Arc::new(HandshakeCounters::new(name, &names)));
            let chosen: Option<Vec<&ServableCertificate>> =
                names.iter().map(|c| built.get(c)).collect();
            let default = names.iter().position(|c| *c == tls.default.value);
            let (Some(chosen), Some(default)) = (chosen, default) else {
                tracing::error!(listener = %name, "a certificate of this TLS listener is not servable: its handshakes fail");
                continue;
            };
            let resolver = Arc::new(SniResolver::new(&chosen, default));
            let hsts = tls
                .hsts
                .as_ref()
                .and_then(|h| HeaderValue::from_str(&h.value.header_value()).ok());
            match server_config(resolver.clone(), tls.min_version.value) {
                Ok(server) => {
                    out.listeners.insert(
                        name.clone(),
                        ServedListener {
                            server,
                            resolver,
                            hsts,
                        },
                    );
                }
                Err(error) => {
                    tracing::error!(listener = %name, %error, "cannot build the TLS listener");
                }
            }
        }
        out
    }

    /// The server config of TLS listener `name`.
    pub fn listener(&self, name: &str) -> Option<&Arc<ServerConfig>> {
        self.listeners.get(name).map(|l| &l.server)
    }

    /// The server config and SNI choice of TLS listener `name`.
    pub(crate) fn served(&self, name: &str) -> Option<&ServedListener> {
        self.listeners.get(name)
    }

    /// The `strict-transport-security` value of TLS listener `name`'s answers, if it
    /// has one in this generation.
    pub(crate) fn hsts(&self, name: &str) -> Option<&HeaderValue> {
        self.listeners.get(name)?.hsts.as_ref()
    }

    /// Every servable certificate's leaf facts, by name.
    pub fn certificates(&self) -> &[(String, LeafSummary)] {
        &self.certificates
    }

    /// Certificates that could not be built.
    pub fn failures(&self) -> &[(String, MaterialError)] {
        &self.failures
    }

    /// The handshake counters of TLS listener `name` in this generation.
    pub fn handshakes(&self, name: &str) -> Option<&Arc<HandshakeCounters>> {
        self.handshakes.iter().find(|c| c.listener == name)
    }

    /// The handshake counters of every TLS listener of this generation, in config order.
    pub fn all_handshakes(&self) -> &[Arc<HandshakeCounters>] {
        &self.handshakes
    }
}

fn server_config(
    resolver: Arc<SniResolver>,
    min_version: TlsVersion,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let versions: &[&'static rustls::SupportedProtocolVersion] = match min_version {
        TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let mut server = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    server.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(server))
}
