//! A route's `compress = ["gzip", "br"]`: which answers Keel compresses, with what, and
//! the headers that say so. The body itself is compressed as it streams by
//! [`crate::compress_body`].
//!
//! The coding is chosen from the request before it is forwarded ([`choose`]): among
//! the route's codings, the one the client's `accept-encoding` gives the highest
//! weight (`q`), ties going to the route's order; a coding at `q=0`, or not named and
//! not covered by `*`, is not acceptable. No `accept-encoding`, or a `HEAD` request:
//! nothing is compressed.
//!
//! The answer is then compressed only when it can gain and nothing relies on its bytes
//! ([`eligible`]): a status with a body that is not a part (not 1xx, 204, 206 or 304);
//! no `content-encoding` already (the backend compressed it, or chose not to); no
//! `content-range`; no `cache-control: no-transform` (RFC 9110 §7.7); a compressible
//! content type ([`COMPRESSIBLE_TYPES`], `text/*`, and the `+json` / `+xml` suffixes);
//! and a length that is unknown or at least [`MIN_COMPRESS_BYTES`].
//!
//! `text/event-stream` is not compressed: server-sent events are small messages on a
//! connection that stays open for hours, so each event would be flushed on its own (a
//! few bytes saved at best) while the encoder's window (up to half a MiB for brotli)
//! stays allocated for the connection's whole life.
//!
//! A compressed answer gets `content-encoding`, loses `content-length` (the length is
//! not known before the end; it goes out chunked, or as HTTP/2 frames) and
//! `accept-ranges` (ranges of the compressed bytes are not served), gets
//! `vary: accept-encoding` (a cache must not give it to a client that did not ask for
//! it), and its strong `etag` becomes weak (`W/"…"`): the bytes differ from the
//! backend's, so the validator no longer names them exactly (RFC 9110 §8.8.1).

use http::header::{
    ACCEPT_ENCODING, ACCEPT_RANGES, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE,
    CONTENT_TYPE, ETAG, HeaderMap, HeaderValue, VARY,
};
use http::{Method, Response, StatusCode};
use http_body::Body;
use keel_config::ContentCoding;

use crate::body::ResponseBody;

/// Answers shorter than this (1 KiB) are sent as they are: the coding's own framing
/// (18 bytes of gzip header and trailer) and the work cost more than they save. An
/// answer of unknown length is compressed.
pub(crate) const MIN_COMPRESS_BYTES: u64 = 1024;

/// Media types compressed besides `text/*` (except `text/event-stream`) and the
/// `+json` / `+xml` suffixes.
pub(crate) const COMPRESSIBLE_TYPES: [&str; 8] = [
    "application/json",
    "application/javascript",
    "application/x-javascript",
    "application/ecmascript",
    "application/xml",
    "application/wasm",
    "image/svg+xml",
    "application/x-ndjson",
];

/// Structured syntax suffixes (RFC 6839) that mark a compressible media type.
const COMPRESSIBLE_SUFFIXES: [&str; 2] = ["+json", "+xml"];

/// The coding to compress this request's answer with, if any (see the module docs).
pub(crate) fn choose(
    offered: &[ContentCoding],
    method: &Method,
    headers: &HeaderMap,
) -> Option<ContentCoding> {
    if method == Method::HEAD {
        return None;
    }
    let mut best: Option<(ContentCoding, u16)> = None;
    for &coding in offered {
        let weight = accepted_weight(headers, coding);
        if weight > 0 && best.is_none_or(|(_, w)| weight > w) {
            best = Some((coding, weight));
        }
    }
    best.map(|(coding, _)| coding)
}

/// The weight (in thousandths) the request's `accept-encoding` gives `coding`: its own
/// entry's, else that of `*`, else 0.
fn accepted_weight(headers: &HeaderMap, coding: ContentCoding) -> u16 {
    let mut own = None;
    let mut any = None;
    for value in headers.get_all(ACCEPT_ENCODING) {
        let Ok(text) = value.to_str() else {
            continue;
        };
        for element in text.split(',') {
            let mut parts = element.split(';');
            let token = parts.next().unwrap_or("").trim();
            if token.is_empty() {
                continue;
            }
            let weight = parts
                .find_map(|p| {
                    let (name, value) = p.split_once('=')?;
                    name.trim().eq_ignore_ascii_case("q").then(|| qvalue(value))
                })
                .unwrap_or(Some(1000))
                // A weight that is not a qvalue: not acceptable.
                .unwrap_or(0);
            if token == "*" {
                any = Some(weight);
            } else if ContentCoding::from_token(token) == Some(coding) {
                own = Some(own.map_or(weight, |w: u16| w.max(weight)));
            }
        }
    }
    own.or(any).unwrap_or(0)
}

