//! A route's `compress = ["gzip", "br"]` through the real `keel serve` process, over
//! real loopback sockets: answers decoded by curl (`--compressed`) and by Rust
//! decoders, small, already-encoded and `identity` answers left alone, the headers a
//! compressed answer carries, the access log's `encoding`, and a large streamed answer
//! whose first compressed bytes reach the client while the backend is still sending.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use async_compression::tokio::bufread::{BrotliDecoder, GzipDecoder};
use bytes::Bytes;
use http_body::Frame;
use support::{Killed, keel_serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Longest any single wait may take (15 seconds).
const WAIT: Duration = Duration::from_secs(15);
/// Bytes of the large JSON answer (24 KiB).
const BIG_BYTES: usize = 24 * 1024;
/// Bytes of each piece of the streamed answer (8 KiB), and pieces sent.
const PIECE_BYTES: usize = 8 * 1024;
const PIECES: usize = 32;

/// Text that compresses like a real JSON answer: repetitive, not constant.
fn json_text(bytes: usize) -> String {
    let mut out = String::from("[");
    let mut i = 0;
    while out.len() < bytes {
        out.push_str(&format!(
            "{{\"id\":{i},\"name\":\"product {i}\",\"price\":{}.99}},",
            i % 97
        ));
        i += 1;
    }
    out.truncate(bytes - 1);
    out.push(']');
    out
}

/// A response body fed piece by piece from a channel.
struct Fed(mpsc::Receiver<Bytes>);

impl http_body::Body for Fed {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|piece| piece.map(|b| Ok(Frame::data(b))))
    }
}

/// The streamed answer's pieces: the first is sent at once, the rest once `release`
/// fires.
type Release = Arc<Mutex<Option<oneshot::Receiver<()>>>>;

fn piece(index: usize) -> Bytes {
    Bytes::from(format!("{index:04} {}\n", json_text(PIECE_BYTES - 6)))
}

/// A backend of service `web` with one answer per path.
async fn backend(release: Release) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    keel_testkit::serve(listener, move |request| {
        let path = request.uri().path().to_string();
        let release = release.clone();
        async move {
            let builder = http::Response::builder().header("x-service", "web");
            let (builder, body): (_, http_body_util::Either<_, Fed>) = match path.as_str() {
                "/big.json" => (
                    builder
                        .header("content-type", "application/json")
                        .header("etag", "\"v1\""),
                    full(json_text(BIG_BYTES)),
                ),
                "/small.txt" => (
                    builder.header("content-type", "text/plain"),
                    full("short answer\n".to_string()),
                ),
                "/encoded.txt" => (
                    builder
                        .header("content-type", "text/plain")
                        .header("content-encoding", "gzip"),
                    full("not really gzip, and must pass as it is ".repeat(100)),
                ),
                "/image.png" => (
                    builder.header("content-type", "image/png"),
                    full("png bytes ".repeat(400)),
                ),
                _ => {
                    let (tx, rx) = mpsc::channel(1);
                    let release = release.lock().ok().and_then(|mut r| r.take());
                    tokio::spawn(async move {
                        let _ = tx.send(piece(0)).await;
                        if let Some(release) = release {
                            let _ = release.await;
                        }
                        for index in 1..PIECES {
                            if tx.send(piece(index)).await.is_err() {
                                return;
                            }
                        }
                    });
                    (
                        builder.header("content-type", "text/plain; charset=utf-8"),
                        http_body_util::Either::Right(Fed(rx)),
                    )
                }
            };
            builder.body(body).expect("response")
        }
    });
    addr
}

fn full(text: String) -> http_body_util::Either<http_body_util::Full<Bytes>, Fed> {
    http_body_util::Either::Left(http_body_util::Full::new(Bytes::from(text)))
}

