//! Data-plane events: an identity mismatch or a backend turning misidentified acts at
//! once, without waiting for the next tick. Events of backends that no serving
//! generation uses (a candidate's first probes, before its swap) are the candidate's
//! apply's business, not an alert on the generation that serves.

use std::sync::Arc;

use keel_proxy::{Generation, ProxyEvent};
use tokio::time::Instant;

use super::Watcher;
use crate::detectors::identity;
use crate::evaluate;

impl Watcher {
    /// Identity events act at once: a watched candidate is concluded, the active
    /// generation gets a background alert.
    pub(super) fn on_event(&self, event: &ProxyEvent) {
        let mut raised = Vec::new();
        {
            let mut state = self.state();
            let now = Instant::now();
            match event {
                ProxyEvent::IdentityMismatch { generation, .. } => {
                    let Some(alarm) = identity::from_event(event, None) else {
                        return;
                    };
                    let ProxyEvent::IdentityMismatch { route, backend, .. } = event else {
                        return;
                    };
                    // A backend that already answered wrongly under the baseline is not
                    // the candidate's doing: the background watch reports it.
                    let watch = state
                        .watches
                        .iter()
                        .find(|w| {
                            w.done.is_some()
                                && w.request.candidate.id == *generation
                                && !state.series_of(&w.request.baseline).is_some_and(|b| {
                                    evaluate::misidentified(b)
                                        .iter()
                                        .any(|m| &m.route == route && m.backend == *backend)
                                })
                        })
                        .map(|w| w.id);
                    // Late responses of a concluded watch, or of a generation that no
                    // longer serves, are not news.
                    let concluded = state
                        .watches
                        .iter()
                        .any(|w| w.request.candidate.id == *generation);
                    let live = self.plane.active().is_some_and(|a| {
                        a.primary.id == *generation
                            || a.canary
                                .as_ref()
                                .is_some_and(|c| c.generation.id == *generation)
                    });
                    match watch {
                        Some(id) => self.conclude(&mut state, id, alarm, &mut raised),
                        None if concluded || !live => {}
                        None => {
                            self.raise_background(&mut state, *generation, alarm, now, &mut raised)
                        }
                    }
                }
                ProxyEvent::BackendState { pool, backend, .. } => {
                    // A backend no serving generation uses belongs to a generation being
                    // compiled: its apply probes it and files the evidence on it, not
                    // on the generation that happens to serve meanwhile.
                    let Some(live) = self.find_backend(pool, *backend) else {
                        return;
                    };
                    let seen = live.identity_seen();
                    let Some(alarm) = identity::from_event(event, seen.as_deref()) else {
                        return;
                    };
                    // Only a backend the candidate brought in is the candidate's fault.
                    let watch = state
                        .watches
                        .iter()
                        .find(|w| {
                            w.done.is_some()
                                && uses_backend(&w.request.candidate, pool, *backend)
                                && !uses_backend(&w.request.baseline, pool, *backend)
                        })
                        .map(|w| w.id);
                    match watch {
                        Some(id) => self.conclude(&mut state, id, alarm, &mut raised),
                        None => {
                            let primary = self.plane.active().map_or(0, |a| a.primary.id);
                            self.raise_background(&mut state, primary, alarm, now, &mut raised);
                        }
                    }
                }
            }
        }
        self.publish(raised);
    }

    fn find_backend(
        &self,
        pool: &str,
        addr: std::net::SocketAddr,
    ) -> Option<Arc<keel_proxy::Backend>> {
        let active = self.plane.active()?;
        std::iter::once(&active.primary)
            .chain(active.canary.iter().map(|c| &c.generation))
            .flat_map(|g| g.pools.iter())
            .filter(|p| &*p.name == pool)
            .flat_map(|p| p.backends.iter())
            .find(|b| b.addr == addr)
            .cloned()
    }
}

/// True when a generation has a pool `pool` with backend `addr`.
fn uses_backend(generation: &Generation, pool: &str, addr: std::net::SocketAddr) -> bool {
    generation
        .pools
        .iter()
        .any(|p| &*p.name == pool && p.backends.iter().any(|b| b.addr == addr))
}
