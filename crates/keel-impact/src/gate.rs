//! The apply gate: refuse a change whose blast radius is too large.
//!
//! A change is refused when, on the sample,
//! - it moves more than `max_shift` of any host's traffic to another service
//!   (`HostShift::changes_service.share > max_shift`; requests that start or stop
//!   failing count as changing service), or
//! - the new config breaks an `[[intents]]` bound: of the sampled requests to
//!   `intent.host` (under `intent.path_prefix`), the expected share that lands on
//!   `intent.service` under the new config is below `min_share` or above `max_share`.
//!
//! - the worst case, judged per route and per service rather than per host average
//!   (`crate::worst_case`, with witness requests): a route or service that would lose
//!   more than `max_shift` of its traffic to another service, or a route that other
//!   routes would shadow; or
//! - a service's identity changes (or is removed) while more than `max_shift` of a
//!   host's traffic changes service once the traffic landing on that service counts as
//!   changing application (`crate::identity_change`).
//!
//! - the new config's policies refuse more than an intent's `max_refused` of the
//!   sampled requests in its scope (`crate::refusals::ScopeRefusals`).
//!
//! An intent no sampled request matches cannot be judged: it is a note, not a refusal.
//! Whether `--force` overrides a refusal is the caller's decision. [`gate_change`]
//! applies the stricter policy of the two configs, so a change cannot loosen its own
//! gate by raising `max_shift` or deleting an intent in the same edit.

use keel_config::{Config, Intent};
use serde::Serialize;

use keel_route::RequestShape;

use crate::identity_change::{identity_changes, landing_share};
use crate::report::{HostFlow, ImpactReport, SCHEMA_VERSION};
use crate::worst_case::{render_witnesses, worst_case};

/// Most refusal reasons written out in the human text (JSON has all).
const MAX_REASON_ROWS: usize = 10;
/// Most flows written out per host-shift reason.
const MAX_FLOWS_PER_REASON: usize = 3;

/// One reason the gate refuses.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GateReason {
    /// The new address rules or rate limits refuse too much of a host's sampled traffic
    /// that the old config served.
    PolicyRefusals {
        /// What is refused, where, and by which policies.
        refusals: crate::refusals::HostRefusals,
        /// The limit it exceeds.
        max_shift: f64,
    },
    /// Too much of a host's traffic changes service.
    HostShift {
        /// The host.
        host: String,
        /// Share of its sampled traffic that changes service.
        share: f64,
        /// The limit it exceeds.
        max_shift: f64,
        /// Sampled requests to the host.
        requests: usize,
        /// Where that traffic goes, largest first.
        flows: Vec<HostFlow>,
    },
    /// A service's identity changes, and its traffic (counted as changing application)
    /// with the host's service shift exceeds `max_shift`.
    IdentityChange {
        /// The host.
        host: String,
        /// The service whose identity changes.
        service: String,
        /// `header = "old"` → `header = "new"` (or `none`).
        identity: String,
        /// Share of the host's sampled traffic landing on the service.
        service_share: f64,
        /// That share plus the host's service shift: what `max_shift` judged.
        share: f64,
        /// The limit it exceeds.
        max_shift: f64,
        /// Sampled requests to the host.
        requests: usize,
    },
    /// Too much of one route's sampled traffic lands on another service (or fails).
    RouteShift {
        /// The route (old config).
        route: String,
        /// Expected sampled requests it served.
        requests: f64,
        /// Share of them that changes service.
        share: f64,
        /// The limit it exceeds.
        max_shift: f64,
        /// Where they go, largest first.
        to: Vec<String>,
        /// Sampled requests that move so.
        witnesses: Vec<RequestShape>,
    },
    /// A route that still exists loses too much of its sampled traffic to other routes.
    RouteShadowed {
        /// The route.
        route: String,
        /// Expected sampled requests it served.
        requests: f64,
        /// Share of them other routes would take.
        share: f64,
        /// The routes that take them, largest first.
        by: Vec<String>,
        /// Sampled requests that move so.
        witnesses: Vec<RequestShape>,
    },
    /// Too much of one service's sampled traffic lands on another service (or fails).
    ServiceShift {
        /// The service (where the traffic landed under the old config).
        service: String,
        /// Expected sampled requests it answered.
        requests: f64,
        /// Share of them that changes service.
        share: f64,
        /// The limit it exceeds.
        max_shift: f64,
        /// Where they go, largest first.
        to: Vec<String>,
        /// Sampled requests that move so.
        witnesses: Vec<RequestShape>,
    },
    /// Sampled TLS requests whose SNI name would get a certificate that does not
    /// cover it: browsers refuse the connection.
    CertificateUncovered {
        /// The SNI name.
        sni: String,
        /// The listener.
        listener: String,
        /// Its sampled requests (all of them get the one certificate).
        requests: usize,
        /// Their share of the whole sample.
        share: f64,
        /// The certificate it would get (`None`: none at all).
        certificate: Option<String>,
    },
    /// Too many sampled TLS requests would get another certificate than before.
    CertificateChange {
        /// The SNI names concerned, most requests first.
        names: Vec<String>,
        /// Sampled requests concerned.
        requests: usize,
        /// Their share of the whole sample.
        share: f64,
        /// The limit it exceeds.
        max_shift: f64,
    },
    /// The new config's policies refuse more of an intent's sampled requests than its
    /// `max_refused`.
    RefusalIntent {
        /// The scope's sampled requests and what refuses them.
        refusals: crate::refusals::ScopeRefusals,
        /// The intent's bound.
        max_refused: f64,
    },
    /// An intent's bound does not hold under the new config.
    Intent {
        /// The intent's host.
        host: String,
        /// The intent's path prefix.
        path_prefix: Option<String>,
        /// The service whose share is bounded.
        service: String,
        /// The lower bound, if any.
        min_share: Option<f64>,
        /// The upper bound, if any.
        max_share: Option<f64>,
        /// The share under the new config.
        share: f64,
        /// The share under the old config.
        old_share: f64,
        /// Sampled requests the intent covers.
        requests: usize,
    },
}

