//! Test helpers: a real HTTP client, config texts, a store whose writes can be made to
//! fail, a guarded controller serving a data plane ([`GuardedPlane`], in `shop.rs`, which
//! `examples/detect.rs` includes on its own), the identified shop of the disguise tests
//! (`disguise_shop.rs`), the TLS shop of the certificate-guard tests (`tls_shop.rs`),
//! and keel-testkit's
//! `eventually` (backends come from `keel-testkit` too).

#![allow(dead_code, unreachable_pub, missing_docs)]

pub mod disguise_shop;
pub mod shop;
pub mod tls_shop;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use keel_control::{Controller, Hooks};
use keel_proxy::{DataPlane, DataPlaneOptions};
use keel_store::{
    EventQuery, EventRecord, GenerationId, GenerationRecord, MemoryStore, NewEvent, NewGeneration,
    Store, StoreError,
};

/// A config with one listener, one pool of one backend, and one catch-all route.
pub fn config(backend: SocketAddr, extra: &str) -> String {
    format!(
        r#"[listeners.web]
addr = "127.0.0.1:18080"

[admin]
addr = "127.0.0.1:19901"

[services.app]
allow_no_identity = true

[pools.app]
service = "app"
backends = [{{ addr = "{backend}" }}]

[[routes]]
name = "all"
service = "app"
pool = "app"
retries = 0
{extra}
"#
    )
}

/// A real HTTP/1.1 client with keep-alive.
#[derive(Clone)]
pub struct Http(Client<HttpConnector, Empty<Bytes>>);

/// One answer: status, `x-keel-generation`, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub generation: Option<u64>,
    pub body: String,
}

impl Http {
    pub fn new() -> Self {
        Self(Client::builder(TokioExecutor::new()).build_http())
    }

    pub async fn get(&self, addr: SocketAddr, path: &str) -> Result<Answer, String> {
        let uri: http::Uri = format!("http://{addr}{path}")
            .parse()
            .map_err(|e| format!("{e}"))?;
        let response = self.0.get(uri).await.map_err(|e| format!("{e:?}"))?;
        let status = response.status().as_u16();
        let generation = response
            .headers()
            .get("x-keel-generation")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{e}"))?
            .to_bytes();
        Ok(Answer {
            status,
            generation,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
}

/// Data-plane options for tests: a small traffic sample, generation header on.
pub fn plane_options() -> DataPlaneOptions {
    DataPlaneOptions {
        sample_size: 64,
        sample_window: Duration::from_secs(60),
        access_log: None,
        generation_header: true,
    }
}

/// A controller over `store` with a fresh data plane.
pub fn controller(store: Arc<dyn Store>, hooks: Hooks) -> Controller {
    let plane = DataPlane::new(plane_options()).expect("data plane");
    Controller::new(store, plane, hooks)
}

#[allow(unused_imports)] // not every suite uses every helper
pub use keel_testkit::{WAIT, eventually, wait_until};

#[allow(unused_imports)] // not every suite uses every helper
pub use shop::GuardedPlane;

/// A memory store whose writes fail while `failing` is set: a full disk, say.
#[derive(Default)]
pub struct FlakyStore {
    pub inner: MemoryStore,
    pub failing: AtomicBool,
}

impl FlakyStore {
    fn check(&self) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::InvalidInput("simulated disk failure".into()));
        }
        Ok(())
    }
}

impl Store for FlakyStore {
    fn record_apply(&self, new: NewGeneration, activate: bool) -> Result<GenerationId, StoreError> {
        self.check()?;
        self.inner.record_apply(new, activate)
    }
    fn record_rejection(&self, new: NewGeneration) -> Result<GenerationId, StoreError> {
        self.check()?;
        self.inner.record_rejection(new)
    }
    fn activate(&self, id: GenerationId, origin: &str, reason: &str) -> Result<(), StoreError> {
        self.check()?;
        self.inner.activate(id, origin, reason)
    }
    fn record_rollback(
        &self,
        from: GenerationId,
        to: GenerationId,
        origin: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.check()?;
        self.inner.record_rollback(from, to, origin, reason)
    }
    fn mark_known_good(&self, id: GenerationId) -> Result<(), StoreError> {
        self.check()?;
        self.inner.mark_known_good(id)
    }
    fn mark_bad(&self, id: GenerationId, origin: &str, reason: &str) -> Result<(), StoreError> {
        self.check()?;
        self.inner.mark_bad(id, origin, reason)
    }
    fn active(&self) -> Result<Option<GenerationRecord>, StoreError> {
        self.inner.active()
    }
    fn generation(&self, id: GenerationId) -> Result<Option<GenerationRecord>, StoreError> {
        self.inner.generation(id)
    }
    fn generations(&self, limit: usize) -> Result<Vec<GenerationRecord>, StoreError> {
        self.inner.generations(limit)
    }
    fn known_good(&self, limit: usize) -> Result<Vec<GenerationRecord>, StoreError> {
        self.inner.known_good(limit)
    }
    fn append_event(&self, event: NewEvent) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.append_event(event)
    }
    fn events(&self, query: EventQuery) -> Result<Vec<EventRecord>, StoreError> {
        self.inner.events(query)
    }
}
