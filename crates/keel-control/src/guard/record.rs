//! Persisting alerts: every alert the watcher raises becomes an `alert` store event
//! about its generation, stamped with the time it was raised, so `keel timeline` puts
//! it before the rollback it caused.
//!
//! Details: the whole alert (`id`, `detector`, `severity`, `subject`, `phase`,
//! `baseline_generation`, `preceding_change`, `numbers`), the detector's numbers also
//! flattened to the top level, and `moved_share` / `requests` for a share shift, which
//! the timeline reads for its impact line.

use std::sync::Weak;

use keel_store::{NewEvent, kind, now_ms};
use keel_watch::Alert;
use serde_json::Value;
use tokio::sync::broadcast::{self, error::RecvError};

use crate::Controller;
use crate::controller::Inner;

/// Records alerts until the watcher or the controller goes away.
pub(crate) async fn record_alerts(controller: Weak<Inner>, mut alerts: broadcast::Receiver<Alert>) {
    loop {
        let received = alerts.recv().await;
        let Some(inner) = controller.upgrade() else {
            return;
        };
        let controller = Controller { inner };
        let event = match received {
            Ok(alert) => alert_event(&alert),
            Err(RecvError::Lagged(missed)) => NewEvent::new(
                kind::ALERT,
                format!(
                    "{missed} alerts were not recorded: the recorder fell behind (GET /alerts has them)"
                ),
            ),
            Err(RecvError::Closed) => return,
        };
        let retry = event.generation.is_some().then(|| NewEvent {
            generation: None,
            ..event.clone()
        });
        if controller
            .with_store(move |s| s.append_event(event))
            .await
            .is_err()
        {
            // The generation may be unknown to the store (an alert about a generation
            // that was never recorded): keep the alert, without the reference.
            if let Some(retry) = retry
                && let Err(error) = controller.with_store(move |s| s.append_event(retry)).await
            {
                tracing::warn!(%error, "cannot record an alert");
            }
        }
    }
}

/// The store event for one alert.
pub(crate) fn alert_event(alert: &Alert) -> NewEvent {
    let mut details = serde_json::to_value(alert).unwrap_or(Value::Null);
    if let (Some(object), Some(numbers)) = (details.as_object_mut(), alert.numbers.as_object()) {
        for (key, value) in numbers {
            if !object.contains_key(key) {
                object.insert(key.clone(), value.clone());
            }
        }
        if alert.numbers.get("kind").and_then(Value::as_str) == Some("shift") {
            if let Some(shift) = alert.numbers.get("shift").and_then(Value::as_f64) {
                object.insert("moved_share".into(), Value::from(shift.abs()));
            }
            if let Some(requests) = alert.numbers.get("candidate_requests") {
                object.insert("requests".into(), requests.clone());
            }
        }
    }
    let time_ms = alert
        .time
        .parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .unwrap_or_else(|_| now_ms());
    NewEvent::new(kind::ALERT, alert.text())
        .at(time_ms)
        .generation(alert.generation)
        .details(details)
}
