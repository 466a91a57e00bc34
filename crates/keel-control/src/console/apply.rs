//! Apply from the console: a pasted config goes through the same `Controller::apply` as
//! `keel apply` — full check, the blast-radius gate on the live traffic sample, compile,
//! swap and the guard's watch — and the page shows the refusal when the gate or the
//! check says no. "Check and gate only" is `keel apply --dry-run`. There is no force
//! here: overriding a refusal stays a deliberate `keel apply --force`.

use axum::Form;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::response::{Html, IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;

use super::changes::CONSOLE_ORIGIN;
use super::html::{escape, layout, message_page, no_store, sign_in};
use super::session::{Role, Session};
use super::{ConsoleState, authorize_post, session_of};
use crate::request::{ApplyOutcome, ApplyRequest, ApplyStatus, Stage};

/// File name recorded for a config pasted into the console.
const PASTED_FILE_NAME: &str = "console";
/// Author recorded when the form leaves it empty.
const CONSOLE_AUTHOR: &str = "console";

/// `GET /ui/apply`: the form, holding the active config to edit.
pub(super) async fn form(State(state): State<ConsoleState>, headers: HeaderMap) -> Response {
    let Some((_, session)) = session_of(&state, &headers) else {
        return sign_in(StatusCode::UNAUTHORIZED, None);
    };
    let active = state
        .admin
        .controller
        .active()
        .map(|a| a.config_text.to_string())
        .unwrap_or_default();
    let body = format!("<h1>Apply a config</h1>{}", apply_form(&session, &active));
    (
        StatusCode::OK,
        no_store(),
        Html(layout("Apply", Some(&session), &body)),
    )
        .into_response()
}

fn apply_form(session: &Session, config: &str) -> String {
    if session.role != Role::Operator {
        return r#"<p class="error">This is a read-only session: it cannot apply.</p>"#.to_string();
    }
    format!(
        r#"<p class="hint">The config below is the one serving now. Edit it or paste another: applying runs the full check, the blast-radius gate on live traffic, and the guard's watch, exactly as <code>keel apply</code>.</p>
<form method="post" action="/ui/apply">
<input type="hidden" name="csrf" value="{csrf}">
<p><label for="config">Config (TOML)</label><br><textarea id="config" name="config" rows="24" cols="100" spellcheck="false" required>{config}</textarea></p>
<p><label for="author">Your name (recorded)</label> <input id="author" name="author" maxlength="200"></p>
<p><label for="message">Why (recorded)</label> <input id="message" name="message" maxlength="500" required></p>
<p><input type="checkbox" id="dry_run" name="dry_run" value="yes"> <label for="dry_run">Check and gate only (change nothing)</label></p>
<p><button type="submit" id="apply">Apply</button></p>
</form>"#,
        csrf = escape(&session.csrf),
        config = escape(config),
    )
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ApplyForm {
    csrf: Option<String>,
    config: Option<String>,
    author: Option<String>,
    message: Option<String>,
    dry_run: Option<String>,
}

/// `POST /ui/apply` (operator session and CSRF).
pub(super) async fn apply(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    form: Result<Form<ApplyForm>, FormRejection>,
) -> Response {
    let form = match form {
        Ok(Form(form)) => form,
        // Refuse a session-less or CSRF-less POST before explaining a bad body.
        Err(rejection) => {
            if let Err(refusal) = authorize_post(&state, &headers, None, Some(Role::Operator)) {
                return refusal.into_response();
            }
            return message_page(rejection.status(), "Bad form", &rejection.body_text());
        }
    };
    let session = match authorize_post(&state, &headers, form.csrf.as_deref(), Some(Role::Operator))
    {
        Ok((_, session)) => session,
        Err(refusal) => return refusal.into_response(),
    };
    let author = form
        .author
        .map(|a| a.trim().to_string())
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| CONSOLE_AUTHOR.to_string());
    let config = form.config.unwrap_or_default();
    let request = ApplyRequest {
        config_text: config.clone(),
        author,
        message: form.message.unwrap_or_default().trim().to_string(),
        dry_run: form.dry_run.is_some(),
        origin: CONSOLE_ORIGIN.to_string(),
        file_name: PASTED_FILE_NAME.to_string(),
        ..ApplyRequest::default()
    };
    let outcome = match state.admin.controller.apply(request).await {
        Ok(outcome) => outcome,
        Err(error) => {
            return message_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Apply failed",
                &error.to_string(),
            );
        }
    };
    let status = match outcome.status {
        ApplyStatus::Applied | ApplyStatus::DryRun => StatusCode::OK,
        ApplyStatus::Refused => StatusCode::UNPROCESSABLE_ENTITY,
    };
    let mut body = outcome_html(&outcome);
    if outcome.status == ApplyStatus::Refused {
        body.push_str("<h2>Edit and try again</h2>");
        body.push_str(&apply_form(&session, &config));
    } else {
        body.push_str(r#"<p><a href="/ui/now">See it on the Now page</a></p>"#);
    }
    (
        status,
        no_store(),
        Html(layout("Apply", Some(&session), &body)),
    )
        .into_response()
}

fn stage_word(stage: Stage) -> &'static str {
    stage.name()
}

fn outcome_html(outcome: &ApplyOutcome) -> String {
    let heading = match (outcome.status, outcome.generation) {
        (ApplyStatus::Applied, Some(id)) => format!(
            r#"Applied: generation <span class="gen-id">{id}</span> serves now{}"#,
            if outcome.forced { " (FORCED)" } else { "" }
        ),
        (ApplyStatus::Applied, None) => "Applied".to_string(),
        (ApplyStatus::DryRun, _) => {
            "Dry run: the config passes check and gate; nothing changed".to_string()
        }
        (ApplyStatus::Refused, _) => "REFUSED: nothing changed".to_string(),
    };
    let mut html = format!(r#"<h1 role="status">{heading}</h1>"#);
    if !outcome.refusals.is_empty() {
        let items: String = outcome
            .refusals
            .iter()
            .map(|r| {
                format!(
                    "<li><strong>{}</strong>{} {}</li>",
                    stage_word(r.stage),
                    r.code
                        .as_deref()
                        .map(|c| format!(" [{}]", escape(c)))
                        .unwrap_or_default(),
                    escape(&r.message)
                )
            })
            .collect();
        html.push_str(&format!(
            r#"<section class="distrust" role="alert"><h2>Why it was refused</h2><ul>{items}</ul></section>"#
        ));
    }
    if let Some(text) = outcome.gate.as_ref().and_then(crate::impact_text) {
        html.push_str(&format!(
            r#"<section><h2>Blast radius (the gate, on live traffic)</h2><pre class="blast">{}</pre></section>"#,
            escape(text.trim_end())
        ));
    }
    if !outcome.report_text.trim().is_empty() {
        html.push_str(&format!(
            r#"<section><h2>Check</h2><pre class="blast">{}</pre></section>"#,
            escape(outcome.report_text.trim_end())
        ));
    }
    let notes: String = outcome
        .notes
        .iter()
        .map(|n| format!("<li>{}</li>", escape(n)))
        .collect();
    if !notes.is_empty() {
        html.push_str(&format!("<ul>{notes}</ul>"));
    }
    html
}
