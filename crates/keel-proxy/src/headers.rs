//! Header rules at the proxy boundary: hop-by-hop headers never cross it, forwarding
//! headers are set, and every request gets an id.
//!
//! These run on every request and response, so they avoid allocating: the hop-by-hop
//! scan is one pass over the header names (almost always finding nothing), and request
//! ids are cut from a per-thread slab instead of each taking its own allocation.

use std::cell::RefCell;
use std::time::Duration;

use bytes::BytesMut;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1), plus the
/// legacy `proxy-connection` and `keep-alive`. Bit `i` of a scan mask stands for entry `i`.
static HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
];
/// Scan-mask bit of `Connection` (entry 0 of [`HOP_BY_HOP`]).
const CONNECTION_BIT: u8 = 1;
/// Scan-mask bit of `Transfer-Encoding` (entry 3 of [`HOP_BY_HOP`]).
const TRANSFER_ENCODING_BIT: u8 = 1 << 3;
/// Scan-mask bit of `Keep-Alive` (entry 5 of [`HOP_BY_HOP`]).
const KEEP_ALIVE_BIT: u8 = 1 << 5;

/// `x-forwarded-for`.
pub(crate) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `x-forwarded-proto`.
pub(crate) static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `x-forwarded-host`.
pub(crate) static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// `x-request-id`.
pub(crate) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// `x-keel-generation`: which generation routed the request.
pub(crate) static X_KEEL_GENERATION: HeaderName = HeaderName::from_static("x-keel-generation");
/// `keel-error`: why Keel answered instead of a backend.
pub(crate) static KEEL_ERROR: HeaderName = HeaderName::from_static("keel-error");

/// Bytes of request ids cut from one slab allocation (1,024 ids of 32 bytes).
const ID_SLAB_BYTES: usize = 32 * 1024;

thread_local! {
    /// Where this thread's request ids are written; each id shares the slab's allocation.
    static ID_SLAB: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// The scan-mask bit of a header name, 0 when it is end-to-end.
///
/// Runs for every header of every request and response: the name's length (names are
/// stored lowercase) rules out nearly every end-to-end header before any comparison.
#[inline]
fn hop_by_hop_bit(name: &HeaderName) -> u8 {
    let name = name.as_str();
    let candidates: &[usize] = match name.len() {
        2 => &[1],     // te
        7 => &[2, 4],  // trailer, upgrade
        10 => &[0, 5], // connection, keep-alive
        16 => &[6],    // proxy-connection
        17 => &[3],    // transfer-encoding
        _ => return 0,
    };
    candidates
        .iter()
        .find(|&&i| HOP_BY_HOP[i].as_str() == name)
        .map_or(0, |&i| 1 << i)
}

/// Removes hop-by-hop headers, including any the `Connection` header names, and the
/// `Content-Length` of a message that came framed by `Transfer-Encoding`.
///
/// A message with both was framed by `Transfer-Encoding` (RFC 9112 §6.3), so its
/// `Content-Length` is not its length, and a proxy must remove it before forwarding.
/// hyper drops it from requests itself, but not from a backend's response: left in,
/// hyper would frame the answer to the client by it, and a backend sending
/// `Content-Length: 100` with a two-byte chunked body would cut the client's answer
/// short.
///
/// Returns how long the sender said it keeps an idle connection open
/// (`Keep-Alive: timeout=N`, RFC 2068 §19.7.1, sent by Node, Apache and others): a
/// backend's announcement lets its pool stop reusing the connection before the backend
/// closes it. A client's is ignored.
#[inline]
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) -> Option<Duration> {
    let found = headers
        .keys()
        .fold(0u8, |mask, name| mask | hop_by_hop_bit(name));
    if found == 0 {
        return None;
    }
    let announced = if found & KEEP_ALIVE_BIT != 0 {
        headers
            .get("keep-alive")
            .and_then(|value| keep_alive_timeout(value.as_bytes()))
    } else {
        None
    };
    if found & CONNECTION_BIT != 0 {
        remove_connection_named(headers);
    }
    if found & TRANSFER_ENCODING_BIT != 0 {
        headers.remove(header::CONTENT_LENGTH);
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate().skip(1) {
        if found & (1 << i) != 0 {
            headers.remove(name);
        }
    }
    announced
}

/// The `timeout=N` parameter (whole seconds) of a `Keep-Alive` value such as
/// `timeout=5, max=100`; `None` when it is missing or not a number.
fn keep_alive_timeout(value: &[u8]) -> Option<Duration> {
    value.split(|&b| b == b',').find_map(|parameter| {
        let (name, seconds) = parameter.trim_ascii().split_at_checked(b"timeout=".len())?;
        if !name.eq_ignore_ascii_case(b"timeout=") {
            return None;
        }
        let seconds = std::str::from_utf8(seconds.trim_ascii()).ok()?;
        seconds
            .parse::<u32>()
            .ok()
            .map(|s| Duration::from_secs(s.into()))
    })
}

/// Whether a `Connection` token names a header Keel relies on or sets itself, which
/// stays whatever the sender listed: `host` (routing, and the backend's own virtual
/// hosts), the framing headers (`content-length`; `transfer-encoding` is re-framed by
/// hyper anyway), `x-request-id` and every `x-forwarded-*`. Without this,
/// `Connection: host` sent the backend an HTTP/1.1 request with no Host after Keel
/// had routed on it, and `Connection: x-request-id` dropped the request's id.
pub(crate) fn is_kept_whatever_connection_says(token: &str) -> bool {
    const KEPT: [&str; 4] = [
        "host",
        "content-length",
        "transfer-encoding",
        "x-request-id",
    ];
    const FORWARDED_PREFIX: &str = "x-forwarded-";
    KEPT.iter().any(|kept| token.eq_ignore_ascii_case(kept))
        || token
            .get(..FORWARDED_PREFIX.len())
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case(FORWARDED_PREFIX))
}

