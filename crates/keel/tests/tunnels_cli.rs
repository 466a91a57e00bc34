//! Tunnels through a real `keel serve`, seen from the CLI: `keel status` lists the open
//! tunnels per generation, route, pool and backend in its text, and `keel rollback`
//! says how many tunnels of the generation it left it drained or left open
//! (`[safety] rolled_back_tunnels`). The client speaks raw HTTP/1.1 `Upgrade` on a TCP
//! socket; the backends switch to a byte stream that answers `NAME:` + what it read.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use keel_control::admin::AdminToken;
use keel_control::api::ApplyBody;
use keel_control::client::AdminClient;
use keel_control::{ApplyStatus, Status};
use keel_testkit::{eventually, free_addr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TOKEN: &str = "tunnels-cli-token";
/// Longest a single read here may wait before the test calls it hung (10 seconds).
const WAIT: Duration = Duration::from_secs(10);

/// A child process killed (by its id) when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads from `stream` until `end` arrived or the peer closed.
async fn read_until(stream: &mut TcpStream, end: &[u8]) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut buffer = [0u8; 1024];
    while !seen.windows(end.len()).any(|w| w == end) {
        match tokio::time::timeout(WAIT, stream.read(&mut buffer)).await {
            Ok(Ok(n)) if n > 0 => seen.extend_from_slice(&buffer[..n]),
            _ => break,
        }
    }
    seen
}

