//! TLS termination on client listeners (rustls with the ring provider).
//!
//! ```text
//! accept ─▶ handshake (the serving generation's ServerConfig for this listener: the
//!           primary, or the canary for its share of connections; SNI: exact ─▶
//!           wildcard ─▶ default; ALPN h2, http/1.1; bounded in time; counted on
//!           that generation)
//!        ─▶ the same hyper HTTP/1 or HTTP/2 serving as plain connections
//! ```
//!
//! - `material`: PEM bytes → rustls key (key/leaf match) and the leaf's facts.
//! - `resolver`: the SNI → certificate choice.
//! - `config`: a generation's server config per TLS listener.
//! - `handshake`: the handshake with its timeout, on the generation that serves it.
//! - `counters`: each generation's handshakes per listener: completed per certificate
//!   (full or resumed), failed by reason.
//! - `session`: a connection's SNI name and version, and the 421 rule.

mod config;
mod counters;
mod handshake;
mod material;
mod resolver;
mod session;

pub(crate) use material::provider;
pub(crate) use session::{ConnTls, refuse_misdirected};

pub use config::GenerationTls;
pub use counters::{HandshakeCounters, HandshakeFailure, HandshakeKind};
pub use handshake::{TLS_HANDSHAKE_TIMEOUT, TlsListener};
pub use material::{LeafSummary, MaterialError, ServableCertificate, leaf_summary, servable};
