//! Active health checking: one task per backend probes it every interval and moves its
//! health verdict through the state machine below.
//!
//! ```text
//! Unknown ──pass──▶ Healthy ──unhealthy_after fails──▶ Unhealthy ──healthy_after passes──▶ Healthy
//!    └──fail──▶ Unhealthy                       any ──misidentified probe──▶ Misidentified
//! Misidentified ──healthy_after passes with the right identity──▶ Healthy
//! ```
//! A backend that answers as another application is taken out at the first such probe:
//! that is never a flap. The task holds only a weak reference and ends once no
//! generation uses the backend.

use std::sync::{Arc, Weak};

use keel_config::{HealthCheck, Identity, UpstreamProtocol};

use crate::backend::{Backend, BackendState};
use crate::backend_tls::BackendTlsConnector;
use crate::probe::{ProbeTarget, ProbeVerdict, probe_backend_over};

/// Starts the health task of a backend (needs a Tokio runtime).
pub(crate) fn spawn(
    backend: &Arc<Backend>,
    check: HealthCheck,
    identity: Option<Identity>,
    protocol: UpstreamProtocol,
    tls: Option<BackendTlsConnector>,
) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!(backend = %backend.addr, "no runtime: health checks not started; the backend gets traffic unchecked");
        return;
    };
    let weak = Arc::downgrade(backend);
    runtime.spawn(run(weak, check, identity, protocol, tls));
}

async fn run(
    backend: Weak<Backend>,
    check: HealthCheck,
    identity: Option<Identity>,
    protocol: UpstreamProtocol,
    tls: Option<BackendTlsConnector>,
) {
    let mut tracker = Tracker::default();
    loop {
        let Some(addr) = backend.upgrade().map(|b| b.addr) else {
            return;
        };
        let outcome = probe_backend_over(
            protocol,
            tls.as_ref(),
            addr,
            ProbeTarget::of(Some(&check), ""),
            identity.as_ref(),
            check.timeout,
        )
        .await;
        let Some(strong) = backend.upgrade() else {
            return;
        };
        if identity.is_some() {
            strong.note_identity(outcome.identity_seen.as_deref());
        }
        let current = match strong.state() {
            BackendState::Ejected => tracker.verdict,
            state => state,
        };
        if let Some(next) = tracker.observe(current, outcome.verdict, &check) {
            strong.set_health(next, &outcome.detail);
        }
        drop(strong);
        tokio::time::sleep(check.interval).await;
    }
}

/// Consecutive pass/fail counts of one backend.
#[derive(Debug)]
struct Tracker {
    passes: u32,
    failures: u32,
    verdict: BackendState,
}

impl Default for Tracker {
    fn default() -> Self {
        Self {
            passes: 0,
            failures: 0,
            verdict: BackendState::Unknown,
        }
    }
}

impl Tracker {
    /// The next health verdict, if it changes.
    fn observe(
        &mut self,
        current: BackendState,
        verdict: ProbeVerdict,
        check: &HealthCheck,
    ) -> Option<BackendState> {
        let next = match verdict {
            ProbeVerdict::Misidentified => {
                self.passes = 0;
                self.failures = 0;
                BackendState::Misidentified
            }
            ProbeVerdict::Ok => {
                self.failures = 0;
                self.passes += 1;
                match current {
                    BackendState::Unknown => BackendState::Healthy,
                    BackendState::Unhealthy | BackendState::Misidentified
                        if self.passes >= check.healthy_after =>
                    {
                        BackendState::Healthy
                    }
                    other => other,
                }
            }
            ProbeVerdict::Down => {
                self.passes = 0;
                self.failures += 1;
                match current {
                    BackendState::Unknown => BackendState::Unhealthy,
                    BackendState::Healthy if self.failures >= check.unhealthy_after => {
                        BackendState::Unhealthy
                    }
                    other => other,
                }
            }
        };
        self.verdict = next;
        (next != current).then_some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn check() -> HealthCheck {
        HealthCheck {
            path: "/healthz".into(),
            grpc_service: None,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            healthy_after: 2,
            unhealthy_after: 3,
        }
    }

    fn run_sequence(start: BackendState, verdicts: &[ProbeVerdict]) -> Vec<BackendState> {
        let mut tracker = Tracker::default();
        let mut state = start;
        verdicts
            .iter()
            .map(|v| {
                if let Some(next) = tracker.observe(state, *v, &check()) {
                    state = next;
                }
                state
            })
            .collect()
    }

    #[test]
    fn thresholds_debounce_flaps_but_identity_is_immediate() {
        use BackendState::*;
        use ProbeVerdict as V;
        assert_eq!(run_sequence(Unknown, &[V::Ok]), vec![Healthy]);
        assert_eq!(
            run_sequence(
                Healthy,
                &[V::Down, V::Down, V::Ok, V::Down, V::Down, V::Down]
            ),
            vec![Healthy, Healthy, Healthy, Healthy, Healthy, Unhealthy]
        );
        assert_eq!(
            run_sequence(Unhealthy, &[V::Ok, V::Ok]),
            vec![Unhealthy, Healthy]
        );
        assert_eq!(
            run_sequence(Healthy, &[V::Misidentified]),
            vec![Misidentified]
        );
        assert_eq!(
            run_sequence(Misidentified, &[V::Ok, V::Ok]),
            vec![Misidentified, Healthy]
        );
        assert_eq!(run_sequence(Unknown, &[V::Down]), vec![Unhealthy]);
    }
}
