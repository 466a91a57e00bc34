//! Alert delivery to `[[alerts.webhooks]]`: one task and one bounded queue per hook,
//! JSON POSTs over hyper-util's client, retries with exponential back-off.
//!
//! Nothing here can slow the data plane or the detectors: [`Dispatcher::send`] is a
//! `try_send`; when a hook's queue is full the alert is dropped for that hook and
//! counted (`keel_webhook_deliveries_total{result="dropped"}`). A hook is retried on
//! connection errors, timeouts, 429 and 5xx; any other 4xx is final. The payload is
//! described in `docs/alerts.md`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri, header};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use keel_config::Webhook;
use serde_json::json;
use tokio::sync::mpsc;

use crate::alerts::Alert;
use crate::metrics::{Delivery, Metrics};

/// Alerts waiting per hook before new ones are dropped (64 alerts).
pub const WEBHOOK_QUEUE: usize = 64;
/// Wait before the first retry; doubled at each further one (250 ms).
pub const WEBHOOK_BACKOFF_BASE: Duration = Duration::from_millis(250);
/// Longest wait between two attempts (8 seconds).
pub const WEBHOOK_BACKOFF_MAX: Duration = Duration::from_secs(8);

/// Why a webhook could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The URL does not parse, or is not `http://host[:port]/path`.
    #[error("webhook URL `{url}` is not supported: {reason}")]
    BadUrl {
        /// The URL as configured.
        url: String,
        /// Why.
        reason: String,
    },
}

/// The JSON body POSTed for an alert: an Alertmanager-webhook-shaped envelope (so
/// receivers written for Alertmanager accept it), a top-level `text` (so Slack- and
/// Mattermost-style incoming webhooks show one line), and the full alert under `keel`.
pub fn payload(alert: &Alert) -> serde_json::Value {
    let labels = json!({
        "alertname": format!("Keel{}", capitalized(alert.detector.as_str())),
        "detector": alert.detector.as_str(),
        "severity": alert.severity.as_str(),
        "generation": alert.generation.to_string(),
        "subject": alert.subject,
    });
    json!({
        "version": "4",
        "receiver": "keel",
        "status": "firing",
        "groupKey": format!("keel:{}:{}", alert.detector.as_str(), alert.subject),
        "groupLabels": { "alertname": labels["alertname"] },
        "commonLabels": labels,
        "commonAnnotations": { "summary": alert.summary },
        "externalURL": "",
        "truncatedAlerts": 0,
        "text": alert.text(),
        "alerts": [{
            "status": "firing",
            "labels": labels,
            "annotations": {
                "summary": alert.summary,
                "description": alert.preceding_change.as_deref().unwrap_or(""),
            },
            "startsAt": alert.time,
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "",
            "fingerprint": format!("{:016x}", alert.id),
        }],
        "keel": alert,
    })
}