impl std::fmt::Display for GateReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GateReason::RefusalIntent {
                refusals,
                max_refused,
            } => f.write_str(&refusals.describe_breach(*max_refused)),
            GateReason::PolicyRefusals {
                refusals,
                max_shift,
            } => write!(
                f,
                "{} (limit [safety] max_shift = {}); e.g. `{}`",
                refusals.describe(),
                percent(*max_shift),
                refusals.witness
            ),
            GateReason::HostShift {
                host,
                share,
                max_shift,
                requests,
                flows,
            } => {
                write!(
                    f,
                    "{} of the {requests} sampled request{} to {host} would change service \
                     (limit [safety] max_shift = {})",
                    percent(*share),
                    if *requests == 1 { "" } else { "s" },
                    percent(*max_shift)
                )?;
                for flow in flows.iter().take(MAX_FLOWS_PER_REASON) {
                    write!(
                        f,
                        "\n    {} of requests to {host} would move from {} to {}",
                        percent(flow.amount.share),
                        flow.from,
                        flow.to
                    )?;
                }
                Ok(())
            }
            GateReason::CertificateUncovered {
                sni,
                listener,
                requests,
                share,
                certificate,
            } => write!(
                f,
                "{} of sampled requests ({requests} with SNI {sni}, listener {listener}) would get \
                 a certificate that does not cover their host ({})",
                percent(*share),
                certificate
                    .as_deref()
                    .map_or("no certificate at all".to_string(), |c| format!(
                        "certificate `{c}`"
                    ))
            ),
            GateReason::CertificateChange {
                names,
                requests,
                share,
                max_shift,
            } => write!(
                f,
                "{} of sampled requests ({requests}, SNI {}) would get another certificate \
                 (limit [safety] max_shift = {})",
                percent(*share),
                names.join(", "),
                percent(*max_shift)
            ),
            GateReason::RouteShift {
                route,
                requests,
                share,
                max_shift,
                to,
                witnesses,
            } => write!(
                f,
                "route {route}: {} of its {} sampled requests would be answered by another \
                 service ({}) (limit [safety] max_shift = {}); e.g. {}",
                percent(*share),
                count(*requests),
                to.join(", "),
                percent(*max_shift),
                render_witnesses(witnesses)
            ),
            GateReason::RouteShadowed {
                route,
                requests,
                share,
                by,
                witnesses,
            } => write!(
                f,
                "route {route} would be shadowed: {} of its {} sampled requests would match \
                 route {} instead; e.g. {}",
                percent(*share),
                count(*requests),
                by.join(", "),
                render_witnesses(witnesses)
            ),
            GateReason::ServiceShift {
                service,
                requests,
                share,
                max_shift,
                to,
                witnesses,
            } => write!(
                f,
                "service {service}: {} of the {} sampled requests it answered would go \
                 elsewhere ({}) (limit [safety] max_shift = {}); e.g. {}",
                percent(*share),
                count(*requests),
                to.join(", "),
                percent(*max_shift),
                render_witnesses(witnesses)
            ),
            GateReason::IdentityChange {
                host,
                service,
                identity,
                service_share,
                share,
                max_shift,
                requests,
            } => write!(
                f,
                "service {service} changes identity ({identity}): its {} of the {requests} \
                 sampled requests to {host} count as changing application, {} in all \
                 (limit [safety] max_shift = {})",
                percent(*service_share),
                percent(*share),
                percent(*max_shift)
            ),
            GateReason::Intent {
                host,
                path_prefix,
                service,
                min_share,
                max_share,
                share,
                old_share,
                requests,
            } => {
                let bound = match (min_share, max_share) {
                    (Some(min), Some(max)) => {
                        format!("between {} and {}", percent(*min), percent(*max))
                    }
                    (Some(min), None) => format!("at least {}", percent(*min)),
                    (None, Some(max)) => format!("at most {}", percent(*max)),
                    (None, None) => "bounded".into(),
                };
                write!(
                    f,
                    "intent broken: {bound} of requests to {host}{} must reach service {service}; \
                     with the new config {} of the {requests} sampled ones do (was {})",
                    path_prefix.as_deref().unwrap_or(""),
                    percent(*share),
                    percent(*old_share)
                )
            }
        }
    }
}

