//! One ACME order, end to end, with instant-acme: load or create the account (kept in
//! the state directory), order the certificate's domains, answer each challenge through
//! the data plane's [`AcmeChallenges`] (HTTP-01: the token's key authorization on every
//! listener; TLS-ALPN-01: a self-signed validation certificate made here with rcgen,
//! carrying the critical `id-pe-acmeIdentifier` extension, presented by the TLS
//! listeners to handshakes offering `acme-tls/1`), finalize with a fresh key and fetch
//! the chain.
//!
//! instant-acme is small, maintained (used in production by its author's company and
//! by rustls-acme-style projects), async on tokio and rustls like Keel, and leaves the
//! challenge answering to the caller, which is what Keel needs: its own listeners
//! answer, not a side server.

use std::time::Duration;

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use keel_config::{AcmeCertificate, AcmeChallenge, CertificateFiles};
use keel_proxy::AcmeChallenges;

use super::AcmeError;
use super::files::AcmeFiles;

/// Longest an order may take from creation to certificate (5 minutes).
pub const ORDER_TIMEOUT: Duration = Duration::from_secs(300);
/// First wait between polls of an order (250 ms), doubling.
const POLL_DELAY: Duration = Duration::from_millis(250);

/// Everything one order needs.
pub(crate) struct OrderContext<'a> {
    pub(crate) files: &'a AcmeFiles,
    pub(crate) challenges: &'a AcmeChallenges,
    /// The PEM roots trusted for the directory, if not the system's.
    pub(crate) directory_roots: Option<&'a std::path::Path>,
}

/// Obtains a certificate for `acme`'s domains.
pub(crate) async fn obtain(
    context: &OrderContext<'_>,
    acme: &AcmeCertificate,
) -> Result<CertificateFiles, AcmeError> {
    tokio::time::timeout(ORDER_TIMEOUT, obtain_unbounded(context, acme))
        .await
        .map_err(|_| AcmeError::Order(format!("no certificate within {ORDER_TIMEOUT:?}")))?
}

async fn obtain_unbounded(
    context: &OrderContext<'_>,
    acme: &AcmeCertificate,
) -> Result<CertificateFiles, AcmeError> {
    let account = account(context, acme).await?;
    let identifiers: Vec<Identifier> = acme
        .domains
        .iter()
        .map(|d| Identifier::Dns(d.value.clone()))
        .collect();
    let mut order = account
        .new_order(&NewOrder::new(&identifiers))
        .await
        .map_err(protocol)?;
    let mut tokens = Tokens {
        challenges: context.challenges,
        held: Vec::new(),
        domains: Vec::new(),
    };
    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let mut authorization = authorization.map_err(protocol)?;
        match authorization.status {
            AuthorizationStatus::Valid => continue,
            AuthorizationStatus::Pending => {}
            other => {
                return Err(AcmeError::Order(format!(
                    "authorization for {} is {other:?}",
                    authorization.identifier()
                )));
            }
        }
        let identifier = authorization.identifier().to_string();
        let kind = match acme.challenge.value {
            AcmeChallenge::Http01 => ChallengeType::Http01,
            AcmeChallenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
        };
        let mut challenge = authorization.challenge(kind).ok_or_else(|| {
            AcmeError::Order(format!(
                "no {} challenge for {identifier}",
                acme.challenge.value.as_str()
            ))
        })?;
        let key_authorization = challenge.key_authorization();
        let held = match acme.challenge.value {
            AcmeChallenge::Http01 => tokens.hold(&challenge.token, key_authorization.as_str()),
            AcmeChallenge::TlsAlpn01 => {
                let certificate = validation_certificate(&identifier, key_authorization.digest())?;
                tokens.hold_tls_alpn(&identifier, &certificate)?
            }
        };
        if !held {
            return Err(AcmeError::Order("too many challenges held at once".into()));
        }
        challenge.set_ready().await.map_err(protocol)?;
    }
    let retries = RetryPolicy::new()
        .initial_delay(POLL_DELAY)
        .timeout(ORDER_TIMEOUT);
    let status = order.poll_ready(&retries).await.map_err(protocol)?;
    if status != OrderStatus::Ready {
        return Err(AcmeError::Order(format!(
            "the order ended {status:?}, not ready (a {} challenge failed: can the ACME server reach {} of Keel for every domain?)",
            acme.challenge.value.as_str(),
            match acme.challenge.value {
                AcmeChallenge::Http01 => "a plain listener on port 80",
                AcmeChallenge::TlsAlpn01 =>
                    "a TLS listener presenting this certificate on port 443",
            }
        )));
    }
    let key_pem = order.finalize().await.map_err(protocol)?;
    let chain_pem = order.poll_certificate(&retries).await.map_err(protocol)?;
    drop(tokens);
    Ok(CertificateFiles {
        chain_pem: chain_pem.into_bytes(),
        key_pem: key_pem.into_bytes(),
    })
}

