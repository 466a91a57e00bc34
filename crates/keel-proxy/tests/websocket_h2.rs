//! WebSocket over HTTP/2 (RFC 8441) from clients: a real HTTP/2 client (the `h2`
//! crate's, which speaks extended CONNECT) opens a WebSocket through Keel, over h2c and
//! over TLS, to a real tokio-tungstenite echo server that only knows the HTTP/1.1
//! handshake. Keel answers the CONNECT with `200` once the backend switched, carries the
//! WebSocket frames both ways, counts the tunnel, keeps serving other streams of the
//! same connection, and refuses the CONNECT on a route without `upgrades`.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use h2::client::SendRequest;
use http::{Method, Request, StatusCode};
use support::tls::{BOTH, TlsProxy, client as tls_client, connect, tls_config_with};
use support::*;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

/// A WebSocket echo server (HTTP/1.1 handshakes only) answering with `x-service: live`:
/// the handshakes it accepted.
async fn echo_backend() -> (SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
    let addr = listener.local_addr().expect("echo addr");
    let handshakes = Arc::new(AtomicU64::new(0));
    let counted = handshakes.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                counted.fetch_add(1, SeqCst);
                while let Some(Ok(message)) = socket.next().await {
                    if matches!(message, Message::Text(_) | Message::Binary(_))
                        && socket.send(message).await.is_err()
                    {
                        break;
                    }
                }
            });
        }
    });
    (addr, handshakes)
}

fn h2c_config(backend: SocketAddr) -> String {
    with_listener(&format!(
        "[services.live]\nallow_no_identity = true\n\n\
         [pools.live]\nservice = \"live\"\nbackends = [\"{backend}\"]\n\n\
         [[routes]]\nname = \"live\"\npath_prefix = \"/live\"\nservice = \"live\"\npool = \"live\"\n\
         upgrades = [\"websocket\"]\n\n\
         [[routes]]\nname = \"web\"\nservice = \"live\"\npool = \"live\"\n"
    ))
}

/// An HTTP/2 client on `io` once the server has allowed extended CONNECT.
async fn h2_client<T>(io: T) -> SendRequest<Bytes>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (client, connection) = h2::client::handshake(io).await.expect("h2 handshake");
    tokio::spawn(connection);
    let mut client = client.ready().await.expect("ready");
    // The server's SETTINGS arrive after the handshake; the first one must allow it.
    for _ in 0..100 {
        if client.is_extended_connect_protocol_enabled() {
            return client;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        client = client.ready().await.expect("ready");
    }
    panic!("Keel never sent SETTINGS_ENABLE_CONNECT_PROTOCOL");
}

/// An extended CONNECT for a WebSocket at `path`: the answer's status, and the stream.
async fn connect_websocket(
    client: &mut SendRequest<Bytes>,
    authority: &str,
    path: &str,
) -> (StatusCode, h2::SendStream<Bytes>, h2::RecvStream) {
    extended_connect(client, authority, path, "websocket").await
}

/// An extended CONNECT for `protocol` at `path`.
async fn extended_connect(
    client: &mut SendRequest<Bytes>,
    authority: &str,
    path: &str,
    protocol: &'static str,
) -> (StatusCode, h2::SendStream<Bytes>, h2::RecvStream) {
    let mut request = Request::builder()
        .method(Method::CONNECT)
        .uri(format!("https://{authority}{path}"))
        .header("sec-websocket-version", "13")
        .body(())
        .expect("request");
    request
        .extensions_mut()
        .insert(h2::ext::Protocol::from_static(protocol));
    let (response, send) = client.send_request(request, false).expect("send");
    let response = tokio::time::timeout(WAIT, response)
        .await
        .expect("an answer in time")
        .expect("an answer");
    let status = response.status();
    (status, send, response.into_body())
}

