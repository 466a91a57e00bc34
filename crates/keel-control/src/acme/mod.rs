//! ACME certificates (`[certificates.NAME] acme = { directory, contact, domains }`):
//! obtained and renewed by Keel, and served through the same apply path as any change.
//!
//! * [`files`]: the state directory's `acme/` folder (account, issued chains and keys,
//!   mode 0600) and the loader's source of ACME certificate bytes, with a self-signed
//!   placeholder until the first issuance.
//! * [`client`]: one order with instant-acme, HTTP-01 answered by the data plane itself
//!   ([`keel_proxy::AcmeChallenges`]) on every listener.
//! * [`schedule`]: renewal at two thirds of the lifetime, retries, when to alert.
//! * [`run_acme`] (here): the background task. A newly issued certificate is written to
//!   the state directory and then the active config text is applied again, as a new
//!   generation through check, gate, compile and guard: the loader reads the new bytes,
//!   so the generation pins them, and a certificate that breaks handshakes is reverted
//!   like any other change. Every attempt, success and failure is a store event (kind
//!   [`ACME_EVENT_KIND`]); failures that keep coming raise a `certificate` alert.

pub mod client;
pub mod files;
pub mod schedule;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use keel_config::{AcmeCertificate, CertificateFiles, Config};
use keel_store::NewEvent;
use keel_watch::Alarm;
use keel_watch::detectors::Detector;
use serde_json::json;

use self::client::{OrderContext, obtain};
use self::files::AcmeFiles;
use self::schedule::{Validity, alert_due, retry_delay};
use crate::{ApplyRequest, ApplyStatus, Controller};

/// Store event kind of ACME issuance, renewal and failure.
pub const ACME_EVENT_KIND: &str = "acme";
/// Author and origin of the applies that install a renewed certificate.
pub const ACME_AUTHOR: &str = "acme";
/// Longest sleep between two looks at the active config (1 minute): a certificate added
/// by an apply is ordered at most this late.
pub const ACME_CHECK_INTERVAL: Duration = Duration::from_secs(60);

/// Why an ACME step failed.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    /// The ACME server refused or the exchange broke.
    #[error("ACME order failed: {0}")]
    Order(String),
    /// A file of the state directory could not be written.
    #[error("cannot write {0}: {1}")]
    Files(PathBuf, std::io::Error),
    /// The placeholder certificate could not be made.
    #[error("cannot make a placeholder certificate: {0}")]
    Placeholder(rcgen::Error),
    /// The issued certificate was obtained but not applied.
    #[error("the renewed certificate was not applied: {0}")]
    Apply(String),
}

/// What the renewal task needs besides the controller.
#[derive(Clone, Debug)]
pub struct AcmeSettings {
    /// `keel serve --state-dir`.
    pub state_dir: PathBuf,
    /// `keel serve --config`: relative paths (other certificates, `directory_ca`) start
    /// at its directory, as they do when a stored generation is restored.
    pub config_file: Option<PathBuf>,
}

impl AcmeSettings {
    fn config_dir(&self) -> PathBuf {
        self.config_file.as_ref().map_or_else(
            || PathBuf::from("."),
            |file| keel_config::config_dir(&file.to_string_lossy()),
        )
    }
}

/// Makes the loader read ACME certificates from `state_dir` (call once, before the
/// first config is loaded).
pub fn install_material(state_dir: &std::path::Path) {
    keel_config::install_acme_material(std::sync::Arc::new(AcmeFiles::new(state_dir)));
}

/// Per-certificate retry state.
#[derive(Debug, Default)]
struct Attempts {
    failures: u32,
    not_before: Option<tokio::time::Instant>,
    /// The chain this task last installed: if it no longer serves, the guard reverted
    /// it (or someone rolled back), which counts as a failed renewal.
    installed: Option<Vec<u8>>,
}

/// Obtains and renews every ACME certificate of the active config until `shutdown`.
pub async fn run_acme(
    controller: Controller,
    settings: AcmeSettings,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let files = AcmeFiles::new(&settings.state_dir);
    let mut attempts: HashMap<String, Attempts> = HashMap::new();
    tokio::pin!(shutdown);
    loop {
        let mut sleep = ACME_CHECK_INTERVAL;
        if let Some(active) = controller.active() {
            let config = active.generation.config.clone();
            for (name, certificate) in &config.certificates {
                let Some(acme) = &certificate.acme else {
                    continue;
                };
                let state = attempts.entry(name.clone()).or_default();
                let wait = tend(&controller, &settings, &files, &config, name, acme, state);
                tokio::select! {
                    () = &mut shutdown => return,
                    next = wait => sleep = sleep.min(next),
                }
            }
        }
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(sleep) => {}
        }
    }
}

