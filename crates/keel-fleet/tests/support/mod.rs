//! In-process fleet nodes for the fleet tests: each node is a real controller, data plane
//! and listener on loopback, with its own state directory, its own node config, and the
//! `keel_fleet::join` loop on a real etcd (`keel_testkit::Etcd`).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use keel_control::{ApplyOutcome, ApplyRequest, Controller};

use keel_fleet::FleetStore;
use keel_proxy::ListenerLimits;
use keel_store::Store;
use tokio::sync::watch;

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

/// [`node_keys`] with a node canary: `first = 1`, watched for `watch` (e.g. `"3s"`).
pub(crate) fn node_keys_with_rollout(
    name: &str,
    endpoint: &str,
    listen: SocketAddr,
    admin: SocketAddr,
    watch: &str,
) -> String {
    format!(
        "{}rollout = {{ first = 1, then = \"all\", watch = \"{watch}\" }}\n",
        node_keys(name, endpoint, listen, admin)
    )
}

/// [`node_keys`] with a node canary in steps: `first = 1`, then `then` nodes per step, each
/// step watched for `watch`.
pub(crate) fn node_keys_with_steps(
    name: &str,
    endpoint: &str,
    listen: SocketAddr,
    admin: SocketAddr,
    watch: &str,
    then: u32,
) -> String {
    format!(
        "{}rollout = {{ first = 1, then = {then}, watch = \"{watch}\" }}\n",
        node_keys(name, endpoint, listen, admin)
    )
}

/// [`node_keys`] with a node canary of `first` nodes, then the rest (`then = "all"`),
/// watched for `watch`.
pub(crate) fn node_keys_with_canaries(
    name: &str,
    endpoint: &str,
    listen: SocketAddr,
    admin: SocketAddr,
    watch: &str,
    first: u32,
) -> String {
    format!(
        "{}rollout = {{ first = {first}, then = \"all\", watch = \"{watch}\" }}\n",
        node_keys(name, endpoint, listen, admin)
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
        let started = std::time::Instant::now();
        loop {
            let outcome = self
                .controller
                .apply(ApplyRequest {
                    config_text: text.clone(),
                    author: "test".into(),
                    message: format!("applied on {}", self.name),
                    origin: "cli".into(),
                    file_name: "keel.toml".into(),
                    no_guard: true,
                    ..ApplyRequest::default()
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

    /// Applies `text` through this node's controller with the guard on (`force` overrides
    /// the identity probes and the gate), retried like [`TestNode::apply`] while a previous
    /// watch runs.
    pub(crate) async fn apply_guarded(
        &self,
        text: String,
        force: bool,
    ) -> Result<ApplyOutcome, keel_control::ControlError> {
        let started = std::time::Instant::now();
        loop {
            let outcome = self
                .controller
                .apply(ApplyRequest {
                    config_text: text.clone(),
                    author: "test".into(),
                    message: format!("applied on {} with its guard", self.name),
                    origin: "cli".into(),
                    file_name: "keel.toml".into(),
                    force,
                    ..ApplyRequest::default()
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

/// The fleet's rollout record, read from etcd.
pub(crate) async fn rollout_of(store: &Arc<FleetStore>) -> Option<keel_fleet::RolloutState> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || store.rollout())
        .await
        .expect("task")
        .expect("etcd answers")
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
