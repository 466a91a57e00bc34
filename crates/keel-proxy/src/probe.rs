//! One health probe: connect, `GET` the health path, and check both the status and the
//! service identity the backend answers with.
//!
//! Used by the active health checks and by `keel check --probe`, so a backend that
//! passes one passes the other. A probe speaks the pool's protocol: HTTP/1.1, or
//! HTTP/2 with prior knowledge for `h2c` pools (a backend that does not really speak
//! HTTP/2 fails it).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use keel_config::{Identity, UpstreamProtocol};
use serde::Serialize;
use tokio::net::TcpStream;

use crate::backend_tls::BackendTlsConnector;

/// Longest identity value kept from an answer (256 characters): a peer controls it.
const MAX_IDENTITY_LEN: usize = 256;
/// Most bytes of a probe response body read before the connection is dropped (64 KiB).
const MAX_PROBE_BODY: usize = 64 * 1024;

/// The verdict of one probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeVerdict {
    /// Reachable, 2xx, and the right identity (or none required).
    Ok,
    /// Unreachable, too slow, or not 2xx.
    Down,
    /// Answers, but identifies as another application (or not at all, when an
    /// identity is required).
    Misidentified,
}

/// What one probe saw.
#[derive(Clone, Debug, Serialize)]
pub struct ProbeOutcome {
    /// The backend.
    pub backend: SocketAddr,
    /// A TCP connection and an HTTP response were had.
    pub reachable: bool,
    /// Response status, if any.
    pub status: Option<u16>,
    /// Value of the identity header, if an identity is configured and the header came.
    pub identity_seen: Option<String>,
    /// The verdict.
    pub verdict: ProbeVerdict,
    /// A few words on why.
    pub detail: String,
}

/// Probes `addr` at `path` over HTTP/1.1 within `timeout`, checking `identity` when
/// given.
pub async fn probe_backend(
    addr: SocketAddr,
    path: &str,
    identity: Option<&Identity>,
    timeout: Duration,
) -> ProbeOutcome {
    probe_backend_over(UpstreamProtocol::Http1, None, addr, path, identity, timeout).await
}

/// Probes `addr` at `path` in the pool's `protocol` (through `tls` when the pool sets
/// it) within `timeout`, checking `identity` when given.
pub async fn probe_backend_over(
    protocol: UpstreamProtocol,
    tls: Option<&BackendTlsConnector>,
    addr: SocketAddr,
    path: &str,
    identity: Option<&Identity>,
    timeout: Duration,
) -> ProbeOutcome {
    let connected = std::sync::atomic::AtomicBool::new(false);
    let exchange = async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect failed: {e}"))?;
        connected.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        match tls {
            Some(tls) => {
                let stream = tls
                    .connect(addr, stream)
                    .await
                    .map_err(|e| format!("TLS failed: {e}"))?;
                exchange(protocol, addr, path, identity, stream).await
            }
            None => exchange(protocol, addr, path, identity, stream).await,
        }
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok((status, seen))) => judge(addr, status, seen, identity),
        Ok(Err(detail)) => down(addr, connected.into_inner(), detail),
        Err(_) => down(
            addr,
            connected.into_inner(),
            format!("no answer within {}", keel_config::format_duration(timeout)),
        ),
    }
}

fn down(backend: SocketAddr, reachable: bool, detail: String) -> ProbeOutcome {
    ProbeOutcome {
        backend,
        reachable,
        status: None,
        identity_seen: None,
        verdict: ProbeVerdict::Down,
        detail,
    }
}

fn judge(
    backend: SocketAddr,
    status: u16,
    seen: Option<String>,
    identity: Option<&Identity>,
) -> ProbeOutcome {
    let success = (200..300).contains(&status);
    let (verdict, detail) = match identity {
        Some(expected) => match seen.as_deref() {
            Some(value) if value == expected.equals => {
                if success {
                    (ProbeVerdict::Ok, format!("{status}, identity {value}"))
                } else {
                    (ProbeVerdict::Down, format!("status {status}"))
                }
            }
            Some(value) => (
                ProbeVerdict::Misidentified,
                format!("answers as `{value}`, expected `{}`", expected.equals),
            ),
            None if success => (
                ProbeVerdict::Misidentified,
                format!(
                    "no `{}` header: cannot prove it is `{}`",
                    expected.header, expected.equals
                ),
            ),
            None => (ProbeVerdict::Down, format!("status {status}")),
        },
        None if success => (ProbeVerdict::Ok, format!("{status}")),
        None => (ProbeVerdict::Down, format!("status {status}")),
    };
    ProbeOutcome {
        backend,
        reachable: true,
        status: Some(status),
        identity_seen: seen,
        verdict,
        detail,
    }
}

