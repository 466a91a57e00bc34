//! Traffic policies a route carries besides its target: the client address rule
//! (`allow = [..]` / `deny = [..]`), the header rules (`request_headers`,
//! `response_headers`), the path rewrite (`rewrite = { path_prefix }`) and the fixed
//! answer of a route without a pool (`respond = { status, body, content_type }`), and
//! the codings a route compresses answers with (`compress = ["gzip", "br"]`).
//! Parsing lives in `parse/policies.rs`.

use std::fmt;
use std::net::IpAddr;

use crate::span::Located;

/// An address block such as `10.0.0.0/8` or `2001:db8::/32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    /// The network address, with the bits past the prefix cleared.
    pub network: IpAddr,
    /// Number of leading bits that must match (0..=32 for IPv4, 0..=128 for IPv6).
    pub prefix: u8,
}

impl Cidr {
    /// Parses `ADDR/PREFIX` or a bare address (a block of one). Host bits set past the
    /// prefix are refused: `10.1.2.3/8` most likely meant something else.
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{addr}` is not an IPv4 or IPv6 address"))?;
        let max = Self::max_prefix(network);
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`/{p}` is not a prefix length from 0 to {max}"))?,
        };
        let cidr = Cidr { network, prefix };
        if cidr.masked(network) != network {
            return Err(format!(
                "`{text}` has address bits set past its /{prefix} prefix (the block is {})",
                Cidr {
                    network: cidr.masked(network),
                    prefix
                }
            ));
        }
        Ok(cidr)
    }

    fn max_prefix(addr: IpAddr) -> u8 {
        match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        }
    }

    /// `addr` with the bits past this block's prefix cleared.
    fn masked(&self, addr: IpAddr) -> IpAddr {
        match addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4((u32::from(a) & mask).into())
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6((u128::from(a) & mask).into())
            }
        }
    }

    /// True when `addr` lies in this block. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`,
    /// what a dual-stack socket reports) is compared as the IPv4 address it carries.
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            v4 => v4,
        };
        addr.is_ipv4() == self.network.is_ipv4() && self.masked(addr) == self.network
    }

    /// True when the whole block lies in loopback, private (RFC 1918, IPv6 unique
    /// local), link-local or shared (RFC 6598) address space: where a proxy in front of
    /// Keel normally lives.
    pub fn is_private(&self) -> bool {
        const RANGES: [&str; 9] = [
            "127.0.0.0/8",
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "169.254.0.0/16",
            "100.64.0.0/10",
            "::1/128",
            "fc00::/7",
            "fe80::/10",
        ];
        RANGES
            .iter()
            .filter_map(|r| Cidr::parse(r).ok())
            .any(|range| self.prefix >= range.prefix && range.contains(self.network))
    }

    /// True for `0.0.0.0/0` and `::/0`: every address of its family.
    pub fn is_everything(&self) -> bool {
        self.prefix == 0
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// Whether a route's address list names the clients it serves or those it refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessMode {
    /// `allow = [..]`: only these clients; the rest get `403`.
    Allow,
    /// `deny = [..]`: these clients get `403`; the rest are served.
    Deny,
}

impl AccessMode {
    /// The config key.
    pub fn key(self) -> &'static str {
        match self {
            AccessMode::Allow => "allow",
            AccessMode::Deny => "deny",
        }
    }
}

/// A route's client address rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    /// Allow list or deny list.
    pub mode: AccessMode,
    /// The address blocks, in file order.
    pub blocks: Vec<Located<Cidr>>,
}

impl Access {
    /// True when a client at `addr` is served.
    pub fn admits(&self, addr: IpAddr) -> bool {
        let listed = self.blocks.iter().any(|b| b.value.contains(addr));
        match self.mode {
            AccessMode::Allow => listed,
            AccessMode::Deny => !listed,
        }
    }
}

/// Header names a request rule may neither set nor remove: Keel writes them itself
/// (routing host, request id, forwarding headers), and backends and logs rely on them.
pub const KEEL_REQUEST_HEADERS: &[&str] = &[
    "host",
    "x-request-id",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
];

