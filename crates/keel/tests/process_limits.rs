//! The real `keel serve` at the limits of the process and its sockets: under a low
//! file-descriptor limit, idle connections to the admin listener (which need no token
//! to open) cannot take the descriptors the data plane needs; Keel raises its soft
//! limit to the hard one at start and says so in `GET /status` and `keel status`; and
//! a listener's accept queue holds a burst of connects far beyond the old 128.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use keel_control::admin::{AdminToken, MAX_ADMIN_CONNECTIONS};
use keel_control::client::AdminClient;
use keel_testkit::{Backend, free_addr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = "starvation-test-token";
/// The descriptor limit Keel runs under: far fewer than the idle admin connections.
const LOW_LIMIT: usize = 256;
/// Idle admin connections the test holds open: more than the whole limit.
const IDLE_ADMIN_CONNECTIONS: usize = LOW_LIMIT + 64;
/// Data-plane requests, each on a new connection, while the admin ones are held.
const DATA_PLANE_REQUESTS: usize = 20;
/// Bound on any one wait on a socket: a starved accept never answers at all.
const SOCKET_WAIT: Duration = Duration::from_secs(5);

/// A burst of connects while Keel accepts none: far beyond the old backlog of 128.
const CONNECT_BURST: usize = 600;

/// `keel serve` started through `sh -c 'ulimit …; exec keel …'`, killed when dropped.
struct Keel {
    child: Child,
    log: std::path::PathBuf,
    admin: SocketAddr,
}

impl Keel {
    fn start(dir: &Path, ulimit: &str, [proxy, admin, backend]: [SocketAddr; 3]) -> Keel {
        let config = format!(
            "[listeners.web]\naddr = \"{proxy}\"\n\n[admin]\naddr = \"{admin}\"\n\n\
             [services.app]\nallow_no_identity = true\n\n[pools.app]\nservice = \"app\"\nbackends = [{{ addr = \"{backend}\" }}]\n\n\
             [[routes]]\nname = \"all\"\nservice = \"app\"\npool = \"app\"\nretries = 0\n"
        );
        let file = dir.join("keel.toml");
        std::fs::write(&file, config).expect("write config");
        let log = dir.join("serve.log");
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit {ulimit} {LOW_LIMIT} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_keel"))
            .args(["serve", "--config"])
            .arg(&file)
            .arg("--state-dir")
            .arg(dir.join("state"))
            .env("KEEL_ADMIN_TOKEN", TOKEN)
            .env("KEEL_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn keel serve");
        Keel { child, log, admin }
    }

    fn client(&self) -> AdminClient {
        AdminClient::new(
            &format!("http://{}", self.admin),
            Some(AdminToken::new(TOKEN, "test").expect("token")),
        )
        .expect("client")
    }

    async fn ready(&mut self) {
        let client = self.client();
        support::until_healthy(&mut self.child, &client, &self.log).await;
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Keel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request on a new connection; the status line, or why there was none.
async fn data_plane_get(proxy: SocketAddr) -> Result<String, String> {
    let exchange = async {
        let mut stream = TcpStream::connect(proxy).await?;
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n")
            .await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    match tokio::time::timeout(SOCKET_WAIT, exchange).await {
        Ok(Ok(answer)) => Ok(String::from_utf8_lossy(&answer)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("no answer in time".to_string()),
    }
}

#[tokio::test]
async fn idle_admin_connections_past_the_descriptor_limit_leave_the_data_plane_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backend = Backend::new("app").anonymous().start().await;
    let (proxy, admin) = (free_addr(), free_addr());
    let mut keel = Keel::start(dir.path(), "-n", [proxy, admin, backend]);
    keel.ready().await;
    let status = keel.client().status().await.expect("status");
    let descriptors = status.descriptors.expect("descriptors in /status");
    assert_eq!(
        (descriptors.limit, descriptors.hard_limit),
        (LOW_LIMIT as u64, LOW_LIMIT as u64)
    );

    let mut idle = Vec::with_capacity(IDLE_ADMIN_CONNECTIONS);
    for _ in 0..IDLE_ADMIN_CONNECTIONS {
        idle.push(TcpStream::connect(admin).await.expect("connect to admin"));
    }
    // Connections past the cap are closed as soon as they are accepted, in order: once
    // the last one is closed, Keel has accepted every one before it.
    let mut last = idle.pop().expect("connections");
    let mut byte = [0u8; 1];
    let closed = tokio::time::timeout(SOCKET_WAIT, last.read(&mut byte)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "the admin connection past the cap was not closed: {closed:?}"
    );

    for _ in 0..DATA_PLANE_REQUESTS {
        let answer = data_plane_get(proxy).await;
        assert_eq!(
            answer.as_deref(),
            Ok("HTTP/1.1 200 OK"),
            "a data-plane client was not served while {} idle admin connections were held \
             (cap {MAX_ADMIN_CONNECTIONS})\n{}",
            idle.len(),
            keel.log()
        );
    }
    drop(idle);
}

#[tokio::test]
async fn the_soft_descriptor_limit_is_raised_to_the_hard_one_and_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (proxy, admin) = (free_addr(), free_addr());
    let mut keel = Keel::start(dir.path(), "-Sn", [proxy, admin, free_addr()]);
    keel.ready().await;
    let descriptors = keel
        .client()
        .status()
        .await
        .expect("status")
        .descriptors
        .expect("descriptors in /status");
    assert!(
        descriptors.limit > LOW_LIMIT as u64 && descriptors.limit == descriptors.hard_limit,
        "{descriptors:?}"
    );
    let output = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["status"])
        .env("KEEL_ADMIN", format!("http://{admin}"))
        .env("KEEL_ADMIN_TOKEN", TOKEN)
        .output()
        .expect("keel status");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains(&format!("of {} (hard limit", descriptors.limit)),
        "{text}"
    );
}

#[tokio::test]
async fn a_listener_queues_a_burst_of_connects_far_beyond_128() {
    let cap = keel_proxy::listen::somaxconn().unwrap_or(u32::MAX) as usize;
    if cap <= CONNECT_BURST {
        eprintln!("net.core.somaxconn is {cap}: too low to tell a backlog of 128 from the default");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (proxy, admin) = (free_addr(), free_addr());
    let mut keel = Keel::start(dir.path(), "-Sn", [proxy, admin, free_addr()]);
    keel.ready().await;
    // Stopped, Keel accepts nothing: every connect the kernel completes waits in the
    // listener's queue, and one past the queue is dropped (its client retries later).
    keel.signal("STOP");
    let mut connects = tokio::task::JoinSet::new();
    for _ in 0..CONNECT_BURST {
        connects.spawn(async move {
            tokio::time::timeout(SOCKET_WAIT, TcpStream::connect(proxy))
                .await
                .ok()
                .and_then(Result::ok)
        });
    }
    let mut queued = Vec::new();
    while let Some(connected) = connects.join_next().await {
        if let Some(stream) = connected.expect("join") {
            queued.push(stream);
        }
    }
    keel.signal("CONT");
    assert_eq!(
        queued.len(),
        CONNECT_BURST,
        "connects beyond the listen queue were dropped"
    );
}