/// A backend that switches every request to a byte stream (`101`, proving service
/// `live`) and answers each read with `NAME:` and the bytes read.
async fn switching_backend(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = read_until(&mut stream, b"\r\n\r\n").await;
                let switched = b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\
                                 connection: upgrade\r\nx-service: live\r\n\r\n";
                if stream.write_all(switched).await.is_err() {
                    return;
                }
                let mut buffer = [0u8; 1024];
                while let Ok(n) = stream.read(&mut buffer).await {
                    if n == 0 {
                        break;
                    }
                    let mut answer = format!("{name}:").into_bytes();
                    answer.extend_from_slice(&buffer[..n]);
                    if stream.write_all(&answer).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

fn config(proxy: SocketAddr, admin: SocketAddr, backend: SocketAddr, tunnels: &str) -> String {
    format!(
        "[listeners.web]\naddr = \"{proxy}\"\n\n[admin]\naddr = \"{admin}\"\n\n\
         [safety]\nknown_good_after = \"0s\"\n{tunnels}\n\n\
         [services.live]\nidentity = {{ header = \"x-service\", equals = \"live\" }}\n\n\
         [pools.live]\nservice = \"live\"\nbackends = [{{ addr = \"{backend}\" }}]\n\n\
         [[routes]]\nname = \"live\"\nservice = \"live\"\npool = \"live\"\nupgrades = [\"websocket\"]\n"
    )
}

/// Opens a tunnel through the proxy and checks it reaches `expected`.
async fn open_tunnel(proxy: SocketAddr, expected: &str) -> TcpStream {
    let mut stream = TcpStream::connect(proxy).await.expect("connect");
    stream
        .write_all(
            b"GET /live HTTP/1.1\r\nHost: shop.example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
              Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .await
        .expect("write");
    let head = read_until(&mut stream, b"\r\n\r\n").await;
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(say(&mut stream, "hi").await, format!("{expected}:hi"));
    stream
}

/// Sends `text` on a tunnel and reads the answer (empty once the tunnel closed).
async fn say(stream: &mut TcpStream, text: &str) -> String {
    if stream.write_all(text.as_bytes()).await.is_err() {
        return String::new();
    }
    let mut buffer = [0u8; 1024];
    match tokio::time::timeout(WAIT, stream.read(&mut buffer)).await {
        Ok(Ok(n)) => String::from_utf8_lossy(&buffer[..n]).into_owned(),
        _ => String::new(),
    }
}

fn cli(admin: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(args)
        .env("KEEL_ADMIN", admin)
        .env("KEEL_ADMIN_TOKEN", TOKEN)
        .env("KEEL_LOG", "warn")
        .output()
        .expect("run keel")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `keel serve` with generation 1 routing `/live` to `good`, then generation 2 to
/// `bad`, both with `tunnels` in `[safety]`; one tunnel opened through generation 2.
async fn bad_generation_with_a_tunnel(
    dir: &Path,
    tunnels: &str,
) -> (Process, String, SocketAddr, SocketAddr, TcpStream) {
    let (good, bad) = (
        switching_backend("good").await,
        switching_backend("bad").await,
    );
    let (proxy, admin) = (free_addr(), free_addr());
    let file = dir.join("keel.toml");
    std::fs::write(&file, config(proxy, admin, good, tunnels)).expect("config");
    let child = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["serve", "--config"])
        .arg(&file)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .env("KEEL_ADMIN_TOKEN", TOKEN)
        .env("KEEL_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn keel serve");
    let process = Process(child);
    let url = format!("http://{admin}");
    let client = AdminClient::new(&url, Some(AdminToken::new(TOKEN, "test").expect("token")))
        .expect("client");
    eventually(WAIT, || async {
        let status: Status = client.status().await.ok()?;
        status.active.filter(|a| a.known_good).map(|_| ())
    })
    .await
    .expect("keel serve never served a known-good generation 1");
    let applied = client
        .apply(&ApplyBody {
            config: config(proxy, admin, bad, tunnels),
            message: "live onto the bad servers".into(),
            force: true,
            no_guard: true,
            ..ApplyBody::default()
        })
        .await
        .expect("apply");
    assert_eq!(applied.status, ApplyStatus::Applied, "{applied:?}");
    let tunnel = open_tunnel(proxy, "bad").await;
    (process, url, proxy, bad, tunnel)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_lists_the_tunnels_and_a_rollback_that_keeps_them_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_keel, admin, _proxy, bad, mut tunnel) =
        bad_generation_with_a_tunnel(dir.path(), "rolled_back_tunnels = \"keep\"").await;

    let status = cli(&admin, &["status"]);
    let text = stdout(&status);
    for line in [
        "tunnels: 1 open\n",
        "  generation 2 (serving): 1 open; 0 closed idle, 0 drained\n",
        "    route live: 1 open\n",
        "    pool live: 1 open\n",
        &format!("    backend {bad} (pool live): 1 open\n"),
    ] {
        assert!(text.contains(line), "no {line:?} in\n{text}");
    }

    let rollback = cli(&admin, &["rollback", "--to", "1", "-m", "bad servers"]);
    let said = stdout(&rollback);
    assert!(rollback.status.success(), "{said}");
    assert!(
        said.contains(
            "tunnels: 1 left open on generation 2 (rolled_back_tunnels = \"keep\"; `keel status` lists them)\n"
        ),
        "{said}"
    );
    // The tunnel still carries bytes to where generation 2 sent it, and status says so.
    assert_eq!(say(&mut tunnel, "still").await, "bad:still");
    let text = stdout(&cli(&admin, &["status"]));
    assert!(
        text.contains(
            "  generation 2 (NOT SERVING: routed by a generation that was replaced or rolled back): 1 open"
        ),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_that_drains_says_how_many_tunnels_and_they_come_back_right() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_keel, admin, proxy, _bad, mut tunnel) = bad_generation_with_a_tunnel(
        dir.path(),
        "rolled_back_tunnels = \"drain\"\ntunnel_drain = \"100ms\"",
    )
    .await;
    let rollback = cli(&admin, &["rollback", "--to", "1"]);
    let said = stdout(&rollback);
    assert!(rollback.status.success(), "{said}");
    assert!(
        said.contains(
            "tunnels: 1 of generation 2 drained: closed in 100ms, their clients reconnect to generation 1\n"
        ),
        "{said}"
    );
    // The drained tunnel ends; a new one lands on generation 1's backend.
    let mut closed = false;
    for _ in 0..100 {
        if say(&mut tunnel, "still?").await.is_empty() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(closed, "the drained tunnel stayed open");
    let _again = open_tunnel(proxy, "good").await;
    let text = stdout(&cli(&admin, &["status"]));
    assert!(
        text.contains("  generation 1 (serving): 1 open; 0 closed idle, 0 drained\n"),
        "{text}"
    );
}
