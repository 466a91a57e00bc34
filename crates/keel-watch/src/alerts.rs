//! Alerts: what fired, the numbers, the generation it fired on, and the config change
//! that preceded it — kept in a bounded in-memory log for `GET /alerts` and handed to
//! the webhook dispatcher.
//!
//! An alert is immutable once raised; what the guard did about it (a rollback) is
//! recorded by the control plane as an event of its own. The one exception is a standing
//! condition (`fleet_drift`: a fleet node out of step), raised once while it lasts and
//! stamped `cleared` when it ends ([`AlertLog::clear`]); a cleared alert is no longer open.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::SystemTime;

use serde::Serialize;

use crate::detectors::{Alarm, Detector};

/// Alerts kept for `GET /alerts`; older ones are dropped (256 alerts).
pub const ALERT_LOG_CAPACITY: usize = 256;

/// How urgent an alert is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Traffic is going to the wrong place or failing: act now (the guard reverts).
    Critical,
    /// Degraded but served (latency).
    Warning,
}

impl Severity {
    /// The severity of a detector's alarms.
    pub fn of(detector: Detector) -> Self {
        match detector {
            Detector::Latency | Detector::Certificate | Detector::FleetDrift => Severity::Warning,
            Detector::Share | Detector::Errors | Detector::Identity | Detector::Handshakes => {
                Severity::Critical
            }
        }
    }

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
        }
    }
}

/// When an alert was raised, relative to config changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Phase {
    /// While a canary slice of the generation was watched against the primary.
    Canary {
        /// The canary's share, in thousandths.
        permille: u32,
    },
    /// While the generation was watched after a full swap.
    AfterSwap,
    /// Outside any apply: the background watch of the active generation.
    Continuous,
}

/// One alert.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alert {
    /// Increasing number, unique within the process.
    pub id: u64,
    /// When it was raised (RFC 3339, UTC).
    pub time: String,
    /// The detector.
    pub detector: Detector,
    /// How urgent.
    pub severity: Severity,
    /// What it is about (host key, route, backend).
    pub subject: String,
    /// One sentence with the numbers.
    pub summary: String,
    /// The numbers, structured (detector-specific; see `docs/detectors.md`).
    pub numbers: serde_json::Value,
    /// The generation the evidence comes from.
    pub generation: u64,
    /// The generation it was compared with, if any.
    pub baseline_generation: Option<u64>,
    /// When it fired.
    pub phase: Phase,
    /// The config change that preceded it: its diff summary, as the control plane gave it.
    pub preceding_change: Option<String>,
    /// When a standing condition ended (RFC 3339, UTC); absent while it lasts and for
    /// detector alerts, which are events, not states.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cleared: Option<String>,
}

impl Alert {
    /// One line for logs and chat: severity, detector, generation, summary, change.
    pub fn text(&self) -> String {
        let change = self
            .preceding_change
            .as_deref()
            .map(|c| format!(" — after change: {c}"))
            .unwrap_or_default();
        // A summary taken from a proxy event already names the generation: say it once.
        let prefix = format!("generation {}: ", self.generation);
        let summary = self.summary.strip_prefix(&prefix).unwrap_or(&self.summary);
        format!(
            "[keel] {} {} alert on generation {}: {summary}{change}",
            self.severity.as_str().to_uppercase(),
            self.detector.as_str(),
            self.generation,
        )
    }
}

/// The recent alerts, newest last.
#[derive(Debug)]
pub struct AlertLog {
    next_id: AtomicU64,
    recent: Mutex<VecDeque<(SystemTime, Alert)>>,
    capacity: usize,
}

impl Default for AlertLog {
    fn default() -> Self {
        Self::with_capacity(ALERT_LOG_CAPACITY)
    }
}

