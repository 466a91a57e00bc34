//! ACME challenge answers, held while the control plane has an order under way. HTTP-01
//! (RFC 8555 §8.3) is answered here; TLS-ALPN-01 (RFC 8737) in the handshake, from the
//! table in [`crate::acme_tls_alpn`] this one holds. For HTTP-01, while an order is under way,
//! `GET /.well-known/acme-challenge/TOKEN` is answered by Keel itself with the token's
//! key authorization, before routing, so that no route or backend has to know.
//!
//! The table is empty almost always; the hot path then pays one relaxed atomic load. A
//! token Keel does not hold falls through to routing, so a backend that answers its own
//! challenges (another ACME client behind Keel) keeps working.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use http::{HeaderValue, Method, Response, header, request::Parts};

use keel_config::CertificateFiles;

use crate::acme_tls_alpn::{TlsAlpnAnswers, TlsAlpnError};
use crate::body::ResponseBody;

/// The path prefix of HTTP-01 challenges.
pub const ACME_CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";
/// Most challenges held at once (1,024 tokens): an order has one per domain.
pub const MAX_ACME_CHALLENGES: usize = 1024;

/// Tokens and their key authorizations (HTTP-01) and validation certificates
/// (TLS-ALPN-01), shared by every listener of a data plane.
#[derive(Debug, Default)]
pub struct AcmeChallenges {
    any: AtomicBool,
    tokens: RwLock<HashMap<String, String>>,
    pub(crate) tls_alpn: TlsAlpnAnswers,
}

impl AcmeChallenges {
    /// Answers `token` with `key_authorization` until [`Self::remove`]. Returns false
    /// (and holds nothing new) when [`MAX_ACME_CHALLENGES`] are already held.
    pub fn insert(&self, token: &str, key_authorization: &str) -> bool {
        let mut tokens = self.tokens.write().unwrap_or_else(|p| p.into_inner());
        if tokens.len() >= MAX_ACME_CHALLENGES && !tokens.contains_key(token) {
            return false;
        }
        tokens.insert(token.to_string(), key_authorization.to_string());
        self.any.store(true, Relaxed);
        true
    }

    /// Stops answering `token`.
    pub fn remove(&self, token: &str) {
        let mut tokens = self.tokens.write().unwrap_or_else(|p| p.into_inner());
        tokens.remove(token);
        self.any.store(!tokens.is_empty(), Relaxed);
    }

    /// Answers TLS-ALPN-01 validation handshakes for `domain` (ALPN `acme-tls/1`, SNI
    /// `domain`) with `certificate` (the self-signed one carrying the key
    /// authorization's digest) until [`Self::remove_tls_alpn`]. `Ok(false)` (and nothing
    /// new held) when [`MAX_ACME_CHALLENGES`] domains are already held.
    pub fn insert_tls_alpn(
        &self,
        domain: &str,
        certificate: &CertificateFiles,
    ) -> Result<bool, TlsAlpnError> {
        self.tls_alpn
            .insert(domain, certificate, MAX_ACME_CHALLENGES)
    }

    /// Stops answering TLS-ALPN-01 validation handshakes for `domain`.
    pub fn remove_tls_alpn(&self, domain: &str) {
        self.tls_alpn.remove(domain);
    }

    /// The answer to a request for a challenge Keel holds, or `None` (route it).
    pub(crate) fn answer(&self, parts: &Parts) -> Option<Response<ResponseBody>> {
        if !self.any.load(Relaxed) {
            return None;
        }
        let token = parts.uri.path().strip_prefix(ACME_CHALLENGE_PREFIX)?;
        if parts.method != Method::GET && parts.method != Method::HEAD {
            return None;
        }
        let key_authorization = self
            .tokens
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(token)?
            .clone();
        let mut response = Response::new(ResponseBody::full(key_authorization));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        Some(response)
    }
}
