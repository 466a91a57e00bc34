//! Traffic files: the requests a blast radius is computed on.
//!
//! Three formats, recognised line by line, so they may even be mixed in one file:
//!
//! | line | format |
//! |---|---|
//! | `{"method":"GET","host":"shop.example.com","path":"/","headers":[["x-beta","1"]],"hash_key":"c42"}` | a `RequestShape` (what `GET /traffic/sample` serves) |
//! | `{"time":"…","request_id":"…","method":"GET","host":"…","path":"/cart","status":200,…}` | an access-log line (other fields ignored; `headers` is an object) |
//! | `GET https://shop.example.com/cart` | a hand-written `METHOD URL` |
//!
//! Blank lines and lines starting with `#` are skipped. A line that is none of the three
//! is an error naming `file:line`: a sample with holes would report a wrong blast
//! radius, so nothing is silently dropped. The one exception is a bad **last line that
//! does not end in a newline**: a log being written, or copied mid-write, ends in a
//! partial line, so it is skipped and reported in [`Traffic::truncated_line`].
//!
//! Hosts are normalized as the router does (lower case, port and trailing dot removed);
//! paths lose their query string; header names are lower-cased. Methods in JSON lines
//! are kept as sent (routing compares them case-sensitively, as the data plane does).

use std::path::Path;

use keel_route::{RequestShape, TlsShape};
use serde::Serialize;
use serde_json::{Map, Value};

/// Longest line a traffic file may have (64 KiB): a request head is bounded by the
/// proxy's `max_header_bytes`, whose default is the same.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Why a traffic file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TrafficError {
    /// The file could not be read at all.
    #[error("cannot read traffic file {file}: {source}")]
    Read {
        /// The file.
        file: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// One line is not a request in any of the three formats.
    #[error("{file}:{line}: {reason}")]
    BadLine {
        /// The file (as named by the caller).
        file: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong, and what was expected.
        reason: String,
    },
}

/// How many requests came in each format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FormatCounts {
    /// `RequestShape` JSON lines.
    pub shapes: usize,
    /// Access-log JSON lines.
    pub access_log: usize,
    /// `METHOD URL` lines.
    pub plain: usize,
}

/// The requests of a traffic file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    /// The requests, in file order.
    pub requests: Vec<RequestShape>,
    /// How many lines of each format.
    pub formats: FormatCounts,
    /// Line number of a partial last line that was skipped, if any.
    pub truncated_line: Option<usize>,
}

/// Reads and parses a traffic file (see the module doc for the formats).
pub fn read_traffic(path: &Path) -> Result<Traffic, TrafficError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| TrafficError::Read {
        file: file.clone(),
        source,
    })?;
    parse_traffic_bytes(&bytes, &file)
}

/// Parses traffic text; `name` is used in error messages (`name:line: reason`).
pub fn parse_traffic(text: &str, name: &str) -> Result<Traffic, TrafficError> {
    parse_traffic_bytes(text.as_bytes(), name)
}

/// Parses traffic bytes; a line that is not UTF-8 is an error naming its line.
pub fn parse_traffic_bytes(bytes: &[u8], name: &str) -> Result<Traffic, TrafficError> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let mut traffic = Traffic::default();
    let line_count = bytes.split(|b| *b == b'\n').count();
    for (index, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let number = index + 1;
        let last_unterminated = number == line_count && !raw.is_empty();
        match parse_line(raw) {
            Ok(None) => {}
            Ok(Some((request, format))) => {
                match format {
                    Format::Shape => traffic.formats.shapes += 1,
                    Format::AccessLog => traffic.formats.access_log += 1,
                    Format::Plain => traffic.formats.plain += 1,
                }
                traffic.requests.push(request);
            }
            Err(_) if last_unterminated => traffic.truncated_line = Some(number),
            Err(reason) => {
                return Err(TrafficError::BadLine {
                    file: name.to_string(),
                    line: number,
                    reason,
                });
            }
        }
    }
    Ok(traffic)
}

#[derive(Clone, Copy)]
enum Format {
    Shape,
    AccessLog,
    Plain,
}

/// Fields only access-log lines have; any of them marks a line as one.
const ACCESS_LOG_FIELDS: &[&str] = &["time", "request_id", "status", "duration_ms", "generation"];

