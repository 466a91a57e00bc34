//! ACME HTTP-01 answers (RFC 8555 §8.3): while the control plane has an order under way,
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

use crate::body::ResponseBody;

/// The path prefix of HTTP-01 challenges.
pub const ACME_CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";
/// Most challenges held at once (1,024 tokens): an order has one per domain.
pub const MAX_ACME_CHALLENGES: usize = 1024;

/// Tokens and their key authorizations, shared by every listener of a data plane.
#[derive(Debug, Default)]
pub struct AcmeChallenges {
    any: AtomicBool,
    tokens: RwLock<HashMap<String, String>>,
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
