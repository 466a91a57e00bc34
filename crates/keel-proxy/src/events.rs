//! What the data plane tells the control plane: health flips, ejections and responses
//! from the wrong application. Delivered on a bounded broadcast channel; the data plane
//! never waits for a listener.

use std::net::SocketAddr;

use serde::Serialize;

use crate::backend::BackendState;

/// An event raised by the data plane.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProxyEvent {
    /// A backend's state changed (health check, identity, ejection or recovery).
    BackendState {
        /// Pool the backend belongs to.
        pool: String,
        /// The backend.
        backend: SocketAddr,
        /// State before.
        from: BackendState,
        /// State after.
        to: BackendState,
        /// Why, in a few words (status, error, identity seen).
        reason: String,
    },
    /// A proxied response identified as another service than its route expects.
    IdentityMismatch {
        /// Generation that routed the request.
        generation: u64,
        /// The route.
        route: String,
        /// The pool.
        pool: String,
        /// The backend.
        backend: SocketAddr,
        /// Service the route expects.
        expected: String,
        /// Identity value the backend answered with, if any.
        seen: Option<String>,
    },
}

impl ProxyEvent {
    /// One line for logs and timelines.
    pub fn summary(&self) -> String {
        match self {
            ProxyEvent::BackendState {
                pool,
                backend,
                from,
                to,
                reason,
            } => {
                format!(
                    "backend {backend} of pool {pool}: {} → {} ({reason})",
                    from.as_str(),
                    to.as_str()
                )
            }
            ProxyEvent::IdentityMismatch {
                generation,
                route,
                pool,
                backend,
                expected,
                seen,
            } => format!(
                "generation {generation}: route {route} (pool {pool}) got a response from {backend} identifying as {} instead of {expected}",
                seen.as_deref().unwrap_or("nothing")
            ),
        }
    }
}
