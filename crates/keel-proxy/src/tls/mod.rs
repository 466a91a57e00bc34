//! TLS termination on client listeners (rustls with the ring provider).
//!
//! ```text
//! accept ─▶ handshake (active generation's ServerConfig for this listener,
//!           SNI: exact ─▶ wildcard ─▶ default; ALPN h2, http/1.1; bounded in time)
//!        ─▶ the same hyper HTTP/1 or HTTP/2 serving as plain connections
//! ```
//!
//! - `material`: PEM bytes → rustls key (key/leaf match) and the leaf's facts.
//! - `resolver`: the SNI → certificate choice.
//! - `config`: a generation's server config per TLS listener.
//! - `handshake`: the handshake with its timeout, and per-listener counters.
//! - `session`: a connection's SNI name and version, and the 421 rule.

mod config;
mod handshake;
mod material;
mod resolver;
mod session;

pub(crate) use session::{ConnTls, refuse_misdirected};

pub use config::GenerationTls;
pub use handshake::{HandshakeCounters, HandshakeFailure, TLS_HANDSHAKE_TIMEOUT, TlsListener};
pub use material::{LeafSummary, MaterialError, ServableCertificate, leaf_summary, servable};
