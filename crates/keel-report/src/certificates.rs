//! Certificate changes of a recorded change, for the timeline (and `keel playbook`'s
//! recent changes): which `[certificates.NAME]` a generation added, replaced or dropped
//! compared with the generation serving before it, by the digests the generations pinned
//! (`GenerationRecord::certificates`: SHA-256 of chain and key, `docs/store.md`), with
//! the leaf's subject, names and expiry when a [`CertificateSource`] (the state
//! directory's pinned copies, read by the `keel` binary) can show them. Never key bytes.

use std::collections::BTreeMap;

use serde::Serialize;

/// What a leaf certificate says, as the timeline shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeafInfo {
    /// The subject (distinguished name).
    pub subject: String,
    /// Its DNS names (SANs).
    pub dns_names: Vec<String>,
    /// Not after (RFC 3339).
    pub not_after: String,
}

/// Where the leaf of a pinned certificate is read from, by digest.
pub trait CertificateSource {
    /// The leaf of the certificate pinned as `digest`, or why it cannot be shown.
    fn leaf(&self, digest: &str) -> Result<LeafInfo, String>;
}

/// How a certificate changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CertificateChangeKind {
    /// Not pinned by the generation before.
    Added,
    /// Pinned by both, with other bytes (a renewal, an edited file, an ACME installation).
    Replaced,
    /// Pinned by the generation before, not by this one.
    Removed,
}

/// One certificate's change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateChange {
    /// `[certificates.NAME]`.
    pub name: String,
    /// How it changed.
    pub change: CertificateChangeKind,
    /// The digest this generation pinned (none when removed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The digest the generation before pinned (none when added).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_digest: Option<String>,
    /// The leaf of the certificate now (of the one removed, for a removal).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leaf: Option<LeafInfo>,
    /// Why the leaf is not shown, when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
}

impl CertificateChange {
    /// One line: ``certificate `shop` replaced: CN=shop, DNS shop.example.com, not after
    /// 2027-03-01T00:00:00Z, digest 3f2a…``.
    pub fn line(&self) -> String {
        let kind = match self.change {
            CertificateChangeKind::Added => "added",
            CertificateChangeKind::Replaced => "replaced",
            CertificateChangeKind::Removed => "removed",
        };
        let mut line = format!("certificate `{}` {kind}", self.name);
        match (&self.leaf, &self.unavailable) {
            (Some(leaf), _) => line.push_str(&format!(
                ": {}, DNS {}, not after {}",
                leaf.subject,
                leaf.dns_names.join(" "),
                leaf.not_after
            )),
            (None, Some(why)) => line.push_str(&format!(" ({why})")),
            (None, None) => {}
        }
        if let Some(digest) = self.digest.as_ref().or(self.previous_digest.as_ref()) {
            line.push_str(&format!(", digest {}", short(digest)));
        }
        line
    }
}

/// The first 16 hex digits of a digest, enough to tell copies apart in prose.
fn short(digest: &str) -> &str {
    digest.get(..16).unwrap_or(digest)
}

/// The certificate changes from `before` (the generation serving before; `None`: nothing
/// served, so every certificate is added) to `after`, by name.
pub fn certificate_changes(
    before: Option<&BTreeMap<String, String>>,
    after: &BTreeMap<String, String>,
    source: Option<&dyn CertificateSource>,
) -> Vec<CertificateChange> {
    let empty = BTreeMap::new();
    let before = before.unwrap_or(&empty);
    let mut changes = Vec::new();
    for (name, digest) in after {
        let change = match before.get(name) {
            None => CertificateChangeKind::Added,
            Some(old) if old != digest => CertificateChangeKind::Replaced,
            Some(_) => continue,
        };
        changes.push(described(
            name,
            change,
            Some(digest),
            before.get(name),
            source,
        ));
    }
    for (name, digest) in before {
        if !after.contains_key(name) {
            changes.push(described(
                name,
                CertificateChangeKind::Removed,
                None,
                Some(digest),
                source,
            ));
        }
    }
    changes
}

fn described(
    name: &str,
    change: CertificateChangeKind,
    digest: Option<&String>,
    previous_digest: Option<&String>,
    source: Option<&dyn CertificateSource>,
) -> CertificateChange {
    let shown = digest.or(previous_digest);
    let (leaf, unavailable) = match (source, shown) {
        (Some(source), Some(digest)) => match source.leaf(digest) {
            Ok(leaf) => (Some(leaf), None),
            Err(why) => (None, Some(why)),
        },
        _ => (None, None),
    };
    CertificateChange {
        name: name.to_string(),
        change,
        digest: digest.cloned(),
        previous_digest: previous_digest.cloned(),
        leaf,
        unavailable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Known;

    impl CertificateSource for Known {
        fn leaf(&self, digest: &str) -> Result<LeafInfo, String> {
            match digest {
                "b" => Ok(LeafInfo {
                    subject: "CN=shop".into(),
                    dns_names: vec!["shop.example.com".into()],
                    not_after: "2027-03-01T00:00:00Z".into(),
                }),
                _ => Err("its pinned copy is missing".into()),
            }
        }
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn replaced_added_and_removed_certificates_are_listed_and_unchanged_ones_are_not() {
        let before = map(&[("shop", "a"), ("old", "o"), ("same", "s")]);
        let after = map(&[("shop", "b"), ("api", "c"), ("same", "s")]);
        let changes = certificate_changes(Some(&before), &after, Some(&Known));
        let lines: Vec<String> = changes.iter().map(CertificateChange::line).collect();
        assert_eq!(
            lines,
            [
                "certificate `api` added (its pinned copy is missing), digest c",
                "certificate `shop` replaced: CN=shop, DNS shop.example.com, not after 2027-03-01T00:00:00Z, digest b",
                "certificate `old` removed (its pinned copy is missing), digest o",
            ]
        );
        assert_eq!(changes[1].previous_digest.as_deref(), Some("a"));
        assert_eq!(certificate_changes(None, &after, None).len(), 3);
    }
}
