//! The structured access log: one JSON object per line, written by a dedicated thread
//! so a slow disk never stalls a request. When the writer falls behind, lines are
//! dropped and counted rather than queued without bound.
//!
//! A record is opened when the response head is ready and written when the response
//! body is done (sent, or abandoned by the client), so `bytes` and `duration_ms` are
//! what the client really got. Fields, in order:
//!
//! | field | meaning |
//! |---|---|
//! | `time` | RFC 3339 time the request arrived (milliseconds, UTC) |
//! | `request_id` | the `x-request-id` sent to the backend (the client's, or a new one) |
//! | `method`, `host`, `path` | the request (host lower case without port, path without query) |
//! | `status` | status sent to the client |
//! | `client` | the client's IP address |
//! | `user_agent` | the `user-agent` header, at most [`MAX_USER_AGENT_BYTES`] (absent when none was sent) |
//! | `duration_ms` | arrival to the end of the response body, rounded to the microsecond |
//! | `ttfb_ms` | arrival to the response head, rounded to the microsecond |
//! | `bytes` | response body bytes sent |
//! | `complete` | false when the client went away before the body ended |
//! | `route`, `pool`, `backend` | where it went (`null` when it went nowhere) |
//! | `generation` | the generation that routed it |
//! | `retries` | extra attempts made |
//! | `error` | the `keel-error` reason, when Keel answered itself |
//! | `encoding` | `gzip` or `br` when the route's `compress` compressed the answer (absent otherwise) |
//! | `headers`, `hash_key` | header values routes match on, and the consistent-hash key |
//! | `scheme` | `https` on a TLS connection, else `http` |
//! | `listener` | the listener it came in on (absent when served without a name) |
//! | `tls` | on TLS: `{"sni": NAME, "version": "1.2" or "1.3"}` (`sni` absent without SNI) |
//!
//! A line is therefore also a valid traffic-file entry for `keel diff --traffic`: its
//! `method`, `host`, `path`, `headers`, `hash_key`, `listener` and `tls` are a
//! `keel_route::RequestShape`.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use http::HeaderValue;
use keel_route::RequestShape;
use serde::Serialize;
use tokio::time::Instant;

/// Lines buffered for the writer thread before new ones are dropped (65,536 lines).
const QUEUE: usize = 65_536;
/// Longest time a written line waits in the buffer before a flush (200 ms).
const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// Longest `user_agent` written, in bytes (256); longer ones are cut at a character
/// boundary, so a client cannot make the log lines arbitrarily long.
pub const MAX_USER_AGENT_BYTES: usize = 256;

/// One access-log line.
#[derive(Debug, Serialize)]
pub struct AccessRecord<'a> {
    /// RFC 3339 time the request arrived.
    pub time: String,
    /// The request id.
    pub request_id: &'a str,
    /// Method.
    pub method: &'a str,
    /// Host (lower case, no port).
    pub host: &'a str,
    /// Path without query.
    pub path: &'a str,
    /// Status sent to the client.
    pub status: u16,
    /// The client's IP address.
    pub client: &'a str,
    /// The `user-agent` header, cut to [`MAX_USER_AGENT_BYTES`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<&'a str>,
    /// Arrival to the end of the response body, in milliseconds (microsecond precision).
    pub duration_ms: f64,
    /// Arrival to the response head, in milliseconds (microsecond precision).
    pub ttfb_ms: f64,
    /// Response body bytes sent.
    pub bytes: u64,
    /// False when the client went away before the response body ended.
    pub complete: bool,
    /// Route name, if one matched.
    pub route: Option<&'a str>,
    /// Pool chosen.
    pub pool: Option<&'a str>,
    /// Backend that answered (or was tried last).
    pub backend: Option<SocketAddr>,
    /// Generation that routed the request.
    pub generation: u64,
    /// Extra attempts made.
    pub retries: u32,
    /// `keel-error` reason, when Keel answered itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
    /// The coding the answer was compressed with (`gzip`, `br`), when Keel compressed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding: Option<&'static str>,
    /// Values of the headers routes match on.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub headers: &'a [(String, String)],
    /// The consistent-hash key, if the pool hashes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash_key: Option<&'a str>,
    /// `https` on a TLS connection, else `http`.
    pub scheme: &'static str,
    /// The listener it came in on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listener: Option<&'a str>,
    /// SNI name and TLS version, on a TLS connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<&'a keel_route::TlsShape>,
}

