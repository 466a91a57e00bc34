//! One plain HTTP/1.1 exchange on a connection of its own, read off the wire as it came:
//! what the process tests of policies and redirects look at (the status line, the head
//! as text, the body), with no client library between the test and Keel's bytes.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An answer read off the socket: its status, its head (status line and header lines,
/// without the blank line) and its body, both as (lossy) text.
#[derive(Debug, Clone)]
pub struct RawAnswer {
    /// The status code from the status line.
    pub status: u16,
    /// The status line and the header lines, CRLF-separated.
    pub head: String,
    /// Everything after the head's blank line, as it came (not de-chunked).
    pub body: String,
}

impl RawAnswer {
    /// The value of header `name` (any case), trimmed; the first when there are several.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// `GET target` with `Host: host`, then `extra` header lines (each ending in CRLF, or
/// nothing), then `Connection: close`.
pub fn get_request(host: &str, target: &str, extra: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n")
}

/// Writes `bytes` (a request, perhaps after a PROXY protocol header) on a new connection
/// to `addr` and reads until the peer closes, for at most `within`. `None` when the
/// connection fails, the read takes longer, or what came back is not an HTTP answer.
pub async fn exchange(addr: SocketAddr, bytes: &[u8], within: Duration) -> Option<RawAnswer> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    stream.write_all(bytes).await.ok()?;
    let mut raw = Vec::new();
    tokio::time::timeout(within, stream.read_to_end(&mut raw))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    Some(RawAnswer {
        status: head.split(' ').nth(1)?.parse().ok()?,
        head: head.to_string(),
        body: body.to_string(),
    })
}
