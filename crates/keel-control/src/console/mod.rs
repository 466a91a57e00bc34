//! The console: the web page an on-call engineer opens first, served by the admin
//! listener at `/ui` (user guide: `docs/console.md`).
//!
//! Server-rendered HTML with one small script and one stylesheet, both compiled into the
//! binary (`assets/console/`): nothing to build, nothing fetched from elsewhere. Live
//! data comes through one server-sent event stream per open page (`GET /ui/events`),
//! built from the same counters and status as `GET /status`.
//!
//! | route | session | does |
//! |---|---|---|
//! | `GET /ui/login` | no | the sign-in form (every page shows it without a session) |
//! | `POST /ui/login` | no | `token=..`: the admin token (operator) or `[admin] read_token` (read-only) → session cookie |
//! | `POST /ui/logout` | yes + CSRF | ends the session |
//! | `GET /ui`, `GET /ui/now` | yes | the Now page |
//! | `GET /ui/events` | yes | the Now page's event stream (one `now` event per [`LIVE_INTERVAL`]) |
//! | `GET /ui/changes` | yes | generation history |
//! | `GET /ui/changes/{id}` | yes | one generation: trust, refusals, blast radius, diff from the one before, config |
//! | `GET /ui/changes/{id}/rollback` | yes | the rollback's dry run: blast radius, distrust, confirm form |
//! | `POST /ui/changes/{id}/rollback` | operator + CSRF | the guarded rollback, as `keel rollback --to id` |
//! | `GET /ui/apply` | yes | the apply form, holding the active config |
//! | `POST /ui/apply` | operator + CSRF | `config`, `message`, `author`, `dry_run`: check, gate, apply and guard, as `keel apply` (no force) |
//! | `GET /ui/routes?page=..&q=..&order=busy\|file` | yes | every route, a page at a time, filtered, with figures since the generation serves, and per service |
//! | `GET /ui/topology` | yes | services → pools → backends with their states (live) |
//! | `GET /ui/timeline?since=..` | yes | the store's events since then (`keel timeline`) |
//! | `GET /ui/timeline.md?since=..` | yes | the same post-mortem draft as a Markdown download |
//! | `GET /ui/assets/*` | no | the script and stylesheet |
//!
//! Sessions: see [`session`]. The cookie is `HttpOnly`, `SameSite=Strict`, `Path=/ui`,
//! and `Secure` when the admin listener is not on loopback or a proxy says HTTPS;
//! every POST but sign-in needs the session's CSRF token (form field `csrf` or header
//! `x-csrf-token`), else 403.

mod apply;
mod changes;
mod generation;
mod html;
mod live;
mod now;
mod routes;
pub mod session;
mod snapshot;
mod timeline;
mod topology;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, StatusCode, header};
use tokio::sync::Semaphore;

use crate::admin::{AdminState, AdminToken};
use crate::api::{MAX_APPLY_BODY_BYTES, MAX_SMALL_BODY_BYTES};
use session::{Role, Session, Sessions};

pub use changes::CONSOLE_ORIGIN;
pub use live::{LIVE_INTERVAL, MAX_LIVE_STREAMS};
pub use routes::ROUTES_PER_PAGE;
pub use session::{CONSOLE_SESSION_LIFETIME, MAX_CONSOLE_SESSIONS};
pub use snapshot::{MAX_LIVE_HOSTS, MAX_LIVE_ROUTES, Tracker as LiveTracker};
pub use timeline::DEFAULT_TIMELINE_SINCE;
pub use topology::MAX_LISTED_BACKENDS;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "keel_console";
/// The header that may carry the CSRF token instead of the `csrf` form field.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// What every console handler shares.
#[derive(Clone, Debug)]
struct ConsoleState {
    admin: AdminState,
    /// `[admin] read_token` of the generation serving at startup.
    read_token: Option<AdminToken>,
    /// The admin listener (`[admin] addr` at startup) is not on loopback: session
    /// cookies are `Secure` (see [`secure_cookie`]).
    exposed: bool,
    sessions: Arc<Sessions>,
    /// The event every stream sends (built once per interval for all of them).
    live: Arc<live::SharedLive>,
    /// Open event streams, at most [`MAX_LIVE_STREAMS`].
    streams: Arc<Semaphore>,
    /// Set when the admin listener shuts down: event streams end at their next tick so
    /// the graceful shutdown does not wait on them.
    stopping: Arc<AtomicBool>,
}

