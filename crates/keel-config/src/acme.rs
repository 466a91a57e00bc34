//! `[certificates.NAME] acme = { directory, contact, domains, challenge }`: a certificate
//! Keel obtains and renews itself from an ACME (RFC 8555) server, instead of reading files,
//! proving its domains by HTTP-01 (the default) or TLS-ALPN-01 (RFC 8737).
//!
//! This module owns the model, its parse, and the hook through which the loader gets
//! an ACME certificate's bytes: the control plane keeps issued certificates in its
//! state directory and installs an [`AcmeMaterial`] that reads them (or makes a
//! placeholder while none is issued yet). Without a hook (`keel check` on its own),
//! an ACME certificate has no bytes and its file lints are skipped.

use std::sync::{Arc, RwLock};

use crate::reader::{Sink, Table, span_of};
use crate::span::{Located, Span};
use crate::tls::CertificateFiles;

/// What `acme = { ... }` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcmeCertificate {
    /// The span of the `acme` table.
    pub span: Span,
    /// The ACME server's directory URL (`https://…/directory`).
    pub directory: Located<String>,
    /// Account contacts (`mailto:` URLs); may be empty.
    pub contact: Vec<Located<String>>,
    /// The names the certificate covers, first one its subject.
    pub domains: Vec<Located<String>>,
    /// A PEM file of extra roots trusted for the directory's HTTPS (a test or private
    /// ACME server); relative to the config file. Public servers need none.
    pub directory_ca: Option<Located<String>>,
    /// How the ACME server is shown that Keel holds the domains.
    pub challenge: Located<AcmeChallenge>,
}

/// The ACME challenge type Keel answers for a certificate (`challenge = "..."`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AcmeChallenge {
    /// `http-01` (the default): a plain listener on port 80 answers
    /// `/.well-known/acme-challenge/TOKEN`.
    #[default]
    Http01,
    /// `tls-alpn-01` (RFC 8737): a TLS listener presenting this certificate answers a
    /// ClientHello offering ALPN `acme-tls/1`, for shops whose port 80 is closed.
    TlsAlpn01,
}

impl AcmeChallenge {
    /// The config spelling (also the ACME protocol's name of the type).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http01 => "http-01",
            Self::TlsAlpn01 => "tls-alpn-01",
        }
    }
}

/// Where the loader gets the bytes of an ACME certificate (see the module doc).
pub trait AcmeMaterial: Send + Sync {
    /// The chain and key to serve for certificate `name`, or why there are none.
    fn files(&self, name: &str, acme: &AcmeCertificate) -> Result<CertificateFiles, String>;
}

static MATERIAL: RwLock<Option<Arc<dyn AcmeMaterial>>> = RwLock::new(None);

/// Installs the process's source of ACME certificates (`keel serve` does, with its
/// state directory). A second call replaces the first.
pub fn install_acme_material(material: Arc<dyn AcmeMaterial>) {
    *MATERIAL.write().unwrap_or_else(|p| p.into_inner()) = Some(material);
}

/// The installed source, if any.
pub(crate) fn acme_material() -> Option<Arc<dyn AcmeMaterial>> {
    MATERIAL.read().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Reads `acme = { directory, contact, domains, directory_ca, challenge }`.
pub(crate) fn parse_acme(sink: &mut Sink, certificate: &Table<'_, '_>) -> Option<AcmeCertificate> {
    let table = certificate.table(sink, "acme", "the certificate's `acme` table")?;
    table.deny_unknown(
        sink,
        &[
            "directory",
            "contact",
            "domains",
            "directory_ca",
            "challenge",
        ],
    );
    let directory = table.required_string(
        sink,
        "directory",
        "add directory = \"https://acme-v02.api.letsencrypt.org/directory\"",
    );
    if let Some(url) = &directory
        && !url.value.starts_with("https://")
    {
        sink.invalid(
            url.span,
            "an ACME directory is an https:// URL",
            "write directory = \"https://acme-v02.api.letsencrypt.org/directory\"",
        );
    }
    let contact = strings(sink, &table, "contact", |value| {
        value
            .starts_with("mailto:")
            .then_some(())
            .ok_or("a contact is a mailto: URL, such as \"mailto:ops@example.com\"")
    });
    let domains = strings(sink, &table, "domains", |value| {
        let valid = !value.is_empty()
            && value.len() <= 253
            && value.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '*')
            });
        valid
            .then_some(())
            .ok_or("a domain is a DNS name, such as \"shop.example.com\"")
    });
    let written = table
        .get("domains")
        .and_then(|v| v.get_ref().as_array().map(|a| a.len()));
    if domains.is_empty() {
        // An invalid domain was reported where it is written; an empty list here.
        if written == Some(0) {
            sink.invalid(
                table.span,
                "an ACME certificate needs at least one domain",
                "write domains = [\"shop.example.com\"]",
            );
        }
        if table.get("domains").is_some() {
            return None;
        }
    }
    if table.get("domains").is_none() {
        sink.invalid(
            table.span,
            "the `acme` table is missing `domains`",
            "add domains = [\"shop.example.com\"]",
        );
        return None;
    }
    let directory_ca = table.string(sink, "directory_ca");
    let challenge = match table.string(sink, "challenge") {
        None => Located::new(AcmeChallenge::Http01, table.span),
        Some(written) => match written.value.as_str() {
            "http-01" => Located::new(AcmeChallenge::Http01, written.span),
            "tls-alpn-01" => Located::new(AcmeChallenge::TlsAlpn01, written.span),
            other => {
                sink.invalid(
                    written.span,
                    format!("unknown ACME challenge `{other}`"),
                    "write challenge = \"http-01\" (port 80) or challenge = \"tls-alpn-01\" (port 443)",
                );
                return None;
            }
        },
    };
    Some(AcmeCertificate {
        span: table.span,
        directory: directory?,
        contact,
        domains,
        directory_ca,
        challenge,
    })
}

/// An optional array of strings, each checked by `valid`.
fn strings(
    sink: &mut Sink,
    table: &Table<'_, '_>,
    key: &str,
    valid: impl Fn(&str) -> Result<(), &'static str>,
) -> Vec<Located<String>> {
    let Some((items, _)) = table.array(sink, key) else {
        return Vec::new();
    };
    let mut values: Vec<Located<String>> = Vec::new();
    for item in items {
        match item.get_ref().as_str() {
            Some(value) => match valid(value) {
                Ok(()) if values.iter().any(|v| v.value == value) => sink.invalid(
                    span_of(item),
                    format!("`{value}` is listed twice"),
                    "list each once",
                ),
                Ok(()) => values.push(Located::new(value.to_string(), span_of(item))),
                Err(help) => sink.invalid(span_of(item), format!("invalid {key} `{value}`"), help),
            },
            None => sink.invalid(
                span_of(item),
                format!("each of `{key}` is a string"),
                format!("write {key} = [\"...\"]"),
            ),
        }
    }
    values
}
