//! The admin API client the `keel` CLI uses (hyper-util, plain HTTP on loopback).
//!
//! Every call returns the route's typed JSON answer, or a [`ClientError`] that says
//! whether the API could not be reached, refused the call (with its `error` and `hint`),
//! or answered something unreadable. A refused apply (422) is not an error: it is an
//! [`ApplyOutcome`] with status `refused` and its findings.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use keel_route::RequestShape;
use serde::de::DeserializeOwned;

use crate::admin::AdminToken;
use crate::api::{
    ActiveConfig, ApiError, ApplyBody, GenerationDetail, GenerationSummary, MarkBadBody,
    RollbackBody,
};
use crate::request::{ApplyOutcome, MarkBadOutcome, RollbackOutcome};
use crate::status::Status;

/// Where the CLI looks for the admin API when neither `--admin` nor `KEEL_ADMIN` says.
pub const DEFAULT_ADMIN_URL: &str = "http://127.0.0.1:9901";
/// Environment variable with the admin API's URL.
pub const ADMIN_URL_ENV: &str = "KEEL_ADMIN";
/// Time to open the connection to the admin API (2 seconds).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Time one call may take, including a 10,000-route check (120 seconds).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Largest response body read (64 MiB).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// Why an admin call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not `http://host:port`.
    #[error("bad admin URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Nothing answered.
    #[error(
        "cannot reach the admin API at {url}: {reason} (is `keel serve` running? set --admin or KEEL_ADMIN)"
    )]
    Unreachable {
        /// The URL.
        url: String,
        /// The connection error.
        reason: String,
    },
    /// No answer within the client's request timeout ([`REQUEST_TIMEOUT`] by default).
    #[error("the admin API at {url} did not answer within {after:?}")]
    Timeout {
        /// The URL.
        url: String,
        /// The timeout that passed.
        after: Duration,
    },
    /// The API answered with an error.
    #[error("{}{}", .error.error, .error.hint.as_ref().map(|h| format!("\nhint: {h}")).unwrap_or_default())]
    Api {
        /// The HTTP status.
        status: u16,
        /// The error body.
        error: ApiError,
    },
    /// The answer could not be read.
    #[error("unreadable answer from the admin API: {0}")]
    Decode(String),
}

impl ClientError {
    /// The HTTP status of an API error (401, 403, 409, …).
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A client of one Keel admin API.
#[derive(Clone, Debug)]
pub struct AdminClient {
    base: String,
    token: Option<AdminToken>,
    http: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

impl AdminClient {
    /// A client of the API at `url` (`http://127.0.0.1:9901`), sending `token` if given.
    pub fn new(url: &str, token: Option<AdminToken>) -> Result<Self, ClientError> {
        let invalid = |reason: &str| ClientError::InvalidUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let uri: Uri = url.parse().map_err(|_| invalid("not a URL"))?;
        if uri.scheme_str() != Some("http") {
            return Err(invalid(
                "only http:// is supported (the admin API is plain HTTP on loopback)",
            ));
        }
        if uri.authority().is_none() {
            return Err(invalid("no host:port"));
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        Ok(Self {
            base: url.trim_end_matches('/').to_string(),
            token,
            http: Client::builder(TokioExecutor::new()).build(connector),
            timeout: REQUEST_TIMEOUT,
        })
    }

    /// The same client with another time limit per call: a guarded apply's answer takes
    /// its watch time (see [`guard_timeout`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// `GET /metrics`: the Prometheus text.
    pub async fn metrics(&self) -> Result<String, ClientError> {
        let (status, bytes) = self.send(Method::GET, "/metrics", None).await?;
        if !status.is_success() {
            return decode(status, &bytes);
        }
        String::from_utf8(bytes.to_vec()).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// `GET /alerts?limit=N`: `{"alerts": [...]}`, newest first.
    pub async fn alerts(&self, limit: usize) -> Result<serde_json::Value, ClientError> {
        self.call(Method::GET, &format!("/alerts?limit={limit}"), None)
            .await
    }

    /// `GET /healthz`: the active generation's id.
    pub async fn healthz(&self) -> Result<serde_json::Value, ClientError> {
        self.call(Method::GET, "/healthz", None).await
    }

    /// `GET /status`.
    pub async fn status(&self) -> Result<Status, ClientError> {
        self.call(Method::GET, "/status", None).await
    }

    /// `GET /generations?limit=N`.
    pub async fn history(&self, limit: usize) -> Result<Vec<GenerationSummary>, ClientError> {
        self.call(Method::GET, &format!("/generations?limit={limit}"), None)
            .await
    }

    /// `GET /generations/{id}`.
    pub async fn generation(&self, id: u64) -> Result<GenerationDetail, ClientError> {
        self.call(Method::GET, &format!("/generations/{id}"), None)
            .await
    }

    /// `POST /apply`. A refused apply is an `Ok` outcome with status `refused`.
    pub async fn apply(&self, body: &ApplyBody) -> Result<ApplyOutcome, ClientError> {
        let body = serde_json::to_vec(body).map_err(|e| ClientError::Decode(e.to_string()))?;
        let (status, bytes) = self.send(Method::POST, "/apply", Some(body)).await?;
        if status == StatusCode::UNPROCESSABLE_ENTITY {
            return serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()));
        }
        decode(status, &bytes)
    }

