//! Live backend states and open alerts as the admin API reports them (`GET /status`), or why
//! they are unknown.
//!
//! The states mirror `keel_proxy::BackendState` by name (`unknown`, `healthy`, `unhealthy`,
//! `misidentified`, `ejected`) without depending on the data plane: they arrive as JSON.
//! [`LiveStates::from_status_json`] reads the one `/status` shape, documented in
//! `docs/admin-api.md` (`keel_control::Status`; extra fields are ignored):
//!
//! ```json
//! { "open_alerts": [ { "time": "…", "severity": "critical", "detector": "identity",
//!                      "generation": 6, "serving": "active", "summary": "…" } ],
//!   "active": { "id": 7, "…": "…" },
//!   "health": { "pools": [ { "name": "web", "service": "web",
//!                            "backends": [ { "addr": "127.0.0.1:9101", "state": "healthy" } ] } ] } }
//! ```
//!
//! A state name it does not know reads as `unknown`; an answer without `health.pools` is an
//! error that names the documented shape. A test against the real admin API keeps the two
//! in step (`crates/keel/tests/playbook_e2e.rs`).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::Serialize;
use serde_json::Value;

use crate::ReportError;

/// A backend's state, as the data plane names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackendHealth {
    /// Not probed yet, or not reported: shown grey.
    Unknown,
    /// Passing its health check with the right identity: shown green.
    Healthy,
    /// Failing its health check: shown orange.
    Unhealthy,
    /// Answering as another application: shown red.
    Misidentified,
    /// Ejected after consecutive failures: shown orange.
    Ejected,
}

impl BackendHealth {
    /// Every state.
    pub const ALL: [BackendHealth; 5] = [
        BackendHealth::Healthy,
        BackendHealth::Unhealthy,
        BackendHealth::Ejected,
        BackendHealth::Misidentified,
        BackendHealth::Unknown,
    ];

    /// The lower-case name (as in metrics and the admin API).
    pub fn as_str(self) -> &'static str {
        match self {
            BackendHealth::Unknown => "unknown",
            BackendHealth::Healthy => "healthy",
            BackendHealth::Unhealthy => "unhealthy",
            BackendHealth::Misidentified => "misidentified",
            BackendHealth::Ejected => "ejected",
        }
    }

    /// Reads a state name; anything else is `Unknown`.
    pub fn from_name(name: &str) -> BackendHealth {
        BackendHealth::ALL
            .into_iter()
            .find(|h| h.as_str().eq_ignore_ascii_case(name.trim()))
            .unwrap_or(BackendHealth::Unknown)
    }

    /// Fill colour in diagrams: green, orange, red or grey.
    pub fn fill(self) -> &'static str {
        match self {
            BackendHealth::Healthy => "#8fd18f",
            BackendHealth::Unhealthy | BackendHealth::Ejected => "#f5a742",
            BackendHealth::Misidentified => "#e8554e",
            BackendHealth::Unknown => "#c8c8c8",
        }
    }
}

/// Backend states by pool and address, and the open alerts, from one `/status` answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LiveStates {
    /// Where they came from (e.g. `GET http://127.0.0.1:9901/status`).
    pub source: String,
    /// The generation the admin API said was active, if it said.
    pub active_generation: Option<u64>,
    /// Alerts about a generation that serves now, newest first.
    pub open_alerts: Vec<LiveAlert>,
    backends: BTreeMap<(String, String), BackendHealth>,
}

/// An alert about a generation that serves now (`open_alerts` of `GET /status`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveAlert {
    /// When it was raised (RFC 3339).
    pub time: String,
    /// `critical` or `warning`.
    pub severity: String,
    /// The detector.
    pub detector: String,
    /// The generation it blames.
    pub generation: u64,
    /// `active` or `canary`.
    pub serving: String,
    /// One sentence with the numbers.
    pub summary: String,
}

impl LiveAlert {
    fn from_json(alert: &Value) -> Option<LiveAlert> {
        let text = |key: &str| alert.get(key).and_then(Value::as_str).map(str::to_owned);
        Some(LiveAlert {
            time: text("time")?,
            severity: text("severity").unwrap_or_default(),
            detector: text("detector").unwrap_or_default(),
            generation: alert.get("generation").and_then(Value::as_u64)?,
            serving: text("serving").unwrap_or_default(),
            summary: text("summary").unwrap_or_default(),
        })
    }
}

/// Live states, or why there are none.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "live", rename_all = "kebab-case")]
pub enum LiveView {
    /// The admin API answered.
    Known(LiveStates),
    /// It did not (not running, unreachable, refused, malformed answer): states are unknown.
    Unknown {
        /// Why, for the reader.
        reason: String,
    },
}

impl LiveView {
    /// A backend's state; `Unknown` when states are unknown or the backend was not reported.
    pub fn state(&self, pool: &str, addr: &str) -> BackendHealth {
        match self {
            LiveView::Known(states) => states.get(pool, addr).unwrap_or(BackendHealth::Unknown),
            LiveView::Unknown { .. } => BackendHealth::Unknown,
        }
    }
}

