//! The Changes page: the generation history with a Roll back button per generation kept
//! in memory, the confirmation step (the controller's rollback dry run: its blast radius
//! and, for a target that is not known-good, why it is distrusted), and the guarded
//! rollback itself — the same `Controller::rollback` call `keel rollback --to N` makes,
//! forced only when the operator ticked the box after reading the reasons.

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;

use super::html::{escape, layout, message_page, no_store, sign_in};
use super::session::{Role, Session};
use super::{ConsoleState, authorize_post, session_of};
use crate::api::{DEFAULT_HISTORY_LIMIT, GenerationSummary};
use crate::error::ControlError;
use crate::request::{RollbackOutcome, RollbackRequest};

/// The origin the store records for a change made from the console.
pub const CONSOLE_ORIGIN: &str = "console";
/// Author recorded when the rollback form leaves it empty.
const CONSOLE_AUTHOR: &str = "console";

pub(super) async fn history(State(state): State<ConsoleState>, headers: HeaderMap) -> Response {
    let Some((_, session)) = session_of(&state, &headers) else {
        return sign_in(StatusCode::UNAUTHORIZED, None);
    };
    let controller = &state.admin.controller;
    let records = match controller
        .with_store(|s| s.generations(DEFAULT_HISTORY_LIMIT))
        .await
    {
        Ok(records) => records,
        Err(error) => return failure_page(&error),
    };
    let active = controller.active().map(|a| a.id());
    let rows: String = records
        .iter()
        .map(|r| GenerationSummary::from_record(r, controller.cached(r.id).is_some()))
        .map(|g| row(&g, active))
        .collect();
    let body = format!(
        r#"<h1>Changes</h1>
<p class="hint">The newest {DEFAULT_HISTORY_LIMIT} generations, newest first. Only generations kept compiled in memory can be rolled back to; the confirmation shows what the rollback would move before anything changes.</p>
<table><thead><tr><th scope="col">generation</th><th scope="col">recorded</th><th scope="col">author</th><th scope="col">message</th><th scope="col">state</th><th scope="col">trust</th><th scope="col">action</th></tr></thead>
<tbody>{rows}</tbody></table>"#
    );
    (
        StatusCode::OK,
        no_store(),
        Html(layout("Changes", Some(&session), &body)),
    )
        .into_response()
}

fn row(g: &GenerationSummary, active: Option<u64>) -> String {
    let mut trust = Vec::new();
    if g.known_good {
        trust.push("known-good");
    } else {
        trust.push("not known-good");
    }
    if g.forced {
        trust.push("FORCED");
    }
    let action = if Some(g.id) == active {
        "<strong>serving</strong>".to_string()
    } else if g.in_memory {
        format!(
            r#"<a class="button" href="/ui/changes/{id}/rollback">Roll back to {id}…</a>"#,
            id = g.id
        )
    } else {
        "not in memory".to_string()
    };
    format!(
        r#"<tr><td><a href="/ui/changes/{id}">{id}</a></td><td>{time}</td><td>{author}</td><td>{message}</td><td>{state}</td><td>{trust}</td><td>{action}</td></tr>"#,
        id = g.id,
        time = escape(&g.created_at),
        author = escape(&g.author),
        message = escape(&g.message),
        state = escape(g.state.as_str()),
        trust = trust.join(", "),
    )
}

fn parse_id(text: &str) -> Option<u64> {
    text.parse().ok()
}

fn not_a_generation(text: &str) -> Response {
    message_page(
        StatusCode::BAD_REQUEST,
        "Not a generation number",
        &format!("`{text}` is not a generation number."),
    )
}

fn dry_run(id: u64, force: bool) -> RollbackRequest {
    RollbackRequest {
        to: Some(id),
        author: CONSOLE_AUTHOR.to_string(),
        reason: String::new(),
        origin: CONSOLE_ORIGIN.to_string(),
        force,
        dry_run: true,
        watch: None,
        wait: false,
    }
}

/// `GET /ui/changes/{id}/rollback`: the dry run and the confirm form.
pub(super) async fn confirm(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let Some((_, session)) = session_of(&state, &headers) else {
        return sign_in(StatusCode::UNAUTHORIZED, None);
    };
    let Some(id) = parse_id(&id) else {
        return not_a_generation(&id);
    };
    let controller = &state.admin.controller;
    let (outcome, distrust) = match controller.rollback(dry_run(id, false)).await {
        Ok(outcome) => (outcome, Vec::new()),
        Err(ControlError::DistrustedTarget { reasons, .. }) => {
            match controller.rollback(dry_run(id, true)).await {
                Ok(outcome) => (outcome, reasons),
                Err(error) => return failure_page(&error),
            }
        }
        Err(error) => return failure_page(&error),
    };
    let mut body = format!(
        "<h1>Roll back from generation {} to {}?</h1>{}",
        outcome.from,
        outcome.to,
        blast_radius_html(&outcome)
    );
    if !distrust.is_empty() {
        let reasons: String = distrust
            .iter()
            .map(|r| format!("<li>{}</li>", escape(r)))
            .collect();
        body.push_str(&format!(
            r#"<section class="distrust" role="alert"><h2>Generation {id} is not known-good</h2><p>It is distrusted because:</p><ul>{reasons}</ul></section>"#
        ));
    }
    body.push_str(&confirm_form(&session, id, !distrust.is_empty()));
    (
        StatusCode::OK,
        no_store(),
        Html(layout("Confirm rollback", Some(&session), &body)),
    )
        .into_response()
}

