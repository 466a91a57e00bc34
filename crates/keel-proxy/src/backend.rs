//! One backend of one pool at runtime: its health verdict, passive ejection, load and
//! idle connections. Shared by every generation whose pool defines it identically, so
//! health state and warm connections survive config swaps.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use keel_config::Outlier;
use serde::Serialize;
use tokio::sync::broadcast;

use crate::events::ProxyEvent;
use crate::upstream::Upstream;

/// What a backend is, as far as traffic is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendState {
    /// Not probed yet, or its pool has no health check. Gets traffic only when its pool
    /// has no health check: a checked backend must pass a probe (status and identity)
    /// before its first request.
    Unknown = 0,
    /// Passed its health check with the right identity: gets traffic.
    Healthy = 1,
    /// Failed its health check: no traffic.
    Unhealthy = 2,
    /// Answers, but as another application: no traffic.
    Misidentified = 3,
    /// Ejected after consecutive failures, for a back-off time: no traffic.
    Ejected = 4,
}

impl BackendState {
    fn from_u8(value: u8) -> Self {
        match value {
            1 => BackendState::Healthy,
            2 => BackendState::Unhealthy,
            3 => BackendState::Misidentified,
            4 => BackendState::Ejected,
            _ => BackendState::Unknown,
        }
    }

    /// The lower-case name used in metrics, events and the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendState::Unknown => "unknown",
            BackendState::Healthy => "healthy",
            BackendState::Unhealthy => "unhealthy",
            BackendState::Misidentified => "misidentified",
            BackendState::Ejected => "ejected",
        }
    }
}

/// A backend at runtime.
#[derive(Debug)]
pub struct Backend {
    /// Its address.
    pub addr: SocketAddr,
    /// The pool that defines it.
    pub pool: Arc<str>,
    /// Its weight in the pool.
    pub weight: u32,
    health: AtomicU8,
    ejected: AtomicBool,
    consecutive_failures: AtomicU32,
    ejections: AtomicU32,
    in_flight: AtomicU32,
    last_mismatch_event_ms: AtomicU64,
    identity_seen: ArcSwapOption<String>,
    outlier: Outlier,
    /// Its pool has an active health check: `Unknown` then means "not proven yet".
    checked: bool,
    pub(crate) upstream: Upstream,
    events: broadcast::Sender<ProxyEvent>,
}

impl Backend {
    pub(crate) fn new(
        addr: SocketAddr,
        pool: Arc<str>,
        weight: u32,
        outlier: Outlier,
        checked: bool,
        upstream: Upstream,
        events: broadcast::Sender<ProxyEvent>,
    ) -> Self {
        Self {
            addr,
            pool,
            weight,
            health: AtomicU8::new(BackendState::Unknown as u8),
            ejected: AtomicBool::new(false),
            consecutive_failures: AtomicU32::new(0),
            ejections: AtomicU32::new(0),
            in_flight: AtomicU32::new(0),
            last_mismatch_event_ms: AtomicU64::new(0),
            identity_seen: ArcSwapOption::empty(),
            outlier,
            checked,
            upstream,
            events,
        }
    }

    /// The state traffic decisions use.
    pub fn state(&self) -> BackendState {
        let health = BackendState::from_u8(self.health.load(Relaxed));
        if health != BackendState::Misidentified && self.ejected.load(Relaxed) {
            return BackendState::Ejected;
        }
        health
    }

    /// True when the backend may receive traffic: healthy (or in a pool without health
    /// checks) and not ejected.
    #[inline]
    pub fn is_eligible(&self) -> bool {
        let health = self.health.load(Relaxed);
        (health == BackendState::Healthy as u8
            || (health == BackendState::Unknown as u8 && !self.checked))
            && !self.ejected.load(Relaxed)
    }

    /// True while the backend awaits its first health-check verdict.
    pub fn awaits_first_probe(&self) -> bool {
        self.checked && self.health.load(Relaxed) == BackendState::Unknown as u8
    }