/// Removes `Connection` and every header its tokens name (`Connection: close, x-secret`),
/// except those Keel relies on ([`is_kept_whatever_connection_says`]). The fixed
/// hop-by-hop names are left to the caller.
fn remove_connection_named(headers: &mut HeaderMap) {
    // One lookup for the usual single value (backends send `Connection: keep-alive` on
    // every answer); further values, rare, are gathered before the map is touched again.
    let header::Entry::Occupied(entry) = headers.entry(header::CONNECTION) else {
        return;
    };
    let mut values = entry.remove_entry_mult().1;
    let first = values.next();
    let more: Vec<HeaderValue> = values.collect();
    for value in first.iter().chain(&more) {
        remove_named_by(headers, value);
    }
}

fn remove_named_by(headers: &mut HeaderMap, connection: &HeaderValue) {
    // The usual single token, as backends send it on every answer: a `keep-alive` header
    // goes with the fixed list anyway.
    let bytes = connection.as_bytes();
    if bytes.eq_ignore_ascii_case(b"keep-alive") {
        return;
    }
    // `close` is an option, but a header named `close` is hop-by-hop all the same
    // (RFC 9110 §7.6.1 lists no exception): one lookup on the answers that end their
    // connection.
    if bytes.eq_ignore_ascii_case(b"close") {
        headers.remove("close");
        return;
    }
    let Ok(text) = connection.to_str() else {
        return;
    };
    for token in text.split(',').map(str::trim) {
        if token.is_empty()
            || token.eq_ignore_ascii_case("keep-alive")
            || is_kept_whatever_connection_says(token)
        {
            continue;
        }
        // A `&str` key is looked up case-insensitively without allocating; a token
        // that is no valid header name simply matches nothing.
        headers.remove(token);
    }
}

