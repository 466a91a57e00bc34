//! What routing looks at in a request, whether it is a live `http::Request`, a route
//! test, or a sampled request shape being replayed.

use serde::{Deserialize, Serialize};

/// The parts of a request that routes can match on.
///
/// Implemented over live requests by the data plane without copying, and by
/// [`RequestShape`] for tests, samples and witnesses.
pub trait RequestView {
    /// The method, upper case as sent (`GET`).
    fn method(&self) -> &str;
    /// The host, as sent (may carry a port and upper-case letters); `None` if absent.
    fn host(&self) -> Option<&str>;
    /// The path, without the query string.
    fn path(&self) -> &str;
    /// The first value of a header (lower-case `name`), if present and valid text.
    fn header(&self, name: &str) -> Option<&str>;
    /// The name of the listener the request came in on; `None` when unknown (a route
    /// test, a traffic file without it), in which case routes limited to listeners
    /// are judged as if it were theirs.
    fn listener(&self) -> Option<&str> {
        None
    }
}

/// An owned request shape: what a route test, a traffic sample or a witness is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RequestShape {
    /// Upper-case method.
    pub method: String,
    /// Lower-case host without port (empty when the request had none).
    pub host: String,
    /// Path without query.
    pub path: String,
    /// Headers routes match on: lower-case name and value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
    /// The consistent-hash key of the request, if its pool hashes on one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_key: Option<String>,
    /// The client address policies judged (a sampled request's): address rules and
    /// rate limits are replayed on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<std::net::IpAddr>,
    /// When it arrived, in milliseconds since the Unix epoch (a sampled request's):
    /// rate limits are replayed in this order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_ms: Option<u64>,
    /// The listener it came in on, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener: Option<String>,
    /// How the request arrived over TLS (`None`: plain HTTP), so that a replay can
    /// tell which certificate its SNI name would get.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsShape>,
}

/// The TLS facts of a sampled request: the SNI name the client sent and the version
/// agreed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TlsShape {
    /// The SNI name, lower case (`None`: the client sent none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// `"1.2"` or `"1.3"`.
    pub version: String,
}

impl RequestShape {
    /// A shape with no headers.
    pub fn new(method: &str, host: &str, path: &str) -> Self {
        Self {
            method: method.to_ascii_uppercase(),
            host: host.to_ascii_lowercase(),
            path: path.to_string(),
            headers: Vec::new(),
            hash_key: None,
            listener: None,
            tls: None,
            client: None,
            at_ms: None,
        }
    }

    /// Adds a header (name lower-cased).
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_string()));
        self
    }
}

impl std::fmt::Display for RequestShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let host = if self.host.is_empty() {
            "<no host>"
        } else {
            &self.host
        };
        write!(f, "{} {}{}", self.method, host, self.path)?;
        for (name, value) in &self.headers {
            write!(f, " [{name}: {value}]")?;
        }
        Ok(())
    }
}

impl RequestView for RequestShape {
    fn method(&self) -> &str {
        &self.method
    }
    fn host(&self) -> Option<&str> {
        (!self.host.is_empty()).then_some(self.host.as_str())
    }
    fn path(&self) -> &str {
        &self.path
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    fn listener(&self) -> Option<&str> {
        self.listener.as_deref()
    }
}

/// Longest host name routing looks at; longer hosts match no host condition.
pub const MAX_HOST_LEN: usize = 255;

/// Lower-cases `host` without its port into `buffer`, without allocating.
///
/// Returns `None` for hosts longer than [`MAX_HOST_LEN`] or not valid UTF-8 after folding.
pub fn normalize_host<'b>(host: &str, buffer: &'b mut [u8; MAX_HOST_LEN]) -> Option<&'b str> {
    let host = keel_config::strip_port(host);
    let host = host.strip_suffix('.').unwrap_or(host);
    let bytes = host.as_bytes();
    if bytes.len() > MAX_HOST_LEN {
        return None;
    }
    let out = &mut buffer[..bytes.len()];
    for (o, b) in out.iter_mut().zip(bytes) {
        *o = b.to_ascii_lowercase();
    }
    std::str::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_folded_and_ports_dropped() {
        let mut buffer = [0u8; MAX_HOST_LEN];
        assert_eq!(
            normalize_host("Shop.Example.COM:8080", &mut buffer),
            Some("shop.example.com")
        );
        assert_eq!(
            normalize_host("shop.example.com.", &mut buffer),
            Some("shop.example.com")
        );
        let long = "a".repeat(300);
        assert_eq!(normalize_host(&long, &mut buffer), None);
    }
}
