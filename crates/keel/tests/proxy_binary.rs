//! The real `keel serve` binary: SIGTERM drains in-flight requests and refuses new
//! connections; a 100 MB upload streams through with bounded process memory.
//!
//! Everything here is plain tokio TCP so the test needs no HTTP library of its own:
//! the backends and clients speak a few lines of HTTP/1.1 by hand.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use keel_testkit::{free_port, wait_until};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// Longest any single wait may take (15 seconds).
const WAIT: Duration = Duration::from_secs(15);

/// A running `keel serve`, killed if the test ends early.
struct Keel {
    child: Child,
    addr: SocketAddr,
    _config: TempFile,
    _state: tempfile::TempDir,
}

struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Keel {
    fn start(backend: SocketAddr, drain: &str) -> Self {
        let port = free_port();
        let admin = free_port();
        let text = format!(
            "[listeners.web]\naddr = \"127.0.0.1:{port}\"\n\n[admin]\naddr = \"127.0.0.1:{admin}\"\n\n[server]\nworker_threads = 2\ndrain_timeout = \"{drain}\"\n\n[services.web]\nallow_no_identity = true\n\n[pools.web]\nservice = \"web\"\nbackends = [{{ addr = \"{backend}\" }}]\n\n[[routes]]\nname = \"web\"\nservice = \"web\"\npool = \"web\"\ntimeout = \"60s\"\n"
        );
        let path = std::env::temp_dir().join(format!(
            "keel-proxy-binary-{}-{port}.toml",
            std::process::id()
        ));
        std::fs::write(&path, text).expect("write config");
        // A fresh state directory: a leftover store would serve its own generation.
        let state = tempfile::tempdir().expect("state dir");
        let child = Command::new(env!("CARGO_BIN_EXE_keel"))
            .args(["--log", "warn", "serve", "--config"])
            .arg(&path)
            .arg("--state-dir")
            .arg(state.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start keel");
        Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            _config: TempFile(path),
            _state: state,
        }
    }

    async fn ready(&self) {
        let addr = self.addr;
        wait_until(WAIT, "keel answers", || async move {
            matches!(request(addr, "/ready").await, Some(answer) if answer.starts_with("HTTP/1.1 200"))
        })
        .await;
    }

    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    async fn exit_status(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "keel did not exit");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Peak resident memory of the Keel process so far, in bytes.
    fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }
}

impl Drop for Keel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One `GET path` on a fresh connection; the whole answer, or `None` if the connection
/// could not be made or broke.
async fn request(addr: SocketAddr, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    let head = format!("GET {path} HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.ok()?;
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut answer))
        .await
        .ok()?
        .ok()?;
    Some(String::from_utf8_lossy(&answer).into_owned())
}

/// What the test backend counted.
#[derive(Default)]
struct Counts {
    /// Request heads read.
    heads: AtomicU64,
    /// Body bytes read.
    body_bytes: AtomicU64,
}

/// A backend that reads each request's head and `Content-Length` body (counting both),
/// waits `delay` for paths starting with `/slow`, and answers `200` with the number of
/// body bytes it read.
async fn backend(delay: Duration, counts: Arc<Counts>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve_backend_connection(stream, delay, counts.clone()));
        }
    });
    addr
}

async fn serve_backend_connection(mut stream: TcpStream, delay: Duration, counts: Arc<Counts>) {
    let received = &counts.body_bytes;
    let mut buffer = vec![0u8; 64 * 1024];
    let mut pending = Vec::new();
    loop {
        // Read one head.
        let head_end = loop {
            if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => pending.extend_from_slice(&buffer[..n]),
            }
        };
        let head = String::from_utf8_lossy(&pending[..head_end]).to_ascii_lowercase();
        let length: u64 = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let slow = head.starts_with("get /slow") || head.starts_with("post /slow");
        counts.heads.fetch_add(1, SeqCst);
        pending.drain(..head_end);
        // Read (and drop) the body.
        let mut left = length;
        let take = (pending.len() as u64).min(left);
        pending.drain(..take as usize);
        left -= take;
        received.fetch_add(take, SeqCst);
        while left > 0 {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let used = (n as u64).min(left);
                    left -= used;
                    received.fetch_add(used, SeqCst);
                    pending.extend_from_slice(&buffer[used as usize..n]);
                }
            }
        }
        if slow {
            tokio::time::sleep(delay).await;
        }
        let body = length.to_string();
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nx-backend: raw\r\n\r\n{body}",
            body.len()
        );
        if stream.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_and_refuses_new_ones() {
    let counts = Arc::new(Counts::default());
    let backend = backend(Duration::from_millis(1500), counts.clone()).await;
    let mut keel = Keel::start(backend, "10s");
    keel.ready().await;
    let addr = keel.addr;
    let before = counts.heads.load(SeqCst);
    let in_flight = tokio::spawn(async move { request(addr, "/slow").await });
    wait_until(WAIT, "the slow request reached the backend", || {
        let counts = counts.clone();
        async move { counts.heads.load(SeqCst) > before }
    })
    .await;
    keel.terminate();
    wait_until(WAIT, "new connections are refused", || async move {
        TcpStream::connect(addr).await.is_err()
    })
    .await;
    let answer = in_flight
        .await
        .expect("in-flight task")
        .expect("the in-flight request got an answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let status = keel.exit_status().await;
    assert!(status.success(), "keel exited with {status}");
}

#[tokio::test]
async fn a_100_mb_upload_streams_through_the_binary_in_bounded_memory() {
    const TOTAL: u64 = 100 * 1024 * 1024;
    let counts = Arc::new(Counts::default());
    let backend = backend(Duration::ZERO, counts.clone()).await;
    let keel = Keel::start(backend, "5s");
    keel.ready().await;
    let before = keel.peak_rss();
    let mut stream = TcpStream::connect(keel.addr).await.expect("connect");
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: shop\r\nContent-Length: {TOTAL}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    let chunk = vec![b'k'; 256 * 1024];
    let mut sent = 0u64;
    let deadline = Instant::now() + Duration::from_secs(120);
    while sent < TOTAL {
        let n = (TOTAL - sent).min(chunk.len() as u64) as usize;
        tokio::time::timeout_at(deadline, stream.write_all(&chunk[..n]))
            .await
            .expect("upload in time")
            .expect("write");
        sent += n as u64;
        // Streaming, not store-and-forward: the backend is never far behind the client.
        if sent == 8 * 1024 * 1024 {
            wait_until(
                WAIT,
                "the backend receives while the client is still sending",
                || {
                    let counts = counts.clone();
                    async move { counts.body_bytes.load(SeqCst) >= 4 * 1024 * 1024 }
                },
            )
            .await;
        }
    }
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut answer))
        .await
        .expect("answer in time")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with(&TOTAL.to_string()), "{answer}");
    assert_eq!(counts.body_bytes.load(SeqCst), TOTAL);
    let peak = keel.peak_rss();
    let growth = peak.saturating_sub(before);
    assert!(
        growth < 32 * 1024 * 1024,
        "keel's peak memory grew by {} MiB for a 100 MiB upload (peak {} MiB)",
        growth >> 20,
        peak >> 20
    );
}