/// The account for `acme.directory`: restored from the state directory, else created
/// (agreeing to the server's terms, as every ACME client run unattended must) and kept.
async fn account(context: &OrderContext<'_>, acme: &AcmeCertificate) -> Result<Account, AcmeError> {
    let builder = || match context.directory_roots {
        Some(roots) => Account::builder_with_root(roots).map_err(protocol),
        None => Account::builder().map_err(protocol),
    };
    let path = context.files.account_path(&acme.directory.value);
    if let Some(bytes) = context.files.read_private(&path) {
        let credentials: AccountCredentials = serde_json::from_slice(&bytes).map_err(|e| {
            AcmeError::Order(format!("{} is not an ACME account: {e}", path.display()))
        })?;
        return builder()?
            .from_credentials(credentials)
            .await
            .map_err(protocol);
    }
    let contact: Vec<&str> = acme.contact.iter().map(|c| c.value.as_str()).collect();
    let (account, credentials) = builder()?
        .create(
            &NewAccount {
                contact: &contact,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            acme.directory.value.clone(),
            None,
        )
        .await
        .map_err(protocol)?;
    let bytes = serde_json::to_vec(&credentials)
        .map_err(|e| AcmeError::Order(format!("cannot serialize the account: {e}")))?;
    context.files.write_private(&path, &bytes)?;
    Ok(account)
}

fn protocol(error: instant_acme::Error) -> AcmeError {
    AcmeError::Order(error.to_string())
}

/// The TLS-ALPN-01 validation certificate for `domain` (RFC 8737 §3): self-signed, the
/// domain its only name, and the critical `id-pe-acmeIdentifier` extension holding the
/// SHA-256 `digest` of the key authorization.
fn validation_certificate(
    domain: &str,
    digest: impl AsRef<[u8]>,
) -> Result<CertificateFiles, AcmeError> {
    let failed = |e: rcgen::Error| {
        AcmeError::Order(format!(
            "cannot make the tls-alpn-01 certificate for {domain}: {e}"
        ))
    };
    let mut params = rcgen::CertificateParams::new(vec![domain.to_string()]).map_err(failed)?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest.as_ref())];
    let key = rcgen::KeyPair::generate().map_err(failed)?;
    let certificate = params.self_signed(&key).map_err(failed)?;
    Ok(CertificateFiles {
        chain_pem: certificate.pem().into_bytes(),
        key_pem: key.serialize_pem().into_bytes(),
    })
}

/// Challenges answered for one order (HTTP-01 tokens, TLS-ALPN-01 domains), withdrawn
/// when it ends however it ends.
struct Tokens<'a> {
    challenges: &'a AcmeChallenges,
    held: Vec<String>,
    domains: Vec<String>,
}

impl Tokens<'_> {
    fn hold(&mut self, token: &str, key_authorization: &str) -> bool {
        let held = self.challenges.insert(token, key_authorization);
        if held {
            self.held.push(token.to_string());
        }
        held
    }

    fn hold_tls_alpn(
        &mut self,
        domain: &str,
        certificate: &CertificateFiles,
    ) -> Result<bool, AcmeError> {
        let held = self
            .challenges
            .insert_tls_alpn(domain, certificate)
            .map_err(|e| AcmeError::Order(e.to_string()))?;
        if held {
            self.domains.push(domain.to_string());
        }
        Ok(held)
    }
}

impl Drop for Tokens<'_> {
    fn drop(&mut self) {
        for token in &self.held {
            self.challenges.remove(token);
        }
        for domain in &self.domains {
            self.challenges.remove_tls_alpn(domain);
        }
    }
}