/// Header names a response rule may neither set nor remove: Keel's own account of
/// the answer (the error reason and the generation that served it).
pub const KEEL_RESPONSE_HEADERS: &[&str] = &["keel-error", "x-keel-generation"];

/// Headers a route sets or removes on one direction of its traffic.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderRules {
    /// Lower-case name and value, in file order; replaces any header of that name.
    pub set: Vec<Located<(String, String)>>,
    /// Lower-case names removed (applied before `set`).
    pub remove: Vec<Located<String>>,
}

impl HeaderRules {
    /// True when the rules change nothing.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty()
    }

    /// `set a=1,b=2; remove c`: how the semantic diff shows the rules.
    pub fn describe(&self) -> String {
        if self.is_empty() {
            return "none".to_string();
        }
        let set: Vec<String> = self
            .set
            .iter()
            .map(|h| format!("{}={}", h.value.0, h.value.1))
            .collect();
        let remove: Vec<&str> = self.remove.iter().map(|h| h.value.as_str()).collect();
        match (set.is_empty(), remove.is_empty()) {
            (false, false) => format!("set {}; remove {}", set.join(","), remove.join(",")),
            (false, true) => format!("set {}", set.join(",")),
            _ => format!("remove {}", remove.join(",")),
        }
    }
}

/// The answer of a `respond` route: Keel writes it itself, no backend is asked.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FixedAnswer {
    /// The status code (100..=599, not 101).
    pub status: Located<u16>,
    /// The body, sent as is (at most [`crate::defaults::MAX_FIXED_ANSWER_BODY`] bytes).
    pub body: String,
    /// The `content-type` header value.
    pub content_type: String,
}

impl FixedAnswer {
    /// `200 text/plain (3 bytes)`: how the semantic diff shows the answer.
    pub fn describe(&self) -> String {
        format!(
            "{} {} ({} bytes)",
            self.status.value,
            self.content_type,
            self.body.len()
        )
    }
}

/// What a rate limit counts requests by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RateKey {
    /// The client address (the TCP peer).
    ClientIp,
    /// The value of a request header (lower-case name); requests without it share one
    /// bucket.
    Header(String),
    /// The value of a cookie; requests without it share one bucket.
    Cookie(String),
    /// The whole route: one bucket for every request.
    Route,
}

impl fmt::Display for RateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RateKey::ClientIp => f.write_str("client_ip"),
            RateKey::Header(name) => write!(f, "header:{name}"),
            RateKey::Cookie(name) => write!(f, "cookie:{name}"),
            RateKey::Route => f.write_str("route"),
        }
    }
}

/// A route's rate limit: a token bucket per key holding `burst` tokens, refilled at
/// `requests` per `per`; a request finding it empty is answered `429`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RateLimit {
    /// Tokens added per `per`.
    pub requests: u32,
    /// The refill period.
    pub per: std::time::Duration,
    /// Bucket size: requests a key may send at once after being idle.
    pub burst: u32,
    /// What a bucket belongs to.
    pub key: RateKey,
}

impl RateLimit {
    /// Sustained rate, in requests per second.
    pub fn per_second(&self) -> f64 {
        f64::from(self.requests) / self.per.as_secs_f64().max(1e-9)
    }

    /// `100/1s burst 50 by client_ip`: how the semantic diff shows the limit.
    pub fn describe(&self) -> String {
        format!(
            "{}/{} burst {} by {}",
            self.requests,
            crate::format_duration(self.per),
            self.burst,
            self.key
        )
    }
}

/// A route's path rewrite: the prefix its `path_prefix` matched is replaced before the
/// request is forwarded.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Rewrite {
    /// What the matched prefix becomes (starts with `/`).
    pub path_prefix: Located<String>,
}

impl Rewrite {
    /// The path a backend sees for `path` when the route matched `matched` (a prefix of
    /// `path`), or `None` when `path` does not start with it. The query is kept.
    pub fn apply(&self, matched: &str, path: &str) -> Option<String> {
        replace_prefix(&self.path_prefix.value, matched, path)
    }
}

