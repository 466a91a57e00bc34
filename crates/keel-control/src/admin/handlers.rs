//! The admin route handlers: each turns a request into a controller call and the
//! answer into JSON. Errors are `{"error": .., "hint": ..}` with a fitting status.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{StatusCode, header};
use keel_store::origin;
use serde::Deserialize;

use super::AdminState;
use crate::api::{
    ActiveConfig, ApiError, ApplyBody, DEFAULT_ALERTS_LIMIT, DEFAULT_HISTORY_LIMIT,
    GenerationSummary, MAX_HISTORY_LIMIT, MarkBadBody, RollbackBody,
};
use crate::error::ControlError;
use crate::request::{ApplyRequest, ApplyStatus, MarkBadRequest, RollbackRequest};

/// An error answer.
pub(super) struct Failure(StatusCode, ApiError);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

pub(super) fn failure(status: StatusCode, error: String, hint: Option<String>) -> Failure {
    Failure(status, ApiError { error, hint })
}

impl From<ControlError> for Failure {
    fn from(error: ControlError) -> Self {
        let status = match &error {
            ControlError::Store(keel_store::StoreError::UnknownGeneration(_)) => {
                StatusCode::NOT_FOUND
            }
            ControlError::Store(keel_store::StoreError::InvalidTransition { .. }) => {
                StatusCode::CONFLICT
            }
            ControlError::NothingActive => StatusCode::SERVICE_UNAVAILABLE,
            ControlError::NoRollbackTarget { .. }
            | ControlError::DistrustedTarget { .. }
            | ControlError::AlreadyActive(_)
            | ControlError::CanaryInProgress { .. } => StatusCode::CONFLICT,
            ControlError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ControlError::Store(_)
            | ControlError::Persist(_)
            | ControlError::Pin(_)
            | ControlError::Task(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let hint = match &error {
            ControlError::NoRollbackTarget { hint, .. } => Some(hint.clone()),
            ControlError::DistrustedTarget { id, .. } => Some(format!(
                "roll back to the newest known-good generation with `keel rollback`, or, \
                 knowing the above, `keel rollback --to {id} --force` (it is watched, and \
                 reverted if it alarms again)"
            )),
            _ => None,
        };
        failure(status, error.to_string(), hint)
    }
}

fn bad_json(rejection: JsonRejection) -> Failure {
    failure(
        rejection.status(),
        format!("bad request body: {}", rejection.body_text()),
        Some("see docs/admin-api.md for the request format".to_string()),
    )
}

pub(super) async fn healthz(State(state): State<AdminState>) -> Response {
    match state.controller.active() {
        Some(active) => {
            Json(serde_json::json!({ "status": "ok", "generation": active.id() })).into_response()
        }
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "status": "starting" })),
        )
            .into_response(),
    }
}

