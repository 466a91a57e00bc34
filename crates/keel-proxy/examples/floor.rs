//! The hyper floor: the smallest reverse proxy built the way hyper is meant to be used,
//! to tell what part of Keel's per-request cost is Keel's and what part is hyper's and
//! tokio's. It does nothing a proxy may skip: no routing, no header rules (no
//! `x-request-id`, `x-forwarded-*`, hop-by-hop stripping), no statistics, no sample, no
//! retries, no timeouts. Threads as in `keel serve`: one single-threaded runtime per
//! thread, each with its own keep-alive connections to each backend, round robin.
//!
//! A `peers.sh` contestant (reads `BENCH_LISTEN_PORT` and `BENCH_BACKENDS`):
//!
//! ```text
//! cargo build --release -p keel-proxy --example floor
//! peers.sh --peer "floor:18112:$CARGO_TARGET_DIR/release/examples/floor 1" ...
//! ```
//!
//! Bodies are read whole before they are answered: fine for the benchmark's two-byte
//! answers, not for a real proxy.

use std::cell::{Cell, RefCell};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The allocator `keel` itself uses, so that the floor differs from Keel only in work.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

thread_local! {
    /// This thread's idle connections, one list per backend.
    static IDLE: RefCell<Vec<Vec<SendRequest<Incoming>>>> = const { RefCell::new(Vec::new()) };
    /// This thread's round-robin cursor.
    static NEXT: Cell<usize> = const { Cell::new(0) };
}

fn main() -> Result<(), Error> {
    let threads: usize = std::env::args().nth(1).map_or(Ok(1), |t| t.parse())?;
    let port: u16 = std::env::var("BENCH_LISTEN_PORT")?.parse()?;
    let backends: Arc<[SocketAddr]> = std::env::var("BENCH_BACKENDS")?
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
    listener.set_nonblocking(true)?;
    let mut handles = Vec::new();
    for _ in 0..threads.max(1) {
        let listener = listener.try_clone()?;
        let backends = backends.clone();
        handles.push(std::thread::spawn(move || -> Result<(), Error> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(serve(listener, backends))
        }));
    }
    for handle in handles {
        if let Ok(Err(error)) = handle.join() {
            eprintln!("floor: {error}");
        }
    }
    Ok(())
}

async fn serve(listener: std::net::TcpListener, backends: Arc<[SocketAddr]>) -> Result<(), Error> {
    IDLE.with_borrow_mut(|idle| idle.resize_with(backends.len(), Vec::new));
    let listener = TcpListener::from_std(listener)?;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let backends = backends.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| proxy(request, backends.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .writev(false)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn proxy(
    request: Request<Incoming>,
    backends: Arc<[SocketAddr]>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(forward(request, &backends).await.unwrap_or_else(|_| {
        let mut answer = Response::new(Full::new(Bytes::from_static(b"bad gateway\n")));
        *answer.status_mut() = StatusCode::BAD_GATEWAY;
        answer
    }))
}

async fn forward(
    request: Request<Incoming>,
    backends: &[SocketAddr],
) -> Result<Response<Full<Bytes>>, Error> {
    let index = NEXT.replace(NEXT.get().wrapping_add(1)) % backends.len();
    let idle = IDLE.with_borrow_mut(|idle| {
        let list = &mut idle[index];
        while let Some(sender) = list.pop() {
            if sender.is_ready() {
                return Some(sender);
            }
        }
        None
    });
    let mut sender = match idle {
        Some(sender) => sender,
        None => {
            let stream = TcpStream::connect(backends[index]).await?;
            let _ = stream.set_nodelay(true);
            let (sender, connection) = hyper::client::conn::http1::Builder::new()
                .writev(false)
                .handshake(TokioIo::new(stream))
                .await?;
            tokio::spawn(connection);
            sender
        }
    };
    let (parts, body) = sender.send_request(request).await?.into_parts();
    let body = body.collect().await?.to_bytes();
    IDLE.with_borrow_mut(|idle| idle[index].push(sender));
    Ok(Response::from_parts(parts, Full::new(body)))
}
