//! Choosing the certificate a client gets: by its SNI name, an exact DNS name of a
//! certificate first, then a wildcard one, then the listener's `default`. A client
//! without SNI (or with a name no certificate covers) gets the default. The choice is
//! also told as the certificate's position in the listener's `certificates`, so that
//! handshakes are counted per certificate (`counters.rs`).

use std::collections::HashMap;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::material::ServableCertificate;

/// The SNI → certificate map of one TLS listener in one generation.
#[derive(Debug)]
pub(crate) struct SniResolver {
    /// The listener's certificates, in its `certificates` order.
    keys: Vec<Arc<CertifiedKey>>,
    /// Exact DNS names, lower case → position in `keys`.
    exact: HashMap<String, usize>,
    /// Wildcard names by the suffix after `*.`, lower case → position in `keys`.
    wildcard: HashMap<String, usize>,
    /// Position of the default in `keys`.
    default: usize,
}

impl SniResolver {
    /// Builds the map from the listener's certificates in config order, `default` the
    /// position of its default among them: when two certificates claim one name, the
    /// first listed wins.
    pub(crate) fn new(certificates: &[&ServableCertificate], default: usize) -> Self {
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        for (index, certificate) in certificates.iter().enumerate() {
            for name in &certificate.leaf.dns_names {
                let map = match name.strip_prefix("*.") {
                    Some(suffix) => wildcard.entry(suffix.to_string()),
                    None => exact.entry(name.clone()),
                };
                map.or_insert(index);
            }
        }
        Self {
            keys: certificates.iter().map(|c| c.key.clone()).collect(),
            exact,
            wildcard,
            default: default.min(certificates.len().saturating_sub(1)),
        }
    }

    /// The position, in the listener's `certificates`, of the certificate for an SNI
    /// name (`None`: the client sent none).
    pub(crate) fn pick_index(&self, server_name: Option<&str>) -> usize {
        server_name
            .and_then(|name| self.covering_index(name))
            .unwrap_or(self.default)
    }

    /// The certificate for an SNI name (`None`: the client sent none).
    pub(crate) fn pick(&self, server_name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        self.keys.get(self.pick_index(server_name)).cloned()
    }

    /// The position, in the listener's `certificates`, of the certificate whose names
    /// cover `name` (lower case, no trailing dot): exact, then wildcard; `None` when only
    /// the default would answer for it.
    pub(crate) fn covering_index(&self, name: &str) -> Option<usize> {
        // rustls hands over SNI names already lower case and without a trailing dot.
        if let Some(index) = self.exact.get(name) {
            return Some(*index);
        }
        let (_, suffix) = name.split_once('.')?;
        self.wildcard.get(suffix).copied()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.pick(client_hello.server_name())
    }
}
