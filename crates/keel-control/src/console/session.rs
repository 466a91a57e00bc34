//! Console sessions: the random id a signed-in browser holds in its cookie, the role the
//! token it signed in with grants, and the CSRF token every POST of that session must
//! carry. Bounded in number ([`MAX_CONSOLE_SESSIONS`]) and lifetime
//! ([`CONSOLE_SESSION_LIFETIME`]); kept in memory only, so a restart signs everyone out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;

/// Most console sessions alive at once (64); signing in past it ends the session that
/// would expire first.
pub const MAX_CONSOLE_SESSIONS: usize = 64;
/// How long a console session lasts after sign-in (8 hours: one on-call shift).
pub const CONSOLE_SESSION_LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// Random bytes in a session id and in a CSRF token (32 bytes, 64 hex characters).
const SECRET_BYTES: usize = 32;

/// What a session may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Signed in with the admin token: may roll back and apply.
    Operator,
    /// Signed in with `[admin] read_token`: sees every page, acts on nothing.
    Viewer,
}

impl Role {
    /// The word the page shows.
    pub fn label(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Viewer => "read-only",
        }
    }
}

/// One signed-in browser.
#[derive(Clone, Debug)]
pub struct Session {
    /// What it may do.
    pub role: Role,
    /// The token its POSTs must carry (form field `csrf` or header `x-csrf-token`).
    pub csrf: String,
    expires: Instant,
}

impl Session {
    /// Whether `presented` is this session's CSRF token (constant time).
    pub fn csrf_matches(&self, presented: &str) -> bool {
        self.csrf.as_bytes().ct_eq(presented.as_bytes()).into()
    }
}

/// Why no session could be made.
#[derive(Debug, thiserror::Error)]
#[error("cannot generate a console session id: {0}")]
pub struct SessionError(String);

/// The live sessions, by id.
#[derive(Debug, Default)]
pub struct Sessions {
    live: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Starts a session for `role`; returns its id (the cookie value).
    pub fn start(&self, role: Role) -> Result<String, SessionError> {
        let id = random_hex()?;
        let session = Session {
            role,
            csrf: random_hex()?,
            expires: Instant::now() + CONSOLE_SESSION_LIFETIME,
        };
        let mut live = self.lock();
        let now = Instant::now();
        live.retain(|_, s| s.expires > now);
        while live.len() >= MAX_CONSOLE_SESSIONS {
            let first_to_expire = live
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(id, _)| id.clone());
            match first_to_expire {
                Some(old) => live.remove(&old),
                None => break,
            };
        }
        live.insert(id.clone(), session);
        Ok(id)
    }

    /// The live session with this id.
    pub fn get(&self, id: &str) -> Option<Session> {
        let mut live = self.lock();
        let session = live.get(id)?.clone();
        if session.expires <= Instant::now() {
            live.remove(id);
            return None;
        }
        Some(session)
    }

    /// Ends a session (sign-out).
    pub fn end(&self, id: &str) {
        self.lock().remove(id);
    }

    /// How many sessions are alive (expired ones may still be counted until the next
    /// sign-in sweeps them).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no session is alive.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // A panic while holding the lock leaves a map that is still consistent.
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn random_hex() -> Result<String, SessionError> {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| SessionError(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_bounded_and_ended() {
        let sessions = Sessions::default();
        let mut ids = Vec::new();
        for _ in 0..MAX_CONSOLE_SESSIONS + 3 {
            match sessions.start(Role::Viewer) {
                Ok(id) => ids.push(id),
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(sessions.len(), MAX_CONSOLE_SESSIONS);
        // Eviction happens before the insert: the newest always lives.
        let newest = &ids[ids.len() - 1];
        assert!(sessions.get(newest).is_some());
        sessions.end(newest);
        assert!(sessions.get(newest).is_none());
    }

    #[test]
    fn csrf_tokens_compare_exactly() {
        let sessions = Sessions::default();
        let Ok(id) = sessions.start(Role::Operator) else {
            panic!("no session");
        };
        let Some(session) = sessions.get(&id) else {
            panic!("session lost");
        };
        assert!(session.csrf_matches(&session.csrf.clone()));
        assert!(!session.csrf_matches(""));
        assert!(!session.csrf_matches(&id));
    }
}
