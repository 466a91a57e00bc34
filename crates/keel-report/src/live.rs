//! Live backend states as the admin API reports them (`GET /status`), or why they are unknown.
//!
//! The states mirror `keel_proxy::BackendState` by name (`unknown`, `healthy`, `unhealthy`,
//! `misidentified`, `ejected`) without depending on the data plane: they arrive as JSON.
//! [`LiveStates::from_status_json`] reads this shape:
//!
//! ```json
//! { "active_generation": 7,
//!   "pools": [ { "name": "web",
//!                "backends": [ { "addr": "127.0.0.1:9101", "state": "healthy" } ] } ] }
//! ```
//!
//! and, to stay compatible while the admin API settles, also `pools` as an object keyed by pool
//! name, a flat top-level `backends` list whose items carry `pool`, `address` for `addr`,
//! `health` for `state`, and `active_generation` given as `{"id": 7}`. A state name it does
//! not know reads as `unknown`.

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

/// Backend states by pool and address, from one `/status` answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LiveStates {
    /// Where they came from (e.g. `GET http://127.0.0.1:9901/status`).
    pub source: String,
    /// The generation the admin API said was active, if it said.
    pub active_generation: Option<u64>,
    backends: BTreeMap<(String, String), BackendHealth>,
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

    /// Reads a `/status` answer (shapes in the module doc).
    pub fn from_status_json(
        source: impl Into<String>,
        status: &Value,
    ) -> Result<Self, ReportError> {
        let mut states = LiveStates::new(source);
        states.active_generation = status
            .get("active_generation")
            .and_then(|v| v.as_u64().or_else(|| v.get("id").and_then(Value::as_u64)));
        let mut found = false;
        match status.get("pools") {
            Some(Value::Array(pools)) => {
                found = true;
                for pool in pools {
                    let name = pool.get("name").and_then(Value::as_str).unwrap_or_default();
                    states.read_backends(name, pool.get("backends"));
                }
            }
            Some(Value::Object(pools)) => {
                found = true;
                for (name, pool) in pools {
                    states.read_backends(name, pool.get("backends").or(Some(pool)));
                }
            }
            _ => {}
        }
        if let Some(Value::Array(_)) = status.get("backends") {
            found = true;
            states.read_backends("", status.get("backends"));
        }
        if !found {
            return Err(ReportError::StatusShape(
                "no `pools` or `backends` list (expected {\"pools\": [{\"name\", \"backends\": [{\"addr\", \"state\"}]}]})".to_owned(),
            ));
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
            let Some(addr) = text(&["addr", "address"]) else {
                continue;
            };
            let pool = text(&["pool"]).unwrap_or(pool);
            let state =
                text(&["state", "health"]).map_or(BackendHealth::Unknown, BackendHealth::from_name);
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
    fn reads_the_documented_shape_and_its_variants() {
        let status = json!({"active_generation": 7, "pools": [{"name": "web", "backends": [
            {"addr": "127.0.0.1:9101", "state": "healthy"},
            {"addr": "127.0.0.1:9102", "state": "Misidentified"},
            {"addr": "127.0.0.1:9103", "state": "sleepy"}]}]});
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

        let keyed = json!({"active_generation": {"id": 3},
            "pools": {"web": {"backends": [{"address": "[::1]:80", "health": "ejected"}]}}});
        let states = LiveStates::from_status_json("test", &keyed).unwrap_or_default();
        assert_eq!(states.active_generation, Some(3));
        assert_eq!(states.get("web", "[::1]:80"), Some(BackendHealth::Ejected));

        let flat =
            json!({"backends": [{"pool": "web", "addr": "127.0.0.1:1", "state": "unhealthy"}]});
        let states = LiveStates::from_status_json("test", &flat).unwrap_or_default();
        assert_eq!(states.len(), 1);
        assert_eq!(
            states.get("web", "127.0.0.1:1"),
            Some(BackendHealth::Unhealthy)
        );
    }

    #[test]
    fn unexpected_shapes_are_errors() {
        assert!(LiveStates::from_status_json("t", &json!({"ok": true})).is_err());
        assert!(LiveStates::from_status_json("t", &json!([1, 2])).is_err());
        let view = LiveView::Unknown {
            reason: "down".into(),
        };
        assert_eq!(view.state("web", "127.0.0.1:1"), BackendHealth::Unknown);
    }
}
