//! A rollback reaches the tunnels already open: WebSocket clients routed by a bad
//! generation are drained and, reconnecting, land on the restored generation's backend
//! (`rolled_back_tunnels = "drain"`), or stay where they were (`"keep"`); and a guarded
//! change whose only traffic is WebSocket shoppers is judged by the identity and share
//! detectors like any (a misrouted tunnel is a misrouted shopper). Real
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

/// A WebSocket server on 127.0.0.1:0 that proves it is service `NAME` on its `101`
/// (`x-service: NAME`) and answers each text message with `NAME:message`.
async fn echo(name: &'static str) -> SocketAddr {
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                // tungstenite's callback type fixes the (large) error type.
                #[allow(clippy::result_large_err)]
                let identify = |_: &Request, mut response: Response| {
                    response
                        .headers_mut()
                        .insert("x-service", http::HeaderValue::from_static(name));
                    Ok(response)
                };
                let Ok(mut socket) = tokio_tungstenite::accept_hdr_async(stream, identify).await
                else {
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

/// Most tunnels the shoppers below keep open at once.
const MAX_SHOPPERS: usize = 200;
/// Time between two shoppers arriving (20 ms: 50 a second).
const ARRIVAL: Duration = Duration::from_millis(20);

/// Shoppers arriving on `/live` over WebSocket until `until`, each staying connected
/// (at most [`MAX_SHOPPERS`] at once): the only traffic the detectors see. Returns the
/// replies' prefixes, one per shopper that got a tunnel.
async fn shoppers(addr: SocketAddr, until: tokio::time::Instant) -> Vec<String> {
    let mut open = Vec::new();
    let mut answered = Vec::new();
    while tokio::time::Instant::now() < until {
        if let Ok(Ok((mut socket, _))) =
            tokio::time::timeout(WAIT, connect_async(format!("ws://{addr}/live").as_str())).await
        {
            if let Some(reply) = ask(&mut socket, "hi").await {
                answered.push(reply.split(':').next().unwrap_or_default().to_string());
            }
            open.push(socket);
            if open.len() > MAX_SHOPPERS {
                open.remove(0);
            }
        }
        tokio::time::sleep(ARRIVAL).await;
    }
    answered
}

/// Two services that prove themselves on every answer, `live` and `chat`; the `live`
/// route goes to `pool` of `service`.
fn identified(live: SocketAddr, chat: SocketAddr, service: &str, pool: &str) -> String {
    format!(
        "[listeners.web]\naddr = \"127.0.0.1:18080\"\n\n[safety]\nknown_good_after = \"0s\"\nwatch = \"10s\"\n\n\
         [services.live]\nidentity = {{ header = \"x-service\", equals = \"live\" }}\n\n\
         [services.chat]\nidentity = {{ header = \"x-service\", equals = \"chat\" }}\n\n\
         [pools.live]\nservice = \"live\"\nbackends = [{{ addr = \"{live}\" }}]\n\n\
         [pools.chat]\nservice = \"chat\"\nbackends = [{{ addr = \"{chat}\" }}]\n\n\
         [[routes]]\nname = \"chat\"\npath_prefix = \"/chat\"\nservice = \"chat\"\npool = \"chat\"\nupgrades = [\"websocket\"]\n\n\
         [[routes]]\nname = \"live\"\npath_prefix = \"/live\"\nservice = \"{service}\"\npool = \"{pool}\"\nupgrades = [\"websocket\"]\n"
    )
}

/// A guarded controller serving generation 1 (`/live` to the `live` backend) on a
/// listener, with `WARMUP_SHOPPERS` tunnels opened through it so the baseline has
/// traffic; then `changed` is applied (forced, guarded, waiting for the verdict) while
/// shoppers keep arriving. Returns the guard's report and what the shoppers reached.
async fn guarded_change_under_tunnels(
    changed: impl Fn(SocketAddr, SocketAddr) -> String,
) -> (keel_control::GuardReport, Vec<String>, Controller) {
    let (live, chat) = (echo("live").await, echo("chat").await);
    let plane = keel_proxy::DataPlane::new(support::plane_options()).expect("plane");
    let controller = Controller::new_guarded(Arc::new(MemoryStore::new()), plane);
    controller
        .apply(apply(identified(live, chat, "live", "live")))
        .await
        .expect("apply 1");
    let addr = serve(&controller).await;
    let warm = shoppers(addr, tokio::time::Instant::now() + WARMUP).await;
    assert!(warm.iter().all(|s| s == "live"), "{warm:?}");
    let traffic = tokio::spawn(shoppers(addr, tokio::time::Instant::now() + TRAFFIC));
    let mut request = apply(changed(live, chat));
    request.force = true;
    request.wait = true;
    let outcome = controller.apply(request).await.expect("apply 2");
    let report = outcome.guard.expect("a guarded apply");
    let reached = traffic.await.expect("shoppers");
    (report, reached, controller)
}

/// Shoppers before the change: the baseline's window (1.5 s: about 75 tunnels).
const WARMUP: Duration = Duration::from_millis(1500);
/// Shoppers during and after the change (a bound, not a timing claim: the guard
/// decides well within it).
const TRAFFIC: Duration = Duration::from_secs(6);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_identity_detector_sees_tunnels_sent_to_another_service() {
    // Generation 2 points the `live` pool's route at the chat servers: every upgrade
    // is answered as `chat` and refused, and that is the identity alarm.
    let (report, reached, controller) = guarded_change_under_tunnels(|live, chat| {
        identified(live, chat, "live", "live").replace(
            &format!("[pools.live]\nservice = \"live\"\nbackends = [{{ addr = \"{live}\" }}]"),
            &format!("[pools.live]\nservice = \"live\"\nbackends = [{{ addr = \"{chat}\" }}]"),
        )
    })
    .await;
    assert_eq!(
        report.result,
        keel_control::GuardResult::RolledBack,
        "{report:?}"
    );
    let alert = report.alert.expect("the alarm");
    assert_eq!(alert["detector"], "identity", "{alert}");
    assert_eq!(controller.plane().active().map(|a| a.primary.id), Some(1));
    assert!(
        reached.iter().all(|s| s == "live"),
        "a shopper reached chat: {reached:?}"
    );
    assert_eq!(reached.last().map(String::as_str), Some("live"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_share_detector_counts_tunnels_that_moved_to_another_service() {
    // Generation 2 sends `/live` to the chat service, identities and all: every tunnel
    // opens, on the wrong application. Only the share of tunnels per service shows it.
    let (report, reached, controller) =
        guarded_change_under_tunnels(|live, chat| identified(live, chat, "chat", "chat")).await;
    assert_eq!(
        report.result,
        keel_control::GuardResult::RolledBack,
        "{report:?}"
    );
    let alert = report.alert.expect("the alarm");
    assert_eq!(alert["detector"], "share", "{alert}");
    assert_eq!(controller.plane().active().map(|a| a.primary.id), Some(1));
    assert!(reached.iter().any(|s| s == "chat"), "{reached:?}");
    assert_eq!(
        reached.last().map(String::as_str),
        Some("live"),
        "{reached:?}"
    );
}