fn blast_radius_html(outcome: &RollbackOutcome) -> String {
    let text = outcome
        .blast_radius
        .as_ref()
        .and_then(|b| b["text"].as_str())
        .unwrap_or("(no blast radius: the live traffic sample is empty)");
    let notes: String = outcome
        .notes
        .iter()
        .map(|n| format!("<li>{}</li>", escape(n)))
        .collect();
    format!(
        r#"<section><h2>What the rollback moves (on the live traffic sample)</h2><pre class="blast">{}</pre><ul>{notes}</ul></section>"#,
        escape(text.trim_end())
    )
}

fn confirm_form(session: &Session, id: u64, distrusted: bool) -> String {
    if session.role != Role::Operator {
        return r#"<p class="error">This is a read-only session: it cannot roll back.</p><p><a href="/ui/changes">Back to changes</a></p>"#.to_string();
    }
    let force = if distrusted {
        r#"<p><input type="checkbox" id="force" name="force" value="yes" required> <label for="force">I have read why this generation is distrusted; roll back to it anyway (it is watched, and reverted if it alarms again)</label></p>"#
    } else {
        ""
    };
    format!(
        r#"<form method="post" action="/ui/changes/{id}/rollback">
<input type="hidden" name="csrf" value="{csrf}">
<p><label for="author">Your name (recorded)</label> <input id="author" name="author" maxlength="200"></p>
<p><label for="reason">Why (recorded)</label> <input id="reason" name="reason" maxlength="500"></p>
{force}<p><button type="submit" id="confirm-rollback">Confirm: roll back to generation {id}</button> <a href="/ui/changes">Cancel</a></p>
</form>"#,
        csrf = escape(&session.csrf),
    )
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct RollbackForm {
    csrf: Option<String>,
    force: Option<String>,
    author: Option<String>,
    reason: Option<String>,
}

/// `POST /ui/changes/{id}/rollback`: the guarded rollback (operator session and CSRF).
pub(super) async fn rollback(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<RollbackForm>, FormRejection>,
) -> Response {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let session = match authorize_post(&state, &headers, form.csrf.as_deref(), Some(Role::Operator))
    {
        Ok((_, session)) => session,
        Err(refusal) => return refusal.into_response(),
    };
    let Some(id) = parse_id(&id) else {
        return not_a_generation(&id);
    };
    let author = form
        .author
        .map(|a| a.trim().to_string())
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| CONSOLE_AUTHOR.to_string());
    let request = RollbackRequest {
        to: Some(id),
        author,
        reason: form.reason.unwrap_or_default().trim().to_string(),
        origin: CONSOLE_ORIGIN.to_string(),
        force: form.force.is_some(),
        dry_run: false,
        watch: None,
        wait: false,
    };
    let outcome = match state.admin.controller.rollback(request).await {
        Ok(outcome) => outcome,
        Err(error) => return failure_page(&error),
    };
    let mut body = format!(
        r#"<h1 role="status">Rolled back: generation <span class="gen-id">{}</span> serves now</h1><p>It replaced generation {} (pointer swap in {} µs). The guard watches it and reverts it if it alarms.</p>"#,
        outcome.to, outcome.from, outcome.swap_us
    );
    if let Some(error) = &outcome.persist_error {
        body.push_str(&format!(
            r#"<p class="error" role="alert">WARNING: the store did not record this rollback: {}. A restart would serve generation {} again.</p>"#,
            escape(error),
            outcome.from
        ));
    }
    body.push_str(&blast_radius_html(&outcome));
    body.push_str(r#"<p><a href="/ui/now">See it on the Now page</a></p>"#);
    (
        StatusCode::OK,
        no_store(),
        Html(layout("Rolled back", Some(&session), &body)),
    )
        .into_response()
}

/// A controller error as a page, with the status the admin API would give.
pub(super) fn failure_page(error: &ControlError) -> Response {
    let status = match error {
        ControlError::Store(keel_store::StoreError::UnknownGeneration(_)) => StatusCode::NOT_FOUND,
        ControlError::NothingActive => StatusCode::SERVICE_UNAVAILABLE,
        ControlError::NoRollbackTarget { .. }
        | ControlError::DistrustedTarget { .. }
        | ControlError::AlreadyActive(_)
        | ControlError::CanaryInProgress { .. }
        | ControlError::Store(keel_store::StoreError::InvalidTransition { .. }) => {
            StatusCode::CONFLICT
        }
        ControlError::BadRequest(_) => StatusCode::BAD_REQUEST,
        ControlError::Store(_)
        | ControlError::Persist(_)
        | ControlError::Pin(_)
        | ControlError::Task(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    message_page(status, "Refused", &error.to_string())
}
