//! Identity: a backend that answers as another service is the most direct evidence of
//! "traffic goes to the wrong servers", so this detector has no threshold and no
//! minimum volume: one misidentified response, one identity-mismatch event or one
//! backend flipping to `misidentified` fires it.
//!
//! Three sources, fastest first:
//! * [`ProxyEvent::IdentityMismatch`]: a proxied response carried the wrong identity
//!   (services with `verify_responses`); raised by the data plane at once.
//! * the `misidentified` outcome counters of a generation's window (the same responses,
//!   seen at the next tick, and never rate-limited);
//! * [`ProxyEvent::BackendState`] to `misidentified`: a health probe saw the wrong
//!   identity (every service with an identity, every probe interval).

use std::net::SocketAddr;

use keel_proxy::{BackendState, ProxyEvent};
use serde_json::json;

use super::{Alarm, Detector};

/// Misidentified responses of one backend, in one route's arm, in a window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Misidentified {
    /// The route.
    pub route: String,
    /// The service the route expects.
    pub expected: String,
    /// The pool.
    pub pool: String,
    /// The backend.
    pub backend: SocketAddr,
    /// Misidentified responses.
    pub count: u64,
    /// Requests that went to this backend in the window.
    pub requests: u64,
}

/// Fires on the backend with the most misidentified responses, if any has one.
pub fn misidentified_responses(found: &[Misidentified]) -> Option<Alarm> {
    let total: u64 = found.iter().map(|m| m.count).sum();
    let worst = found
        .iter()
        .filter(|m| m.count > 0)
        .max_by_key(|m| m.count)?;
    Some(Alarm {
        detector: Detector::Identity,
        subject: worst.backend.to_string(),
        summary: format!(
            "route {}: {} of {} responses from {} (pool {}) did not identify as {}; {} misidentified responses in all",
            worst.route,
            worst.count,
            worst.requests,
            worst.backend,
            worst.pool,
            worst.expected,
            total
        ),
        numbers: json!({
            "source": "responses",
            "route": worst.route,
            "expected": worst.expected,
            "pool": worst.pool,
            "backend": worst.backend.to_string(),
            "misidentified": worst.count,
            "requests": worst.requests,
            "misidentified_total": total,
            "backends": found.iter().filter(|m| m.count > 0).map(|m| json!({
                "route": m.route, "pool": m.pool, "backend": m.backend.to_string(), "misidentified": m.count,
            })).collect::<Vec<_>>(),
        }),
    })
}

/// Fires on an identity event: a mismatching response, or a backend whose probe showed
/// another identity. Other events (health flips, ejections) are not identity alarms.
pub fn from_event(event: &ProxyEvent, seen_identity: Option<&str>) -> Option<Alarm> {
    match event {
        ProxyEvent::IdentityMismatch {
            generation,
            route,
            pool,
            backend,
            expected,
            seen,
        } => Some(Alarm {
            detector: Detector::Identity,
            subject: backend.to_string(),
            summary: event.summary(),
            numbers: json!({
                "source": "response",
                "generation": generation,
                "route": route,
                "pool": pool,
                "backend": backend.to_string(),
                "expected": expected,
                "seen": seen,
            }),
        }),
        ProxyEvent::BackendState {
            pool,
            backend,
            from,
            to: BackendState::Misidentified,
            reason,
        } => Some(Alarm {
            detector: Detector::Identity,
            subject: backend.to_string(),
            summary: format!(
                "backend {backend} of pool {pool} identifies as {} ({reason}); it was {}",
                seen_identity.unwrap_or("another service"),
                from.as_str()
            ),
            numbers: json!({
                "source": "probe",
                "pool": pool,
                "backend": backend.to_string(),
                "seen": seen_identity,
                "reason": reason,
                "from": from.as_str(),
            }),
        }),
        ProxyEvent::BackendState { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn one_misidentified_response_fires_and_names_the_worst_backend() {
        let clean = vec![Misidentified {
            route: "web".into(),
            expected: "web".into(),
            pool: "web".into(),
            backend: addr(1),
            count: 0,
            requests: 500,
        }];
        assert_eq!(misidentified_responses(&clean), None);
        let mut found = clean.clone();
        found.push(Misidentified {
            route: "web".into(),
            expected: "web".into(),
            pool: "legacy".into(),
            backend: addr(2),
            count: 1,
            requests: 1,
        });
        found.push(Misidentified {
            backend: addr(3),
            count: 4,
            requests: 4,
            ..found[1].clone()
        });
        let alarm = misidentified_responses(&found);
        assert_eq!(
            alarm.map(|a| (a.subject, a.numbers["misidentified_total"].clone())),
            Some(("127.0.0.1:3".to_string(), json!(5)))
        );
    }

    #[test]
    fn events_fire_only_for_identity() {
        let flip = |to| ProxyEvent::BackendState {
            pool: "web".into(),
            backend: addr(1),
            from: BackendState::Healthy,
            to,
            reason: "probe".into(),
        };
        assert!(from_event(&flip(BackendState::Misidentified), Some("legacy-web")).is_some());
        assert!(from_event(&flip(BackendState::Unhealthy), None).is_none());
        let mismatch = ProxyEvent::IdentityMismatch {
            generation: 3,
            route: "web".into(),
            pool: "legacy".into(),
            backend: addr(2),
            expected: "web".into(),
            seen: Some("legacy-web".into()),
        };
        let alarm = from_event(&mismatch, None);
        assert_eq!(
            alarm.map(|a| a.numbers["generation"].clone()),
            Some(json!(3))
        );
    }
}
