//! One health probe: connect, `GET` the health path (or call the standard gRPC
//! `grpc.health.v1.Health/Check` for a pool with `kind = "grpc"`), and check both the
//! answer and the service identity the backend answers with.
//!
//! Used by the active health checks and by `keel check --probe`, so a backend that
//! passes one passes the other. A probe speaks the pool's protocol: HTTP/1.1, or
//! HTTP/2 with prior knowledge for `h2c` pools (a backend that does not really speak
//! HTTP/2 fails it).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use keel_config::{HealthCheck, Identity, UpstreamProtocol};
use serde::Serialize;
use tokio::net::TcpStream;

use crate::backend_tls::BackendTlsConnector;
use crate::grpc_health::{self, ServingStatus};

/// Longest identity value kept from an answer (256 characters): a peer controls it.
const MAX_IDENTITY_LEN: usize = 256;
/// Most bytes of a probe response body read before the connection is dropped (64 KiB).
const MAX_PROBE_BODY: usize = 64 * 1024;

/// What a probe asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeTarget<'a> {
    /// `GET` this path; a 2xx passes.
    Get(&'a str),
    /// `grpc.health.v1.Health/Check` for this service name (`""`: the whole server);
    /// `grpc-status` 0 with `SERVING` passes.
    GrpcHealth(&'a str),
}

impl<'a> ProbeTarget<'a> {
    /// What the health check `health` asks, or a `GET` of `default_path` without one.
    pub fn of(health: Option<&'a HealthCheck>, default_path: &'a str) -> Self {
        match health {
            Some(HealthCheck {
                grpc_service: Some(service),
                ..
            }) => ProbeTarget::GrpcHealth(service),
            Some(health) => ProbeTarget::Get(&health.path),
            None => ProbeTarget::Get(default_path),
        }
    }
}

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
    probe_backend_over(
        UpstreamProtocol::Http1,
        None,
        addr,
        ProbeTarget::Get(path),
        identity,
        timeout,
    )
    .await
}

/// Probes `addr` for `target` in the pool's `protocol` (through `tls` when the pool
/// sets it) within `timeout`, checking `identity` when given.
pub async fn probe_backend_over(
    protocol: UpstreamProtocol,
    tls: Option<&BackendTlsConnector>,
    addr: SocketAddr,
    target: ProbeTarget<'_>,
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
                exchange(protocol, addr, target, identity, stream).await
            }
            None => exchange(protocol, addr, target, identity, stream).await,
        }
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(answer)) => judge(addr, answer, identity),
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

/// What came back from one probe.
#[derive(Debug)]
struct Answer {
    /// The HTTP status.
    status: u16,
    /// The identity header's value, if asked for and present.
    seen: Option<String>,
    /// For a gRPC health probe: the serving status, or why there is none.
    grpc: Option<Result<ServingStatus, String>>,
}

