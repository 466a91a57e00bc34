//! Where ACME state lives: `<state-dir>/acme/` holds one account file per directory URL
//! (`account-<hash>.json`: the account's id and private key) and one folder per
//! certificate (`<name>/cert.pem`, `<name>/key.pem`). Every file is written mode 0600
//! through a temporary file and a rename, so a crash never leaves half a key.
//!
//! [`AcmeFiles`] is also the loader's [`AcmeMaterial`]: it serves what was issued, and
//! until something was, a self-signed placeholder (written once, marked by a
//! `placeholder` file) so that a TLS listener can start and the plain listeners can
//! answer the HTTP-01 challenge that replaces it.

use std::io::Write;
use std::path::{Path, PathBuf};

use keel_config::{AcmeCertificate, AcmeMaterial, CertificateFiles};
use sha2::{Digest, Sha256};

use super::AcmeError;

/// The folder under the state directory.
pub const ACME_DIR: &str = "acme";
/// Validity of a placeholder certificate (7 days): long enough that an ACME server
/// down for a while does not leave a TLS listener with nothing; replaced as soon as a
/// real certificate is issued.
pub const PLACEHOLDER_VALIDITY: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

const CERT_FILE: &str = "cert.pem";
const KEY_FILE: &str = "key.pem";
const PLACEHOLDER_MARK: &str = "placeholder";

/// The ACME part of a state directory.
#[derive(Clone, Debug)]
pub struct AcmeFiles {
    root: PathBuf,
}

impl AcmeFiles {
    /// `<state_dir>/acme`.
    pub fn new(state_dir: &Path) -> Self {
        Self {
            root: state_dir.join(ACME_DIR),
        }
    }

    fn certificate_dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// The account file for a directory URL.
    pub(crate) fn account_path(&self, directory: &str) -> PathBuf {
        let digest = Sha256::digest(directory.as_bytes());
        let short: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        self.root.join(format!("account-{short}.json"))
    }

    /// The issued chain and key of `name`, if any (a placeholder is not issued).
    pub fn issued(&self, name: &str) -> Option<CertificateFiles> {
        let dir = self.certificate_dir(name);
        if dir.join(PLACEHOLDER_MARK).exists() {
            return None;
        }
        self.read(name)
    }

    fn read(&self, name: &str) -> Option<CertificateFiles> {
        let dir = self.certificate_dir(name);
        let chain_pem = std::fs::read(dir.join(CERT_FILE)).ok()?;
        let key_pem = std::fs::read(dir.join(KEY_FILE)).ok()?;
        Some(CertificateFiles { chain_pem, key_pem })
    }

    /// Keeps a newly issued chain and key (the key first: a chain is useless without it).
    pub fn store_issued(&self, name: &str, files: &CertificateFiles) -> Result<(), AcmeError> {
        let dir = self.certificate_dir(name);
        write_private(&dir.join(KEY_FILE), &files.key_pem)?;
        write_private(&dir.join(CERT_FILE), &files.chain_pem)?;
        match std::fs::remove_file(dir.join(PLACEHOLDER_MARK)) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                Err(AcmeError::Files(dir.join(PLACEHOLDER_MARK), error))
            }
            _ => Ok(()),
        }
    }

    /// Reads a private file of the ACME folder (an account).
    pub(crate) fn read_private(&self, path: &Path) -> Option<Vec<u8>> {
        std::fs::read(path).ok()
    }

    /// Writes a private file of the ACME folder (an account).
    pub(crate) fn write_private(&self, path: &Path, bytes: &[u8]) -> Result<(), AcmeError> {
        write_private(path, bytes)
    }

    /// The placeholder of `name`, made and written on first use.
    fn placeholder(
        &self,
        name: &str,
        acme: &AcmeCertificate,
    ) -> Result<CertificateFiles, AcmeError> {
        let dir = self.certificate_dir(name);
        if dir.join(PLACEHOLDER_MARK).exists()
            && let Some(files) = self.read(name)
        {
            return Ok(files);
        }
        let domains: Vec<String> = acme.domains.iter().map(|d| d.value.clone()).collect();
        let key = rcgen::KeyPair::generate().map_err(AcmeError::Placeholder)?;
        let mut params = rcgen::CertificateParams::new(domains).map_err(AcmeError::Placeholder)?;
        let now = std::time::SystemTime::now();
        params.not_before = now.into();
        params.not_after = (now + PLACEHOLDER_VALIDITY).into();
        let cert = params.self_signed(&key).map_err(AcmeError::Placeholder)?;
        let files = CertificateFiles {
            chain_pem: cert.pem().into_bytes(),
            key_pem: key.serialize_pem().into_bytes(),
        };
        write_private(&dir.join(KEY_FILE), &files.key_pem)?;
        write_private(&dir.join(CERT_FILE), &files.chain_pem)?;
        write_private(
            &dir.join(PLACEHOLDER_MARK),
            b"self-signed until ACME issues\n",
        )?;
        Ok(files)
    }
}

impl AcmeMaterial for AcmeFiles {
    fn files(&self, name: &str, acme: &AcmeCertificate) -> Result<CertificateFiles, String> {
        match self.issued(name) {
            Some(files) => Ok(files),
            None => self.placeholder(name, acme).map_err(|e| e.to_string()),
        }
    }
}

/// Writes `bytes` to `path` with mode 0600 (directories 0700), atomically.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), AcmeError> {
    let fail = |error| AcmeError::Files(path.to_path_buf(), error);
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(fail)?;
    let temporary = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&temporary).map_err(fail)?;
    file.write_all(bytes).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    std::fs::rename(&temporary, path).map_err(fail)
}
