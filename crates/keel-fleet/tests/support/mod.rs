//! In-process fleet nodes for the fleet tests: each node is a real controller, data plane
//! and listener on loopback, with its own state directory, its own node config, and the
//! `keel_fleet::join` loop on a real etcd (`keel_testkit::Etcd`). Also the node configs
//! (own keys, a rollout line, the routing part), starting a set of nodes (the usual three:
//! [`fleet_of_three`]), applying through a node, bounded load, and the asserts the suites
//! share; what they read back from etcd is in `records.rs`.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use keel_control::{ApplyOutcome, ApplyRequest, Controller};

use keel_fleet::FleetStore;
use keel_proxy::ListenerLimits;
use keel_store::Store;
use keel_testkit::{Etcd, free_addr};
use tokio::sync::watch;

mod records;
#[allow(unused_imports)] // not every suite reads etcd back
pub(crate) use records::*;

/// The fleet's prefix in the tests' etcd.
pub(crate) const PREFIX: &str = "/keel/test";

/// How long the tests wait for a fleet to converge before failing.
pub(crate) const CONVERGE_WITHIN: Duration = Duration::from_secs(20);

/// The routing part of a fleet generation: one identified service over `backends`, with a
/// marker in a route header so tests can tell generations apart by what they configure.
pub(crate) fn routing(backends: &[SocketAddr], marker: &str) -> String {
    format!(
        r#"
[services.web]
identity = {{ header = "x-service", equals = "web" }}
[pools.web]
service = "web"
backends = {}
health = {{ path = "/healthz", interval = "200ms" }}
[[routes]]
name = "all"
service = "web"
pool = "web"
retries = 0
response_headers = {{ set = {{ "x-marker" = "{marker}" }} }}
[safety]
watch = "300ms"
known_good_after = "300ms"
[[tests]]
request = "GET http://shop.example/"
expect = {{ route = "all" }}
"#,
        keel_testkit::toml_list(backends)
    )
}

/// A node's own keys: its listener, its admin address and its `[fleet]` table.
pub(crate) fn node_keys(
    name: &str,
    endpoint: &str,
    listen: SocketAddr,
    admin: SocketAddr,
) -> String {
    node_keys_on(name, &[endpoint.to_string()], listen, admin)
}

