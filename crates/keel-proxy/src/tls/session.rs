//! What a TLS connection's handshake settled that its requests need: the SNI name, the
//! protocol version, and the certificate choice of the generation that served the
//! handshake. From these, whether a request is misdirected (`421`, RFC 9110 §15.5.20).
//!
//! The default rule: a request on a TLS connection that sent SNI is misdirected when
//! its host is not the SNI name and is not covered (exact or wildcard name) by the
//! certificate the connection got for its SNI name. A host the same certificate covers
//! is answered, so HTTP/2 clients that reuse one connection for several names of one
//! certificate (RFC 9113 §9.1.1) keep working; a request for a name the client never
//! checked a certificate for is not. A route
//! with `require_sni = true` is stricter: the SNI name must be its host, and a request
//! without TLS or without SNI is misdirected too.

use std::sync::Arc;

use http::Response;
use http::request::Parts;
use keel_config::TlsVersion;
use keel_route::{RequestView, TlsShape};

use super::resolver::SniResolver;
use crate::body::ResponseBody;
use crate::errors::{ProxyFailure, respond};
use crate::forward::Served;
use crate::generation::Generation;
use crate::request::{ConnInfo, View};
use crate::stats::Outcome;

/// The TLS facts of one client connection.
#[derive(Debug)]
pub(crate) struct ConnTls {
    /// The SNI name, lower case as rustls hands it over (`None`: the client sent none).
    pub(crate) sni: Option<Box<str>>,
    /// The protocol version agreed.
    pub(crate) version: TlsVersion,
    /// The certificate choice the handshake was made with.
    pub(crate) resolver: Arc<SniResolver>,
}

impl ConnTls {
    /// The facts a traffic sample and the access log keep.
    pub(crate) fn shape(&self) -> TlsShape {
        TlsShape {
            sni: self.sni.as_deref().map(str::to_string),
            version: self.version.as_str().to_string(),
        }
    }

    /// Whether a request for `host` (normalized: lower case, no port) may not be
    /// answered on this connection by the default rule (see the module doc).
    pub(crate) fn misdirected(&self, host: &str) -> bool {
        let Some(sni) = self.sni.as_deref() else {
            // No name was checked: the client took the default certificate for
            // whatever it connected to (an address, typically).
            return false;
        };
        if host.is_empty() || host == sni {
            return false;
        }
        match self.resolver.covering_index(host) {
            Some(for_host) => for_host != self.resolver.pick_index(Some(sni)),
            None => true,
        }
    }
}

/// Whether a request is misdirected: by the default rule on a TLS connection, and for
/// a route with `require_sni`, unless it came over TLS with its host as SNI name.
pub(crate) fn misdirected(tls: Option<&ConnTls>, host: &str, require_sni: bool) -> bool {
    match tls {
        None => require_sni,
        Some(tls) if require_sni => tls.sni.as_deref() != Some(host),
        Some(tls) => tls.misdirected(host),
    }
}

/// The `421` answer for a request routed to `route_id` that this connection may not
/// carry, or `None` to serve it. Plain connections to routes without `require_sni`
/// pay one branch.
pub(crate) fn refuse_misdirected(
    generation: &Generation,
    route_id: usize,
    parts: &Parts,
    conn: &ConnInfo,
) -> Option<(Response<ResponseBody>, Served)> {
    let require_sni = generation.routes[route_id].require_sni;
    if conn.tls.is_none() && !require_sni {
        return None;
    }
    let mut buffer = [0u8; keel_route::MAX_HOST_LEN];
    let host = View(parts, None)
        .host()
        .and_then(|h| keel_route::normalize_host(h, &mut buffer))
        .unwrap_or("");
    if !misdirected(conn.tls.as_deref(), host, require_sni) {
        return None;
    }
    generation.stats.routes[route_id]
        .unassigned
        .record(Outcome::ClientError);
    let sni = conn
        .tls
        .as_ref()
        .map_or("no TLS", |tls| tls.sni.as_deref().unwrap_or("no SNI"));
    let detail = format!(
        "this connection (SNI: {sni}) does not serve host `{host}`{}; open a new connection for it",
        if require_sni {
            format!(
                " (route `{}` requires SNI equal to the host)",
                generation.table.route(route_id).name
            )
        } else {
            String::new()
        }
    );
    let served = Served {
        error: Some(ProxyFailure::Misdirected),
        ..Served::default()
    };
    Some((respond(ProxyFailure::Misdirected, &detail, None), served))
}
