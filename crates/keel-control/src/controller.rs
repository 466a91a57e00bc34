//! The [`Controller`]: the one owner of the store, the data plane, the compiled-generation
//! cache and the lock that serializes applies and rollbacks.
//!
//! ```text
//! apply:    check ─▶ [lock] listeners ─▶ gate ─▶ compile ─▶ persist ─▶ swap [unlock] ─▶ guard
//! rollback: [lock] pick from cache ─▶ swap ─▶ persist (a failure is reported, not undone) [unlock]
//! ```
//!
//! The guard (the watch after a full swap, or a canary's steps) runs after the lock is
//! released, so a watched apply does not hold up status or a rollback (`apply.rs`).
//!
//! The data plane is never locked: a request loads the active generation through its
//! atomic pointer and is served wholly by it. The apply lock only orders control-plane
//! writes so the store and the cache see the same history. Apply persists *before* the
//! swap (a `kill -9` between the two restarts into the new generation, which was
//! compiled successfully); rollback swaps *before* it persists (it must not depend on
//! the disk), and reports if the store could not follow.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use keel_proxy::DataPlane;
use keel_store::{Store, StoreError};
use keel_watch::Watcher;

use crate::cache::{CachedGeneration, GenerationCache};
use crate::error::ControlError;
use crate::guard::Session;
use crate::hooks::Hooks;

/// The control plane of one Keel process. Cheap to clone: clones share everything.
#[derive(Clone)]
pub struct Controller {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) plane: Arc<DataPlane>,
    pub(crate) hooks: Hooks,
    /// Serializes applies, rollbacks and known-good marks (never held by requests).
    pub(crate) apply_lock: tokio::sync::Mutex<()>,
    /// Short critical sections only; readers (status, admin) never wait for an apply.
    pub(crate) cache: Mutex<GenerationCache>,
    /// Set when a rollback or known-good mark could not be recorded.
    pub(crate) store_error: Mutex<Option<String>>,
    /// What startup found (file missing, broken or different from the store, …).
    pub(crate) notes: Mutex<Vec<String>>,
    /// The generation startup served first (the notes are about it).
    pub(crate) startup_generation: Mutex<Option<keel_store::GenerationId>>,
    pub(crate) started_at: SystemTime,
    /// The guarded apply being watched, if any (changed under the apply lock only).
    pub(crate) session: Mutex<Option<Session>>,
    pub(crate) next_session: AtomicU64,
    /// Generations whose last watch ended without the evidence it waited for
    /// (`guard/unproven.rs`): never promoted known-good while listed.
    pub(crate) unproven:
        Mutex<std::collections::BTreeMap<keel_store::GenerationId, crate::guard::UnprovenStatus>>,
    /// The `[alerts]` webhooks the watcher delivers to (url, timeout, attempts).
    pub(crate) webhooks: Mutex<Option<Vec<crate::guard::WebhookKey>>>,
    /// The stored generation an `--adopt-config` start replaces, compiled: the first
    /// apply of this process (the adoption) is watched against it and reverts to it
    /// (`adopt.rs`). Taken by that apply.
    pub(crate) adopt_baseline: Mutex<Option<CachedGeneration>>,
    /// The traffic sample persisted before this start, and where the live one is
    /// persisted (`persisted_sample.rs`).
    pub(crate) persisted_sample: Mutex<crate::persisted_sample::PersistedSample>,
    /// Fleet mode: this node's own config, whose listeners, admin API and `[fleet]` table
    /// replace those of a generation applied elsewhere (`follow.rs`).
    pub(crate) node_config: Mutex<Option<Arc<keel_config::Config>>>,
    /// Where relative certificate paths of an applied config start: the directory of the
    /// config file `keel serve` was given (None: the working directory).
    pub(crate) config_dir: Mutex<Option<std::path::PathBuf>>,
    /// Where the certificates of applied generations are pinned (`pins.rs`); None
    /// without a state directory (an in-process controller): digests are still recorded.
    pub(crate) pins: Mutex<Option<crate::pins::CertificatePins>>,
}

impl Controller {
    /// Relative certificate paths in configs applied from now on start at `dir` (the
    /// served config file's directory), as they do when that file is loaded at start or
    /// on SIGHUP, rather than at the server's working directory.
    pub fn set_config_dir(&self, dir: std::path::PathBuf) {
        *self
            .inner
            .config_dir
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(dir);
    }

