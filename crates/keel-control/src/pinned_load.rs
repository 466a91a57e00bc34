//! Rebuilding a stored generation with the certificates it pinned, and listing them.
//!
//! [`load_record`] is how a generation that is not in memory becomes a config again
//! (the active one restored at start, the known-good ones kept for rollback): its
//! config text goes through the one loader (`keel_check::load_pinned`) with each
//! pinned certificate's bytes taken from its copy ([`crate::pins`]), not from the files
//! its `cert`/`key` paths name today. A copy that is missing (or damaged) falls back to
//! the files only if they still hold the pinned bytes, with a warning; otherwise the
//! generation cannot be rebuilt, and the error says which certificate and why.
//!
//! [`certificate_views`] (through `Controller::generation_detail`) lists a generation's
//! certificates for `GET /generations/{id}`, `keel show` and the console: from the
//! compiled generation when it is in memory, else from the pinned copies. Leaf facts and
//! digests only, never key bytes. The pinned copies are also the timeline's and the
//! playbook's [`keel_report::CertificateSource`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use keel_check::{Loaded, Pinned};
use keel_config::{CertificateFiles, Config};
use keel_store::GenerationRecord;

use crate::api::{CertificateView, LeafFacts};
use crate::pins::{CertificatePins, pin_digest};

/// Why a stored generation cannot be rebuilt with the certificates it pinned.
#[derive(Debug)]
pub enum RestoreError {
    /// The copy is gone and the files hold other bytes (or cannot be read).
    Changed {
        /// The generation.
        generation: u64,
        /// The certificate.
        name: String,
        /// The digest it pinned.
        pinned: String,
        /// The digest of what its files hold now, if they can be read.
        found: Option<String>,
        /// Where the copies are kept, if anywhere.
        dir: Option<PathBuf>,
    },
}

impl std::fmt::Display for RestoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let RestoreError::Changed {
            generation,
            name,
            pinned,
            found,
            dir,
        } = self;
        write!(
            f,
            "generation {generation} pinned certificate `{name}` (digest {pinned}), but "
        )?;
        match dir {
            Some(dir) => write!(f, "its copy is not in {}", dir.display())?,
            None => write!(f, "no pinned copies are kept here")?,
        }
        match found {
            Some(found) => write!(f, " and its files now hold other bytes (digest {found})")?,
            None => write!(f, " and its files cannot be read")?,
        }
        write!(
            f,
            "; put the copy back, or apply a config whose certificate files are the ones to serve"
        )
    }
}

impl std::error::Error for RestoreError {}

/// A stored generation loaded with its pinned certificates.
#[derive(Debug)]
pub struct Restored {
    /// The loader's outcome.
    pub loaded: Loaded,
    /// Warnings: certificates served from their files because their copy was missing.
    pub notes: Vec<String>,
}

/// Loads `record`'s config text as it served: pinned certificates from their copies in
/// `pins` (or from their files, relative to `config_dir`, when the copy is missing and
/// the files hold the same bytes), every other certificate from its files.
pub fn load_record(
    record: &GenerationRecord,
    config_dir: &Path,
    pins: Option<&CertificatePins>,
) -> Result<Restored, RestoreError> {
    load_pinned_record(record, config_dir, pins, true)
}

/// [`load_record`] for a generation another fleet node applied (`follow.rs`): this node
/// has no copies of its certificates until it first serves them, so certificates served
/// from files that hold the pinned bytes are the normal case and not warned about. Any
/// other bytes are the same [`RestoreError`]: a node never serves a fleet generation with
/// a certificate other than the one the applying node checked and pinned.
pub fn load_followed(
    record: &GenerationRecord,
    config_dir: &Path,
    pins: Option<&CertificatePins>,
) -> Result<Restored, RestoreError> {
    load_pinned_record(record, config_dir, pins, false)
}

fn load_pinned_record(
    record: &GenerationRecord,
    config_dir: &Path,
    pins: Option<&CertificatePins>,
    warn_from_files: bool,
) -> Result<Restored, RestoreError> {
    let name = format!("generation {}", record.id);
    let mut pinned = Pinned::new();
    let mut missing = Vec::new();
    let mut notes = Vec::new();
    for (certificate, digest) in &record.certificates {
        match pins.map(|p| p.read(digest)) {
            Some(Ok(Some(files))) => {
                pinned.insert(certificate.clone(), Arc::new(files));
            }
            Some(Err(error)) => {
                notes.push(format!("certificate `{certificate}` of {name}: {error}"));
                missing.push((certificate, digest));
            }
            Some(Ok(None)) | None => missing.push((certificate, digest)),
        }
    }
    if !missing.is_empty() {
        let from_files = read_files(&record.config_text, config_dir);
        for (certificate, digest) in missing {
            let found = from_files.get(certificate).map(|f| pin_digest(f));
            match from_files.get(certificate) {
                Some(files) if found.as_deref() == Some(digest.as_str()) => {
                    // Without a state directory no copies are kept: the files are the
                    // only source, and holding the pinned bytes is all that is asked.
                    if let Some(pins) = pins.filter(|_| warn_from_files) {
                        let note = format!(
                            "certificate `{certificate}` of {name}: its pinned copy {digest} is \
                             missing from {}; its files hold the same bytes, so they serve",
                            pins.dir().display()
                        );
                        tracing::warn!("{note}");
                        notes.push(note);
                    }
                    pinned.insert(certificate.clone(), Arc::clone(files));
                }
                _ => {
                    return Err(RestoreError::Changed {
                        generation: record.id,
                        name: certificate.clone(),
                        pinned: digest.clone(),
                        found,
                        dir: pins.map(|p| p.dir().to_path_buf()),
                    });
                }
            }
        }
    }
    let loaded = keel_check::load_pinned(&name, &record.config_text, config_dir, &pinned);
    Ok(Restored { loaded, notes })
}