/// A qvalue (`0`, `0.5`, `1.000`; RFC 9110 §12.4.2) in thousandths.
fn qvalue(text: &str) -> Option<u16> {
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = format!("{fraction:0<3}").parse::<u16>().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// True when the content type is one Keel compresses.
fn compressible(content_type: &str) -> bool {
    let media = content_type.split(';').next().unwrap_or("").trim();
    let lower = media.to_ascii_lowercase();
    if let Some(subtype) = lower.strip_prefix("text/") {
        return subtype != "event-stream";
    }
    COMPRESSIBLE_TYPES.contains(&lower.as_str())
        || COMPRESSIBLE_SUFFIXES.iter().any(|s| lower.ends_with(s))
}

/// True when the answer should be compressed (see the module docs).
pub(crate) fn eligible(response: &Response<ResponseBody>) -> bool {
    let status = response.status();
    if status.is_informational()
        || matches!(
            status,
            StatusCode::NO_CONTENT | StatusCode::PARTIAL_CONTENT | StatusCode::NOT_MODIFIED
        )
    {
        return false;
    }
    let headers = response.headers();
    if headers.contains_key(CONTENT_ENCODING) || headers.contains_key(CONTENT_RANGE) {
        return false;
    }
    let no_transform = headers.get_all(CACHE_CONTROL).iter().any(|v| {
        v.to_str().is_ok_and(|text| {
            text.split(',')
                .any(|d| d.trim().eq_ignore_ascii_case("no-transform"))
        })
    });
    if no_transform {
        return false;
    }
    let typed = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(compressible);
    if !typed {
        return false;
    }
    let length = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|text| text.trim().parse::<u64>().ok())
        .or_else(|| response.body().size_hint().exact());
    length.is_none_or(|length| length >= MIN_COMPRESS_BYTES)
}