    pub(crate) fn config_dir(&self) -> Option<std::path::PathBuf> {
        self.inner
            .config_dir
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Pins the certificates of generations applied from now on in `state_dir`
    /// (`certificates/`), and rebuilds stored generations from those copies.
    pub fn pin_certificates_in(&self, state_dir: &std::path::Path) {
        *self
            .inner
            .pins
            .lock()
            .unwrap_or_else(PoisonError::into_inner) =
            Some(crate::pins::CertificatePins::in_state_dir(state_dir));
    }

    /// Where certificates are pinned, if anywhere.
    pub fn pins(&self) -> Option<crate::pins::CertificatePins> {
        self.inner
            .pins
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("active", &self.active().map(|c| c.id()))
            .finish_non_exhaustive()
    }
}

impl Controller {
    /// A controller over `store` and `plane` with nothing active yet. Use
    /// [`Controller::start`] to restore from the store or apply a first config.
    ///
    /// With a watcher in `hooks` (which must watch `plane`), applies are guarded and a
    /// task persists every alert as a store event: that needs a Tokio runtime.
    pub fn new(store: Arc<dyn Store>, plane: Arc<DataPlane>, hooks: Hooks) -> Self {
        let capacity = keel_config::defaults::KEEP_GENERATIONS as usize;
        let alerts = hooks.watcher.as_ref().map(|w| w.subscribe());
        let controller = Self {
            inner: Arc::new(Inner {
                store,
                plane,
                hooks,
                apply_lock: tokio::sync::Mutex::new(()),
                cache: Mutex::new(GenerationCache::new(capacity)),
                store_error: Mutex::new(None),
                notes: Mutex::new(Vec::new()),
                startup_generation: Mutex::new(None),
                started_at: SystemTime::now(),
                session: Mutex::new(None),
                next_session: AtomicU64::new(0),
                unproven: Mutex::default(),
                webhooks: Mutex::new(None),
                adopt_baseline: Mutex::new(None),
                persisted_sample: Mutex::default(),
                node_config: Mutex::new(None),
                config_dir: Mutex::new(None),
                pins: Mutex::new(None),
            }),
        };
        if let Some(alerts) = alerts {
            tokio::spawn(crate::guard::record_alerts(
                Arc::downgrade(&controller.inner),
                alerts,
            ));
        }
        controller
    }

    /// A guarded controller over `store` and `plane`: starts a [`Watcher`] on `plane`
    /// (no webhooks until the first generation names some) and installs
    /// [`Hooks::guarded`]: the blast-radius gate, guarded applies with automatic
    /// revert, alerts persisted as events, known-good only without alerts. This is what
    /// `keel serve` runs; in-process users (tests, `keel demo`) call it with their own
    /// data plane. Needs a Tokio runtime.
    pub fn new_guarded(store: Arc<dyn Store>, plane: Arc<DataPlane>) -> Self {
        let (watcher, _) = Watcher::start(plane.clone(), &[]);
        Self::new(store, plane, Hooks::guarded(watcher))
    }

    /// The watcher, when applies are guarded.
    pub fn watcher(&self) -> Option<&Arc<Watcher>> {
        self.inner.hooks.watcher.as_ref()
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The data plane.
    pub fn plane(&self) -> &Arc<DataPlane> {
        &self.inner.plane
    }

    /// The active generation with its text and metadata.
    pub fn active(&self) -> Option<CachedGeneration> {
        self.cache().active().cloned()
    }

    /// A generation kept compiled in memory (active or rollback candidate).
    pub fn cached(&self, id: u64) -> Option<CachedGeneration> {
        self.cache().get(id).cloned()
    }

    /// The generations kept behind the active one, most recently replaced first.
    pub fn kept(&self) -> Vec<CachedGeneration> {
        self.cache().kept().cloned().collect()
    }

    /// What startup found out, and anything else operators should know.
    pub fn notes(&self) -> Vec<String> {
        lock(&self.inner.notes).clone()
    }

    /// The last error the store returned for a write the process did not undo
    /// (a rollback or known-good mark), if the store has not caught up since.
    pub fn store_error(&self) -> Option<String> {
        lock(&self.inner.store_error).clone()
    }

    /// The generation startup served first, if this controller was started from a store.
    pub fn startup_generation(&self) -> Option<keel_store::GenerationId> {
        *lock(&self.inner.startup_generation)
    }

    pub(crate) fn set_startup_generation(&self, generation: keel_store::GenerationId) {
        *lock(&self.inner.startup_generation) = Some(generation);
    }

    pub(crate) fn add_note(&self, note: String) {
        lock(&self.inner.notes).push(note);
    }

    pub(crate) fn set_store_error(&self, error: Option<String>) {
        *lock(&self.inner.store_error) = error;
    }

    pub(crate) fn cache(&self) -> MutexGuard<'_, GenerationCache> {
        lock(&self.inner.cache)
    }

    /// Runs a store operation on a blocking thread (SQLite does file I/O and fsync).
    pub async fn with_store<T, F>(&self, work: F) -> Result<T, ControlError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.inner.store.clone();
        Ok(tokio::task::spawn_blocking(move || work(store.as_ref())).await??)
    }
}

/// Locks a std mutex; a panic elsewhere cannot leave these small values half-written.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
