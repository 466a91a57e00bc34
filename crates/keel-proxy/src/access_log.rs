//! The structured access log: one JSON object per line, written by a dedicated thread
//! so a slow disk never stalls a request. When the writer falls behind, lines are
//! dropped and counted rather than queued without bound.
//!
//! A line is also a valid traffic file entry for `keel diff --traffic`: it carries the
//! method, host, path, the header values routes match on and the hash key.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use serde::Serialize;

/// Lines buffered for the writer thread before new ones are dropped (65,536 lines).
const QUEUE: usize = 65_536;
/// Longest time a written line waits in the buffer before a flush (200 ms).
const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// One access-log record.
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
    /// Time to response headers, in milliseconds.
    pub duration_ms: f64,
    /// Response body size when known (`content-length`).
    pub bytes: Option<u64>,
    /// Route name, if one matched.
    pub route: Option<&'a str>,
    /// Pool chosen.
    pub pool: Option<&'a str>,
    /// Backend that answered.
    pub backend: Option<String>,
    /// Generation that routed the request.
    pub generation: u64,
    /// Extra attempts made.
    pub retries: u32,
    /// `keel-error` reason, when Keel answered itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
    /// Values of the headers routes match on.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(&'a str, &'a str)>,
    /// The consistent-hash key, if the pool hashes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash_key: Option<&'a str>,
}

/// Handle to the writer thread.
#[derive(Debug)]
pub(crate) struct AccessLog {
    sender: SyncSender<String>,
    dropped: Arc<AtomicU64>,
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
            dropped: Arc::new(AtomicU64::new(0)),
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

/// Now, as RFC 3339 with milliseconds.
pub(crate) fn now_rfc3339() -> String {
    let now = jiff::Timestamp::now();
    format!("{now:.3}")
}