/// Compresses the answer with `coding` when it is [`eligible`]; true when it did.
pub(crate) fn apply(response: &mut Response<ResponseBody>, coding: ContentCoding) -> bool {
    if !eligible(response) {
        return false;
    }
    let headers = response.headers_mut();
    headers.insert(CONTENT_ENCODING, HeaderValue::from_static(coding.token()));
    headers.remove(CONTENT_LENGTH);
    headers.remove(ACCEPT_RANGES);
    let varies = headers.get_all(VARY).iter().any(|v| {
        v.to_str().is_ok_and(|text| {
            text.split(',').any(|name| {
                let name = name.trim();
                name == "*" || name.eq_ignore_ascii_case("accept-encoding")
            })
        })
    });
    if !varies {
        headers.append(VARY, HeaderValue::from_static("accept-encoding"));
    }
    if let Some(etag) = headers.get(ETAG)
        && etag.as_bytes().first() == Some(&b'"')
    {
        let mut weak = b"W/".to_vec();
        weak.extend_from_slice(etag.as_bytes());
        if let Ok(weak) = HeaderValue::from_bytes(&weak) {
            headers.insert(ETAG, weak);
        }
    }
    let body = std::mem::replace(response.body_mut(), ResponseBody::empty());
    *response.body_mut() = body.compressed(coding);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepting(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            ACCEPT_ENCODING,
            HeaderValue::from_str(value).expect("value"),
        );
        headers
    }

    const BOTH: [ContentCoding; 2] = [ContentCoding::Gzip, ContentCoding::Brotli];

    #[test]
    fn the_client_weight_wins_and_ties_follow_the_route_order() {
        let get = Method::GET;
        let pick = |offered: &[ContentCoding], value: &str| {
            choose(offered, &get, &accepting(value)).map(ContentCoding::token)
        };
        assert_eq!(pick(&BOTH, "gzip, deflate, br"), Some("gzip"));
        assert_eq!(
            pick(&[ContentCoding::Brotli, ContentCoding::Gzip], "gzip, br"),
            Some("br")
        );
        assert_eq!(pick(&BOTH, "gzip;q=0.5, br"), Some("br"));
        assert_eq!(pick(&BOTH, "br;q=0, gzip;q=0"), None);
        assert_eq!(pick(&BOTH, "identity"), None);
        assert_eq!(pick(&BOTH, "*"), Some("gzip"));
        assert_eq!(pick(&BOTH, "*;q=0.1, gzip;q=0"), Some("br"));
        assert_eq!(pick(&BOTH, "X-GZIP ; Q=0.3"), Some("gzip"));
        assert_eq!(pick(&BOTH, "gzip;q=2"), None, "not a qvalue");
        assert_eq!(pick(&[ContentCoding::Brotli], "gzip"), None);
        assert_eq!(choose(&BOTH, &get, &HeaderMap::new()), None);
        assert_eq!(choose(&BOTH, &Method::HEAD, &accepting("gzip")), None);
    }

    #[test]
    fn qvalues_parse_as_thousandths() {
        assert_eq!(qvalue("1"), Some(1000));
        assert_eq!(qvalue("1.000"), Some(1000));
        assert_eq!(qvalue("0.25"), Some(250));
        assert_eq!(qvalue("0"), Some(0));
        assert_eq!(qvalue("0.0001"), None);
        assert_eq!(qvalue("1.5"), None);
        assert_eq!(qvalue("x"), None);
    }

    fn answer(status: u16, headers: &[(&str, &str)], body: &'static str) -> Response<ResponseBody> {
        let mut builder = Response::builder().status(status);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(ResponseBody::full(body)).expect("response")
    }

    #[test]
    fn only_answers_that_gain_are_compressed() {
        let big: &'static str = Box::leak("x".repeat(2048).into_boxed_str());
        let json = [("content-type", "application/json; charset=utf-8")];
        assert!(eligible(&answer(200, &json, big)));
        assert!(!eligible(&answer(200, &json, "{}")), "below the minimum");
        assert!(!eligible(&answer(206, &json, big)));
        assert!(!eligible(&answer(204, &json, "")));
        assert!(!eligible(&answer(
            200,
            &[("content-type", "image/png")],
            big
        )));
        assert!(!eligible(&answer(
            200,
            &[("content-type", "text/event-stream")],
            big
        )));
        assert!(eligible(&answer(
            200,
            &[("content-type", "application/ld+json")],
            big
        )));
        assert!(eligible(&answer(
            404,
            &[("content-type", "TEXT/HTML")],
            big
        )));
        assert!(!eligible(&answer(200, &[], big)), "no content type");
        let encoded = [("content-type", "text/plain"), ("content-encoding", "gzip")];
        assert!(!eligible(&answer(200, &encoded, big)));
        let no_transform = [
            ("content-type", "text/plain"),
            ("cache-control", "public, No-Transform"),
        ];
        assert!(!eligible(&answer(200, &no_transform, big)));
    }

    #[test]
    fn a_compressed_answer_says_so_and_weakens_its_etag() {
        let big: &'static str = Box::leak("y".repeat(4096).into_boxed_str());
        let mut response = answer(
            200,
            &[
                ("content-type", "text/html"),
                ("content-length", "4096"),
                ("etag", "\"v1\""),
                ("accept-ranges", "bytes"),
                ("vary", "cookie"),
            ],
            big,
        );
        assert!(apply(&mut response, ContentCoding::Brotli));
        let headers = response.headers();
        assert_eq!(
            headers.get(CONTENT_ENCODING).map(|v| v.as_bytes()),
            Some(&b"br"[..])
        );
        assert!(!headers.contains_key(CONTENT_LENGTH));
        assert!(!headers.contains_key(ACCEPT_RANGES));
        assert_eq!(
            headers.get(ETAG).map(|v| v.as_bytes()),
            Some(&b"W/\"v1\""[..])
        );
        let vary: Vec<&[u8]> = headers.get_all(VARY).iter().map(|v| v.as_bytes()).collect();
        assert_eq!(vary, [&b"cookie"[..], &b"accept-encoding"[..]]);
        let mut weak = answer(
            200,
            &[
                ("content-type", "text/html"),
                ("etag", "W/\"v1\""),
                ("vary", "Accept-Encoding"),
            ],
            big,
        );
        assert!(apply(&mut weak, ContentCoding::Gzip));
        assert_eq!(
            weak.headers().get(ETAG).map(|v| v.as_bytes()),
            Some(&b"W/\"v1\""[..])
        );
        assert_eq!(weak.headers().get_all(VARY).iter().count(), 1);
    }
}
