//! A node's membership and its watch on the fleet (`keel serve` with `[fleet] store = "etcd"`).
//!
//! One etcd session at a time: a lease of [`NODE_LEASE_TTL_SECS`] kept alive every
//! [`NODE_TICK`], the node's status under `P/nodes/<node>` attached to it (a node that dies
//! disappears when its lease runs out), and a watch on the active pointer. On every change,
//! and once per session start, the node *converges*:
//!
//! * serving the fleet's active generation: it only notes the pointer's revision;
//! * the fleet moved since the revision this node last followed: it follows
//!   (`Controller::follow`: load, node keys, compile, swap); when the move is a node
//!   canary's promotion (`rollout.rs`: the rollout of that generation is `promoted`) it
//!   follows with its own guard (`Controller::follow_watched`, watched at least
//!   `rollout.watch`), so an alarm on any node after the promotion reverts it, and that
//!   revert moves the fleet's pointer back, which every other node follows;
//! * a node canary is in progress (`rollout.rs`, `canary.rs`) and this node is one of its canaries: it
//!   serves the candidate (following it with its guard if another node applied it) and,
//!   once the rollout's `watch` has passed and its guard no longer watches it, records
//!   itself clean; the last canary promotes the candidate to the fleet;
//! * it still serves the candidate of a rollout that failed (another canary's guard
//!   reverted it): it goes back to the fleet's generation, so a revert anywhere in a
//!   rollout reverts every node that had the candidate;
//! * the node serves something else although the fleet did not move (a local rollback, or
//!   a guard revert that etcd did not take): it does NOT flip back by itself. It reports
//!   the divergence as drift (status, and once it lasted `[fleet] drift_alert` a
//!   `fleet-drift` event and a standing `fleet_drift` alert in the watcher's alert list,
//!   cleared when the node is in step again) until an operator rolls the fleet or applies
//!   again.
//!
//! When etcd is unreachable the node keeps serving and tries a new session every
//! [`NODE_RECONNECT_EVERY`]. A session talks to one endpoint; a session that ends in an
//! error makes the next one start on the next endpoint, so a dead member costs a node one
//! reconnection, not a session that keeps landing on it (etcd-client's balanced channel
//! over all endpoints would keep sending some requests to it).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use etcd_client::{Client, PutOptions};
use keel_control::Controller;
use keel_store::{GenerationId, NewEvent, Store, StoreError, now_ms};
use keel_watch::{Alarm, Detector};
use serde::{Deserialize, Serialize};

use crate::etcd::connect;
use crate::ops;
use crate::rollout::{RolloutState, RolloutStep};
use crate::store::FleetStore;

/// Lifetime of a node's lease: a node silent this long leaves the fleet's status (5 seconds).
pub const NODE_LEASE_TTL_SECS: i64 = 5;
/// How often a node renews its lease, writes its status and checks for drift (1 second).
pub const NODE_TICK: Duration = Duration::from_secs(1);
/// How long a node waits before trying etcd again after losing its session (1 second).
pub const NODE_RECONNECT_EVERY: Duration = Duration::from_secs(1);
/// Event kind of a node serving another generation than the fleet's past `drift_alert`.
pub const FLEET_DRIFT_EVENT: &str = "fleet-drift";
/// Event kind of a node following the fleet to a new generation.
pub const FLEET_FOLLOW_EVENT: &str = "fleet-follow";

/// What a node publishes about itself under `P/nodes/<node>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The node's name.
    pub node: String,
    /// The generation it serves.
    pub generation: Option<GenerationId>,
    /// Since when it serves it (ms since the Unix epoch).
    pub since_ms: i64,
    /// The fleet's active generation, as the node last read it.
    pub fleet_generation: Option<GenerationId>,
    /// How long it has served another generation than the fleet's (0: in step), in ms.
    pub lag_ms: i64,
    /// It serves a generation and its control plane reported no store error.
    pub healthy: bool,
    /// When it wrote this (ms since the Unix epoch).
    pub updated_ms: i64,
    /// The generation on its node canary, while a rollout is in progress.
    #[serde(default)]
    pub candidate: Option<GenerationId>,
    /// This node is one of that rollout's canary nodes and serves the candidate.
    #[serde(default)]
    pub canary: bool,
}