/// The gate's decision.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GateVerdict {
    /// Always [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// True when no reason refuses the change.
    pub allowed: bool,
    /// The `max_shift` applied.
    pub max_shift: f64,
    /// Why the change is refused; empty when allowed.
    pub reasons: Vec<GateReason>,
    /// What the gate could not judge (empty sample, intents no request matched).
    pub notes: Vec<String>,
    /// The report, rendered for people: part of every refusal text.
    #[serde(skip)]
    pub report_text: String,
}

impl GateVerdict {
    /// The verdict for people: the decision, each reason, each note, then the matrix.
    pub fn render_human(&self) -> String {
        let mut out = if self.allowed {
            "ACCEPTED by the blast-radius gate.\n".to_string()
        } else {
            format!(
                "REFUSED by the blast-radius gate ({} reason{}):\n",
                self.reasons.len(),
                if self.reasons.len() == 1 { "" } else { "s" }
            )
        };
        for reason in self.reasons.iter().take(MAX_REASON_ROWS) {
            out.push_str(&format!("  - {reason}\n"));
        }
        if self.reasons.len() > MAX_REASON_ROWS {
            out.push_str(&format!(
                "  … {} more reasons (see --format json)\n",
                self.reasons.len() - MAX_REASON_ROWS
            ));
        }
        for note in &self.notes {
            out.push_str(&format!("  note: {note}\n"));
        }
        out.push('\n');
        out.push_str(&self.report_text);
        out
    }