/// Sets the forwarding headers on a request bound for a backend.
///
/// `client_ip` is the connection's peer address, pre-rendered once per connection.
/// Every incoming `X-Forwarded-For` line is kept, in order, joined into one list with
/// the peer appended last (RFC 9110 §5.3 makes several lines one comma-separated
/// list): a proxy in front that adds its own line, as HAProxy does, must not lose it.
/// Keel believes only the address it appends; see docs/forwarding.md.
/// `x-forwarded-proto` is `https` when the client connection is TLS (`https`), else
/// `http`: whatever a client sent is replaced.
#[inline]
pub(crate) fn set_forwarding(
    headers: &mut HeaderMap,
    client_ip: &HeaderValue,
    host: Option<&HeaderValue>,
    https: bool,
) {
    match headers.entry(&X_FORWARDED_FOR) {
        header::Entry::Occupied(mut existing) => {
            let mut value = Vec::new();
            for line in existing.iter() {
                value.extend_from_slice(line.as_bytes());
                value.extend_from_slice(b", ");
            }
            value.extend_from_slice(client_ip.as_bytes());
            existing.insert(HeaderValue::from_bytes(&value).unwrap_or_else(|_| client_ip.clone()));
        }
        header::Entry::Vacant(slot) => {
            slot.insert(client_ip.clone());
        }
    }
    let proto = if https { "https" } else { "http" };
    headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    if let Some(host) = host {
        headers.insert(&X_FORWARDED_HOST, host.clone());
    }
}

/// Gives the request an id: the client's `x-request-id` stays, or a new random one is
/// added. Returns it borrowed: most callers only need it to be there.
#[inline]
pub(crate) fn ensure_request_id(headers: &mut HeaderMap) -> &HeaderValue {
    match headers.entry(&X_REQUEST_ID) {
        header::Entry::Occupied(existing) => existing.into_mut(),
        header::Entry::Vacant(slot) => slot.insert(new_request_id()),
    }
}

/// The two lowercase hex digits of every byte value: a request id is written a byte,
/// not a nibble, at a time.
static HEX_PAIRS: [[u8; 2]; 256] = {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut pairs = [[0u8; 2]; 256];
    let mut byte = 0;
    while byte < 256 {
        pairs[byte] = [HEX[byte >> 4], HEX[byte & 0xf]];
        byte += 1;
    }
    pairs
};