impl NodeStatus {
    /// It serves the fleet's active generation, or, as a canary, the candidate.
    pub fn in_step(&self) -> bool {
        self.generation == self.fleet_generation
            || (self.canary && self.generation.is_some() && self.generation == self.candidate)
    }
}

/// The membership loop of one node.
pub struct Node {
    pub(crate) store: Arc<FleetStore>,
    pub(crate) controller: Controller,
    endpoints: Vec<String>,
    /// Index of the endpoint the next session connects to.
    next_endpoint: AtomicUsize,
    drift_alert: Duration,
    state: Mutex<Drift>,
}

/// The node's view of its own step with the fleet.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Drift {
    fleet: Option<GenerationId>,
    /// The candidate of the rollout in progress, and whether this node serves it as a canary.
    candidate: Option<GenerationId>,
    canary: bool,
    /// The candidate this node last followed as a canary: once it stops serving it (its
    /// guard reverted it), it does not follow it again.
    pub(crate) followed_candidate: Option<GenerationId>,
    /// Since when the node serves another generation than the fleet's.
    since_ms: Option<i64>,
    /// A `fleet-drift` event was written for this divergence.
    alerted: bool,
}

impl Node {
    /// A node of the fleet `store` belongs to, serving through `controller`.
    pub fn new(
        store: Arc<FleetStore>,
        controller: Controller,
        endpoints: Vec<String>,
        drift_alert: Duration,
    ) -> Arc<Self> {
        Arc::new(Node {
            store,
            controller,
            endpoints,
            next_endpoint: AtomicUsize::new(0),
            drift_alert,
            state: Mutex::new(Drift::default()),
        })
    }