/// A client's text frame (masked, as RFC 6455 requires of clients).
fn text_frame(text: &str) -> Bytes {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    assert!(text.len() < 126, "a short frame");
    let mut frame = vec![0x81, 0x80 | text.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(text.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    Bytes::from(frame)
}

/// Reads the server's next (unmasked, short) text frame's payload.
async fn read_text(recv: &mut h2::RecvStream) -> String {
    let mut got = Vec::new();
    while got.len() < 2 || got.len() < 2 + usize::from(got[1] & 0x7f) {
        let chunk = tokio::time::timeout(WAIT, recv.data())
            .await
            .expect("data in time")
            .expect("the stream still open")
            .expect("data");
        let _ = recv.flow_control().release_capacity(chunk.len());
        got.extend_from_slice(&chunk);
    }
    assert_eq!(got[0], 0x81, "a final text frame: {got:?}");
    String::from_utf8_lossy(&got[2..]).into_owned()
}

async fn echoes(send: &mut h2::SendStream<Bytes>, recv: &mut h2::RecvStream) {
    for word in ["hello", "over", "HTTP/2"] {
        send.send_data(text_frame(word), false).expect("send");
        assert_eq!(read_text(recv).await, word);
    }
}

#[tokio::test]
async fn a_websocket_over_h2c_echoes_and_counts_as_a_tunnel() {
    let (backend, handshakes) = echo_backend().await;
    let proxy = TestProxy::start(&h2c_config(backend)).await;
    let tcp = TcpStream::connect(proxy.addr).await.expect("connect");
    let mut client = h2_client(tcp).await;
    let authority = proxy.addr.to_string();
    let (status, mut send, mut recv) = connect_websocket(&mut client, &authority, "/live").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(handshakes.load(SeqCst), 1, "the backend switched");
    echoes(&mut send, &mut recv).await;
    assert_eq!(proxy.generation.tunnels.total().open(), 1);

    // The connection still carries other streams: a route without `upgrades`
    // refuses a CONNECT there, and a plain GET is served.
    let (status, _, _) = connect_websocket(&mut client, &authority, "/other").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A protocol Keel does not know is a CONNECT tunnel it does not open.
    let (status, _, _) = extended_connect(&mut client, &authority, "/live", "connect-udp").await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED);
    assert_eq!(
        handshakes.load(SeqCst),
        1,
        "no backend saw the refused ones"
    );
    echoes(&mut send, &mut recv).await;

    // The client ends its stream: the tunnel closes on both sides.
    send.send_data(Bytes::new(), true).expect("end");
    let generation = proxy.generation.clone();
    eventually(WAIT, "the tunnel closed", move || {
        let generation = generation.clone();
        async move { generation.tunnels.total().open() == 0 }
    })
    .await;
}

#[tokio::test]
async fn a_websocket_over_tls_h2_echoes() {
    let (backend, handshakes) = echo_backend().await;
    let dir = tempfile::tempdir().expect("tempdir");
    support::tls::write_certificate(dir.path(), "shop", &["shop.example.com"]);
    let config = tls_config_with(
        dir.path(),
        "{ certificates = [\"shop\"] }",
        &["shop"],
        backend,
        "",
        "upgrades = [\"websocket\"]",
    );
    let (proxy, generation) = TlsProxy::start(config).await;
    let connector = tls_client(&[b"h2"], BOTH);
    let (stream, _) = connect(proxy.addr, "shop.example.com", &connector)
        .await
        .expect("TLS");
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let mut client = h2_client(stream).await;
    let (status, mut send, mut recv) =
        connect_websocket(&mut client, "shop.example.com", "/live").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(handshakes.load(SeqCst), 1);
    echoes(&mut send, &mut recv).await;
    assert_eq!(generation.tunnels.total().open(), 1);
}

/// A raw HTTP/1.1 backend that answers every request head with a `101` to WebSocket
/// carrying `accept` as its `Sec-WebSocket-Accept` (none when `None`), then holds the
/// connection open: the requests' heads it read.
async fn switching_backend(
    accept: Option<&'static str>,
) -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (heads, seen) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let heads = heads.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut byte).await {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let _ = heads.send(String::from_utf8_lossy(&head).into_owned());
                let mut answer = String::from(
                    "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n",
                );
                if let Some(accept) = accept {
                    answer.push_str(&format!("sec-websocket-accept: {accept}\r\n"));
                }
                answer.push_str("\r\n");
                if stream.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
                // Hold the connection as a switched backend would.
                let mut rest = [0u8; 1024];
                while matches!(stream.read(&mut rest).await, Ok(n) if n > 0) {}
            });
        }
    });
    (addr, seen)
}

/// RFC 6455 §4.1: a `101` whose `Sec-WebSocket-Accept` does not answer the key sent is
/// not a WebSocket handshake. Keel made the key up for the backend, so Keel checks it.
#[tokio::test]
async fn a_101_whose_accept_does_not_answer_keels_key_is_a_502_and_no_tunnel() {
    // A well-formed accept, but for another key (RFC 6455's sample), and none at all.
    for accept in [Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), None] {
        let (backend, mut heads) = switching_backend(accept).await;
        let proxy = TestProxy::start(&h2c_config(backend)).await;
        let tcp = TcpStream::connect(proxy.addr).await.expect("connect");
        let mut client = h2_client(tcp).await;
        let authority = proxy.addr.to_string();
        let (status, _send, _recv) = connect_websocket(&mut client, &authority, "/live").await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "accept {accept:?}");
        let head = tokio::time::timeout(WAIT, heads.recv())
            .await
            .expect("the backend got the request in time")
            .expect("a head");
        let head = head.to_ascii_lowercase();
        assert!(head.starts_with("get /live http/1.1\r\n"), "{head}");
        assert!(head.contains("\r\nsec-websocket-key: "), "{head}");
        assert!(
            !head.contains("sec-websocket-key: dghlihnhbxbszsbub25jzq=="),
            "Keel's key is fresh, not the sample one: {head}"
        );
        assert_eq!(
            proxy.generation.tunnels.total().open(),
            0,
            "no tunnel opened"
        );
        assert_eq!(proxy.generation.tunnels.total().opened(), 0);
        // The connection goes on serving other streams.
        let (status, _, _) = connect_websocket(&mut client, &authority, "/other").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}