/// Starts `keel serve` with one route compressing gzip and br, and waits until it
/// answers.
async fn serve(dir: &Path, backend: SocketAddr) -> (Killed, SocketAddr) {
    let proxy = keel_testkit::free_addr();
    let admin = keel_testkit::free_addr();
    let config = format!(
        "[listeners.web]\naddr = \"{proxy}\"\n\n[admin]\naddr = \"{admin}\"\n\n\
         [server]\nworker_threads = 1\n\n[access_log]\npath = \"access.log\"\n\n\
         [services.web]\nidentity = {{ header = \"x-service\", equals = \"web\" }}\n\n\
         [pools.web]\nservice = \"web\"\nbackends = [{{ addr = \"{backend}\" }}]\n\n\
         [[routes]]\nname = \"shop\"\nservice = \"web\"\npool = \"web\"\ncompress = [\"gzip\", \"br\"]\n"
    );
    let file = dir.join("keel.toml");
    std::fs::write(&file, config).expect("config");
    let keel = Killed::spawn(
        keel_serve(&file, &dir.join("state"))
            .current_dir(dir)
            .env("KEEL_ADMIN_TOKEN", "compress-binary-token"),
    );
    let deadline = Instant::now() + WAIT;
    while get(proxy, "/small.txt", "").await.is_none() {
        assert!(Instant::now() < deadline, "keel serve never answered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (keel, proxy)
}

/// An answer read off the socket, its chunked body joined.
struct Answer {
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// `GET path` with `extra` header lines on a connection of its own.
async fn get(addr: SocketAddr, path: &str, extra: &str) -> Option<Answer> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: shop.example.com\r\n{extra}Connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .ok()?
        .ok()?;
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let rest = &raw[end + 4..];
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(rest)?
    } else {
        rest.to_vec()
    };
    Some(Answer { head, body })
}

/// The data of a chunked body (trailers dropped); `None` when it is cut short.
fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&raw[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}

/// The size of the first chunk of the body once all of it has arrived.
fn first_chunk(read: &[u8]) -> Option<usize> {
    let end = read.windows(4).position(|w| w == b"\r\n\r\n")?;
    let body = &read[end + 4..];
    let line = body.windows(2).position(|w| w == b"\r\n")?;
    let size = usize::from_str_radix(std::str::from_utf8(&body[..line]).ok()?.trim(), 16).ok()?;
    (body.len() >= line + 2 + size).then_some(size)
}

async fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    GzipDecoder::new(bytes)
        .read_to_end(&mut out)
        .await
        .expect("valid gzip");
    out
}

async fn unbrotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    BrotliDecoder::new(bytes)
        .read_to_end(&mut out)
        .await
        .expect("valid brotli");
    out
}

/// `curl --compressed` with `accept-encoding: ENCODING`: (headers, decoded body).
fn curl(proxy: SocketAddr, path: &str, encoding: &str) -> (String, Vec<u8>) {
    let output = Command::new("curl")
        .args([
            "-sS",
            "--compressed",
            "--max-time",
            "15",
            "-D",
            "-",
            "-o",
            "-",
        ])
        .args(["-H", "host: shop.example.com"])
        .args(["-H", &format!("accept-encoding: {encoding}")])
        .arg(format!("http://{proxy}{path}"))
        .output()
        .expect("run curl");
    assert!(output.status.success(), "curl failed: {output:?}");
    let raw = output.stdout;
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    (
        String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase(),
        raw[end + 4..].to_vec(),
    )
}

