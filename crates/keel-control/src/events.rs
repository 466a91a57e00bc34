//! Persisting what the data plane reports (health flips, ejections, responses from the
//! wrong application) as store events, for `keel timeline`.
//!
//! The data plane never waits: it publishes on a bounded broadcast channel. If this
//! recorder falls behind, the channel drops the oldest events and the recorder writes
//! one event saying how many were lost, so the timeline shows the gap.

use std::future::Future;

use keel_proxy::ProxyEvent;
use keel_store::{NewEvent, kind};
use tokio::sync::broadcast::error::RecvError;

use crate::Controller;

/// Records data-plane events until `shutdown` completes or the data plane goes away.
pub async fn record_proxy_events(controller: Controller, shutdown: impl Future<Output = ()>) {
    let mut events = controller.plane().subscribe();
    tokio::pin!(shutdown);
    loop {
        let event = tokio::select! {
            () = &mut shutdown => return,
            received = events.recv() => received,
        };
        let record = match event {
            Ok(event) => to_store_event(&controller, &event),
            Err(RecvError::Lagged(missed)) => NewEvent::new(
                kind::HEALTH,
                format!("{missed} data-plane events were dropped: the recorder fell behind"),
            ),
            Err(RecvError::Closed) => return,
        };
        if let Err(error) = controller.with_store(move |s| s.append_event(record)).await {
            tracing::warn!(%error, "cannot record a data-plane event");
        }
    }
}

/// The store event for one data-plane event.
pub fn to_store_event(controller: &Controller, event: &ProxyEvent) -> NewEvent {
    let (event_kind, generation) = match event {
        ProxyEvent::BackendState { .. } => (
            kind::HEALTH,
            controller.plane().active().map(|a| a.primary.id),
        ),
        ProxyEvent::IdentityMismatch { generation, .. } => (kind::IDENTITY, Some(*generation)),
    };
    let mut record = NewEvent::new(event_kind, event.summary())
        .details(serde_json::to_value(event).unwrap_or_default());
    if let Some(generation) = generation {
        record = record.generation(generation);
    }
    record
}