/// 32 hex digits of randomness, written into this thread's id slab.
fn new_request_id() -> HeaderValue {
    let mut digits = [0u8; 32];
    let random =
        (u128::from(fastrand::u64(..)) << 64 | u128::from(fastrand::u64(..))).to_le_bytes();
    for (pair, byte) in digits.chunks_exact_mut(2).zip(random) {
        pair.copy_from_slice(&HEX_PAIRS[usize::from(byte)]);
    }
    let bytes = ID_SLAB.with_borrow_mut(|slab| {
        if slab.capacity() < digits.len() {
            *slab = BytesMut::with_capacity(ID_SLAB_BYTES);
        }
        slab.extend_from_slice(&digits);
        slab.split().freeze()
    });
    HeaderValue::from_maybe_shared(bytes).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, X-Secret"),
        );
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert("x-kept", HeaderValue::from_static("1"));
        assert_eq!(strip_hop_by_hop(&mut headers), Some(Duration::from_secs(5)));
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("x-kept"));
    }

    #[test]
    fn the_keep_alive_timeout_is_read_wherever_it_stands() {
        let timeout = |value: &str| keep_alive_timeout(value.as_bytes());
        assert_eq!(timeout("timeout=5, max=100"), Some(Duration::from_secs(5)));
        assert_eq!(timeout("max=99,TimeOut=2"), Some(Duration::from_secs(2)));
        assert_eq!(timeout(" timeout= 0 "), Some(Duration::ZERO));
        assert_eq!(timeout("max=100"), None);
        assert_eq!(timeout("timeout=soon"), None);
        assert_eq!(timeout("timeout=-1"), None);
        assert_eq!(timeout("timeouts=5"), None);
        assert_eq!(timeout(""), None);
        let mut without = HeaderMap::new();
        without.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        assert_eq!(strip_hop_by_hop(&mut without), None);
    }

    #[test]
    fn a_length_goes_with_transfer_encoding_and_stays_without_it() {
        let mut framed_twice = HeaderMap::new();
        framed_twice.insert(header::CONTENT_LENGTH, HeaderValue::from_static("100"));
        framed_twice.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        strip_hop_by_hop(&mut framed_twice);
        assert!(framed_twice.is_empty(), "{framed_twice:?}");
        let mut by_length = HeaderMap::new();
        by_length.insert(header::CONTENT_LENGTH, HeaderValue::from_static("100"));
        by_length.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        strip_hop_by_hop(&mut by_length);
        assert_eq!(
            by_length.get(header::CONTENT_LENGTH).map(|v| v.as_bytes()),
            Some(&b"100"[..])
        );
    }

    #[test]
    fn a_header_named_close_goes_when_connection_says_close() {
        for connection in ["close", "Close", "close, x-other", "x-other,close"] {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONNECTION, HeaderValue::from_static(connection));
            headers.insert("close", HeaderValue::from_static("secret"));
            headers.insert("x-other", HeaderValue::from_static("1"));
            headers.insert("x-kept", HeaderValue::from_static("1"));
            strip_hop_by_hop(&mut headers);
            assert!(!headers.contains_key("close"), "{connection}: {headers:?}");
            assert!(headers.contains_key("x-kept"), "{connection}: {headers:?}");
        }
    }

    #[test]
    fn several_connection_headers_are_all_honoured() {
        let mut headers = HeaderMap::new();
        headers.append(header::CONNECTION, HeaderValue::from_static("x-a"));
        headers.append(header::CONNECTION, HeaderValue::from_static("x-b, upgrade"));
        headers.insert("x-a", HeaderValue::from_static("1"));
        headers.insert("x-b", HeaderValue::from_static("1"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::HOST, HeaderValue::from_static("h"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1, "{headers:?}");
        assert!(headers.contains_key(header::HOST));
    }

    #[test]
    fn every_hop_by_hop_name_has_its_own_bit() {
        for (i, name) in HOP_BY_HOP.iter().enumerate() {
            assert_eq!(hop_by_hop_bit(name), 1 << i, "{name}");
        }
        for name in ["host", "x-te", "trailers", "connectionx", "keep-alivex"] {
            let name = HeaderName::from_bytes(name.as_bytes()).expect("valid name");
            assert_eq!(hop_by_hop_bit(&name), 0, "{name}");
        }
    }

    #[test]
    fn end_to_end_headers_are_left_alone() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("h"));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("3"));
        headers.insert("x-keep-alive-ish", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 3);
    }

    #[test]
    fn forwarded_for_appends_to_an_existing_chain() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        let host = HeaderValue::from_static("shop.example.com");
        set_forwarding(
            &mut headers,
            &HeaderValue::from_static("127.0.0.1"),
            Some(&host),
            false,
        );
        assert_eq!(headers["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers["x-forwarded-host"], "shop.example.com");
    }

    #[test]
    fn forwarded_for_joins_every_line_then_appends() {
        let mut headers = HeaderMap::new();
        headers.append("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        headers.append(
            "x-forwarded-for",
            HeaderValue::from_static("10.0.0.1, 10.0.0.2"),
        );
        set_forwarding(
            &mut headers,
            &HeaderValue::from_static("127.0.0.1"),
            None,
            true,
        );
        let lines: Vec<_> = headers.get_all("x-forwarded-for").iter().collect();
        assert_eq!(lines, ["6.6.6.6, 10.0.0.1, 10.0.0.2, 127.0.0.1"]);
        assert_eq!(headers["x-forwarded-proto"], "https");
    }

    #[test]
    fn connection_cannot_remove_what_keel_relies_on() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static(
                "Host, x-request-id, X-Forwarded-For, x-forwarded-host, content-length, x-other",
            ),
        );
        for name in [
            "host",
            "x-request-id",
            "x-forwarded-for",
            "x-forwarded-host",
            "content-length",
            "x-other",
        ] {
            headers.insert(name, HeaderValue::from_static("1"));
        }
        strip_hop_by_hop(&mut headers);
        let mut left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(
            left,
            [
                "content-length",
                "host",
                "x-forwarded-for",
                "x-forwarded-host",
                "x-request-id",
            ]
        );
    }

    #[test]
    fn request_ids_are_kept_or_made_and_differ() {
        let mut headers = HeaderMap::new();
        let made = ensure_request_id(&mut headers).clone();
        assert_eq!(made.len(), 32);
        assert!(made.as_bytes().iter().all(u8::is_ascii_hexdigit));
        assert_eq!(ensure_request_id(&mut headers), &made);
        let ids: std::collections::HashSet<HeaderValue> =
            (0..3000).map(|_| new_request_id()).collect();
        assert_eq!(ids.len(), 3000, "ids repeat across slab refills");
    }
}
