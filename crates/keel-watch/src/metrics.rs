//! The metrics registry: control-plane counters (applies, rollbacks, rejections, alerts,
//! webhook deliveries), detector gauges, and the data-plane [`PlaneCollector`], encoded
//! together in the Prometheus text format (0.0.4) for `GET /metrics`.

use std::sync::Arc;

use keel_proxy::{DataPlane, Generation};
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::alerts::Alert;
use crate::collector::PlaneCollector;
use crate::detectors::Detector;
use crate::names;

/// `Content-Type` of [`Metrics::encode`]'s output.
pub const METRICS_CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

type Labels = Vec<(&'static str, &'static str)>;

/// What a rollback was triggered by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RollbackTrigger {
    /// `keel rollback` or the admin API.
    Manual,
    /// The guard, on an alarm.
    Automatic,
}

/// Outcome of one webhook delivery step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// The receiver accepted the alert.
    Delivered,
    /// An attempt failed and will be retried.
    Retried,
    /// Every attempt failed; the alert was given up for that hook.
    Failed,
    /// The queue was full; the alert was never sent to that hook.
    Dropped,
}

impl Delivery {
    fn label(self) -> &'static str {
        match self {
            Delivery::Delivered => "delivered",
            Delivery::Retried => "retried",
            Delivery::Failed => "failed",
            Delivery::Dropped => "dropped",
        }
    }
}

/// Keel's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    collector: Arc<PlaneCollector>,
    applies: Counter,
    rollbacks: Family<Labels, Counter>,
    rejections: Counter,
    alerts: Family<Labels, Counter>,
    webhooks: Family<Labels, Counter>,
    detector_firing: Family<Labels, Gauge>,
    detectors_enabled: Gauge,
}

impl Metrics {
    /// The registry for a data plane.
    pub fn new(plane: &Arc<DataPlane>) -> Self {
        let mut registry = Registry::default();
        let collector = Arc::new(PlaneCollector::new(plane));
        registry.register_collector(Box::new(collector.clone()));
        let applies = Counter::default();
        registry.register(names::APPLIES, "Generations applied", applies.clone());
        let rollbacks = Family::<Labels, Counter>::default();
        registry.register(
            names::ROLLBACKS,
            "Rollbacks, by trigger (manual or automatic)",
            rollbacks.clone(),
        );
        let rejections = Counter::default();
        registry.register(
            names::REJECTIONS,
            "Configs refused by the checker or the gate",
            rejections.clone(),
        );
        let alerts = Family::<Labels, Counter>::default();
        registry.register(
            names::ALERTS,
            "Alerts raised, by detector and severity",
            alerts.clone(),
        );
        let webhooks = Family::<Labels, Counter>::default();
        registry.register(
            names::WEBHOOK_DELIVERIES,
            "Webhook deliveries, by result (delivered, retried, failed, dropped)",
            webhooks.clone(),
        );
        let detector_firing = Family::<Labels, Gauge>::default();
        registry.register(
            names::DETECTOR_FIRING,
            "1 while a detector has fired within its window, else 0",
            detector_firing.clone(),
        );
        for detector in Detector::ALL {
            detector_firing
                .get_or_create(&vec![("detector", detector.as_str())])
                .set(0);
        }
        let detectors_enabled = Gauge::default();
        registry.register(
            names::DETECTORS_ENABLED,
            "1 when the active config enables the detectors",
            detectors_enabled.clone(),
        );
        Self {
            registry,
            collector,
            applies,
            rollbacks,
            rejections,
            alerts,
            webhooks,
            detector_firing,
            detectors_enabled,
        }
    }

    /// The whole exposition, Prometheus text format 0.0.4.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(error) = prometheus_text::encode(&mut out, &self.registry) {
            tracing::warn!(%error, "metrics encoding failed");
        }
        out
    }

    /// Counts an applied generation.
    pub fn record_apply(&self) {
        self.applies.inc();
    }

    /// Counts a rollback.
    pub fn record_rollback(&self, trigger: RollbackTrigger) {
        let trigger = match trigger {
            RollbackTrigger::Manual => "manual",
            RollbackTrigger::Automatic => "automatic",
        };
        self.rollbacks
            .get_or_create(&vec![("trigger", trigger)])
            .inc();
    }

    /// Counts a refused config.
    pub fn record_rejection(&self) {
        self.rejections.inc();
    }

    /// Counts an alert.
    pub fn record_alert(&self, alert: &Alert) {
        self.alerts
            .get_or_create(&vec![
                ("detector", alert.detector.as_str()),
                ("severity", alert.severity.as_str()),
            ])
            .inc();
    }

    /// Counts a webhook delivery step.
    pub fn record_delivery(&self, delivery: Delivery) {
        self.webhooks
            .get_or_create(&vec![("result", delivery.label())])
            .inc();
    }

    /// Count of a webhook delivery result so far.
    pub fn deliveries(&self, delivery: Delivery) -> u64 {
        self.webhooks
            .get_or_create(&vec![("result", delivery.label())])
            .get()
    }

    /// Sets whether a detector is firing.
    pub fn set_firing(&self, detector: Detector, firing: bool) {
        self.detector_firing
            .get_or_create(&vec![("detector", detector.as_str())])
            .set(i64::from(firing));
    }

    /// Sets whether the detectors are enabled.
    pub fn set_detectors_enabled(&self, enabled: bool) {
        self.detectors_enabled.set(i64::from(enabled));
    }

    /// Keeps exporting a generation's counters after it stops serving, while it lives.
    pub fn retain(&self, generation: &Arc<Generation>) {
        self.collector.retain(generation);
    }
}
