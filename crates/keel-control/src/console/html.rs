//! The console's HTML frame (escaping, the page layout with its navigation), the
//! sign-in and sign-out handlers, and the embedded script and stylesheet.

use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use axum::{Form, extract::rejection::FormRejection};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Deserialize;

use super::session::{Role, Session};
use super::{ConsoleState, authorize_post, cleared_cookie, secure_cookie, session_cookie};

const SCRIPT: &str = include_str!("../../assets/console/console.js");
const STYLESHEET: &str = include_str!("../../assets/console/console.css");

/// `text` made safe inside HTML text and double-quoted attributes.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page: `body` is trusted HTML (callers escape what they put in it).
pub(super) fn layout(title: &str, session: Option<&Session>, body: &str) -> String {
    let nav = match session {
        Some(session) => format!(
            r#"<nav aria-label="console"><a href="/ui/now">Now</a> <a href="/ui/routes">Routes</a> <a href="/ui/topology">Topology</a> <a href="/ui/changes">Changes</a> <a href="/ui/apply">Apply</a> <a href="/ui/timeline">Timeline</a>
<span class="role">signed in: {role}</span>
<form method="post" action="/ui/logout" class="inline"><input type="hidden" name="csrf" value="{csrf}"><button type="submit">Sign out</button></form></nav>"#,
            role = session.role.label(),
            csrf = escape(&session.csrf),
        ),
        None => String::new(),
    };
    let csrf_meta = session
        .map(|s| format!(r#"<meta name="csrf" content="{}">"#, escape(&s.csrf)))
        .unwrap_or_default();
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
{csrf_meta}<title>{title} · Keel console</title><link rel="stylesheet" href="/ui/assets/console.css"></head>
<body><header><strong>Keel</strong> {nav}</header><main>
{body}
</main></body></html>
"#,
        title = escape(title),
    )
}

/// The sign-in form alone, with `status` and an optional error line.
pub(super) fn sign_in(status: StatusCode, error: Option<&str>) -> Response {
    let error = error
        .map(|e| format!(r#"<p class="error" role="alert">{}</p>"#, escape(e)))
        .unwrap_or_default();
    let body = format!(
        r#"<h1>Sign in</h1>{error}
<form method="post" action="/ui/login">
<label for="token">Admin token (or the read-only token)</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Sign in</button>
</form>
<p class="hint">The admin token is in the state directory's <code>admin.token</code> file, or in <code>KEEL_ADMIN_TOKEN</code>.</p>"#
    );
    (status, no_store(), Html(layout("Sign in", None, &body))).into_response()
}

/// A page with one heading and one paragraph.
pub(super) fn message_page(status: StatusCode, heading: &str, text: &str) -> Response {
    let body = format!(
        r#"<h1>{}</h1><p>{}</p><p><a href="/ui/now">Back to the console</a></p>"#,
        escape(heading),
        escape(text)
    );
    (status, no_store(), Html(layout(heading, None, &body))).into_response()
}

/// Headers of every console page: never cached (they hold live state and CSRF tokens).
pub(super) fn no_store() -> [(header::HeaderName, HeaderValue); 2] {
    [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; script-src 'self'; style-src 'self'; frame-ancestors 'none'",
            ),
        ),
    ]
}

pub(super) async fn login_page() -> Response {
    sign_in(StatusCode::OK, None)
}

#[derive(Debug, Deserialize)]
pub(super) struct LoginForm {
    token: String,
}

/// `POST /ui/login`: the admin token makes an operator session, `[admin] read_token` a
/// read-only one; anything else gets the form again with 403.
pub(super) async fn login(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return sign_in(StatusCode::BAD_REQUEST, Some("send the token in the form"));
    };
    let presented = form.token.trim().as_bytes();
    // Both comparisons always run, so the time taken does not say which token was close.
    let operator = state.admin.token.matches(presented);
    let viewer = state
        .read_token
        .as_ref()
        .is_some_and(|token| token.matches(presented));
    let role = if operator {
        Role::Operator
    } else if viewer {
        Role::Viewer
    } else {
        return sign_in(StatusCode::FORBIDDEN, Some("wrong token"));
    };
    match state.sessions.start(role) {
        Ok(id) => (
            StatusCode::SEE_OTHER,
            [
                (header::LOCATION, "/ui/now".to_string()),
                (
                    header::SET_COOKIE,
                    session_cookie(&id, secure_cookie(&state, &headers)),
                ),
            ],
        )
            .into_response(),
        Err(error) => message_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Cannot sign in",
            &error.to_string(),
        ),
    }
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct CsrfForm {
    csrf: Option<String>,
}

/// `POST /ui/logout`: ends the session (CSRF token required, so no other site can sign
/// you out).
pub(super) async fn logout(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    match authorize_post(&state, &headers, form.csrf.as_deref(), None) {
        Ok((id, _)) => {
            state.sessions.end(&id);
            (
                StatusCode::SEE_OTHER,
                [
                    (header::LOCATION, "/ui/login".to_string()),
                    (
                        header::SET_COOKIE,
                        cleared_cookie(secure_cookie(&state, &headers)),
                    ),
                ],
            )
                .into_response()
        }
        Err(refusal) => refusal.into_response(),
    }
}

pub(super) async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

pub(super) async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        STYLESHEET,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
