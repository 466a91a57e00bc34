//! The admin token: a random bearer token created on first start in the state directory
//! (mode 0600), or given by `KEEL_ADMIN_TOKEN`. It is never logged: `Debug` redacts it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use subtle::ConstantTimeEq;

/// The token file's name in the state directory.
pub const TOKEN_FILE_NAME: &str = "admin.token";
/// Environment variable that gives the token instead of the file.
pub const TOKEN_ENV: &str = "KEEL_ADMIN_TOKEN";
/// Random bytes in a generated token (32 bytes, 64 hex characters).
const TOKEN_BYTES: usize = 32;
/// Longest token accepted (512 bytes).
const MAX_TOKEN_LEN: usize = 512;
/// Mode of a token file Keel creates: readable by its owner only.
#[cfg(unix)]
const TOKEN_FILE_MODE: u32 = 0o600;
/// Mode of a state directory Keel creates (the store creates it the same way).
#[cfg(unix)]
const STATE_DIR_MODE: u32 = 0o700;

/// Why no token could be had.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The token file could not be read or created.
    #[error("admin token file {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The token is empty, too long, or has characters a header cannot carry.
    #[error(
        "the admin token from {origin} is unusable: it must be 1 to {MAX_TOKEN_LEN} visible ASCII characters"
    )]
    Malformed {
        /// Where it came from.
        origin: String,
    },
    /// The system random source failed.
    #[error("cannot generate an admin token: {0}")]
    Random(String),
}

/// A bearer token for the admin API.
#[derive(Clone)]
pub struct AdminToken(Arc<str>);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

impl AdminToken {
    /// A token from text; refused if it could not travel in a header.
    pub fn new(text: &str, origin: &str) -> Result<Self, TokenError> {
        let text = text.trim();
        let usable = !text.is_empty()
            && text.len() <= MAX_TOKEN_LEN
            && text.bytes().all(|b| b.is_ascii_graphic());
        if !usable {
            return Err(TokenError::Malformed {
                origin: origin.to_string(),
            });
        }
        Ok(Self(Arc::from(text)))
    }

    /// The token from `KEEL_ADMIN_TOKEN`, if set and not empty.
    pub fn from_env() -> Option<Result<Self, TokenError>> {
        let value = std::env::var(TOKEN_ENV).ok()?;
        (!value.trim().is_empty()).then(|| Self::new(&value, TOKEN_ENV))
    }

    /// The token file's path in `state_dir`.
    pub fn file(state_dir: &Path) -> PathBuf {
        state_dir.join(TOKEN_FILE_NAME)
    }

    /// For the server: `KEEL_ADMIN_TOKEN`, else the state directory's token file,
    /// created with a fresh random token (mode 0600) if it does not exist.
    pub fn load_or_create(state_dir: &Path) -> Result<Self, TokenError> {
        if let Some(token) = Self::from_env() {
            return token;
        }
        let path = Self::file(state_dir);
        match Self::read_file(&path) {
            Err(TokenError::File { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound => {}
            other => return other,
        }
        let mut bytes = [0u8; TOKEN_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| TokenError::Random(e.to_string()))?;
        let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        match create_private(state_dir, &path, &text) {
            Ok(()) => Self::new(&text, &path.display().to_string()),
            // Another process created it first: use theirs.
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                Self::read_file(&path)
            }
            Err(source) => Err(TokenError::File { path, source }),
        }
    }

    /// For clients: `KEEL_ADMIN_TOKEN`, else the state directory's token file.
    pub fn read(state_dir: &Path) -> Result<Self, TokenError> {
        if let Some(token) = Self::from_env() {
            return token;
        }
        Self::read_file(&Self::file(state_dir))
    }

    fn read_file(path: &Path) -> Result<Self, TokenError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenError::File {
            path: path.to_owned(),
            source,
        })?;
        Self::new(&text, &path.display().to_string())
    }

    /// Whether `presented` is this token, compared in constant time.
    pub fn matches(&self, presented: &[u8]) -> bool {
        self.0.as_bytes().ct_eq(presented).into()
    }

    /// The token text, to put in an `Authorization` header. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

fn create_private(state_dir: &Path, path: &Path, text: &str) -> std::io::Result<()> {
    let mut dir = std::fs::DirBuilder::new();
    dir.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut dir, STATE_DIR_MODE);
    dir.create(state_dir)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, TOKEN_FILE_MODE);
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_private_and_reused() {
        let dir = tempfile::tempdir().map_err(|e| e.to_string());
        let Ok(dir) = dir else {
            panic!("tempdir: {dir:?}");
        };
        let state = dir.path().join("state");
        let first = AdminToken::load_or_create(&state).map_err(|e| e.to_string());
        let second = AdminToken::load_or_create(&state).map_err(|e| e.to_string());
        let (Ok(first), Ok(second)) = (first, second) else {
            panic!("token creation failed");
        };
        assert_eq!(first.expose().len(), 2 * TOKEN_BYTES);
        assert_eq!(first.expose(), second.expose());
        assert!(first.matches(second.expose().as_bytes()));
        assert!(!first.matches(b"nope"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(AdminToken::file(&state))
                .map(|m| m.permissions().mode() & 0o777)
                .ok();
            assert_eq!(mode, Some(0o600));
        }
        assert!(!format!("{first:?}").contains(first.expose()));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        assert!(AdminToken::new("", "test").is_err());
        assert!(AdminToken::new("has space", "test").is_err());
        assert!(AdminToken::new(&"x".repeat(MAX_TOKEN_LEN + 1), "test").is_err());
        assert!(AdminToken::new("  ok-token\n", "test").is_ok());
    }
}
