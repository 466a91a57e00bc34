//! The WebSocket opening handshake's key and accept (RFC 6455 §4.1, §4.2.2), for the
//! HTTP/1.1 handshake Keel makes up when it translates an RFC 8441 extended `CONNECT`
//! for a backend (see [`crate::upgrade`]).
//!
//! An RFC 8441 client sends no `Sec-WebSocket-Key`, so Keel sends the backend one of
//! its own ([`WebSocketKey::new`]) and checks the backend's `Sec-WebSocket-Accept`
//! against it ([`WebSocketKey::accepts`]), as an HTTP/1.1 WebSocket client would: an
//! accept that does not answer the key means the backend is not completing a
//! WebSocket handshake with Keel (a cache, or a server that answers `101` to anything),
//! and no tunnel opens. On an HTTP/1.1 upgrade the client's own key goes to the backend
//! and the client checks the accept itself; Keel passes both through.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::HeaderValue;

/// The GUID RFC 6455 §1.3 appends to the key before hashing it.
const WEBSOCKET_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Random bytes in a key (RFC 6455 §4.1: a nonce of 16 bytes, base64-encoded).
const KEY_NONCE_BYTES: usize = 16;

/// A `Sec-WebSocket-Key` Keel sent a backend.
#[derive(Debug, Clone)]
pub(crate) struct WebSocketKey(HeaderValue);

impl WebSocketKey {
    /// A fresh key: 16 random bytes, base64-encoded (24 characters).
    pub(crate) fn new() -> Self {
        let mut nonce = [0u8; KEY_NONCE_BYTES];
        fastrand::fill(&mut nonce);
        let encoded = STANDARD.encode(nonce);
        // Base64 is always a valid header value; the fallback is RFC 6455's sample key.
        Self(
            HeaderValue::from_str(&encoded)
                .unwrap_or(HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ==")),
        )
    }

    /// The header value to send.
    pub(crate) fn header(&self) -> HeaderValue {
        self.0.clone()
    }

    /// The `Sec-WebSocket-Accept` a backend must answer this key with: the base64 of
    /// the SHA-1 of the key followed by the GUID (RFC 6455 §4.2.2).
    pub(crate) fn expected_accept(&self) -> String {
        let mut hashed = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
        hashed.update(self.0.as_bytes());
        hashed.update(WEBSOCKET_GUID);
        STANDARD.encode(hashed.finish())
    }

    /// Whether `accept` (the backend's `Sec-WebSocket-Accept`, if any) answers this
    /// key. Compared exactly, after trimming surrounding whitespace: base64 is case
    /// sensitive.
    pub(crate) fn accepts(&self, accept: Option<&HeaderValue>) -> bool {
        accept
            .is_some_and(|value| value.as_bytes().trim_ascii() == self.expected_accept().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_6455_sample_key_gets_its_sample_accept() {
        // RFC 6455 §1.3's worked example.
        let key = WebSocketKey(HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="));
        assert_eq!(key.expected_accept(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert!(key.accepts(Some(&HeaderValue::from_static(
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        ))));
        assert!(key.accepts(Some(&HeaderValue::from_static(
            " s3pPLMBiTxaQ9kYGzzhZRbK+xOo= "
        ))));
        assert!(!key.accepts(Some(&HeaderValue::from_static(
            "S3PPLMBITXAQ9KYGZZHZRBK+XOO="
        ))));
        assert!(!key.accepts(Some(&HeaderValue::from_static(""))));
        assert!(!key.accepts(None));
    }

    #[test]
    fn fresh_keys_are_24_base64_characters_and_differ() {
        let one = WebSocketKey::new();
        let two = WebSocketKey::new();
        assert_eq!(one.header().len(), 24);
        assert!(one.header().as_bytes().ends_with(b"=="));
        assert_ne!(one.header(), two.header());
        assert_ne!(one.expected_accept(), two.expected_accept());
    }
}