#[tokio::test]
async fn keel_serve_compresses_what_gains_and_leaves_the_rest_alone() {
    let dir = tempfile::tempdir().expect("dir");
    let backend = backend(Arc::new(Mutex::new(None))).await;
    let (_keel, proxy) = serve(dir.path(), backend).await;
    let big = json_text(BIG_BYTES).into_bytes();

    // A real client, both codings.
    let proxy_for_curl = proxy;
    let (gzip_head, gzip_body) =
        tokio::task::spawn_blocking(move || curl(proxy_for_curl, "/big.json", "gzip"))
            .await
            .expect("curl");
    assert!(gzip_head.contains("content-encoding: gzip"), "{gzip_head}");
    assert_eq!(gzip_body, big, "curl decoded the gzip answer");
    let (br_head, br_body) =
        tokio::task::spawn_blocking(move || curl(proxy_for_curl, "/big.json", "br"))
            .await
            .expect("curl");
    assert!(br_head.contains("content-encoding: br"), "{br_head}");
    assert_eq!(br_body, big, "curl decoded the brotli answer");

    // The raw answer: its headers and a smaller body that decodes to the backend's.
    let gzip = get(proxy, "/big.json", "Accept-Encoding: gzip, deflate, br\r\n")
        .await
        .expect("answer");
    assert_eq!(
        gzip.header("content-encoding"),
        Some("gzip"),
        "{}",
        gzip.head
    );
    assert_eq!(gzip.header("content-length"), None);
    assert_eq!(gzip.header("vary"), Some("accept-encoding"));
    assert_eq!(gzip.header("etag"), Some("W/\"v1\""));
    assert!(gzip.body.len() < big.len() / 3, "{} bytes", gzip.body.len());
    assert_eq!(gunzip(&gzip.body).await, big);
    let br = get(proxy, "/big.json", "Accept-Encoding: gzip;q=0.5, br\r\n")
        .await
        .expect("answer");
    assert_eq!(br.header("content-encoding"), Some("br"), "{}", br.head);
    assert_eq!(unbrotli(&br.body).await, big);

    // What is not compressed.
    let identity = get(proxy, "/big.json", "Accept-Encoding: identity\r\n")
        .await
        .expect("answer");
    assert_eq!(identity.header("content-encoding"), None);
    assert_eq!(identity.header("etag"), Some("\"v1\""));
    assert_eq!(identity.header("vary"), None);
    assert_eq!(identity.body, big);
    let refused = get(proxy, "/big.json", "Accept-Encoding: gzip;q=0, br;q=0\r\n")
        .await
        .expect("answer");
    assert_eq!(refused.header("content-encoding"), None);
    assert_eq!(refused.body, big);
    let none = get(proxy, "/big.json", "").await.expect("answer");
    assert_eq!(none.header("content-encoding"), None);
    let small = get(proxy, "/small.txt", "Accept-Encoding: gzip\r\n")
        .await
        .expect("answer");
    assert_eq!(small.header("content-encoding"), None);
    assert_eq!(small.body, b"short answer\n");
    let encoded = get(proxy, "/encoded.txt", "Accept-Encoding: gzip, br\r\n")
        .await
        .expect("answer");
    assert_eq!(encoded.header("content-encoding"), Some("gzip"));
    assert_eq!(
        encoded.body,
        "not really gzip, and must pass as it is "
            .repeat(100)
            .as_bytes(),
        "an encoded answer is passed, not compressed again"
    );
    let image = get(proxy, "/image.png", "Accept-Encoding: gzip\r\n")
        .await
        .expect("answer");
    assert_eq!(image.header("content-encoding"), None);

    // The access log says which answers were compressed, with what.
    let log = dir.path().join("access.log");
    let logged = keel_testkit::eventually_holds(WAIT, || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.matches("\"encoding\":\"gzip\"").count() >= 2
            && text.matches("\"encoding\":\"br\"").count() >= 2
    })
    .await;
    assert!(
        logged,
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

#[tokio::test]
async fn a_streamed_answer_is_compressed_as_it_streams() {
    let dir = tempfile::tempdir().expect("dir");
    let (release_tx, release_rx) = oneshot::channel();
    let backend = backend(Arc::new(Mutex::new(Some(release_rx)))).await;
    let proxy_dir = dir.path().to_path_buf();
    let (_keel, proxy) = serve(&proxy_dir, backend).await;

    let mut stream = TcpStream::connect(proxy).await.expect("connect");
    stream
        .write_all(
            b"GET /stream HTTP/1.1\r\nHost: shop.example.com\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
        )
        .await
        .expect("send");
    // The backend has sent one piece and waits: its compressed form must arrive now.
    let first = keel_testkit::read_until(&mut stream, "the first compressed piece", |read| {
        first_chunk(read).is_some()
    })
    .await;
    let compressed = first_chunk(&first).unwrap_or_default();
    // More than gzip's 10-byte header: the piece itself, flushed while the backend waits.
    assert!(compressed > 100, "first chunk of {compressed} bytes");
    let text = String::from_utf8_lossy(&first).to_ascii_lowercase();
    assert!(text.contains("content-encoding: gzip"), "{text}");
    assert!(text.contains("transfer-encoding: chunked"), "{text}");
    let _ = release_tx.send(());
    let (rest, _) = keel_testkit::read_to_close(&mut stream).await;
    let mut raw = first;
    raw.extend_from_slice(&rest);
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("head");
    let body = dechunk(&raw[end + 4..]).expect("a complete chunked body");
    let expected: Vec<u8> = (0..PIECES).flat_map(|i| piece(i).to_vec()).collect();
    assert_eq!(gunzip(&body).await, expected);
    assert!(body.len() < expected.len() / 3, "{} bytes", body.len());
}
