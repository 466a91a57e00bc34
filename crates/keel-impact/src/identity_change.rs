//! A change to a service's identity is a change of application: the gate counts the
//! sampled traffic that lands on such a service as changing service.
//!
//! Service *names* say nothing when an edit rewrites what a service must prove: the
//! March-15 edit in disguise changes `[services.checkout] identity.equals` to the value
//! the servers it now points at answer with, and every request still "lands on
//! checkout". So for every service whose identity the change rewrites or removes, the
//! share of each host's sampled traffic that lands on it (old or new config, whichever is
//! larger) is added to that host's service shift before `max_shift` judges it. Adding
//! an identity where there was none is not counted: nothing that was proven is lost.

use keel_config::{Config, Identity};

use crate::report::ImpactReport;

/// One service whose identity a change rewrites or removes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityChange {
    /// The service.
    pub service: String,
    /// Its identity in the old config.
    pub old: Identity,
    /// Its identity in the new config (`None`: removed).
    pub new: Option<Identity>,
}

impl IdentityChange {
    /// `x-service = "checkout"` → `x-service = "legacy"` (or `none`).
    pub fn describe(&self) -> String {
        let show = |i: &Identity| format!("{} = {:?}", i.header, i.equals);
        format!(
            "{} → {}",
            show(&self.old),
            self.new.as_ref().map_or_else(|| "none".to_string(), show)
        )
    }
}

/// Services of `new` whose identity differs from (or was removed since) `old`.
pub fn identity_changes(old: &Config, new: &Config) -> Vec<IdentityChange> {
    old.services
        .iter()
        .filter_map(|(name, service)| {
            let before = service.identity.as_ref()?;
            let after = new.services.get(name.as_str())?.identity.as_ref();
            (after.map(|a| &a.value) != Some(&before.value)).then(|| IdentityChange {
                service: name.clone(),
                old: before.value.clone(),
                new: after.map(|a| a.value.clone()),
            })
        })
        .collect()
}

/// Share of `host`'s sampled traffic that lands on `service` under either config.
pub(crate) fn landing_share(report: &ImpactReport, host: &str, service: &str) -> f64 {
    let old = report
        .service_share(host, None, service, true)
        .map_or(0.0, |(s, _)| s);
    let new = report
        .service_share(host, None, service, false)
        .map_or(0.0, |(s, _)| s);
    old.max(new)
}