fn judge(backend: SocketAddr, answer: Answer, identity: Option<&Identity>) -> ProbeOutcome {
    let Answer { status, seen, grpc } = answer;
    let failure = match &grpc {
        _ if !(200..300).contains(&status) => Some(format!("status {status}")),
        Some(Ok(ServingStatus::Serving)) | None => None,
        Some(Ok(other)) => Some(format!("gRPC health {other}")),
        Some(Err(why)) => Some(format!("gRPC health check failed: {why}")),
    };
    let success = failure.is_none();
    let failure = failure.unwrap_or_default();
    let passed = if grpc.is_some() {
        "SERVING".to_string()
    } else {
        status.to_string()
    };
    let (verdict, detail) = match identity {
        Some(expected) => match seen.as_deref() {
            Some(value) if value == expected.equals => {
                if success {
                    (ProbeVerdict::Ok, format!("{passed}, identity {value}"))
                } else {
                    (ProbeVerdict::Down, failure)
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
            None => (ProbeVerdict::Down, failure),
        },
        None if success => (ProbeVerdict::Ok, passed),
        None => (ProbeVerdict::Down, failure),
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
    target: ProbeTarget<'_>,
    identity: Option<&Identity>,
    stream: S,
) -> Result<Answer, String>
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
        let request = match target {
            ProbeTarget::Get(path) => http::Request::get(format!("http://{addr}{path}"))
                .header(http::header::USER_AGENT, "keel-health-check")
                .body(Full::new(Bytes::new())),
            ProbeTarget::GrpcHealth(service) => {
                http::Request::post(format!("http://{addr}{}", grpc_health::HEALTH_CHECK_PATH))
                    .header(http::header::USER_AGENT, "keel-health-check")
                    .header(http::header::CONTENT_TYPE, "application/grpc")
                    .header(http::header::TE, "trailers")
                    .body(Full::new(grpc_health::request_body(service)))
            }
        }
        .map_err(|e| format!("bad probe request: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("HTTP/2 request failed (does it speak HTTP/2?): {e}"))?;
        let grpc = matches!(target, ProbeTarget::GrpcHealth(_));
        return Ok(read(response, identity, grpc).await);
    } else {
        let ProbeTarget::Get(path) = target else {
            return Err("a gRPC health check needs an HTTP/2 pool (protocol = \"h2c\")".into());
        };
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
    Ok(read(response.0, identity, false).await)
}

/// The status and identity of a probe's answer, its body read (boundedly) so the
/// exchange completes cleanly, and for a gRPC health probe its serving status.
async fn read(
    response: http::Response<hyper::body::Incoming>,
    identity: Option<&Identity>,
    grpc: bool,
) -> Answer {
    let status = response.status().as_u16();
    let seen = identity
        .and_then(|id| response.headers().get(id.header.as_str()))
        .map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .chars()
                .take(MAX_IDENTITY_LEN)
                .collect()
        });
    let headers_status = grpc_status(response.headers());
    // Read (a bounded amount of) the body so the exchange completes cleanly.
    let body = Limited::new(response.into_body(), MAX_PROBE_BODY)
        .collect()
        .await;
    let grpc = grpc.then(|| {
        let body = body.map_err(|e| format!("reading the answer: {e}"))?;
        // Trailers-only answers carry grpc-status in the headers.
        let status = headers_status.or_else(|| body.trailers().and_then(grpc_status));
        match status {
            Some((0, _)) => grpc_health::read_response(&body.to_bytes()),
            Some((code, message)) => Err(format!("grpc-status {code} {message}")),
            None => Err("no grpc-status in the answer (is it a gRPC server?)".into()),
        }
    });
    Answer { status, seen, grpc }
}

/// The `grpc-status` code and (bounded) `grpc-message` of a header map, if it has one.
fn grpc_status(headers: &http::HeaderMap) -> Option<(u32, String)> {
    let code = headers.get("grpc-status")?.to_str().ok()?.parse().ok()?;
    let message = headers
        .get("grpc-message")
        .map(|m| {
            // gRPC percent-encodes it.
            percent_encoding::percent_decode(m.as_bytes())
                .decode_utf8_lossy()
                .chars()
                .take(MAX_IDENTITY_LEN)
                .collect()
        })
        .unwrap_or_default();
    Some((code, message))
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

    fn http(status: u16, seen: Option<&str>) -> Answer {
        Answer {
            status,
            seen: seen.map(String::from),
            grpc: None,
        }
    }

    #[test]
    fn grpc_verdicts() {
        let grpc = |status| Answer {
            status: 200,
            seen: Some("web".into()),
            grpc: Some(status),
        };
        let id = Some(identity());
        let ok = judge(addr(), grpc(Ok(ServingStatus::Serving)), id.as_ref());
        assert_eq!(ok.verdict, ProbeVerdict::Ok);
        let not = judge(addr(), grpc(Ok(ServingStatus::NotServing)), id.as_ref());
        assert_eq!(not.verdict, ProbeVerdict::Down);
        assert!(not.detail.contains("NOT_SERVING"), "{}", not.detail);
        let error = judge(addr(), grpc(Err("grpc-status 5".into())), None);
        assert_eq!(error.verdict, ProbeVerdict::Down);
    }

    #[test]
    fn verdicts() {
        assert_eq!(
            judge(addr(), http(200, Some("web")), Some(&identity())).verdict,
            ProbeVerdict::Ok
        );
        assert_eq!(
            judge(addr(), http(200, Some("legacy")), Some(&identity())).verdict,
            ProbeVerdict::Misidentified
        );
        assert_eq!(
            judge(addr(), http(503, Some("legacy")), Some(&identity())).verdict,
            ProbeVerdict::Misidentified
        );
        assert_eq!(
            judge(addr(), http(200, None), Some(&identity())).verdict,
            ProbeVerdict::Misidentified
        );
        assert_eq!(
            judge(addr(), http(503, None), Some(&identity())).verdict,
            ProbeVerdict::Down
        );
        assert_eq!(
            judge(addr(), http(503, Some("web")), Some(&identity())).verdict,
            ProbeVerdict::Down
        );
        assert_eq!(
            judge(addr(), http(204, None), None).verdict,
            ProbeVerdict::Ok
        );
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