/// Handle to the writer thread.
#[derive(Debug)]
pub(crate) struct AccessLog {
    sender: SyncSender<String>,
    dropped: AtomicU64,
}

impl AccessLog {
    /// Opens `"stdout"` or appends to a file.
    pub(crate) fn open(path: &str) -> std::io::Result<Self> {
        let out: Box<dyn Write + Send> = if path == "stdout" {
            Box::new(std::io::stdout())
        } else {
            Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            )
        };
        let (sender, receiver) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("keel-access-log".into())
            .spawn(move || write_lines(receiver, out))?;
        Ok(Self {
            sender,
            dropped: AtomicU64::new(0),
        })
    }

    /// Queues a record; never blocks.
    pub(crate) fn write(&self, record: &AccessRecord<'_>) {
        let Ok(mut line) = serde_json::to_string(record) else {
            return;
        };
        line.push('\n');
        if let Err(TrySendError::Full(_)) = self.sender.try_send(line) {
            self.dropped.fetch_add(1, Relaxed);
        }
    }

    /// Lines dropped so far.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }
}

/// A record waiting for its response body to end; written when dropped.
pub(crate) struct PendingRecord {
    pub(crate) log: Arc<AccessLog>,
    pub(crate) arrived: jiff::Timestamp,
    pub(crate) started: Instant,
    pub(crate) ttfb: Duration,
    pub(crate) request_id: HeaderValue,
    pub(crate) client: HeaderValue,
    pub(crate) user_agent: Option<HeaderValue>,
    pub(crate) shape: RequestShape,
    pub(crate) status: u16,
    pub(crate) route: Option<Arc<str>>,
    pub(crate) pool: Option<Arc<str>>,
    pub(crate) backend: Option<SocketAddr>,
    pub(crate) generation: u64,
    pub(crate) retries: u32,
    pub(crate) error: Option<&'static str>,
    pub(crate) encoding: Option<&'static str>,
    pub(crate) bytes: u64,
    pub(crate) complete: bool,
}

impl Drop for PendingRecord {
    fn drop(&mut self) {
        self.log.write(&AccessRecord {
            time: format!("{:.3}", self.arrived),
            request_id: self.request_id.to_str().unwrap_or(""),
            method: &self.shape.method,
            host: &self.shape.host,
            path: &self.shape.path,
            status: self.status,
            client: self.client.to_str().unwrap_or(""),
            user_agent: self
                .user_agent
                .as_ref()
                .and_then(|ua| ua.to_str().ok())
                .map(|ua| cut(ua, MAX_USER_AGENT_BYTES)),
            duration_ms: millis(self.started.elapsed()),
            ttfb_ms: millis(self.ttfb),
            bytes: self.bytes,
            complete: self.complete,
            route: self.route.as_deref(),
            pool: self.pool.as_deref(),
            backend: self.backend,
            generation: self.generation,
            retries: self.retries,
            error: self.error,
            encoding: self.encoding,
            headers: &self.shape.headers,
            hash_key: self.shape.hash_key.as_deref(),
            scheme: if self.shape.tls.is_some() {
                "https"
            } else {
                "http"
            },
            listener: self.shape.listener.as_deref(),
            tls: self.shape.tls.as_ref(),
        });
    }
}

/// A duration in milliseconds, rounded to the microsecond: `0.444`, never
/// `0.44406300000000004`.
fn millis(duration: Duration) -> f64 {
    duration.as_micros() as f64 / 1000.0
}

/// `text` cut to at most `max` bytes at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn write_lines(receiver: Receiver<String>, out: Box<dyn Write + Send>) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    loop {
        match receiver.recv_timeout(FLUSH_EVERY) {
            Ok(line) => {
                if out.write_all(line.as_bytes()).is_err() {
                    return;
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                let _ = out.flush();
            }
            Err(RecvTimeoutError::Disconnected) => {
                let _ = out.flush();
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{cut, millis};

    #[test]
    fn durations_are_rounded_to_the_microsecond() {
        assert_eq!(millis(Duration::from_nanos(444_063)), 0.444);
        assert_eq!(
            serde_json::to_string(&millis(Duration::from_nanos(444_063))).ok(),
            Some("0.444".to_string())
        );
        assert_eq!(millis(Duration::from_millis(1500)), 1500.0);
    }

    #[test]
    fn user_agents_are_cut_at_a_character_boundary() {
        assert_eq!(cut("curl/8", 256), "curl/8");
        assert_eq!(cut("ééé", 3), "é");
    }
}
