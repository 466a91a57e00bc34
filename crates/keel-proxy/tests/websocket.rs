//! WebSocket through Keel: a real tokio-tungstenite echo server behind a real data
//! plane, and real WebSocket clients (tokio-tungstenite, and Python's `websockets` when
//! it is installed). Echo, a large frame, ping/pong, close from either side with its
//! code, half-close on raw sockets, the idle timeout, a drain, the identity check on
//! the `101`, the tunnel counts, and a route without `upgrades` refusing.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::HeaderValue;
use keel_proxy::Generation;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

/// A text message that makes the echo server close with [`SERVER_CLOSE_CODE`].
const CLOSE_PLEASE: &str = "close, please";
/// The close code the echo server sends when asked to close (an application code).
const SERVER_CLOSE_CODE: u16 = 4001;

/// A WebSocket echo server on 127.0.0.1:0 that answers its handshakes with
/// `x-service: NAME`, echoes text and binary messages, and closes with
/// [`SERVER_CLOSE_CODE`] when sent [`CLOSE_PLEASE`].
struct EchoBackend {
    addr: SocketAddr,
    handshakes: Arc<AtomicU64>,
}

impl EchoBackend {
    async fn start(name: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
        let addr = listener.local_addr().expect("echo addr");
        let handshakes = Arc::new(AtomicU64::new(0));
        let counted = handshakes.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let counted = counted.clone();
                tokio::spawn(async move {
                    // The callback's error type is tungstenite's own.
                    #[allow(clippy::result_large_err)]
                    let identify = |_: &Request, mut response: Response| {
                        response
                            .headers_mut()
                            .insert("x-service", HeaderValue::from_static(name));
                        Ok(response)
                    };
                    let Ok(mut socket) =
                        tokio_tungstenite::accept_hdr_async(stream, identify).await
                    else {
                        return;
                    };
                    counted.fetch_add(1, SeqCst);
                    while let Some(Ok(message)) = socket.next().await {
                        let reply = match message {
                            Message::Text(text) if text.as_str() == CLOSE_PLEASE => {
                                let frame = CloseFrame {
                                    code: CloseCode::from(SERVER_CLOSE_CODE),
                                    reason: "asked to".into(),
                                };
                                let _ = socket.close(Some(frame)).await;
                                continue;
                            }
                            Message::Text(_) | Message::Binary(_) => message,
                            // Pings are answered by tungstenite itself; closes too.
                            _ => continue,
                        };
                        if socket.send(reply).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Self { addr, handshakes }
    }

    fn handshakes(&self) -> u64 {
        self.handshakes.load(SeqCst)
    }
}

/// A proxy with route `live` (`/live`, with `route_extra` lines) to the pool of
/// `backend`, whose service `live` proves itself with `x-service: live` on every
/// answer; and a plain route `web` to the same pool for everything else.
async fn proxy_for(backend: &EchoBackend, route_extra: &str, safety: &str) -> TestProxy {
    let text = with_listener(&format!(
        "{safety}\n[services.live]\nidentity = {{ header = \"x-service\", equals = \"live\" }}\nverify_responses = true\n\n\
         [pools.live]\nservice = \"live\"\nbackends = [{{ addr = \"{}\" }}]\n\n\
         [[routes]]\nname = \"live\"\npath_prefix = \"/live\"\nservice = \"live\"\npool = \"live\"\n{route_extra}\n\n\
         [[routes]]\nname = \"web\"\nservice = \"live\"\npool = \"live\"\n",
        backend.addr
    ));
    TestProxy::start(&text).await
}

const ALLOWED: &str = "upgrades = [\"websocket\"]";

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn open(proxy: &TestProxy, path: &str) -> Client {
    let url = format!("ws://{}{path}", proxy.addr);
    let (socket, response) = tokio::time::timeout(WAIT, connect_async(url.as_str()))
        .await
        .expect("handshake in time")
        .expect("handshake");
    assert_eq!(response.status(), 101);
    assert_eq!(response.headers()["x-keel-generation"], "1");
    socket
}

/// The next message that is not a pong, within [`WAIT`].
async fn next(socket: &mut Client) -> Option<Message> {
    loop {
        let message = tokio::time::timeout(WAIT, socket.next())
            .await
            .expect("a message or the end in time");
        match message {
            Some(Ok(Message::Pong(_))) => continue,
            Some(Ok(message)) => return Some(message),
            Some(Err(_)) | None => return None,
        }
    }
}

/// An echo backend `live`, Keel in front of it with upgrades allowed, and a WebSocket
/// opened through Keel at `path`.
async fn live(path: &str) -> (EchoBackend, TestProxy, Client) {
    let backend = EchoBackend::start("live").await;
    let proxy = proxy_for(&backend, ALLOWED, "").await;
    let socket = open(&proxy, path).await;
    (backend, proxy, socket)
}

/// After a close handshake: Keel passed the backend's end of stream on, the client,
/// done, closes its side, and no tunnel is left.
async fn ends_on_both_sides(mut socket: Client, proxy: &TestProxy) {
    assert_eq!(next(&mut socket).await, None);
    drop(socket);
    no_tunnel_left(proxy).await;
}

async fn open_tunnels(generation: &Generation) -> u64 {
    generation.tunnels.total().open()
}

async fn no_tunnel_left(proxy: &TestProxy) {
    let generation = proxy.generation.clone();
    eventually(WAIT, "every tunnel closed", move || {
        let generation = generation.clone();
        async move { open_tunnels(&generation).await == 0 }
    })
    .await;
}

#[tokio::test]
async fn messages_echo_through_and_the_tunnel_is_counted_where_it_goes() {
    let (backend, proxy, mut socket) = live("/live/cart").await;
    socket.send(Message::text("hello")).await.expect("send");
    assert_eq!(next(&mut socket).await, Some(Message::text("hello")));
    socket
        .send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .expect("send");
    assert_eq!(
        next(&mut socket).await,
        Some(Message::binary(vec![0u8, 1, 2, 255]))
    );
    socket
        .send(Message::Ping(b"are you there".to_vec().into()))
        .await
        .expect("ping");
    let pong = tokio::time::timeout(WAIT, socket.next())
        .await
        .expect("pong");
    assert!(
        matches!(&pong, Some(Ok(Message::Pong(data))) if &data[..] == b"are you there"),
        "{pong:?}"
    );

    let tunnels = &proxy.generation.tunnels;
    assert_eq!(tunnels.total().open(), 1);
    assert_eq!(tunnels.total().opened(), 1);
    assert_eq!(tunnels.route(0).map(|c| c.open()), Some(1));
    assert_eq!(tunnels.route(1).map(|c| c.open()), Some(0));
    assert_eq!(tunnels.pool(0).map(|c| c.open()), Some(1));
    assert_eq!(tunnels.backend(0, 0).map(|c| c.open()), Some(1));
    assert_eq!(backend.handshakes(), 1);
    drop(socket);
    no_tunnel_left(&proxy).await;
    assert_eq!(tunnels.route(0).map(|c| c.opened()), Some(1));
}

#[tokio::test]
async fn a_large_frame_crosses_whole() {
    let (_backend, _proxy, mut socket) = live("/live").await;
    // Many times any one buffer on the way: the copy must loop with back-pressure.
    let large: Vec<u8> = (0..8 * 1024 * 1024).map(|i: u32| (i % 251) as u8).collect();
    socket
        .send(Message::binary(large.clone()))
        .await
        .expect("send");
    match next(&mut socket).await {
        Some(Message::Binary(data)) => {
            assert_eq!(data.len(), large.len());
            assert!(data[..] == large[..], "the echo differs");
        }
        other => panic!("expected the echo, got {other:?}"),
    }
}

#[tokio::test]
async fn a_close_from_the_client_is_answered_and_both_sides_close() {
    let (_backend, proxy, mut socket) = live("/live").await;
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    };
    socket.close(Some(frame)).await.expect("close");
    match next(&mut socket).await {
        Some(Message::Close(Some(echoed))) => assert_eq!(echoed.code, CloseCode::Normal),
        other => panic!("expected the close answer, got {other:?}"),
    }
    ends_on_both_sides(socket, &proxy).await;
}

#[tokio::test]
async fn a_close_from_the_server_reaches_the_client_with_its_code() {
    let (_backend, proxy, mut socket) = live("/live").await;
    socket
        .send(Message::text(CLOSE_PLEASE))
        .await
        .expect("send");
    match next(&mut socket).await {
        Some(Message::Close(Some(frame))) => {
            assert_eq!(u16::from(frame.code), SERVER_CLOSE_CODE);
            assert_eq!(frame.reason.as_str(), "asked to");
        }
        other => panic!("expected the server's close, got {other:?}"),
    }
    ends_on_both_sides(socket, &proxy).await;
}

#[tokio::test]
async fn an_idle_tunnel_is_closed_on_both_sides() {
    let backend = EchoBackend::start("live").await;
    let proxy = proxy_for(
        &backend,
        &format!("{ALLOWED}\ntunnel_idle_timeout = \"200ms\""),
        "",
    )
    .await;
    let mut socket = open(&proxy, "/live").await;
    socket.send(Message::text("once")).await.expect("send");
    assert_eq!(next(&mut socket).await, Some(Message::text("once")));
    // Then nothing either way: Keel closes the client's connection.
    assert_eq!(next(&mut socket).await, None);
    assert_eq!(proxy.generation.tunnels.idle_closed(), 1);
    no_tunnel_left(&proxy).await;
}

#[tokio::test]
async fn a_drained_generation_closes_the_tunnels_open_then_and_only_those() {
    let backend = EchoBackend::start("live").await;
    let proxy = proxy_for(&backend, ALLOWED, "").await;
    let mut before = open(&proxy, "/live").await;
    let tunnels = &proxy.generation.tunnels;
    assert_eq!(tunnels.drain(Duration::from_millis(50)), 1);
    assert_eq!(next(&mut before).await, None);
    assert_eq!(tunnels.drained(), 1);
    // A tunnel opened after the drain was asked for is not drained by it.
    let mut after = open(&proxy, "/live").await;
    after.send(Message::text("still here")).await.expect("send");
    assert_eq!(next(&mut after).await, Some(Message::text("still here")));
    assert_eq!(tunnels.total().open(), 1);
}

#[tokio::test]
async fn a_route_without_upgrades_refuses_and_no_backend_sees_it() {
    let backend = EchoBackend::start("live").await;
    let proxy = proxy_for(&backend, "", "").await;
    let url = format!("ws://{}/live", proxy.addr);
    let refused = tokio::time::timeout(WAIT, connect_async(url.as_str()))
        .await
        .expect("an answer in time");
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 400);
            assert_eq!(response.headers()["keel-error"], "upgrade-not-allowed");
            let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or(b""));
            assert!(body.contains("route `live`"), "{body}");
            assert!(body.contains("upgrades = [\"websocket\"]"), "{body}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(backend.handshakes(), 0);
    assert_eq!(proxy.generation.tunnels.total().opened(), 0);
}

#[tokio::test]
async fn a_backend_answering_as_another_service_gets_no_tunnel() {
    let backend = EchoBackend::start("search").await;
    let proxy = proxy_for(&backend, ALLOWED, "").await;
    let url = format!("ws://{}/live", proxy.addr);
    let refused = tokio::time::timeout(WAIT, connect_async(url.as_str()))
        .await
        .expect("an answer in time");
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 502);
            assert_eq!(response.headers()["keel-error"], "misidentified-backend");
        }
        other => panic!("expected a 502, got {other:?}"),
    }
    assert_eq!(proxy.generation.tunnels.total().opened(), 0);
}