pub(super) async fn status(State(state): State<AdminState>) -> Response {
    Json(state.controller.status()).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HistoryQuery {
    limit: Option<usize>,
}

pub(super) async fn generations(
    State(state): State<AdminState>,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Failure> {
    let limit = query
        .map_err(|e| failure(StatusCode::BAD_REQUEST, e.body_text(), None))?
        .limit
        .unwrap_or(DEFAULT_HISTORY_LIMIT)
        .clamp(1, MAX_HISTORY_LIMIT);
    let records = state
        .controller
        .with_store(move |s| s.generations(limit))
        .await?;
    let list: Vec<GenerationSummary> = records
        .iter()
        .map(|r| GenerationSummary::from_record(r, state.controller.cached(r.id).is_some()))
        .collect();
    Ok(Json(list).into_response())
}

pub(super) async fn generation(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Response, Failure> {
    let id: u64 = id.parse().map_err(|_| {
        failure(
            StatusCode::BAD_REQUEST,
            format!("`{id}` is not a generation number"),
            None,
        )
    })?;
    let record = state
        .controller
        .with_store(move |s| s.generation(id))
        .await?
        .ok_or_else(|| {
            failure(
                StatusCode::NOT_FOUND,
                format!("generation {id} does not exist"),
                Some("`keel history` lists generations".to_string()),
            )
        })?;
    // Certificates: facts and digests only, never key bytes.
    let detail = state.controller.generation_detail(record).await?;
    Ok(Json(detail).into_response())
}

pub(super) async fn apply(
    State(state): State<AdminState>,
    body: Result<Json<ApplyBody>, JsonRejection>,
) -> Result<Response, Failure> {
    let Json(body) = body.map_err(bad_json)?;
    let outcome = state
        .controller
        .apply(ApplyRequest {
            config_text: body.config,
            author: body.author,
            message: body.message,
            force: body.force,
            dry_run: body.dry_run,
            origin: origin::CLI.to_string(),
            file_name: body.file_name,
            canary: body.canary,
            watch: body.watch_ms.map(Duration::from_millis),
            no_guard: body.no_guard,
            wait: body.wait,
        })
        .await?;
    let status = match outcome.status {
        ApplyStatus::Applied | ApplyStatus::DryRun => StatusCode::OK,
        ApplyStatus::Refused => StatusCode::UNPROCESSABLE_ENTITY,
    };
    Ok((status, Json(outcome)).into_response())
}

pub(super) async fn rollback(
    State(state): State<AdminState>,
    body: Bytes,
) -> Result<Response, Failure> {
    let body: RollbackBody = if body.iter().all(u8::is_ascii_whitespace) {
        RollbackBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            failure(
                StatusCode::BAD_REQUEST,
                format!("bad request body: {e}"),
                Some(
                    r#"send {"to": N, "author": "..", "reason": ".."} (every field optional)"#
                        .to_string(),
                ),
            )
        })?
    };
    let outcome = state
        .controller
        .rollback(RollbackRequest {
            to: body.to,
            author: body.author,
            reason: body.reason,
            origin: if body.local {
                origin::LOCAL
            } else {
                origin::CLI
            }
            .to_string(),
            force: body.force,
            dry_run: body.dry_run,
            watch: body.watch_ms.map(Duration::from_millis),
            wait: body.wait,
        })
        .await?;
    Ok(Json(outcome).into_response())
}

/// `POST /generations/{id}/mark-bad`: withdraws the known-good mark (see `Controller::mark_bad`).
pub(super) async fn mark_bad(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, Failure> {
    let id: u64 = id.parse().map_err(|_| {
        failure(
            StatusCode::BAD_REQUEST,
            format!("`{id}` is not a generation number"),
            None,
        )
    })?;
    let body: MarkBadBody = if body.iter().all(u8::is_ascii_whitespace) {
        MarkBadBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            failure(
                StatusCode::BAD_REQUEST,
                format!("bad request body: {e}"),
                Some(r#"send {"author": "..", "reason": ".."} (every field optional)"#.to_string()),
            )
        })?
    };
    let outcome = state
        .controller
        .mark_bad(MarkBadRequest {
            id,
            author: body.author,
            reason: body.reason,
        })
        .await?;
    Ok(Json(outcome).into_response())
}

pub(super) async fn config(State(state): State<AdminState>) -> Result<Response, Failure> {
    let active = state
        .controller
        .active()
        .ok_or(ControlError::NothingActive)?;
    Ok(Json(ActiveConfig {
        generation: active.id(),
        config: active.config_text.to_string(),
    })
    .into_response())
}

pub(super) async fn traffic_sample(State(state): State<AdminState>) -> Response {
    let mut lines = Vec::new();
    for shape in state.controller.plane().sample().snapshot() {
        if serde_json::to_writer(&mut lines, &shape).is_ok() {
            lines.push(b'\n');
        }
    }
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Bytes::from(lines),
    )
        .into_response()
}

/// `GET /metrics`: the Prometheus exposition; 404 when the controller runs no watcher.
pub(super) async fn metrics(State(state): State<AdminState>) -> Result<Response, Failure> {
    let watcher = watcher(&state)?;
    Ok((
        [(header::CONTENT_TYPE, keel_watch::METRICS_CONTENT_TYPE)],
        watcher.metrics_text(),
    )
        .into_response())
}

/// `GET /alerts?limit=N`: the recent alerts, newest first.
pub(super) async fn alerts(
    State(state): State<AdminState>,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Failure> {
    let limit = query
        .map_err(|e| failure(StatusCode::BAD_REQUEST, e.body_text(), None))?
        .limit
        .unwrap_or(DEFAULT_ALERTS_LIMIT)
        .clamp(1, keel_watch::ALERT_LOG_CAPACITY);
    Ok(Json(watcher(&state)?.alerts_json(limit)).into_response())
}

fn watcher(state: &AdminState) -> Result<&std::sync::Arc<keel_watch::Watcher>, Failure> {
    state.controller.watcher().ok_or_else(|| {
        failure(
            StatusCode::NOT_FOUND,
            "this controller runs no detectors: no metrics or alerts".to_string(),
            Some("`keel serve` runs them".to_string()),
        )
    })
}