impl LiveStates {
    /// No states yet, from `source`.
    pub fn new(source: impl Into<String>) -> Self {
        LiveStates {
            source: source.into(),
            ..LiveStates::default()
        }
    }

    /// Records a backend's state.
    pub fn insert(&mut self, pool: &str, addr: &str, state: BackendHealth) {
        self.backends
            .insert((pool.to_owned(), normalize_addr(addr)), state);
    }

    /// A backend's state, if reported.
    pub fn get(&self, pool: &str, addr: &str) -> Option<BackendHealth> {
        self.backends
            .get(&(pool.to_owned(), normalize_addr(addr)))
            .copied()
    }

    /// How many backends were reported.
    pub fn len(&self) -> usize {
        self.backends.len()
    }

    /// True when no backend was reported.
    pub fn is_empty(&self) -> bool {
        self.backends.is_empty()
    }

    /// Reads a `/status` answer (the shape in the module doc).
    pub fn from_status_json(
        source: impl Into<String>,
        status: &Value,
    ) -> Result<Self, ReportError> {
        let mut states = LiveStates::new(source);
        states.active_generation = status
            .get("active")
            .and_then(|a| a.get("id"))
            .and_then(Value::as_u64);
        let Some(Value::Array(pools)) = status.get("health").and_then(|h| h.get("pools")) else {
            return Err(ReportError::StatusShape(
                "no `health.pools` list (expected the `GET /status` shape of docs/admin-api.md: \
                 {\"active\": {\"id\"}, \"health\": {\"pools\": [{\"name\", \"backends\": [{\"addr\", \"state\"}]}]}})"
                    .to_owned(),
            ));
        };
        for pool in pools {
            let name = pool.get("name").and_then(Value::as_str).unwrap_or_default();
            states.read_backends(name, pool.get("backends"));
        }
        if let Some(Value::Array(alerts)) = status.get("open_alerts") {
            states.open_alerts = alerts.iter().filter_map(LiveAlert::from_json).collect();
        }
        Ok(states)
    }

    fn read_backends(&mut self, pool: &str, backends: Option<&Value>) {
        let Some(Value::Array(backends)) = backends else {
            return;
        };
        for backend in backends {
            let text = |keys: &[&str]| {
                keys.iter()
                    .find_map(|k| backend.get(*k).and_then(Value::as_str))
            };
            let Some(addr) = text(&["addr"]) else {
                continue;
            };
            let state = text(&["state"]).map_or(BackendHealth::Unknown, BackendHealth::from_name);
            self.insert(pool, addr, state);
        }
    }
}

fn normalize_addr(addr: &str) -> String {
    addr.trim()
        .parse::<SocketAddr>()
        .map_or_else(|_| addr.trim().to_owned(), |a| a.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_documented_shape() {
        let status = json!({
            "open_alerts": [{"id": 4, "time": "2026-12-07T11:00:00.000Z", "detector": "identity",
                "severity": "critical", "generation": 7, "serving": "active", "summary": "wrong app"}],
            "active": {"id": 7, "author": "ana"},
            "health": {"backends": 3, "pools": [{"name": "web", "service": "web", "backends": [
                {"addr": "127.0.0.1:9101", "state": "healthy", "in_flight": 0},
                {"addr": "127.0.0.1:9102", "state": "Misidentified"},
                {"addr": "127.0.0.1:9103", "state": "sleepy"}]}]}});
        let states = LiveStates::from_status_json("test", &status).ok();
        let states = states.unwrap_or_default();
        assert_eq!(states.active_generation, Some(7));
        assert_eq!(
            states.get("web", "127.0.0.1:9101"),
            Some(BackendHealth::Healthy)
        );
        assert_eq!(
            states.get("web", "127.0.0.1:9102"),
            Some(BackendHealth::Misidentified)
        );
        assert_eq!(
            states.get("web", "127.0.0.1:9103"),
            Some(BackendHealth::Unknown)
        );
        assert_eq!(states.get("api", "127.0.0.1:9101"), None);
        assert_eq!(states.open_alerts.len(), 1);
        assert_eq!(states.open_alerts[0].generation, 7);
    }

    #[test]
    fn unexpected_shapes_are_errors() {
        assert!(LiveStates::from_status_json("t", &json!({"ok": true})).is_err());
        // The shape this reader used to expect, which the admin API never served.
        let old = json!({"active_generation": 7, "pools": [{"name": "web", "backends": []}]});
        assert!(LiveStates::from_status_json("t", &old).is_err());
        assert!(LiveStates::from_status_json("t", &json!([1, 2])).is_err());
        let view = LiveView::Unknown {
            reason: "down".into(),
        };
        assert_eq!(view.state("web", "127.0.0.1:1"), BackendHealth::Unknown);
    }
}