/// Looks after one certificate: renews it when due (or retries when allowed), and says
/// how long until it next needs a look.
async fn tend(
    controller: &Controller,
    settings: &AcmeSettings,
    files: &AcmeFiles,
    config: &Config,
    name: &str,
    acme: &AcmeCertificate,
    attempts: &mut Attempts,
) -> Duration {
    let now = tokio::time::Instant::now();
    if attempts.not_before.is_some_and(|at| now < at) {
        return attempts.not_before.map_or(Duration::ZERO, |at| at - now);
    }
    let served = config.certificates[name].files.as_deref();
    let issued = files.issued(name);
    let validity = issued.as_ref().and_then(validity_of);
    let unix_now = unix_now();
    let due = match (&issued, validity) {
        // Nothing issued yet (a placeholder serves), or unreadable: order now.
        (None, _) | (Some(_), None) => true,
        (Some(issued), Some(validity)) => {
            if served != Some(issued) {
                let validity = validity_of(issued);
                if attempts.installed.as_deref() == Some(issued.chain_pem.as_slice()) {
                    attempts.installed = None;
                    let reverted = AcmeError::Apply(
                        "the installed certificate no longer serves: the guard reverted it, or a rollback replaced it".into(),
                    );
                    return settle(controller, name, attempts, validity, Err(reverted)).await;
                }
                // Issued but not what serves: its apply was refused or reverted; apply
                // it again (after the retry delay that got us here).
                let outcome = install(controller, settings, name, "apply again").await;
                if outcome.is_ok() {
                    attempts.installed = Some(issued.chain_pem.clone());
                }
                return settle(controller, name, attempts, validity, outcome).await;
            }
            unix_now >= validity.renew_at()
        }
    };
    if !due {
        let left = validity.map_or(0, |v| v.renew_at() - unix_now);
        return Duration::from_secs(u64::try_from(left).unwrap_or(0));
    }
    let why = if issued.is_some() { "renew" } else { "obtain" };
    record(
        controller,
        name,
        format!(
            "ACME: ordering certificate `{name}` ({why}) from {}",
            acme.directory.value
        ),
        json!({"certificate": name, "step": "order", "domains": domains(acme)}),
    )
    .await;
    let config_dir = settings.config_dir();
    let roots = acme
        .directory_ca
        .as_ref()
        .map(|ca| config_dir.join(&ca.value));
    let context = OrderContext {
        files,
        challenges: controller.plane().acme_challenges(),
        directory_roots: roots.as_deref(),
    };
    let outcome = match obtain(&context, acme).await {
        Ok(obtained) => match files.store_issued(name, &obtained) {
            Ok(()) => {
                let outcome = install(controller, settings, name, why).await;
                if outcome.is_ok() {
                    attempts.installed = Some(obtained.chain_pem.clone());
                }
                outcome
            }
            Err(error) => Err(error),
        },
        Err(error) => Err(error),
    };
    settle(controller, name, attempts, validity, outcome).await
}

/// Applies the active config again so that the loader picks up the stored certificate.
async fn install(
    controller: &Controller,
    settings: &AcmeSettings,
    name: &str,
    why: &str,
) -> Result<u64, AcmeError> {
    let Some(active) = controller.active() else {
        return Err(AcmeError::Apply("no generation is active".into()));
    };
    let file_name = settings.config_file.as_ref().map_or_else(
        || format!("generation {}", active.id()),
        |file| file.display().to_string(),
    );
    let request = ApplyRequest {
        config_text: active.config_text.to_string(),
        author: ACME_AUTHOR.to_string(),
        message: format!("ACME: install the certificate `{name}` ({why})"),
        origin: ACME_AUTHOR.to_string(),
        file_name,
        ..ApplyRequest::default()
    };
    match controller.apply(request).await {
        Ok(outcome) if outcome.status == ApplyStatus::Applied => {
            Ok(outcome.generation.unwrap_or_default())
        }
        Ok(outcome) => {
            Err(AcmeError::Apply(outcome.refusals.first().map_or_else(
                || format!("{:?}", outcome.status),
                |r| r.message.clone(),
            )))
        }
        Err(error) => Err(AcmeError::Apply(error.to_string())),
    }
}

/// Records how an attempt ended and returns the wait before the next look.
async fn settle(
    controller: &Controller,
    name: &str,
    attempts: &mut Attempts,
    validity: Option<Validity>,
    outcome: Result<u64, AcmeError>,
) -> Duration {
    match outcome {
        Ok(generation) => {
            attempts.failures = 0;
            attempts.not_before = None;
            let summary =
                format!("ACME: certificate `{name}` installed as generation {generation}");
            tracing::info!("{summary}");
            record(
                controller,
                name,
                summary,
                json!({"certificate": name, "step": "installed", "generation": generation}),
            )
            .await;
            Duration::ZERO
        }
        Err(error) => {
            attempts.failures += 1;
            let mut delay = retry_delay(attempts.failures, validity);
            if matches!(error, AcmeError::Apply(_)) {
                // The certificate is issued and kept; only its apply waits (a watch in
                // progress, a gate): no ACME rate limit is at stake.
                delay = delay.min(ACME_CHECK_INTERVAL);
            }
            attempts.not_before = Some(tokio::time::Instant::now() + delay);
            let summary = format!(
                "ACME: certificate `{name}` not renewed (failure {} in a row, next try in {}): {error}",
                attempts.failures,
                keel_config::format_duration(delay)
            );
            tracing::warn!("{summary}");
            record(controller, name, summary.clone(), json!({"certificate": name, "step": "failed", "failures": attempts.failures, "error": error.to_string()})).await;
            if alert_due(attempts.failures, validity, unix_now())
                && let Some(watcher) = controller.watcher()
            {
                watcher.raise_external(Alarm {
                    detector: Detector::Certificate,
                    subject: name.to_string(),
                    summary,
                    numbers: json!({
                        "certificate": name,
                        "failures": attempts.failures,
                        "not_after": validity.map(|v| v.not_after),
                    }),
                });
            }
            delay
        }
    }
}

async fn record(controller: &Controller, name: &str, summary: String, details: serde_json::Value) {
    let event = NewEvent::new(ACME_EVENT_KIND, summary).details(details);
    if let Err(error) = controller.with_store(move |s| s.append_event(event)).await {
        tracing::warn!(certificate = %name, %error, "cannot record an ACME event");
    }
}

fn domains(acme: &AcmeCertificate) -> Vec<&str> {
    acme.domains.iter().map(|d| d.value.as_str()).collect()
}

fn validity_of(files: &CertificateFiles) -> Option<Validity> {
    let ready = keel_proxy::tls::servable(files).ok()?;
    Some(Validity {
        not_before: ready.leaf.not_before,
        not_after: ready.leaf.not_after,
    })
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
