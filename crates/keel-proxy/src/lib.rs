//! Keel's data plane: listeners, routing through the active generation, balancing,
//! health checks, upstream connection pools, retries, the access log and the live
//! traffic sample.
//!
//! ```text
//! accept ─▶ peek: h1 or h2c ─▶ hyper ─▶ serve_request(): load Active ─▶ RouteTable::find ─▶ sample
//!        ─▶ forward(): split arm ─▶ Balancer::pick ─▶ idle or new backend connection
//!        ─▶ send on it (its own task does the I/O) ─▶ verify identity ─▶ count ─▶ respond
//!        ─▶ stream the body back ─▶ pool the connection ─▶ access log line
//! ```
//!
//! The control plane compiles configs into [`Generation`]s with [`DataPlane::compile`]
//! and swaps them in with [`DataPlane::activate`] (or a [`Canary`] slice); the data plane
//! never parses config and never waits on the control plane.

mod access_log;
mod acme_challenge;
mod acme_tls_alpn;
mod answer;
mod backend;
pub mod backend_tls;
mod balance;
mod body;
mod body_bound;
mod chunk_guard;
mod coarse_clock;
mod compress;
mod compress_body;
mod connection_counts;
mod connection_future;
mod dataplane;
mod deadline;
mod errors;
mod events;
mod forward;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod generation;
mod grpc;
pub mod grpc_health;
mod grpc_retry;
mod handler;
mod headers;
mod health;
mod idle_spin;
pub mod listen;
mod parking;
mod policy;
pub mod probe;
mod progress;
mod proxy_protocol;
mod rate_limit;
mod redirect;
mod refuse;
mod request;
mod resend;
mod sample;
mod server;
mod serving;
mod splice;
pub mod stats;
pub mod tls;
pub mod tunnel;
mod upgrade;
mod upstream;
mod upstream_h2;
mod watchdog;
mod websocket_key;

pub use access_log::{AccessRecord, MAX_USER_AGENT_BYTES};
pub use acme_challenge::{ACME_CHALLENGE_PREFIX, AcmeChallenges, MAX_ACME_CHALLENGES};
pub use acme_tls_alpn::{ACME_TLS_ALPN_PROTOCOL, TlsAlpnError};
pub use backend::{Backend, BackendState};
pub use body::{ResponseBody, UpstreamBody};
pub use connection_counts::ClientConnections;
pub use dataplane::{Active, Canary, DataPlane, DataPlaneOptions};
pub use errors::ProxyFailure;
pub use events::ProxyEvent;
pub use generation::{Generation, PoolRuntime};
pub use keel_route::CompileError;
pub use sample::TrafficSample;
pub use server::ListenerLimits;
pub use serving::ServingThreads;
pub use upstream::ConnectError;