/// `identity` → `Identity`, `fleet_drift` → `FleetDrift` (Alertmanager's alert-name style).
fn capitalized(name: &str) -> String {
    name.split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_uppercase().chain(chars).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

/// Parses a webhook URL: plain `http://` with a host.
pub fn parse_url(url: &str) -> Result<Uri, WebhookError> {
    let bad = |reason: &str| WebhookError::BadUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
    if uri.scheme_str() != Some("http") {
        return Err(bad("only http:// is supported"));
    }
    if uri.host().is_none() {
        return Err(bad("no host"));
    }
    Ok(uri)
}

/// Sends alerts to every configured hook.
#[derive(Debug, Default)]
pub struct Dispatcher {
    hooks: Vec<mpsc::Sender<Arc<Alert>>>,
    metrics: Option<Arc<Metrics>>,
}

impl Dispatcher {
    /// Starts one delivery task per hook (needs a Tokio runtime). Hooks whose URL is
    /// unusable are skipped with a warning and reported in the error list.
    pub fn start(hooks: &[Webhook], metrics: Arc<Metrics>) -> (Self, Vec<WebhookError>) {
        let mut errors = Vec::new();
        let mut senders = Vec::new();
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        for hook in hooks {
            let uri = match parse_url(&hook.url.value) {
                Ok(uri) => uri,
                Err(error) => {
                    tracing::warn!(%error, "webhook skipped");
                    errors.push(error);
                    continue;
                }
            };
            let (tx, rx) = mpsc::channel(WEBHOOK_QUEUE);
            tokio::spawn(deliver_all(
                rx,
                client.clone(),
                uri,
                hook.timeout,
                hook.attempts.max(1),
                metrics.clone(),
            ));
            senders.push(tx);
        }
        (
            Self {
                hooks: senders,
                metrics: Some(metrics),
            },
            errors,
        )
    }

    /// Queues an alert for every hook; never waits.
    pub fn send(&self, alert: &Alert) {
        let alert = Arc::new(alert.clone());
        for hook in &self.hooks {
            if hook.try_send(alert.clone()).is_err()
                && let Some(metrics) = &self.metrics
            {
                metrics.record_delivery(Delivery::Dropped);
            }
        }
    }

    /// Number of hooks.
    pub fn len(&self) -> usize {
        self.hooks.len()
    }

    /// True without hooks.
    pub fn is_empty(&self) -> bool {
        self.hooks.is_empty()
    }
}

async fn deliver_all(
    mut queue: mpsc::Receiver<Arc<Alert>>,
    client: Client<HttpConnector, Full<Bytes>>,
    uri: Uri,
    timeout: Duration,
    attempts: u32,
    metrics: Arc<Metrics>,
) {
    while let Some(alert) = queue.recv().await {
        let body = Bytes::from(payload(&alert).to_string());
        let mut backoff = WEBHOOK_BACKOFF_BASE;
        for attempt in 1..=attempts {
            let result = post(&client, &uri, body.clone(), timeout).await;
            match result {
                Ok(()) => {
                    metrics.record_delivery(Delivery::Delivered);
                    break;
                }
                Err((reason, retriable)) => {
                    if !retriable || attempt == attempts {
                        tracing::warn!(url = %uri, alert = alert.id, attempt, %reason, "webhook delivery failed");
                        metrics.record_delivery(Delivery::Failed);
                        break;
                    }
                    tracing::debug!(url = %uri, alert = alert.id, attempt, %reason, "webhook delivery will be retried");
                    metrics.record_delivery(Delivery::Retried);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(WEBHOOK_BACKOFF_MAX);
                }
            }
        }
    }
}

/// One POST; `Err((reason, retriable))` on failure.
async fn post(
    client: &Client<HttpConnector, Full<Bytes>>,
    uri: &Uri,
    body: Bytes,
    timeout: Duration,
) -> Result<(), (String, bool)> {
    let request = Request::builder()
        .method(Method::POST)
        .uri(uri.clone())
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::USER_AGENT, "keel-alerts")
        .body(Full::new(body))
        .map_err(|e| (e.to_string(), false))?;
    match tokio::time::timeout(timeout, client.request(request)).await {
        Err(_) => Err((format!("no answer within {timeout:?}"), true)),
        Ok(Err(error)) => Err((error.to_string(), true)),
        Ok(Ok(response)) => {
            let status = response.status();
            if status.is_success() {
                Ok(())
            } else {
                let retriable = status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS;
                Err((format!("answered {status}"), retriable))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::{AlertLog, Phase};
    use crate::detectors::{Alarm, Detector};

    #[test]
    fn urls_are_checked() {
        assert!(parse_url("http://127.0.0.1:9/hook").is_ok());
        assert!(parse_url("https://example.com/hook").is_err());
        assert!(parse_url("not a url").is_err());
    }

    #[test]
    fn the_payload_reads_as_alertmanager_and_as_chat() {
        let log = AlertLog::default();
        let alert = log.raise(
            Alarm {
                detector: Detector::Identity,
                subject: "127.0.0.1:9102".into(),
                summary: "backend answers as legacy-web".into(),
                numbers: json!({}),
            },
            7,
            Some(6),
            Phase::Canary { permille: 100 },
            Some("route web: pool web → split web 30 / legacy 70".into()),
        );
        let body = payload(&alert);
        assert_eq!(body["version"], "4");
        assert_eq!(body["alerts"][0]["labels"]["alertname"], "KeelIdentity");
        assert_eq!(capitalized("fleet_drift"), "FleetDrift");
        assert_eq!(body["alerts"][0]["labels"]["generation"], "7");
        assert_eq!(body["keel"]["phase"]["permille"], 100);
        assert!(
            body["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("[keel] CRITICAL identity"))
        );
    }
}