    /// Runs sessions until `shutdown` resolves.
    pub async fn run(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                ended = self.session() => if let Err(error) = ended {
                    tracing::warn!(node = self.store.node(), %error, "fleet session lost; serving on");
                    self.next_endpoint.fetch_add(1, Ordering::Relaxed);
                },
            }
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(NODE_RECONNECT_EVERY) => {}
            }
        }
    }

    async fn session(&self) -> Result<(), StoreError> {
        let endpoint = match self.endpoints.as_slice() {
            [] => &[][..],
            all => {
                let i = self.next_endpoint.load(Ordering::Relaxed) % all.len();
                std::slice::from_ref(&all[i])
            }
        };
        let mut client = connect(endpoint).await.map_err(crate::etcd::unavailable)?;
        let lease = client
            .lease_grant(NODE_LEASE_TTL_SECS, None)
            .await
            .map_err(crate::etcd::unavailable)?
            .id();
        let (mut keeper, mut answers) = client
            .lease_keep_alive(lease)
            .await
            .map_err(crate::etcd::unavailable)?;
        let mut watch = client
            .watch(self.store.keys().active(), None)
            .await
            .map_err(crate::etcd::unavailable)?;
        self.converge(&mut client).await?;
        self.publish(&mut client, lease).await?;
        let mut tick = tokio::time::interval(NODE_TICK);
        loop {
            tokio::select! {
                message = watch.message() => {
                    match message.map_err(crate::etcd::unavailable)? {
                        Some(_) => self.converge(&mut client).await?,
                        None => return Err(StoreError::Unavailable("the fleet watch ended".into())),
                    }
                }
                _ = tick.tick() => {
                    keeper.keep_alive().await.map_err(crate::etcd::unavailable)?;
                    if answers.message().await.map_err(crate::etcd::unavailable)?.is_none_or(|a| a.ttl() <= 0) {
                        return Err(StoreError::Unavailable("the node's lease expired".into()));
                    }
                    self.converge(&mut client).await?;
                    self.publish(&mut client, lease).await?;
                }
            }
        }
    }

    fn serving(&self) -> Option<GenerationId> {
        self.controller.plane().active().map(|a| a.primary.id)
    }

    /// Brings the node in step with the fleet's active pointer where it should follow, and
    /// notes drift where it must not.
    async fn converge(&self, client: &mut Client) -> Result<(), StoreError> {
        let (fleet, revision) = ops::pointer(client, &self.store.keys().active()).await?;
        let Some(fleet) = fleet else {
            return Ok(());
        };
        let (latest, _) = ops::rollout(client, &self.store.keys().rollout()).await?;
        // The fleet's generation came out of a node canary: this node's guard watches it too.
        let promoted = latest
            .as_ref()
            .is_some_and(|r| r.step == RolloutStep::Promoted && r.generation == fleet);
        // A failed rollout's candidate still served here (a canary or an earlier step of it):
        // the fleet reverted it, so this node goes back to the fleet's generation.
        let failed_candidate = latest
            .as_ref()
            .filter(|r| r.step == RolloutStep::Failed)
            .map(|r| r.generation);
        let rollout = latest.filter(RolloutState::in_progress);
        let served = self.store.served()?;
        let serving = self.serving();
        let followed_revision = served.map_or(0, |s| s.revision);
        // The node swapped by itself (a local rollback): keep the revision it followed.
        if let (Some(serving), Some(served)) = (serving, served)
            && serving != served.id
            && let Some(record) = self.store_blocking_generation(serving).await?
        {
            self.store.note_local_swap(&record, served.revision)?;
        }
        let candidate = rollout.as_ref().map(|r| r.generation);
        if let Some(rollout) = &rollout
            && rollout.is_canary(self.store.node())
            && self
                .canary_step(client, rollout, serving, fleet, followed_revision)
                .await?
        {
            return Ok(());
        }
        if serving == Some(fleet) {
            if followed_revision != revision
                && let Some((record, _)) =
                    ops::record(client, &self.store.keys().generation(fleet)).await?
            {
                self.store.note_served(&record, revision)?;
            }
            self.in_step(fleet, candidate, false);
            return Ok(());
        }
        if revision > followed_revision || (serving.is_some() && serving == failed_candidate) {
            let Some((record, _)) =
                ops::record(client, &self.store.keys().generation(fleet)).await?
            else {
                return Ok(());
            };
            let followed = if promoted {
                self.controller.follow_watched(record.clone()).await
            } else {
                self.controller.follow(record.clone()).await
            };
            match followed {
                Ok(_) => {
                    self.store.note_served(&record, revision)?;
                    self.in_step(fleet, candidate, false);
                    let event = NewEvent::new(
                        FLEET_FOLLOW_EVENT,
                        format!(
                            "node {} serves the fleet's generation {fleet}",
                            self.store.node()
                        ),
                    )
                    .generation(fleet);
                    self.append(event).await;
                }
                Err(error) => {
                    tracing::warn!(node = self.store.node(), generation = fleet, %error, "cannot follow the fleet");
                    self.drifting(fleet, candidate, serving).await;
                }
            }
            return Ok(());
        }
        self.drifting(fleet, candidate, serving).await;
        Ok(())
    }

    async fn store_blocking_generation(
        &self,
        id: GenerationId,
    ) -> Result<Option<keel_store::GenerationRecord>, StoreError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.generation(id))
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?
    }

    pub(crate) async fn append(&self, event: NewEvent) {
        let store = self.store.clone();
        let _ = tokio::task::spawn_blocking(move || store.append_event(event)).await;
    }

    pub(crate) fn state(&self) -> std::sync::MutexGuard<'_, Drift> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn in_step(
        &self,
        fleet: GenerationId,
        candidate: Option<GenerationId>,
        canary: bool,
    ) {
        let was_alerted = {
            let mut state = self.state();
            let was_alerted = state.alerted;
            *state = Drift {
                fleet: Some(fleet),
                candidate,
                canary,
                followed_candidate: state.followed_candidate,
                since_ms: None,
                alerted: false,
            };
            was_alerted
        };
        if was_alerted && let Some(watcher) = self.controller.watcher() {
            watcher.clear_condition(Detector::FleetDrift, &self.drift_subject());
        }
    }

    /// The subject of this node's `fleet_drift` alert.
    fn drift_subject(&self) -> String {
        format!("node {}", self.store.node())
    }

    async fn drifting(
        &self,
        fleet: GenerationId,
        candidate: Option<GenerationId>,
        serving: Option<GenerationId>,
    ) {
        let now = now_ms();
        let alert = {
            let mut state = self.state();
            state.fleet = Some(fleet);
            state.candidate = candidate;
            state.canary = false;
            let since = *state.since_ms.get_or_insert(now);
            let due =
                now - since >= i64::try_from(self.drift_alert.as_millis()).unwrap_or(i64::MAX);
            let alert = due && !state.alerted;
            state.alerted |= alert;
            alert
        };
        if alert {
            let summary = format!(
                "node {} serves generation {} while the fleet's is {fleet}; it converges only by an operator's rollback or the fleet's next apply",
                self.store.node(),
                serving.map_or_else(|| "none".to_string(), |g| g.to_string()),
            );
            tracing::warn!("{summary}");
            let numbers = serde_json::json!({
                "node": self.store.node(),
                "serving": serving,
                "fleet": fleet,
                "candidate": candidate,
                "drift_alert_ms": u64::try_from(self.drift_alert.as_millis()).unwrap_or(u64::MAX),
            });
            if let Some(watcher) = self.controller.watcher() {
                watcher.raise_condition(Alarm {
                    detector: Detector::FleetDrift,
                    subject: self.drift_subject(),
                    summary: summary.clone(),
                    numbers: numbers.clone(),
                });
            }
            let event = NewEvent::new(FLEET_DRIFT_EVENT, summary).details(numbers);
            self.append(event).await;
        }
    }

    async fn publish(&self, client: &mut Client, lease: i64) -> Result<(), StoreError> {
        let now = now_ms();
        let state = *self.state();
        let served = self.store.served()?;
        let status = NodeStatus {
            node: self.store.node().to_string(),
            generation: self.serving(),
            since_ms: served.map_or(now, |s| s.since_ms),
            fleet_generation: state.fleet,
            lag_ms: state.since_ms.map_or(0, |since| now - since),
            healthy: self.serving().is_some() && self.controller.store_error().is_none(),
            updated_ms: now,
            candidate: state.candidate,
            canary: state.canary,
        };
        client
            .put(
                self.store.keys().node(self.store.node()),
                serde_json::to_vec(&status)?,
                Some(PutOptions::new().with_lease(lease)),
            )
            .await
            .map_err(crate::etcd::unavailable)?;
        Ok(())
    }
}

/// The fleet's node canary record (the rollout in progress, or the last one), if any.
pub async fn fleet_rollout(
    endpoints: &[String],
    prefix: &str,
) -> Result<Option<RolloutState>, StoreError> {
    let mut client = connect(endpoints).await.map_err(crate::etcd::unavailable)?;
    let keys = crate::keys::Keys::new(prefix);
    Ok(ops::rollout(&mut client, &keys.rollout()).await?.0)
}

/// Every live node's status (those whose lease has not run out), by name.
pub async fn fleet_status(
    endpoints: &[String],
    prefix: &str,
) -> Result<Vec<NodeStatus>, StoreError> {
    let mut client = connect(endpoints).await.map_err(crate::etcd::unavailable)?;
    let keys = crate::keys::Keys::new(prefix);
    let response = client
        .get(
            keys.nodes(),
            Some(etcd_client::GetOptions::new().with_prefix()),
        )
        .await
        .map_err(crate::etcd::unavailable)?;
    let mut nodes: Vec<NodeStatus> = response
        .kvs()
        .iter()
        .filter_map(|kv| serde_json::from_slice(kv.value()).ok())
        .collect();
    nodes.sort_by(|a, b| a.node.cmp(&b.node));
    Ok(nodes)
}