impl AlertLog {
    /// A log keeping the last `capacity` alerts.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            next_id: AtomicU64::new(1),
            recent: Mutex::new(VecDeque::with_capacity(capacity.min(1024))),
            capacity: capacity.max(1),
        }
    }

    /// Turns an alarm into an alert, keeps it and returns it.
    pub fn raise(
        &self,
        alarm: Alarm,
        generation: u64,
        baseline_generation: Option<u64>,
        phase: Phase,
        preceding_change: Option<String>,
    ) -> Alert {
        let alert = Alert {
            id: self.next_id.fetch_add(1, Relaxed),
            time: jiff::Timestamp::now().to_string(),
            severity: Severity::of(alarm.detector),
            detector: alarm.detector,
            subject: alarm.subject,
            summary: alarm.summary,
            numbers: alarm.numbers,
            generation,
            baseline_generation,
            phase,
            preceding_change,
            cleared: None,
        };
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() >= self.capacity {
            recent.pop_front();
        }
        recent.push_back((SystemTime::now(), alert.clone()));
        alert
    }

    /// Up to `limit` most recent alerts, newest first.
    pub fn recent(&self, limit: usize) -> Vec<Alert> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent
            .iter()
            .rev()
            .take(limit)
            .map(|(_, a)| a.clone())
            .collect()
    }

    /// Alerts about `generation` raised at or after `since` and not cleared, oldest
    /// first: what the controller asks before it marks a generation known-good.
    pub fn about(&self, generation: u64, since: SystemTime) -> Vec<Alert> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent
            .iter()
            .filter(|(at, a)| a.generation == generation && *at >= since && a.cleared.is_none())
            .map(|(_, a)| a.clone())
            .collect()
    }

    /// The standing (not cleared) alert of `detector` about `subject`, if one is kept.
    pub fn standing(&self, detector: Detector, subject: &str) -> Option<Alert> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent
            .iter()
            .rev()
            .map(|(_, a)| a)
            .find(|a| a.detector == detector && a.subject == subject && a.cleared.is_none())
            .cloned()
    }

    /// Stamps every standing alert of `detector` about `subject` cleared (now); returns
    /// how many it cleared.
    pub fn clear(&self, detector: Detector, subject: &str) -> usize {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let now = jiff::Timestamp::now().to_string();
        let mut cleared = 0;
        for (_, alert) in recent.iter_mut() {
            if alert.detector == detector && alert.subject == subject && alert.cleared.is_none() {
                alert.cleared = Some(now.clone());
                cleared += 1;
            }
        }
        cleared
    }

    /// `{"alerts": [...]}`, newest first: the body of `GET /alerts`.
    pub fn to_json(&self, limit: usize) -> serde_json::Value {
        serde_json::json!({ "alerts": self.recent(limit) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alarm(n: u64) -> Alarm {
        Alarm {
            detector: Detector::Errors,
            subject: format!("route r{n}"),
            summary: "failing".into(),
            numbers: serde_json::json!({ "n": n }),
        }
    }

    #[test]
    fn the_log_is_bounded_and_newest_first() {
        let log = AlertLog::with_capacity(3);
        for n in 0..5 {
            log.raise(
                alarm(n),
                7,
                Some(6),
                Phase::AfterSwap,
                Some("web: +1 route".into()),
            );
        }
        let recent = log.recent(10);
        let ids: Vec<u64> = recent.iter().map(|a| a.id).collect();
        assert_eq!(ids, vec![5, 4, 3]);
        assert_eq!(recent[0].severity, Severity::Critical);
        assert_eq!(log.about(7, SystemTime::UNIX_EPOCH).len(), 3);
        assert!(log.about(8, SystemTime::UNIX_EPOCH).is_empty());
        assert!(
            log.about(7, SystemTime::now() + std::time::Duration::from_secs(1))
                .is_empty()
        );
        let json = log.to_json(1);
        assert_eq!(json["alerts"][0]["detector"], "errors");
        assert_eq!(json["alerts"][0]["phase"]["kind"], "after_swap");
        assert_eq!(json["alerts"][0]["preceding_change"], "web: +1 route");
        assert!(recent[0].text().contains("after change: web: +1 route"));
    }

    #[test]
    fn a_cleared_condition_is_kept_but_no_longer_open() {
        let log = AlertLog::with_capacity(8);
        let drift = Alarm {
            detector: Detector::FleetDrift,
            subject: "node lb-2".into(),
            summary: "node lb-2 serves generation 1 while the fleet's is 2".into(),
            numbers: serde_json::json!({ "serving": 1, "fleet": 2 }),
        };
        let raised = log.raise(drift, 1, None, Phase::Continuous, None);
        assert_eq!(raised.severity, Severity::Warning);
        assert_eq!(
            log.standing(Detector::FleetDrift, "node lb-2")
                .map(|a| a.id),
            Some(raised.id)
        );
        assert_eq!(log.about(1, SystemTime::UNIX_EPOCH).len(), 1);
        assert_eq!(log.clear(Detector::FleetDrift, "node lb-3"), 0);
        assert_eq!(log.clear(Detector::FleetDrift, "node lb-2"), 1);
        assert!(log.standing(Detector::FleetDrift, "node lb-2").is_none());
        assert!(
            log.about(1, SystemTime::UNIX_EPOCH).is_empty(),
            "no longer open"
        );
        let json = log.to_json(5);
        assert_eq!(json["alerts"][0]["detector"], "fleet_drift");
        assert!(json["alerts"][0]["cleared"].is_string(), "{json}");
        assert_eq!(
            log.clear(Detector::FleetDrift, "node lb-2"),
            0,
            "cleared once"
        );
    }

    #[test]
    fn an_alert_names_its_generation_once() {
        let log = AlertLog::with_capacity(3);
        let mut identity = alarm(1);
        identity.summary = "generation 6: route checkout got a response identifying as web".into();
        let alert = log.raise(identity, 6, Some(5), Phase::Continuous, None);
        let text = alert.text();
        assert!(
            text.contains("alert on generation 6: route checkout")
                && !text.contains("generation 6: generation 6"),
            "{text}"
        );
    }
}