async fn exchange<S>(
    protocol: UpstreamProtocol,
    addr: SocketAddr,
    path: &str,
    identity: Option<&Identity>,
    stream: S,
) -> Result<(u16, Option<String>), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(stream);
    let response = if protocol.is_h2() {
        let (mut sender, connection) = http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| format!("HTTP/2 handshake failed: {e}"))?;
        // Aborted when this future ends, also when the caller's timeout drops it.
        let _driver = AbortOnDrop(tokio::spawn(connection));
        let request = http::Request::get(format!("http://{addr}{path}"))
            .header(http::header::USER_AGENT, "keel-health-check")
            .body(Empty::<Bytes>::new())
            .map_err(|e| format!("bad probe request: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("HTTP/2 request failed (does it speak HTTP/2?): {e}"))?;
        return Ok(read(response, identity).await);
    } else {
        let (mut sender, connection) = http1::handshake(io)
            .await
            .map_err(|e| format!("handshake failed: {e}"))?;
        let driver = AbortOnDrop(tokio::spawn(connection));
        let request = http::Request::get(path)
            .header(http::header::HOST, addr.to_string())
            .header(http::header::USER_AGENT, "keel-health-check")
            .header(http::header::CONNECTION, "close")
            .body(Empty::<Bytes>::new())
            .map_err(|e| format!("bad probe request: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        (response, driver)
    };
    Ok(read(response.0, identity).await)
}

/// The status and identity of a probe's answer, its body read (boundedly) so the
/// exchange completes cleanly.
async fn read(
    response: http::Response<hyper::body::Incoming>,
    identity: Option<&Identity>,
) -> (u16, Option<String>) {
    let status = response.status().as_u16();
    let seen = identity
        .and_then(|id| response.headers().get(id.header.as_str()))
        .map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .chars()
                .take(MAX_IDENTITY_LEN)
                .collect()
        });
    // Read (a bounded amount of) the body so the exchange completes cleanly.
    let _ = Limited::new(response.into_body(), MAX_PROBE_BODY)
        .collect()
        .await;
    (status, seen)
}

/// Aborts a spawned connection task when dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity {
            header: "x-service".into(),
            equals: "web".into(),
        }
    }

    fn addr() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 1))
    }

    #[test]
    fn verdicts() {
        assert_eq!(
            judge(addr(), 200, Some("web".into()), Some(&identity())).verdict,
            ProbeVerdict::Ok
        );
        assert_eq!(
            judge(addr(), 200, Some("legacy".into()), Some(&identity())).verdict,
            ProbeVerdict::Misidentified
        );
        assert_eq!(
            judge(addr(), 503, Some("legacy".into()), Some(&identity())).verdict,
            ProbeVerdict::Misidentified
        );
        assert_eq!(
            judge(addr(), 200, None, Some(&identity())).verdict,
            ProbeVerdict::Misidentified
        );
        assert_eq!(
            judge(addr(), 503, None, Some(&identity())).verdict,
            ProbeVerdict::Down
        );
        assert_eq!(
            judge(addr(), 503, Some("web".into()), Some(&identity())).verdict,
            ProbeVerdict::Down
        );
        assert_eq!(judge(addr(), 204, None, None).verdict, ProbeVerdict::Ok);
    }

    #[tokio::test]
    async fn a_closed_port_is_down() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let outcome = probe_backend(addr, "/healthz", None, Duration::from_secs(1)).await;
        assert_eq!(outcome.verdict, ProbeVerdict::Down);
        assert!(!outcome.reachable);
    }
}
