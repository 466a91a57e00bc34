//! Accepting client connections: HTTP/1.1 and HTTP/2 (h2c prior knowledge) on one
//! listener, bounded request heads, and a graceful drain on shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use keel_config::Server;
use tokio::net::TcpListener;

use crate::dataplane::DataPlane;
use crate::handler::ConnInfo;

/// Concurrent HTTP/2 streams per client connection (256 streams).
const MAX_CONCURRENT_STREAMS: u32 = 256;

/// Limits applied to every client connection of a listener.
#[derive(Clone, Debug)]
pub struct ListenerLimits {
    /// Largest request head, in bytes.
    pub max_header_bytes: usize,
    /// Most request headers.
    pub max_headers: usize,
    /// Time to send a complete request head.
    pub header_read_timeout: Duration,
    /// Drain deadline after shutdown is asked for.
    pub drain_timeout: Duration,
}

impl ListenerLimits {
    /// The limits a config's `[server]` table sets.
    pub fn from_server(server: &Server) -> Self {
        Self {
            max_header_bytes: server.max_header_bytes as usize,
            max_headers: server.max_headers as usize,
            header_read_timeout: server.header_read_timeout,
            drain_timeout: server.drain_timeout,
        }
    }
}

impl DataPlane {
    /// Serves one listener until `shutdown` completes, then stops accepting and gives
    /// in-flight requests up to the drain deadline to finish.
    pub async fn serve(
        self: &Arc<Self>,
        listener: TcpListener,
        limits: ListenerLimits,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(limits.max_header_bytes.max(8192))
            .max_headers(limits.max_headers)
            .keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
            .max_concurrent_streams(MAX_CONCURRENT_STREAMS);
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: wait a little instead of spinning.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let conn = Arc::new(ConnInfo {
                peer_header: HeaderValue::from_str(&peer.ip().to_string())
                    .unwrap_or(HeaderValue::from_static("unknown")),
            });
            let plane = self.clone();
            let service = service_fn(move |request| {
                let plane = plane.clone();
                let conn = conn.clone();
                async move { Ok::<_, Infallible>(plane.handle(request, &conn).await) }
            });
            let connection = builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned();
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%peer, error = %error, "client connection ended with an error");
                }
            });
        }
        drop(listener);
        tracing::info!(connections = graceful.count(), "draining");
        if tokio::time::timeout(limits.drain_timeout, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("drain deadline passed; closing the remaining connections");
        }
        Ok(())
    }
}