    /// The stable JSON form (schema version [`SCHEMA_VERSION`]).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// Judges a report against `max_shift` and `intents` (see the module doc).
pub fn gate(report: &ImpactReport, max_shift: f64, intents: &[Intent]) -> GateVerdict {
    // Fail closed on a limit that is not a number.
    let max_shift = if max_shift.is_nan() { 0.0 } else { max_shift };
    let mut reasons = Vec::new();
    let mut notes = Vec::new();
    if report.total == 0 {
        notes.push("the traffic sample is empty: the gate saw no traffic to judge".into());
    }
    for host in &report.hosts {
        if host.changes_service.share > max_shift {
            reasons.push(GateReason::HostShift {
                host: host.host.clone(),
                share: host.changes_service.share,
                max_shift,
                requests: host.requests,
                flows: host.flows.clone(),
            });
        }
    }
    certificate_reasons(report, max_shift, &mut reasons, &mut notes);
    crate::refusals::intent_reasons(report, intents, &mut reasons, &mut notes);
    for intent in intents {
        let prefix = intent.path_prefix.as_deref();
        let Some(service) = intent
            .service
            .as_ref()
            .filter(|_| intent.min_share.is_some() || intent.max_share.is_some())
            .map(|s| s.value.as_str())
        else {
            continue;
        };
        let Some((share, requests)) = report.service_share(&intent.host, prefix, service, false)
        else {
            notes.push(format!(
                "no sampled request goes to {}{}: intent for service {service} not judged",
                intent.host,
                prefix.unwrap_or("")
            ));
            continue;
        };
        let below = intent.min_share.is_some_and(|min| share < min);
        let above = intent.max_share.is_some_and(|max| share > max);
        if below || above {
            let old_share = report
                .service_share(&intent.host, prefix, service, true)
                .map_or(0.0, |(s, _)| s);
            reasons.push(GateReason::Intent {
                host: intent.host.clone(),
                path_prefix: intent.path_prefix.clone(),
                service: service.to_string(),
                min_share: intent.min_share,
                max_share: intent.max_share,
                share,
                old_share,
                requests,
            });
        }
    }
    GateVerdict {
        schema_version: SCHEMA_VERSION,
        allowed: reasons.is_empty(),
        max_shift,
        reasons,
        notes,
        report_text: report.render_human(),
    }
}

/// The gate for a change from `old` to `new`, with the stricter policy of the two:
/// the smaller `[safety] max_shift` and the intents of both configs.
pub fn gate_change(report: &ImpactReport, old: &Config, new: &Config) -> GateVerdict {
    let max_shift = old.safety.max_shift.min(new.safety.max_shift);
    let mut intents: Vec<Intent> = new.intents.clone();
    for intent in &old.intents {
        let same = |other: &Intent| {
            other.host == intent.host
                && other.path_prefix == intent.path_prefix
                && other.service.as_ref().map(|s| &s.value)
                    == intent.service.as_ref().map(|s| &s.value)
                && other.min_share == intent.min_share
                && other.max_share == intent.max_share
                && other.max_refused == intent.max_refused
        };
        if !intents.iter().any(same) {
            intents.push(intent.clone());
        }
    }
    let mut verdict = gate(report, max_shift, &intents);
    for change in identity_changes(old, new) {
        for host in &report.hosts {
            let service_share = landing_share(report, &host.host, &change.service);
            let share = (host.changes_service.share + service_share).min(1.0);
            if service_share > 0.0 && share > verdict.max_shift {
                verdict.reasons.push(GateReason::IdentityChange {
                    host: host.host.clone(),
                    service: change.service.clone(),
                    identity: change.describe(),
                    service_share,
                    share,
                    max_shift: verdict.max_shift,
                    requests: host.requests,
                });
            }
        }
    }
    let max_shift = verdict.max_shift;
    verdict.reasons.extend(worst_case(report, new, max_shift));
    for refusals in &report.refusals {
        if refusals.share > max_shift {
            verdict.reasons.push(GateReason::PolicyRefusals {
                refusals: refusals.clone(),
                max_shift,
            });
        }
    }
    verdict.allowed = verdict.reasons.is_empty();
    verdict
}

/// Uncovered SNI names refuse outright (all of a name's requests get the one
/// certificate: 100 % of them, above any `max_shift` below 1); names moving to another
/// certificate that covers them refuse above `max_shift` of the whole sample.
fn certificate_reasons(
    report: &ImpactReport,
    max_shift: f64,
    reasons: &mut Vec<GateReason>,
    notes: &mut Vec<String>,
) {
    let impact = &report.certificates;
    if impact.tls_requests > 0 && !impact.judged {
        notes
            .push("certificates not judged: their files were not read (facts unknown)".to_string());
    }
    let total = report.total.max(1) as f64;
    let mut moved = (Vec::new(), 0);
    for shift in &impact.shifts {
        let share = shift.requests as f64 / total;
        if !shift.covered && max_shift < 1.0 {
            reasons.push(GateReason::CertificateUncovered {
                sni: shift.sni.clone(),
                listener: shift.listener.clone(),
                requests: shift.requests,
                share,
                certificate: shift.new.clone(),
            });
        } else if shift.covered {
            moved.0.push(shift.sni.clone());
            moved.1 += shift.requests;
        }
    }
    let share = moved.1 as f64 / total;
    if share > max_shift {
        reasons.push(GateReason::CertificateChange {
            names: moved.0,
            requests: moved.1,
            share,
            max_shift,
        });
    }
}

/// `30` for whole numbers of expected requests, `2.5` otherwise.
fn count(requests: f64) -> String {
    if (requests - requests.round()).abs() < 1e-9 {
        format!("{requests:.0}")
    } else {
        format!("{requests:.1}")
    }
}

/// `0.37` → `37.0%`; a share too small to show as 0.1 % is `<0.1%`, not `0.0%`.
pub(crate) fn percent(share: f64) -> String {
    if share > 0.0 && share < 0.0005 {
        "<0.1%".to_string()
    } else {
        format!("{:.1}%", share * 100.0)
    }
}