/// What the certificate files of a config text hold now, by certificate name (those
/// that cannot be read are left out); for an ACME certificate, what the ACME store
/// holds now (when `keel serve` installed it).
fn read_files(
    text: &str,
    config_dir: &Path,
) -> std::collections::BTreeMap<String, Arc<CertificateFiles>> {
    let mut certificates = keel_config::parse(text).config.certificates;
    let _ = keel_config::read_certificate_files(&mut certificates, config_dir);
    certificates
        .into_iter()
        .filter_map(|(name, c)| Some((name, c.files?)))
        .collect()
}

/// The certificates of `record` with their leaf facts: from `compiled` (the generation
/// in memory) when given, else from the pinned copies in `pins`.
pub fn certificate_views(
    record: &GenerationRecord,
    compiled: Option<&Config>,
    pins: Option<&CertificatePins>,
) -> Vec<CertificateView> {
    if let Some(config) = compiled {
        return config
            .certificates
            .iter()
            .map(|(name, certificate)| CertificateView {
                name: name.clone(),
                pinned: record.certificates.get(name).cloned(),
                facts: certificate.facts.as_deref().map(LeafFacts::from),
                unavailable: certificate
                    .facts
                    .is_none()
                    .then(|| "its certificate could not be parsed".to_string()),
            })
            .collect();
    }
    let names: Vec<String> = keel_config::parse(&record.config_text)
        .config
        .certificates
        .into_keys()
        .collect();
    names
        .into_iter()
        .map(|name| {
            let pinned = record.certificates.get(&name).cloned();
            let (facts, unavailable) = match (&pinned, pins) {
                (None, _) if record.state == keel_store::GenerationState::Rejected => {
                    (None, Some("a refused generation pins nothing".to_string()))
                }
                (None, _) => (
                    None,
                    Some("not pinned (recorded before certificates were pinned)".to_string()),
                ),
                (Some(_), None) => (None, Some("no pinned copies are kept here".to_string())),
                (Some(digest), Some(pins)) => match pins.read(digest) {
                    Ok(Some(files)) => match keel_proxy::tls::leaf_summary(&files.chain_pem) {
                        Ok(leaf) => (Some(LeafFacts::from(&leaf.facts())), None),
                        Err(error) => (None, Some(error.to_string())),
                    },
                    Ok(None) => (
                        None,
                        Some(format!(
                            "its pinned copy is missing from {}",
                            pins.dir().display()
                        )),
                    ),
                    Err(error) => (None, Some(error.to_string())),
                },
            };
            CertificateView {
                name,
                pinned,
                facts,
                unavailable,
            }
        })
        .collect()
}

impl crate::Controller {
    /// One generation in full as `GET /generations/{id}` and the console show it, with
    /// its certificates: from the compiled generation when it is in memory, else from
    /// the pinned copies (a read of a few small files, on a blocking thread).
    pub async fn generation_detail(
        &self,
        record: GenerationRecord,
    ) -> Result<crate::api::GenerationDetail, crate::ControlError> {
        let cached = self.cached(record.id);
        let in_memory = cached.is_some();
        let compiled = cached.map(|c| c.generation.config.clone());
        let pins = self.pins();
        let (record, certificates) = tokio::task::spawn_blocking(move || {
            let views = certificate_views(&record, compiled.as_deref(), pins.as_ref());
            (record, views)
        })
        .await?;
        let mut detail = crate::api::GenerationDetail::from_record(record, in_memory);
        detail.certificates = certificates;
        Ok(detail)
    }

    /// Removes the pinned copies no stored generation pins; says what it did, if
    /// anything worth a note.
    pub(crate) async fn sweep_pinned_certificates(&self) -> Option<String> {
        let pins = self.pins()?;
        let swept = match self.with_store(|s| s.pinned_certificates()).await {
            Ok(keep) => tokio::task::spawn_blocking(move || pins.sweep(&keep))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string())),
            Err(error) => Err(error.to_string()),
        };
        match swept {
            Ok(removed) if removed.is_empty() => None,
            Ok(removed) => {
                tracing::info!(
                    removed = removed.len(),
                    "removed pinned certificate copies no generation pins"
                );
                Some(format!(
                    "removed {} pinned certificate {} no generation pins",
                    removed.len(),
                    if removed.len() == 1 { "copy" } else { "copies" }
                ))
            }
            Err(error) => {
                tracing::warn!(%error, "cannot sweep the pinned certificate copies");
                Some(format!(
                    "cannot sweep the pinned certificate copies: {error}"
                ))
            }
        }
    }
}

/// `keel timeline` and `keel playbook` read the leaves of changed certificates from the
/// pinned copies (facts only, never the key).
impl keel_report::CertificateSource for CertificatePins {
    fn leaf(&self, digest: &str) -> Result<keel_report::LeafInfo, String> {
        let files = self
            .read(digest)
            .map_err(|error| error.to_string())?
            .ok_or_else(|| format!("its pinned copy is not in {}", self.dir().display()))?;
        let facts = keel_proxy::tls::leaf_summary(&files.chain_pem)
            .map_err(|error| error.to_string())?
            .facts();
        Ok(keel_report::LeafInfo {
            subject: facts.subject,
            dns_names: facts.dns_names,
            not_after: facts.not_after,
        })
    }
}