/// A backend that switches any request to a raw byte stream, reads until the client's
/// end of stream, then answers what it read, in capitals, and closes.
async fn shouting_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if stream.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let switched = "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\
                                connection: upgrade\r\nx-service: live\r\n\r\n";
                if stream.write_all(switched.as_bytes()).await.is_err() {
                    return;
                }
                let mut heard = Vec::new();
                if stream.read_to_end(&mut heard).await.is_err() {
                    return;
                }
                let _ = stream.write_all(&heard.to_ascii_uppercase()).await;
            });
        }
    });
    addr
}

/// Opens a raw tunnel through Keel to [`shouting_backend`], sends `words` through it,
/// half-closes, and returns what came back before the tunnel closed.
async fn shout_through(words: &[u8]) -> Vec<u8> {
    let addr = shouting_backend().await;
    let text = with_listener(&format!(
        "[services.live]\n\n[pools.live]\nservice = \"live\"\nbackends = [{{ addr = \"{addr}\" }}]\n\n\
         [[routes]]\nname = \"live\"\nservice = \"live\"\npool = \"live\"\n{ALLOWED}\n"
    ));
    let proxy = TestProxy::start(&text).await;
    let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
    let request = "GET /live HTTP/1.1\r\nHost: shop\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                   Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    stream.write_all(request.as_bytes()).await.expect("request");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let read = tokio::time::timeout(WAIT, stream.read(&mut byte))
            .await
            .expect("head in time")
            .expect("read");
        assert!(read > 0, "closed before the head: {head:?}");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_string();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    stream.write_all(words).await.expect("write");
    // The client is done sending; the backend answers only once it sees that.
    stream.shutdown().await.expect("half-close");
    let mut answer = Vec::new();
    // A tunnel cut short shows as a reset or a short answer, both checked by callers.
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut answer))
        .await
        .expect("answer and close in time");
    no_tunnel_left(&proxy).await;
    answer
}

