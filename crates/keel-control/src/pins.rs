//! Certificates pinned by the generations that served them: copies of each
//! certificate's chain and key in the state directory, named by the digest of their
//! bytes, so that a generation rebuilt after a restart (the active one restored, a
//! known-good one kept for rollback, `keel show`) serves and shows exactly the
//! certificate it served before, whatever the files at its `cert`/`key` paths hold now.
//! Certificates obtained by ACME are pinned alike: the bytes the loader read from the
//! ACME store (`acme/files.rs`) at apply time, so a rollback brings back the issued
//! certificate that served then, not the newest one the ACME store holds.
//!
//! ```text
//! STATE/certificates/            0700
//!   <digest>.pem                 0600  the chain, leaf first, byte for byte
//!   <digest>.key                 0600  the private key, byte for byte
//! ```
//!
//! The digest ([`pin_digest`]) is the SHA-256 of the chain's length (8 bytes, big
//! endian), the chain and the key: one name for one pair of bytes, so generations that
//! serve the same certificate share one copy. An apply writes the copies (through a
//! temporary file, fsynced, renamed, the directory fsynced) before the store records the
//! generation with its `certificates` map (name → digest), so a recorded pin always has
//! its copy. [`CertificatePins::sweep`] removes the copies no stored generation pins
//! (left by an apply refused after its copies were written); `keel serve` runs it at
//! start. Generations are never pruned today; when they are, the same sweep drops
//! their copies.
//!
//! Keys are never logged: errors name files and digests only.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use keel_config::{CertificateFiles, Config};
use sha2::{Digest, Sha256};

/// The folder of the state directory that holds the pinned copies.
pub const CERTIFICATES_DIR: &str = "certificates";
/// Extension of a pinned chain.
pub const CHAIN_EXTENSION: &str = "pem";
/// Extension of a pinned key.
pub const KEY_EXTENSION: &str = "key";
/// Mode of the folder (owner only).
pub const PINS_DIR_MODE: u32 = 0o700;
/// Mode of every copy (owner read and write only).
pub const PIN_FILE_MODE: u32 = 0o600;

/// Why a pinned copy could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// A copy or the folder could not be written.
    #[error("cannot write the pinned certificate copy {path}: {source}")]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A copy exists but could not be read.
    #[error("cannot read the pinned certificate copy {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A copy's bytes do not have the digest that names them (edited or damaged).
    #[error(
        "the pinned certificate copy {digest} in {dir} does not hold the bytes it is named for"
    )]
    Damaged {
        /// Its digest.
        digest: String,
        /// The folder.
        dir: PathBuf,
    },
    /// A digest from the store is not 64 lower-case hex digits.
    #[error("`{0}` is not a certificate digest (64 lower-case hex digits)")]
    BadDigest(String),
}

/// The digest that names a certificate's pinned copy (see the module doc).
pub fn pin_digest(files: &CertificateFiles) -> String {
    let mut hasher = Sha256::new();
    hasher.update((files.chain_pem.len() as u64).to_be_bytes());
    hasher.update(&files.chain_pem);
    hasher.update(&files.key_pem);
    format!("{:x}", hasher.finalize())
}

/// The digest of every certificate of `config` that has its bytes, by name: file
/// certificates and ACME ones (issued, or the placeholder that serves until then).
pub fn certificate_digests(config: &Config) -> BTreeMap<String, String> {
    config
        .certificates
        .iter()
        .filter_map(|(name, c)| Some((name.clone(), pin_digest(c.files.as_deref()?))))
        .collect()
}

