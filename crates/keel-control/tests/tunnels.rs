//! A rollback reaches the tunnels already open: WebSocket clients routed by a bad
//! generation are drained and, reconnecting, land on the restored generation's backend
//! (`rolled_back_tunnels = "drain"`), or stay where they were (`"keep"`). Real
//! tokio-tungstenite servers and clients, a real controller and data plane.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use keel_control::{ApplyRequest, Controller, Hooks, RollbackRequest};
use keel_proxy::ListenerLimits;
use keel_store::MemoryStore;
use support::controller;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

/// Longest any single wait here may take (10 seconds).
const WAIT: Duration = Duration::from_secs(10);

/// A WebSocket server on 127.0.0.1:0 that answers each text message with
/// `NAME:message`.
async fn echo(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(message)) = socket.next().await {
                    if let Message::Text(text) = message {
                        let reply = Message::text(format!("{name}:{}", text.as_str()));
                        if socket.send(reply).await.is_err() {
                            break;
                        }
                    }
                }
            });
        }
    });
    addr
}

fn config(backend: SocketAddr, safety: &str) -> String {
    format!(
        "[listeners.web]\naddr = \"127.0.0.1:18080\"\n\n[safety]\nknown_good_after = \"0s\"\n{safety}\n\n\
         [services.live]\nallow_no_identity = true\n\n[pools.live]\nservice = \"live\"\nbackends = [{{ addr = \"{backend}\" }}]\n\n\
         [[routes]]\nname = \"live\"\nservice = \"live\"\npool = \"live\"\nupgrades = [\"websocket\"]\n"
    )
}

fn apply(text: String) -> ApplyRequest {
    ApplyRequest {
        config_text: text,
        author: "alice".into(),
        message: "test".into(),
        ..ApplyRequest::default()
    }
}

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The controller's data plane serving a listener on 127.0.0.1:0.
async fn serve(controller: &Controller) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let plane = controller.plane().clone();
    let limits = ListenerLimits::from_server(&keel_config::parse("").config.server);
    tokio::spawn(async move { plane.serve(listener, limits, std::future::pending()).await });
    addr
}

async fn connect(addr: SocketAddr) -> Client {
    let url = format!("ws://{addr}/live");
    let (socket, _) = tokio::time::timeout(WAIT, connect_async(url.as_str()))
        .await
        .expect("handshake in time")
        .expect("handshake");
    socket
}

/// Sends `text` and returns the answer; `None` once the tunnel is closed.
async fn ask(socket: &mut Client, text: &str) -> Option<String> {
    socket.send(Message::text(text)).await.ok()?;
    loop {
        match tokio::time::timeout(WAIT, socket.next())
            .await
            .expect("in time")
        {
            Some(Ok(Message::Text(reply))) => return Some(reply.as_str().to_string()),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            _ => return None,
        }
    }
}

/// Generation 1 (known good) routes to `good`, generation 2 to `bad`; a client
/// connects while 2 is active. Returns the controller, the proxy address and that
/// client.
async fn bad_generation_with_a_tunnel(safety: &str) -> (Controller, SocketAddr, Client) {
    let (good, bad) = (echo("good").await, echo("bad").await);
    let controller = controller(Arc::new(MemoryStore::new()), Hooks::default());
    controller
        .apply(apply(config(good, safety)))
        .await
        .expect("apply 1");
    controller.promote_known_good().await.expect("promote");
    controller
        .apply(apply(config(bad, safety)))
        .await
        .expect("apply 2");
    let addr = serve(&controller).await;
    let mut socket = connect(addr).await;
    assert_eq!(ask(&mut socket, "hi").await.as_deref(), Some("bad:hi"));
    (controller, addr, socket)
}

#[tokio::test]
async fn a_rollback_drains_the_bad_generations_tunnels_and_clients_come_back_right() {
    let (controller, addr, mut socket) =
        bad_generation_with_a_tunnel("rolled_back_tunnels = \"drain\"\ntunnel_drain = \"100ms\"")
            .await;
    let bad = controller.plane().active().expect("active").primary.clone();
    assert_eq!((bad.id, bad.tunnels.total().open()), (2, 1));
    let outcome = controller
        .rollback(RollbackRequest::default())
        .await
        .expect("rollback");
    assert_eq!((outcome.from, outcome.to), (2, 1));
    assert_eq!((outcome.tunnels.drained, outcome.tunnels.kept), (1, 0));
    assert_eq!(outcome.tunnels.drain_ms, 100);
    // The tunnel ends after the grace; the client reconnects through generation 1.
    let deadline = tokio::time::Instant::now() + WAIT;
    while let Some(reply) = ask(&mut socket, "still?").await {
        assert_eq!(reply, "bad:still?");
        assert!(
            tokio::time::Instant::now() < deadline,
            "the rolled-back generation's tunnel was never drained"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(bad.tunnels.drained(), 1);
    assert_eq!(bad.tunnels.total().open(), 0);
    let mut again = connect(addr).await;
    assert_eq!(ask(&mut again, "hi").await.as_deref(), Some("good:hi"));
}

#[tokio::test]
async fn with_keep_a_rollback_leaves_the_tunnels_where_they_are() {
    let (controller, _addr, mut socket) =
        bad_generation_with_a_tunnel("rolled_back_tunnels = \"keep\"\ntunnel_drain = \"1ms\"")
            .await;
    let bad = controller.plane().active().expect("active").primary.clone();
    // The metrics show the tunnel on the generation, route, pool and backend it took.
    let (watcher, _) = keel_watch::Watcher::start(controller.plane().clone(), &[]);
    let text = watcher.metrics_text();
    for series in [
        "keel_open_tunnels{generation=\"2\",route=\"live\"} 1",
        "keel_tunnels_total{generation=\"2\",route=\"live\"} 1",
        "keel_open_backend_tunnels{generation=\"2\",pool=\"live\",backend=",
    ] {
        assert!(text.contains(series), "no {series} in\n{text}");
    }
    let outcome = controller
        .rollback(RollbackRequest::default())
        .await
        .expect("rollback");
    assert_eq!((outcome.tunnels.drained, outcome.tunnels.kept), (0, 1));
    assert_eq!(controller.plane().active().map(|a| a.primary.id), Some(1));
    // Well past the (unused) drain grace, the tunnel still carries messages, and is
    // still counted on the generation that routed it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        ask(&mut socket, "there?").await.as_deref(),
        Some("bad:there?")
    );
    assert_eq!(bad.tunnels.total().open(), 1);
    assert_eq!(bad.tunnels.drained(), 0);
    // `/status` lists them on generation 2, which no longer serves.
    let status = controller.status();
    let kept: Vec<(u64, bool, u64)> = status
        .tunnels
        .iter()
        .map(|t| (t.generation, t.serving, t.open))
        .collect();
    assert_eq!(kept, [(2, false, 1)]);
    assert_eq!(status.tunnels[0].routes[0].route, "live");
    assert_eq!(status.tunnels[0].backends.len(), 1);
}