    /// `POST /rollback`.
    pub async fn rollback(&self, body: &RollbackBody) -> Result<RollbackOutcome, ClientError> {
        let body = serde_json::to_vec(body).map_err(|e| ClientError::Decode(e.to_string()))?;
        self.call(Method::POST, "/rollback", Some(body)).await
    }

    /// `POST /generations/{id}/mark-bad`.
    pub async fn mark_bad(
        &self,
        id: u64,
        body: &MarkBadBody,
    ) -> Result<MarkBadOutcome, ClientError> {
        let body = serde_json::to_vec(body).map_err(|e| ClientError::Decode(e.to_string()))?;
        self.call(
            Method::POST,
            &format!("/generations/{id}/mark-bad"),
            Some(body),
        )
        .await
    }

    /// `GET /config`.
    pub async fn config(&self) -> Result<ActiveConfig, ClientError> {
        self.call(Method::GET, "/config", None).await
    }

    /// `GET /traffic/sample`.
    pub async fn traffic_sample(&self) -> Result<Vec<RequestShape>, ClientError> {
        let (status, bytes) = self.send(Method::GET, "/traffic/sample", None).await?;
        if !status.is_success() {
            return decode(status, &bytes);
        }
        bytes
            .split(|b| *b == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| {
                serde_json::from_slice(line).map_err(|e| ClientError::Decode(e.to_string()))
            })
            .collect()
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, ClientError> {
        let (status, bytes) = self.send(method, path, body).await?;
        decode(status, &bytes)
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let url = format!("{}{path}", self.base);
        let mut request = Request::builder().method(method).uri(&url);
        if let Some(token) = &self.token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {}", token.expose()));
        }
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ClientError::InvalidUrl {
                url: url.clone(),
                reason: e.to_string(),
            })?;
        let exchange = async {
            let response =
                self.http
                    .request(request)
                    .await
                    .map_err(|e| ClientError::Unreachable {
                        url: self.base.clone(),
                        reason: error_chain(&e),
                    })?;
            let status = response.status();
            let bytes = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| ClientError::Decode(format!("reading the body: {e}")))?
                .to_bytes();
            Ok((status, bytes))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| ClientError::Timeout {
                url: self.base.clone(),
                after: self.timeout,
            })?
    }
}

/// The time limit for an apply with these guard flags under `config_text`'s `[safety]`:
/// [`REQUEST_TIMEOUT`] plus every stage of the guard plan a canary (or `--wait`) waits
/// for. An unparsable config gets the default `[safety]` (the server refuses it anyway).
pub fn guard_timeout(
    config_text: &str,
    canary: Option<f64>,
    watch: Option<Duration>,
    waits: bool,
) -> Duration {
    if canary.is_none() && !waits {
        return REQUEST_TIMEOUT;
    }
    let config = keel_config::parse(config_text).config;
    // The server watches at least `[safety] watch` of the config it replaces too: allow
    // for the default when the new config asks for less.
    let watch = watch.unwrap_or(config.safety.watch.max(keel_config::defaults::WATCH));
    let plan = keel_watch::GuardPlan::new(&config.safety, canary, Some(watch));
    REQUEST_TIMEOUT + plan.total_watch()
}

fn decode<T: DeserializeOwned>(status: StatusCode, bytes: &[u8]) -> Result<T, ClientError> {
    if status.is_success() {
        return serde_json::from_slice(bytes).map_err(|e| ClientError::Decode(e.to_string()));
    }
    let error = serde_json::from_slice::<ApiError>(bytes).unwrap_or_else(|_| ApiError {
        error: format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
        ),
        hint: None,
    });
    Err(ClientError::Api {
        status: status.as_u16(),
        error,
    })
}

/// An error and its sources on one line ("client error (Connect): tcp connect error: …").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
