//! Choosing the certificate a client gets: by its SNI name, an exact DNS name of a
//! certificate first, then a wildcard one, then the listener's `default`. A client
//! without SNI (or with a name no certificate covers) gets the default.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::material::ServableCertificate;

/// The SNI → certificate map of one TLS listener in one generation.
#[derive(Debug)]
pub(crate) struct SniResolver {
    /// Exact DNS names, lower case.
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// Wildcard names by the suffix after `*.`, lower case.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl SniResolver {
    /// Builds the map from the listener's certificates in config order: when two
    /// certificates claim one name, the first listed wins.
    pub(crate) fn new(
        certificates: &[&ServableCertificate],
        default: &ServableCertificate,
    ) -> Self {
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        for certificate in certificates {
            for name in &certificate.leaf.dns_names {
                let map = match name.strip_prefix("*.") {
                    Some(suffix) => wildcard.entry(suffix.to_string()),
                    None => exact.entry(name.clone()),
                };
                map.or_insert_with(|| certificate.key.clone());
            }
        }
        Self {
            exact,
            wildcard,
            default: default.key.clone(),
        }
    }

    /// The certificate for an SNI name (`None`: the client sent none).
    pub(crate) fn pick(&self, server_name: Option<&str>) -> Arc<CertifiedKey> {
        server_name
            .and_then(|name| self.covering(name))
            .unwrap_or_else(|| self.default.clone())
    }

    /// The certificate whose names cover `name` (lower case, no trailing dot): exact,
    /// then wildcard; `None` when only the default would answer for it.
    pub(crate) fn covering(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        // rustls hands over SNI names already lower case and without a trailing dot.
        if let Some(key) = self.exact.get(name) {
            return Some(key.clone());
        }
        let (_, suffix) = name.split_once('.')?;
        self.wildcard.get(suffix).cloned()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.pick(client_hello.server_name()))
    }
}