    /// Requests currently in flight to this backend.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Relaxed)
    }

    /// Requests waiting for one of its pool's `max_connections` slots.
    pub fn queued(&self) -> u32 {
        self.upstream.queued()
    }

    /// The identity value the last probe or response showed, if any.
    pub fn identity_seen(&self) -> Option<String> {
        self.identity_seen.load_full().map(|s| s.as_ref().clone())
    }

    pub(crate) fn note_identity(&self, seen: Option<&str>) {
        let current = self.identity_seen.load();
        if current.as_deref().map(String::as_str) != seen {
            self.identity_seen
                .store(seen.map(|s| Arc::new(s.to_string())));
        }
    }

    pub(crate) fn start_request(&self) {
        self.in_flight.fetch_add(1, Relaxed);
    }

    pub(crate) fn finish_request(&self) {
        self.in_flight.fetch_sub(1, Relaxed);
    }

    /// Sets the health verdict, emitting an event when the visible state changes.
    pub(crate) fn set_health(&self, health: BackendState, reason: &str) {
        let before = self.state();
        self.health.store(health as u8, Relaxed);
        self.emit_if_changed(before, reason);
    }

    fn emit_if_changed(&self, before: BackendState, reason: &str) {
        let after = self.state();
        if before != after {
            tracing::info!(pool = %self.pool, backend = %self.addr, from = before.as_str(), to = after.as_str(), reason, "backend state changed");
            let _ = self.events.send(ProxyEvent::BackendState {
                pool: self.pool.to_string(),
                backend: self.addr,
                from: before,
                to: after,
                reason: reason.to_string(),
            });
        }
    }

    /// Counts a success: resets the consecutive-failure streak.
    #[inline]
    pub(crate) fn record_success(&self) {
        if self.consecutive_failures.load(Relaxed) != 0 {
            self.consecutive_failures.store(0, Relaxed);
        }
    }

    /// Counts a connect failure or 5xx; ejects after the configured streak.
    pub(crate) fn record_failure(self: &Arc<Self>, reason: &str) {
        let threshold = self.outlier.consecutive_failures;
        if threshold == 0 {
            return;
        }
        let streak = self.consecutive_failures.fetch_add(1, Relaxed) + 1;
        if streak < threshold || self.ejected.swap(true, Relaxed) {
            return;
        }
        // `ejected` is already set: the state before is the health verdict alone.
        let before = BackendState::from_u8(self.health.load(Relaxed));
        let count = self.ejections.fetch_add(1, Relaxed);
        let duration = ejection_time(&self.outlier, count);
        self.consecutive_failures.store(0, Relaxed);
        self.emit_if_changed(
            before,
            &format!(
                "{streak} consecutive failures ({reason}); ejected for {}",
                keel_config::format_duration(duration)
            ),
        );
        let backend = Arc::downgrade(self);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                tokio::time::sleep(duration).await;
                if let Some(backend) = backend.upgrade() {
                    let before = backend.state();
                    backend.ejected.store(false, Relaxed);
                    backend.emit_if_changed(before, "ejection time over");
                }
            });
        }
    }

    /// True at most once per second per backend: rate-limits identity events.
    pub(crate) fn should_report_mismatch(&self, now_ms: u64) -> bool {
        let last = self.last_mismatch_event_ms.load(Relaxed);
        now_ms.saturating_sub(last) >= 1000
            && self
                .last_mismatch_event_ms
                .compare_exchange(last, now_ms, Relaxed, Relaxed)
                .is_ok()
    }
}

/// Base ejection time doubled per earlier ejection, capped at the maximum.
fn ejection_time(outlier: &Outlier, earlier_ejections: u32) -> Duration {
    let factor = 1u32
        .checked_shl(earlier_ejections.min(16))
        .unwrap_or(u32::MAX);
    outlier
        .base_ejection
        .saturating_mul(factor)
        .min(outlier.max_ejection)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ejection_backs_off_exponentially_up_to_the_cap() {
        let outlier = Outlier {
            consecutive_failures: 5,
            base_ejection: Duration::from_secs(10),
            max_ejection: Duration::from_secs(300),
        };
        assert_eq!(ejection_time(&outlier, 0), Duration::from_secs(10));
        assert_eq!(ejection_time(&outlier, 1), Duration::from_secs(20));
        assert_eq!(ejection_time(&outlier, 4), Duration::from_secs(160));
        assert_eq!(ejection_time(&outlier, 5), Duration::from_secs(300));
        assert_eq!(ejection_time(&outlier, 40), Duration::from_secs(300));
    }
}
