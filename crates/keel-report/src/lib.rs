//! Post-incident documents: the event timeline and the rollback playbook.
//!
//! ```text
//! Store (generations + events) ──Timeline::build──▶ Timeline ──▶ Markdown post-mortem draft / JSON
//! Store + active Config + LiveView ──Playbook::build──▶ Playbook ──▶ Markdown / HTML runbook
//!                                                        └─ Topology ──▶ Mermaid / SVG (layout-rs)
//! ```
//!
//! Everything here is pure over what the store and the config say (plus, for the playbook, the
//! backend states the admin API reported, if it was reachable): no sockets, no clocks except
//! "generated at". The `keel timeline` and `keel playbook` commands open the store and fetch
//! the live states; this crate turns them into documents. `docs/timeline-and-playbook.md`
//! describes both documents and the JSON schema.
//!
//! * [`Timeline`]: applies (author, message, config change summary, check and blast-radius
//!   results), rejections, health and identity flips, alerts, canary steps and rollbacks in one
//!   ordered list, with an [`Incident`] analysis: the first alert, the change that preceded it
//!   (root-cause candidates), detection and recovery times compared with the March-15 incident.
//! * [`Playbook`]: the active and known-good generations, the exact rollback commands, how to
//!   verify a rollback, who changed what recently, and a [`Topology`] diagram.
//! * [`parse_time`]: the `--since` / `--until` forms (RFC 3339, a date, `2h ago`, `-30m`).

mod certificates;
mod changes;
mod error;
mod live;
mod playbook;
mod text;
mod time_spec;
mod timeline;
mod topology;

pub use certificates::{
    CertificateChange, CertificateChangeKind, CertificateSource, LeafInfo, certificate_changes,
};
pub use changes::{ChangeSummary, DiffSource, change_summary, check_summary, impact_summary};
pub use error::ReportError;
pub use live::{BackendHealth, LiveAlert, LiveStates, LiveView};
pub use playbook::{
    GenerationInfo, KNOWN_GOOD_TARGETS, METRIC_ACTIVE_GENERATION, METRIC_BACKEND_STATE,
    METRIC_REQUESTS_TOTAL, Playbook, RECENT_CHANGES, ROLLBACK_MARKER, RecentChange, RollbackTarget,
    TargetReason, VerifyStep,
};
pub use time_spec::{TimeSpecError, parse_time};
pub use timeline::{
    ChangeInfo, Incident, IncidentSignal, MARCH_15_AFFECTED_SHARE, MARCH_15_RECOVERY_SECONDS,
    MARCH_15_SUSPECT_SECONDS, MAX_CANDIDATES, OpenAlert, RollbackInfo, RootCause,
    TIMELINE_SCHEMA_VERSION, Timeline, TimelineEntry, TrafficCounted,
};
pub use topology::{
    COLLAPSE_ROUTES_ABOVE, GROUP_BY_HOST_ABOVE, NodeKind, Topology, TopologyEdge, TopologyNode,
};