fn parse_line(raw: &[u8]) -> Result<Option<(RequestShape, Format)>, String> {
    if raw.len() > MAX_LINE_BYTES {
        return Err(format!(
            "line is {} bytes long, more than the {MAX_LINE_BYTES} a request may have",
            raw.len()
        ));
    }
    let text = std::str::from_utf8(raw).map_err(|_| "line is not valid UTF-8".to_string())?;
    let text = text.trim();
    if text.is_empty() || text.starts_with('#') {
        return Ok(None);
    }
    if text.starts_with('{') {
        let value: Value = serde_json::from_str(text).map_err(|e| format!("bad JSON: {e}"))?;
        let Value::Object(object) = value else {
            return Err("expected a JSON object".into());
        };
        let format = if ACCESS_LOG_FIELDS.iter().any(|f| object.contains_key(*f)) {
            Format::AccessLog
        } else {
            Format::Shape
        };
        return json_request(&object).map(|r| Some((r, format)));
    }
    let line = keel_config::parse_request_line(text).map_err(|reason| {
        format!(
            "{reason} (expected a request shape or access-log JSON line, or \"METHOD URL\" \
             such as \"GET https://shop.example.com/cart\")"
        )
    })?;
    Ok(Some((
        RequestShape::new(&line.method, &line.host, &line.path),
        Format::Plain,
    )))
}

fn json_request(object: &Map<String, Value>) -> Result<RequestShape, String> {
    let method = string_field(object, "method")?;
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-') {
        return Err(format!("bad method `{method}`"));
    }
    let host = string_field(object, "host")?;
    let host = keel_config::strip_port(host.trim());
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    let path = string_field(object, "path")?;
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let headers = match object.get("headers") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(name, value)| header(name, value))
            .collect::<Result<_, _>>()?,
        Some(Value::Array(pairs)) => pairs
            .iter()
            .map(|pair| match pair.as_array().map(Vec::as_slice) {
                Some([Value::String(name), value]) => header(name, value),
                _ => Err("each `headers` entry must be a [name, value] pair of strings".into()),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err("`headers` must be an object or a list of [name, value] pairs".into());
        }
    };
    let hash_key = match object.get("hash_key") {
        None | Some(Value::Null) => None,
        Some(Value::String(key)) => Some(key.clone()),
        Some(_) => return Err("`hash_key` must be a string".into()),
    };
    let tls = match object.get("tls") {
        None | Some(Value::Null) => None,
        Some(value @ Value::Object(_)) => Some(
            serde_json::from_value::<TlsShape>(value.clone())
                .map_err(|e| format!("bad `tls`: {e}"))?,
        ),
        Some(_) => return Err("`tls` must be an object with `version` and `sni`".into()),
    };
    let client = match object.get("client") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(
            text.parse()
                .map_err(|_| format!("`client` `{text}` is not an IP address"))?,
        ),
        Some(_) => return Err("`client` must be a string".into()),
    };
    let at_ms = match object.get("at_ms") {
        None | Some(Value::Null) => None,
        Some(value) => Some(
            value
                .as_u64()
                .ok_or("`at_ms` must be milliseconds since the Unix epoch")?,
        ),
    };
    Ok(RequestShape {
        method: method.to_string(),
        host,
        path: path.to_string(),
        headers,
        hash_key,
        listener: match object.get("listener") {
            None | Some(Value::Null) => None,
            Some(Value::String(name)) => Some(name.clone()),
            Some(_) => return Err("`listener` must be a string".into()),
        },
        tls,
        client,
        at_ms,
    })
}

fn string_field<'v>(object: &'v Map<String, Value>, field: &str) -> Result<&'v str, String> {
    match object.get(field) {
        Some(Value::String(value)) => Ok(value),
        Some(_) => Err(format!("`{field}` must be a string")),
        None => Err(format!("missing `{field}`")),
    }
}

fn header(name: &str, value: &Value) -> Result<(String, String), String> {
    match value {
        Value::String(value) => Ok((name.to_ascii_lowercase(), value.clone())),
        _ => Err(format!("header `{name}` must have a string value")),
    }
}
