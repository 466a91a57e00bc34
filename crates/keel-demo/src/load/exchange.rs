//! One request of one shopper: build it, send it over a keep-alive client, read the whole
//! answer (bounded), and classify it.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, COOKIE, HOST};
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::shop::SERVICE_HEADER;

use super::config::{GENERATION_HEADER, LoadConfig, MAX_RESPONSE_BODY};
use super::generations::GenerationSeen;
use super::outcome::{Answerer, Outcome, classify, verify_cart};
use super::shopper::{Shopper, Step};
use super::stats::Answer;

/// Time allowed to open a connection to the target (1 second).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Idle keep-alive connections are closed after this long unused (30 seconds).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// What every request of one load shares: the client, the target and its headers.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    client: Client<HttpConnector, Full<Bytes>>,
    authority: Authority,
    host: HeaderValue,
    timeout: Duration,
}

impl Target {
    /// A keep-alive client for `config.target`; `config` must have been validated.
    pub(crate) fn new(config: &LoadConfig) -> Result<Target, String> {
        let authority = Authority::try_from(config.target.to_string().as_str())
            .map_err(|e| format!("target {}: {e}", config.target))?;
        let host = HeaderValue::from_str(&config.host).map_err(|e| format!("host: {e}"))?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(config.max_in_flight)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(connector);
        Ok(Target {
            client,
            authority,
            host,
            timeout: config.request_timeout,
        })
    }

    /// Send `step` for `shopper` and classify the answer.
    pub(crate) async fn perform(&self, shopper: &Shopper, step: &Step) -> Answer {
        let sent = Instant::now();
        let result = tokio::time::timeout(self.timeout, self.exchange(shopper, step)).await;
        let latency = sent.elapsed();
        match result {
            Ok(Some(answer)) => Answer { latency, ..answer },
            Ok(None) | Err(_) => Answer {
                outcome: Outcome::TransportError,
                answerer: None,
                generation: GenerationSeen::Missing,
                latency,
            },
        }
    }

    /// The exchange itself; `None` on any transport failure.
    async fn exchange(&self, shopper: &Shopper, step: &Step) -> Option<Answer> {
        let uri = Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(self.authority.clone())
            .path_and_query(step.path())
            .build()
            .ok()?;
        let body = step.body();
        let mut request = Request::builder().method(step.method()).uri(uri);
        if let Some(headers) = request.headers_mut() {
            headers.insert(HOST, self.host.clone());
            headers.insert(COOKIE, shopper.cookie.clone());
            if !body.is_empty() {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            }
        }
        let request = request.body(Full::new(body)).ok()?;
        let response = self.client.request(request).await.ok()?;
        let status = response.status();
        let answerer = Answerer::from_header(response.headers().get(SERVICE_HEADER));
        let generation = GenerationSeen::from_header(response.headers().get(GENERATION_HEADER));
        // Read every answer to its end: the connection is reusable and the latency honest.
        let body = Limited::new(response.into_body(), MAX_RESPONSE_BODY)
            .collect()
            .await
            .ok()?
            .to_bytes();
        let mut outcome = classify(Some(step.service()), status, answerer);
        if outcome == Outcome::Ok
            && *step == Step::ViewCart
            && !verify_cart(&body, &shopper.expected_cart)
        {
            outcome = Outcome::LostCart;
        }
        Some(Answer {
            outcome,
            answerer: Some(answerer),
            generation,
            latency: Duration::ZERO,
        })
    }
}
