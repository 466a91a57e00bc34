//! One generation on the Changes page (`GET /ui/changes/{id}`): who, when, why, its state
//! and trust, what the check and the apply refused or overrode, its certificates (leaf
//! facts and pinned digests), its blast-radius report,
//! the semantic diff from the generation before it (as `keel diff N-1 N`), and its
//! config text.

use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};
use http::{HeaderMap, StatusCode};

use super::changes::failure_page;
use super::html::{escape, layout, message_page, no_store, sign_in};
use super::{ConsoleState, session_of};
use crate::api::GenerationDetail;

pub(super) async fn page(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let Some((_, session)) = session_of(&state, &headers) else {
        return sign_in(StatusCode::UNAUTHORIZED, None);
    };
    let Ok(id) = id.parse::<u64>() else {
        return message_page(
            StatusCode::BAD_REQUEST,
            "Not a generation number",
            &format!("`{id}` is not a generation number."),
        );
    };
    let controller = &state.admin.controller;
    let records = controller
        .with_store(move |s| Ok((s.generation(id)?, s.generation(id.saturating_sub(1))?)))
        .await;
    let (record, previous) = match records {
        Ok((Some(record), previous)) => (record, previous.filter(|_| id > 1)),
        Ok((None, _)) => {
            return message_page(
                StatusCode::NOT_FOUND,
                "No such generation",
                &format!("Generation {id} does not exist."),
            );
        }
        Err(error) => return failure_page(&error),
    };
    let previous_text = previous.map(|p| p.config_text);
    let detail = match controller.generation_detail(record).await {
        Ok(detail) => detail,
        Err(error) => return failure_page(&error),
    };
    let body = detail_html(&detail, previous_text.as_deref());
    (
        StatusCode::OK,
        no_store(),
        Html(layout(&format!("Generation {id}"), Some(&session), &body)),
    )
        .into_response()
}

fn detail_html(detail: &GenerationDetail, previous: Option<&str>) -> String {
    let g = &detail.summary;
    let mut html = format!(
        r#"<h1>Generation {id}</h1>
<dl><dt>state</dt><dd>{state}{known_good}{forced}</dd><dt>author</dt><dd>{author}</dd><dt>origin</dt><dd>{origin}</dd>
<dt>recorded</dt><dd>{created}</dd><dt>message</dt><dd>{message}</dd><dt>check</dt><dd>{errors} errors, {warnings} warnings</dd></dl>"#,
        id = g.id,
        state = escape(g.state.as_str()),
        known_good = if g.known_good {
            ", known-good"
        } else {
            ", not known-good"
        },
        forced = if g.forced { ", FORCED" } else { "" },
        author = escape(&g.author),
        origin = escape(&g.origin),
        created = escape(&g.created_at),
        message = escape(&g.message),
        errors = g.errors,
        warnings = g.warnings,
    );
    if g.in_memory {
        html.push_str(&format!(
            r#"<p><a class="button" href="/ui/changes/{}/rollback">Roll back to {}…</a></p>"#,
            g.id, g.id
        ));
    }
    for (key, title) in [
        ("refusals", "Refused"),
        ("overridden", "Overridden by force"),
    ] {
        let Some(items) = detail.check_report[key]
            .as_array()
            .filter(|i| !i.is_empty())
        else {
            continue;
        };
        let lines: String = items
            .iter()
            .map(|item| {
                format!(
                    "<li><strong>{}</strong> {}</li>",
                    escape(item["stage"].as_str().unwrap_or("?")),
                    escape(item["message"].as_str().unwrap_or(""))
                )
            })
            .collect();
        html.push_str(&format!("<h2>{title}</h2><ul>{lines}</ul>"));
    }
    if !detail.certificates.is_empty() {
        let items: String = detail
            .certificates
            .iter()
            .map(|c| {
                let facts = match (&c.facts, &c.unavailable) {
                    (Some(facts), _) => keel_config::CertificateFacts::from(facts).summary(),
                    (None, Some(why)) => format!("no facts: {why}"),
                    (None, None) => "no facts".to_string(),
                };
                let pinned = c.pinned.as_deref().map_or_else(String::new, |d| {
                    format!("<br>pinned copy <code>{}</code>", escape(d))
                });
                format!(
                    "<li><strong>{}</strong>: {}{pinned}</li>",
                    escape(&c.name),
                    escape(&facts)
                )
            })
            .collect();
        html.push_str(&format!("<h2>Certificates</h2><ul>{items}</ul>"));
    }
    if let Some(text) = detail.impact_report.as_ref().and_then(crate::impact_text) {
        html.push_str(&format!(
            r#"<h2>Blast radius when it was applied</h2><pre class="blast">{}</pre>"#,
            escape(text.trim_end())
        ));
    }
    if let Some(previous) = previous {
        let (old, new) = (
            keel_config::parse(previous),
            keel_config::parse(&detail.config),
        );
        let diff = if old.has_errors() || new.has_errors() {
            "(one of the two configs does not parse: no semantic diff)".to_string()
        } else {
            crate::semantic_diff(&old.config, &new.config).render_human()
        };
        html.push_str(&format!(
            r#"<h2>Changes from generation {}</h2><pre class="blast">{}</pre>"#,
            g.id.saturating_sub(1),
            escape(diff.trim_end())
        ));
    }
    html.push_str(&format!(
        r#"<details><summary>Config text</summary><pre class="blast">{}</pre></details>"#,
        escape(&detail.config)
    ));
    html
}