/// [`node_keys`] with several etcd endpoints (the members of a cluster).
pub(crate) fn node_keys_on(
    name: &str,
    endpoints: &[String],
    listen: SocketAddr,
    admin: SocketAddr,
) -> String {
    let endpoints = endpoints
        .iter()
        .map(|e| format!("\"{e}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "[listeners.web]\naddr = \"{listen}\"\n[admin]\naddr = \"{admin}\"\n[fleet]\nstore = \"etcd\"\nendpoints = [{endpoints}]\nprefix = \"{PREFIX}\"\nnode = \"{name}\"\ndrift_alert = \"1s\"\n"
    )
}

/// A node canary's line in a node's `[fleet]` table: `first` nodes, then `then` (TOML: a
/// count, or `"all"`), each step watched for `watch` (whole seconds).
pub(crate) fn rollout(first: u32, then: &str, watch: Duration) -> String {
    format!(
        "rollout = {{ first = {first}, then = {then}, watch = \"{}s\" }}\n",
        watch.as_secs()
    )
}

/// The three nodes of most fleet tests.
pub(crate) const THREE: [&str; 3] = ["lb-1", "lb-2", "lb-3"];

/// Starts one node per name in `dir` (a directory each): its own keys on `endpoints`
/// followed by `extra` (more `[fleet]` keys, e.g. a [`rollout`] line, or nothing), then the
/// routing part over `backends` marked `marker`.
pub(crate) async fn start_nodes(
    names: &[&str],
    endpoints: &[String],
    extra: &str,
    dir: &Path,
    backends: &[SocketAddr],
    marker: &str,
) -> Vec<TestNode> {
    let mut nodes = Vec::new();
    for name in names {
        let text = format!(
            "{}{extra}{}",
            node_keys_on(name, endpoints, free_addr(), free_addr()),
            routing(backends, marker)
        );
        nodes.push(TestNode::start(name, &text, dir.join(name)).await);
    }
    nodes
}

/// [`start_nodes`] for lb-1, lb-2 and lb-3 on one etcd, over `backends` marked "one".
pub(crate) async fn three_nodes(
    etcd: &Etcd,
    extra: &str,
    dir: &Path,
    backends: &[SocketAddr],
) -> Vec<TestNode> {
    start_nodes(&THREE, &[etcd.endpoint()], extra, dir, backends, "one").await
}

/// What most fleet tests start from: a real etcd, a temporary directory, and lb-1, lb-2
/// and lb-3 on it ([`three_nodes`], with `extra` `[fleet]` keys) over `backends`, every one
/// serving generation 1. `None` (after etcd's loud skip message) when etcd is missing.
pub(crate) async fn fleet_of_three(
    extra: &str,
    backends: &[SocketAddr],
) -> Option<(Etcd, tempfile::TempDir, Vec<TestNode>)> {
    let etcd = Etcd::start()?;
    let dir = tempfile::tempdir().expect("tempdir");
    let nodes = three_nodes(&etcd, extra, dir.path(), backends).await;
    let refs: Vec<&TestNode> = nodes.iter().collect();
    assert!(converged(&refs, 1).await, "generation 1 everywhere");
    Some((etcd, dir, nodes))
}

/// [`routing`] over `backends` with no health check on the pool, marked "misrouted": what
/// a misroute to another application looks like when only the responses' identity gives
/// it away.
pub(crate) fn misrouted(backends: &[SocketAddr]) -> String {
    routing(backends, "misrouted").replace(
        "health = { path = \"/healthz\", interval = \"200ms\" }\n",
        "",
    )
}

/// One in-process node.
pub(crate) struct TestNode {
    pub(crate) name: String,
    pub(crate) listen: SocketAddr,
    pub(crate) controller: Controller,
    pub(crate) store: Arc<FleetStore>,
    pub(crate) state_dir: PathBuf,
    pub(crate) file: PathBuf,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl TestNode {
    /// Starts node `name` from `text` (its own file) in `state_dir`.
    pub(crate) async fn start(name: &str, text: &str, state_dir: PathBuf) -> TestNode {
        Self::start_with(name, text, state_dir, false).await
    }

    /// [`TestNode::start`] as `keel serve --config FILE --state-dir DIR` starts a node:
    /// relative paths start beside its file, certificates are pinned in `state_dir`.
    pub(crate) async fn start_pinned(name: &str, text: &str, state_dir: PathBuf) -> TestNode {
        Self::start_with(name, text, state_dir, true).await
    }

    async fn start_with(name: &str, text: &str, state_dir: PathBuf, pinned: bool) -> TestNode {
        std::fs::create_dir_all(&state_dir).expect("state dir");
        let file = state_dir.join("keel.toml");
        std::fs::write(&file, text).expect("write config");
        let node = keel_fleet::node_config(&file).expect("a fleet node config");
        let store = keel_fleet::open_store(&node, &state_dir).expect("open the fleet store");
        let prepared = {
            let (store, file, node, state) =
                (store.clone(), file.clone(), node.clone(), state_dir.clone());
            tokio::task::spawn_blocking(move || keel_fleet::prepare(&store, &file, &node, &state))
                .await
                .expect("prepare task")
                .expect("prepare")
        };
        let dyn_store: Arc<dyn Store> = store.clone();
        let (controller, _) = if pinned {
            Controller::start_guarded_at(dyn_store, prepared, &state_dir, Some(&file)).await
        } else {
            Controller::start_guarded(dyn_store, prepared).await
        }
        .expect("start the controller");
        let (stop, stopped) = watch::channel(false);
        let shutdown = |mut stopped: watch::Receiver<bool>| async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        let mut tasks = Vec::new();
        tasks.push(keel_fleet::join(
            &controller,
            store.clone(),
            node.clone(),
            shutdown(stopped.clone()),
        ));
        let listen = node.listeners["web"].addr.value;
        let socket = tokio::net::TcpListener::bind(listen).await.expect("bind");
        let plane = controller.plane().clone();
        let limits = ListenerLimits::from_server(&node.server);
        let until = shutdown(stopped.clone());
        tasks.push(tokio::spawn(async move {
            let _ = plane.serve(socket, limits, until).await;
        }));
        TestNode {
            name: name.to_string(),
            listen,
            controller,
            store,
            state_dir,
            file,
            stop,
            tasks,
        }
    }

    /// The generation this node's data plane serves.
    pub(crate) fn serving(&self) -> Option<u64> {
        self.controller.plane().active().map(|a| a.primary.id)
    }

    /// Applies `text` through this node's controller, as `keel apply` to it would.
    /// A refusal because the previous apply's (short) watch is still running is tried
    /// again until [`CONVERGE_WITHIN`]; any other outcome is returned.
    pub(crate) async fn apply(
        &self,
        text: String,
    ) -> Result<ApplyOutcome, keel_control::ControlError> {
        self.apply_until_unwatched(ApplyRequest {
            config_text: text,
            message: format!("applied on {}", self.name),
            no_guard: true,
            ..ApplyRequest::default()
        })
        .await
    }

    /// Applies `text` through this node's controller with the guard on (`force` overrides
    /// the identity probes and the gate), retried like [`TestNode::apply`] while a previous
    /// watch runs.
    pub(crate) async fn apply_guarded(
        &self,
        text: String,
        force: bool,
    ) -> Result<ApplyOutcome, keel_control::ControlError> {
        self.apply_until_unwatched(ApplyRequest {
            config_text: text,
            message: format!("applied on {} with its guard", self.name),
            force,
            ..ApplyRequest::default()
        })
        .await
    }

    /// Sends `request` (as the CLI would, by "test") until it is not refused because a
    /// previous apply is still being watched, or [`CONVERGE_WITHIN`] has passed.
    async fn apply_until_unwatched(
        &self,
        request: ApplyRequest,
    ) -> Result<ApplyOutcome, keel_control::ControlError> {
        let started = std::time::Instant::now();
        loop {
            let outcome = self
                .controller
                .apply(ApplyRequest {
                    author: "test".into(),
                    origin: "cli".into(),
                    file_name: "keel.toml".into(),
                    ..request.clone()
                })
                .await?;
            let watching = outcome
                .refusals
                .iter()
                .any(|r| r.message.contains("is still being watched"));
            if !watching || started.elapsed() > CONVERGE_WITHIN {
                return Ok(outcome);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// This node's own keys (its file without the routing part).
    pub(crate) fn own_keys(&self) -> String {
        let text = std::fs::read_to_string(&self.file).expect("node file");
        text.split("[services.web]")
            .next()
            .unwrap_or_default()
            .to_string()
    }

    /// Stops serving and leaves the fleet (the lease runs out).
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Waits until every node serves `generation`.
pub(crate) async fn converged(nodes: &[&TestNode], generation: u64) -> bool {
    keel_testkit::eventually(CONVERGE_WITHIN, || async {
        nodes
            .iter()
            .all(|n| n.serving() == Some(generation))
            .then_some(())
    })
    .await
    .is_some()
}

/// A GET to `addr` through a fresh connection: (status, x-keel-generation).
pub(crate) async fn get(addr: SocketAddr) -> Option<(u16, Option<u64>)> {
    use http_body_util::BodyExt;
    let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await.ok()?;
    tokio::spawn(connection);
    let request = http::Request::get("/")
        .header("host", "shop.example")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .ok()?;
    let response = sender.send_request(request).await.ok()?;
    let status = response.status().as_u16();
    let generation = response
        .headers()
        .get("x-keel-generation")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let _ = response.into_body().collect().await;
    Some((status, generation))
}

/// `rps` requests per second to `node` for `duration`, in the background.
pub(crate) fn load_on(
    rps: u32,
    node: &TestNode,
    duration: Duration,
) -> tokio::task::JoinHandle<keel_testkit::LoadReport> {
    let addr = node.listen;
    tokio::spawn(keel_testkit::load(rps, duration, move |_| {
        http::Request::get(format!("http://{addr}/"))
            .header("host", "shop.example")
            .body(http_body_util::Empty::new())
            .expect("request")
    }))
}

/// The index of the member that leads, asked of each running member in turn.
pub(crate) async fn leader(cluster: &keel_testkit::EtcdCluster) -> Option<usize> {
    for i in 0..keel_testkit::ETCD_CLUSTER_MEMBERS {
        if !cluster.is_running(i) {
            continue;
        }
        let Ok(mut client) = keel_fleet::connect(&[cluster.endpoint(i)]).await else {
            continue;
        };
        let Ok(status) = client.status().await else {
            continue;
        };
        if status.header().map(|h| h.member_id()) == Some(status.leader()) {
            return Some(i);
        }
    }
    None
}

/// Every node in `nodes` serves `generation` at every look (every 100 ms) until `until`;
/// a move fails the test with "NODE `why`".
pub(crate) async fn stay_on(
    nodes: &[&TestNode],
    generation: u64,
    until: std::time::Instant,
    why: &str,
) {
    while std::time::Instant::now() < until {
        for node in nodes {
            assert_eq!(node.serving(), Some(generation), "{} {why}", node.name);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Applies `node`'s own keys with [`misrouted`] routing to `api`, guarded and forced over
/// the identity probe; the generation it became (the test fails if it was not applied).
pub(crate) async fn apply_misroute(node: &TestNode, api: SocketAddr) -> u64 {
    let text = format!("{}{}", node.own_keys(), misrouted(&[api]));
    let outcome = node
        .apply_guarded(text, true)
        .await
        .expect("the control plane answers");
    applied_generation(&outcome)
}

/// The generation `outcome` applied, failing the test (with the refusals) when it was not
/// applied.
pub(crate) fn applied_generation(outcome: &ApplyOutcome) -> u64 {
    assert_eq!(
        outcome.status,
        keel_control::ApplyStatus::Applied,
        "{:?}",
        outcome.refusals
    );
    outcome.generation.expect("a generation")
}