/// True for 64 lower-case hex digits: what [`pin_digest`] makes, and all a file name
/// taken from the store may be.
fn is_digest(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The pinned copies of one state directory.
#[derive(Clone, Debug)]
pub struct CertificatePins {
    dir: PathBuf,
}

impl CertificatePins {
    /// The copies under `state_dir/certificates/`.
    pub fn in_state_dir(state_dir: &Path) -> Self {
        Self {
            dir: state_dir.join(CERTIFICATES_DIR),
        }
    }

    /// The folder of the copies.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, digest: &str, extension: &str) -> PathBuf {
        self.dir.join(format!("{digest}.{extension}"))
    }

    /// Writes the copies of every certificate of `config` that are not there yet,
    /// durably, and returns the digests to record with the generation.
    pub fn pin(&self, config: &Config) -> Result<BTreeMap<String, String>, PinError> {
        let digests = certificate_digests(config);
        if digests.is_empty() {
            return Ok(digests);
        }
        self.create_dir()?;
        let mut wrote = false;
        for (name, digest) in &digests {
            let Some(files) = config.certificates[name].files.as_deref() else {
                continue;
            };
            if matches!(self.read(digest), Ok(Some(_))) {
                continue;
            }
            // The key first: a chain without its key is never mistaken for a whole copy.
            write_private(&self.path(digest, KEY_EXTENSION), &files.key_pem)?;
            write_private(&self.path(digest, CHAIN_EXTENSION), &files.chain_pem)?;
            wrote = true;
        }
        if wrote {
            sync_dir(&self.dir)?;
        }
        Ok(digests)
    }

    /// The copy named `digest`: `None` when either file is missing, an error when it
    /// cannot be read or its bytes do not match the digest.
    pub fn read(&self, digest: &str) -> Result<Option<CertificateFiles>, PinError> {
        if !is_digest(digest) {
            return Err(PinError::BadDigest(digest.to_string()));
        }
        let read = |extension: &str| {
            let path = self.path(digest, extension);
            match std::fs::read(&path) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(source) => Err(PinError::Read { path, source }),
            }
        };
        let (Some(chain_pem), Some(key_pem)) = (read(CHAIN_EXTENSION)?, read(KEY_EXTENSION)?)
        else {
            return Ok(None);
        };
        let files = CertificateFiles { chain_pem, key_pem };
        if pin_digest(&files) != digest {
            return Err(PinError::Damaged {
                digest: digest.to_string(),
                dir: self.dir.clone(),
            });
        }
        Ok(Some(files))
    }

    /// Removes every copy whose digest is not in `keep` (and temporary files left by an
    /// interrupted write); returns the digests removed. Files that are not copies are
    /// left alone.
    pub fn sweep(&self, keep: &BTreeSet<String>) -> Result<Vec<String>, PinError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(PinError::Read {
                    path: self.dir.clone(),
                    source,
                });
            }
        };
        let mut removed = BTreeSet::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some((digest, extension)) = name.split_once('.') else {
                continue;
            };
            let copy = matches!(
                extension,
                CHAIN_EXTENSION | KEY_EXTENSION | "pem.tmp" | "key.tmp"
            );
            if !copy || !is_digest(digest) || keep.contains(digest) {
                continue;
            }
            std::fs::remove_file(&path).map_err(|source| PinError::Write {
                path: path.clone(),
                source,
            })?;
            removed.insert(digest.to_string());
        }
        Ok(removed.into_iter().collect())
    }

    fn create_dir(&self) -> Result<(), PinError> {
        let fail = |source| PinError::Write {
            path: self.dir.clone(),
            source,
        };
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, PINS_DIR_MODE);
        builder.create(&self.dir).map_err(fail)?;
        owner_only(&self.dir).map_err(fail)
    }
}

/// Gives a folder that existed before (with another mode) the mode of the copies' folder.
#[cfg(unix)]
fn owner_only(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if std::fs::metadata(dir)?.permissions().mode() & 0o777 != PINS_DIR_MODE {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(PINS_DIR_MODE))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn owner_only(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file with mode 0600, fsynced, then
/// renamed over `path`.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), PinError> {
    let temporary = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("copy")
    ));
    let fail = |source| PinError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, PIN_FILE_MODE);
    let mut file = options.open(&temporary).map_err(fail)?;
    file.write_all(bytes).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    drop(file);
    std::fs::rename(&temporary, path).map_err(fail)
}

/// Makes the renames in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), PinError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| PinError::Write {
            path: dir.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(chain: &str, key: &str) -> CertificateFiles {
        CertificateFiles {
            chain_pem: chain.as_bytes().to_vec(),
            key_pem: key.as_bytes().to_vec(),
        }
    }

    #[test]
    fn the_digest_frames_the_chain_so_bytes_cannot_move_between_the_files() {
        let a = pin_digest(&files("ab", "c"));
        assert_eq!(a.len(), 64);
        assert!(is_digest(&a));
        assert_ne!(a, pin_digest(&files("a", "bc")));
        assert_eq!(a, pin_digest(&files("ab", "c")));
    }

    #[test]
    fn a_digest_from_the_store_cannot_name_another_file() {
        let pins = CertificatePins::in_state_dir(Path::new("/nonexistent"));
        assert!(matches!(
            pins.read("../keel.db"),
            Err(PinError::BadDigest(_))
        ));
        assert!(!is_digest(&"A".repeat(64)));
    }
}
