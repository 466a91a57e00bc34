//! Accepting admin connections: a cap on how many are open at once, a bound on how
//! long a connection may take to send a request head or sit idle, and a bound on how
//! long a request body may take to arrive.
//!
//! The admin listener shares the process's file descriptors with the data plane. Left
//! unbounded, idle admin connections (no token needed to open one) took every
//! descriptor, and new data-plane clients were refused (`Too many open files`). So: at
//! most [`MAX_ADMIN_CONNECTIONS`] are open (a connection past the cap is closed as soon
//! as it is accepted), each must send a complete request head within
//! [`ADMIN_HEADER_READ_TIMEOUT`] of opening or of its previous answer (which is also
//! how long an idle keep-alive connection is kept), and a request body must arrive
//! within [`ADMIN_BODY_READ_TIMEOUT`] (`408` otherwise, see [`read_body_in_time`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::handlers::failure;
use crate::api::MAX_APPLY_BODY_BYTES;

/// Admin connections open at once (64); one past the cap is closed when accepted.
/// The CLI opens one per command: 64 is many operators and scripts at once, and a
/// small share of any descriptor limit Keel runs under.
pub const MAX_ADMIN_CONNECTIONS: usize = 64;
/// Time an admin connection has to send a complete request head, counted from when it
/// opens or from its previous answer, so also how long it may sit idle (10 seconds).
pub const ADMIN_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a request body has to arrive in full (30 seconds): a 16 MiB apply body on
/// loopback takes milliseconds.
pub const ADMIN_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause after a failed accept (out of file descriptors and the like) (50 ms).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The bounds of one admin listener; [`AdminLimits::default`] is what `keel serve` uses.
#[derive(Clone, Copy, Debug)]
pub struct AdminLimits {
    /// Connections open at once; more are closed when accepted.
    pub max_connections: usize,
    /// Time to send a request head, from opening or from the previous answer.
    pub header_read_timeout: Duration,
}

impl Default for AdminLimits {
    fn default() -> Self {
        Self {
            max_connections: MAX_ADMIN_CONNECTIONS,
            header_read_timeout: ADMIN_HEADER_READ_TIMEOUT,
        }
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown` completes, then
/// stops accepting and lets open connections finish their requests.
pub(super) async fn serve_bounded(
    listener: TcpListener,
    router: Router,
    limits: AdminLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let service = TowerToHyperService::new(router);
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "admin accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(
                cap = limits.max_connections,
                "admin connection cap reached: connection closed"
            );
            drop(stream);
            continue;
        };
        let connection = http1.serve_connection(TokioIo::new(stream), service.clone());
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "admin connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Reads a request body in full within [`ADMIN_BODY_READ_TIMEOUT`] before the handler
/// runs: `408` when it is too slow, `413` past [`MAX_APPLY_BODY_BYTES`] (the routes'
/// own, smaller bounds still apply after). A client trickling its body cannot hold
/// the connection longer than that.
pub(crate) async fn read_body_in_time(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let read = axum::body::to_bytes(body, MAX_APPLY_BODY_BYTES);
    let bytes = match tokio::time::timeout(ADMIN_BODY_READ_TIMEOUT, read).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(error)) => {
            let too_large = std::error::Error::source(&error)
                .is_some_and(|e| e.is::<http_body_util::LengthLimitError>());
            let (status, text) = if too_large {
                (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("request body larger than {MAX_APPLY_BODY_BYTES} bytes"),
                )
            } else {
                (
                    StatusCode::BAD_REQUEST,
                    format!("cannot read the request body: {error}"),
                )
            };
            return closing(failure(status, text, None).into_response());
        }
        Err(_) => {
            let text = format!(
                "request body not received within {}s",
                ADMIN_BODY_READ_TIMEOUT.as_secs()
            );
            return closing(failure(StatusCode::REQUEST_TIMEOUT, text, None).into_response());
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// Asks hyper to close the connection after this answer: the rest of the body was not
/// read, so the connection cannot carry another request.
fn closing(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, http::HeaderValue::from_static("close"));
    response
}