/// `path` with its prefix `matched` replaced by `new` (a rewrite's or a redirect's
/// `path_prefix`), or `None` when `path` does not start with `matched`.
pub(crate) fn replace_prefix(new: &str, matched: &str, path: &str) -> Option<String> {
    let rest = path.strip_prefix(matched)?;
    // `/api` → `/` on `/api/x` gives `/x`, not `//x`.
    match rest.strip_prefix('/') {
        Some(tail) if new.ends_with('/') => Some(format!("{new}{tail}")),
        _ => Some(format!("{new}{rest}")),
    }
}

/// A content coding Keel can compress answers with (`compress = ["gzip", "br"]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContentCoding {
    /// `gzip` (RFC 1952).
    Gzip,
    /// `br`: Brotli (RFC 7932).
    Brotli,
}

impl ContentCoding {
    /// Every coding Keel knows, in the order the docs list them.
    pub const ALL: [ContentCoding; 2] = [ContentCoding::Gzip, ContentCoding::Brotli];

    /// The coding's index in [`ContentCoding::ALL`].
    pub fn index(self) -> usize {
        match self {
            ContentCoding::Gzip => 0,
            ContentCoding::Brotli => 1,
        }
    }

    /// The token of `content-encoding` and `accept-encoding` (and of the config).
    pub fn token(self) -> &'static str {
        match self {
            ContentCoding::Gzip => "gzip",
            ContentCoding::Brotli => "br",
        }
    }

    /// The coding a token names, without case; `x-gzip` is `gzip` (RFC 9110 §8.4.1.3).
    pub fn from_token(token: &str) -> Option<ContentCoding> {
        if token.eq_ignore_ascii_case("gzip") || token.eq_ignore_ascii_case("x-gzip") {
            Some(ContentCoding::Gzip)
        } else if token.eq_ignore_ascii_case("br") {
            Some(ContentCoding::Brotli)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_parse_and_contain() {
        let block = Cidr::parse("10.0.0.0/8").expect("valid");
        assert!(block.contains("10.9.8.7".parse().expect("ip")));
        assert!(block.contains("::ffff:10.1.1.1".parse().expect("ip")));
        assert!(!block.contains("11.0.0.1".parse().expect("ip")));
        assert!(!block.contains("::1".parse().expect("ip")));
        let v6 = Cidr::parse("2001:db8::/32").expect("valid");
        assert!(v6.contains("2001:db8:1::9".parse().expect("ip")));
        assert!(Cidr::parse("0.0.0.0/0").expect("valid").is_everything());
        assert_eq!(Cidr::parse("127.0.0.1").expect("valid").prefix, 32);
        assert!(Cidr::parse("10.1.2.3/8").is_err());
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("shop.example.com/8").is_err());
        assert!(Cidr::parse("10.1.0.0/16").expect("valid").is_private());
        assert!(Cidr::parse("::1").expect("valid").is_private());
        assert!(!Cidr::parse("10.0.0.0/7").expect("valid").is_private());
        assert!(!Cidr::parse("203.0.113.0/24").expect("valid").is_private());
    }

    #[test]
    fn rewrite_replaces_the_matched_prefix() {
        let to = |p: &str| Rewrite {
            path_prefix: Located::new(p.to_string(), crate::Span::new(0, 0)),
        };
        assert_eq!(
            to("/v2").apply("/api", "/api/x?q=1").as_deref(),
            Some("/v2/x?q=1")
        );
        assert_eq!(to("/v2").apply("/api", "/api").as_deref(), Some("/v2"));
        assert_eq!(to("/").apply("/api", "/api/x").as_deref(), Some("/x"));
        assert_eq!(
            to("/v2/").apply("/api/", "/api/x").as_deref(),
            Some("/v2/x")
        );
        assert_eq!(to("/v2").apply("/api", "/other"), None);
    }
}