#[tokio::test]
async fn a_half_closed_tunnel_still_carries_the_answer_back() {
    assert_eq!(shout_through(b"quiet words").await, b"QUIET WORDS");
}

#[tokio::test]
async fn tunnel_bytes_that_look_like_a_huge_chunk_are_not_refused() {
    // After the `101` the client's bytes are the tunnel's: the request chunk-size
    // guard must not read them as a chunked request and cut the tunnel.
    let words = b"POST /x HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\n\r\n\
                  ffffffffffffffff\r\nabc\r\n";
    assert_eq!(shout_through(words).await, words.to_ascii_uppercase());
}

/// Python's `websockets` as a client no one here wrote: a text and a binary echo,
/// then a normal close.
#[tokio::test]
async fn an_independent_python_client_gets_its_echoes() {
    let available = tokio::process::Command::new("python3")
        .args(["-c", "import websockets"])
        .output()
        .await
        .is_ok_and(|out| out.status.success());
    if !available {
        eprintln!(
            "SKIPPED: Python's `websockets` package is not installed (pip install websockets)"
        );
        return;
    }
    let backend = EchoBackend::start("live").await;
    let proxy = proxy_for(&backend, ALLOWED, "").await;
    let script = r#"
import asyncio, sys
from websockets.asyncio.client import connect

async def main(url):
    async with connect(url, max_size=None) as socket:
        await socket.send("from python")
        assert await socket.recv() == "from python"
        payload = bytes(range(256)) * 4096
        await socket.send(payload)
        assert await socket.recv() == payload
    print("ok", socket.close_code)

asyncio.run(main(sys.argv[1]))
"#;
    let url = format!("ws://{}/live/py", proxy.addr);
    let output = tokio::time::timeout(
        WAIT,
        tokio::process::Command::new("python3")
            .args(["-c", script, &url])
            .output(),
    )
    .await
    .expect("python in time")
    .expect("python ran");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert_eq!(stdout.trim(), "ok 1000", "{stderr}");
    assert_eq!(proxy.generation.tunnels.total().opened(), 1);
    no_tunnel_left(&proxy).await;
}