/// The console's routes, to merge into the admin router. `stopping` ends the event
/// streams (see [`ConsoleState`]).
pub(crate) fn router(admin: &AdminState, stopping: Arc<AtomicBool>) -> Router {
    let read_token = admin.controller.active().and_then(|active| {
        let text = active.generation.config.admin.read_token.clone()?;
        match AdminToken::new(&text.value, "[admin] read_token") {
            Ok(token) => Some(token),
            Err(error) => {
                tracing::warn!(%error, "console read-only sign-in disabled");
                None
            }
        }
    });
    let exposed = admin
        .controller
        .active()
        .is_some_and(|active| !active.generation.config.admin.addr.value.ip().is_loopback());
    let state = ConsoleState {
        admin: admin.clone(),
        read_token,
        exposed,
        sessions: Arc::new(Sessions::default()),
        live: Arc::new(live::SharedLive::default()),
        streams: Arc::new(Semaphore::new(MAX_LIVE_STREAMS)),
        stopping,
    };
    Router::new()
        .route("/ui", get(now::page))
        .route("/ui/", get(now::page))
        .route("/ui/now", get(now::page))
        .route("/ui/events", get(live::events))
        .route("/ui/login", get(html::login_page).post(html::login))
        .route("/ui/logout", axum::routing::post(html::logout))
        .route("/ui/changes", get(changes::history))
        .route("/ui/changes/{id}", get(generation::page))
        .route(
            "/ui/changes/{id}/rollback",
            get(changes::confirm).post(changes::rollback),
        )
        .route(
            "/ui/apply",
            get(apply::form)
                .post(apply::apply)
                .layer(DefaultBodyLimit::max(MAX_APPLY_BODY_BYTES)),
        )
        .route("/ui/topology", get(topology::page))
        .route("/ui/routes", get(routes::page))
        .route("/ui/timeline", get(timeline::page))
        .route("/ui/timeline.md", get(timeline::download))
        .route("/ui/assets/console.js", get(html::script))
        .route("/ui/assets/console.css", get(html::stylesheet))
        .layer(DefaultBodyLimit::max(MAX_SMALL_BODY_BYTES))
        .route_layer(axum::middleware::from_fn(crate::admin::read_body_in_time))
        .with_state(state)
}

/// The signed-in session of a request, if any: `(id, session)`.
fn session_of(state: &ConsoleState, headers: &HeaderMap) -> Option<(String, Session)> {
    let id = cookie(headers, SESSION_COOKIE)?;
    let session = state.sessions.get(id)?;
    Some((id.to_string(), session))
}

/// A cookie's value from the request's `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// Why a POST is refused before it acts.
enum Refusal {
    /// No session: the sign-in form.
    SignedOut,
    /// No or a wrong CSRF token.
    Csrf,
    /// A read-only session asked to act.
    ReadOnly,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::SignedOut => html::sign_in(StatusCode::UNAUTHORIZED, None),
            Refusal::Csrf => html::message_page(
                StatusCode::FORBIDDEN,
                "Refused: missing or wrong CSRF token",
                "This action must come from a console page of your own session. Reload the page and try again.",
            ),
            Refusal::ReadOnly => html::message_page(
                StatusCode::FORBIDDEN,
                "Refused: read-only session",
                "You signed in with the read-only token: you can watch, not act. Sign in with the admin token to roll back.",
            ),
        }
    }
}

/// The session of a POST that wants to act as `needs`: signed in, CSRF token from the
/// header or `form_csrf`, and a role that may act.
fn authorize_post(
    state: &ConsoleState,
    headers: &HeaderMap,
    form_csrf: Option<&str>,
    needs: Option<Role>,
) -> Result<(String, Session), Refusal> {
    let (id, session) = session_of(state, headers).ok_or(Refusal::SignedOut)?;
    let presented = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .or(form_csrf)
        .ok_or(Refusal::Csrf)?;
    if !session.csrf_matches(presented) {
        return Err(Refusal::Csrf);
    }
    if needs == Some(Role::Operator) && session.role != Role::Operator {
        return Err(Refusal::ReadOnly);
    }
    Ok((id, session))
}

/// Whether the session cookie gets `Secure` (sent back only over HTTPS). The admin
/// listener speaks plain HTTP, so Keel cannot see TLS itself; it sets `Secure` when the
/// listener is not on loopback (a session token must not cross a network in clear: reach
/// such a listener through a proxy that terminates TLS) and when a proxy in front says
/// the browser's request came over HTTPS (`X-Forwarded-Proto: https` or `Forwarded:
/// proto=https`). Believing a client that claims HTTPS costs nothing: `Secure` only
/// narrows where the browser sends the cookie.
fn secure_cookie(state: &ConsoleState, headers: &HeaderMap) -> bool {
    state.exposed || forwarded_https(headers)
}

fn forwarded_https(headers: &HeaderMap) -> bool {
    let proto = headers
        .get_all("x-forwarded-proto")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .next()
        .map(str::trim);
    let forwarded = headers
        .get_all(header::FORWARDED)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([',', ';']))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| key.eq_ignore_ascii_case("proto"))
        .map(|(_, value)| value.trim_matches('"'));
    [proto, forwarded]
        .into_iter()
        .flatten()
        .any(|p| p.eq_ignore_ascii_case("https"))
}

/// `Set-Cookie` value that signs this browser in for [`CONSOLE_SESSION_LIFETIME`].
fn session_cookie(id: &str, secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/ui; Max-Age={}{}",
        CONSOLE_SESSION_LIFETIME.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// `Set-Cookie` value that clears the session cookie.
fn cleared_cookie(secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/ui; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

/// Seconds as words for the page (`3 h 5 min`).
fn human_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min {} s", secs / 60, secs % 60),
        _ => format!("{} h {} min", secs / 3600, (secs % 3600) / 60),
    }
}
