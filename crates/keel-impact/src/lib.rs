//! Blast radius: replay sampled request shapes through two routing tables and report
//! where the traffic moves.
//!
//! ```text
//! traffic file ──read_traffic()──▶ Vec<RequestShape> ─┐
//! old Config ─┐                                       ├─▶ blast_radius() ──▶ ImpactReport
//! new Config ─┴── RouteTable::compile (both) ─────────┘        │  render_human() / to_json()
//!                                                              ▼
//!                                        gate(report, max_shift, intents) ──▶ GateVerdict
//! ```
//!
//! - [`traffic`]: the three traffic-file formats (request shapes, access log, `METHOD URL`).
//! - [`destination`]: where a request lands (route, pool, *pool's* service, or a failure).
//! - `coupling`: the per-request movement math (expected shares, smallest change).
//! - `replay`: the replay loop and the sums; [`report`]: the report types and JSON form.
//! - [`ring`]: the consistent-hash ring, shared with the data plane.
//! - [`gate`]: the apply gate (`max_shift`, intents).
//! - [`rate_lint`]: the lint K219, a rate limit below the sample's observed rate.
//! - [`certificates`]: which certificate each sampled TLS request's SNI name would get.
//!
//! The contract for users is `docs/blast-radius.md`: formats, math, JSON schema, gate rule.

pub mod certificates;
mod coupling;
pub mod destination;
pub mod evidence;
pub mod gate;
pub mod identity_change;
pub mod rate_lint;
mod refusals;
mod render;
mod replay;
pub mod report;
mod sticky;
pub mod traffic;
mod worst_case;

pub use certificates::{CertificateImpact, CertificateShift, certificate_impact};
pub use destination::{Compiled, Destination, Failure, Landing, NO_ROUTE, NONE};
pub use gate::{GateReason, GateVerdict, gate, gate_change};
/// The consistent-hash ring lives in keel-route so the data plane and the replay share it.
pub use keel_route::{MAX_RING_POINTS, RING_SEED, Ring, VNODES_PER_WEIGHT};
pub use rate_lint::rate_limit_findings;
pub use refusals::{HostRefusals, MAX_SCOPE_WITNESSES, ScopeRefusals};
pub use replay::{ImpactError, NO_HOST, blast_radius, blast_radius_compiled};
pub use report::{
    Amount, Change, FailCount, FailingSummary, HostFlow, HostShift, ImpactReport, LandingShare,
    MAX_EXAMPLES, Movement, SCHEMA_VERSION, ServiceShare, StickyMovement, StickyPool,
};
pub use traffic::{
    FormatCounts, MAX_LINE_BYTES, Traffic, TrafficError, parse_traffic, parse_traffic_bytes,
    read_traffic,
};
