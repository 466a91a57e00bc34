//! Bounded client load: a fixed request rate for a fixed time, or a fixed count.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// How long one request of a load run may take before it counts as a transport error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

type LoadClient = Client<HttpConnector, Empty<Bytes>>;

/// What a load run saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Requests sent.
    pub sent: u64,
    /// Answers received, by status code.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests without an answer (connection failures, or no answer within 5 s).
    pub transport_errors: u64,
}

impl LoadReport {
    /// Answers received with `status`.
    pub fn count(&self, status: u16) -> u64 {
        self.statuses.get(&status).copied().unwrap_or(0)
    }
}

/// Sends `rps` requests per second for `duration`: at most `rps × seconds` requests,
/// each on its own task over one keep-alive HTTP/1.1 client, request number `n` built by
/// `request(n)`. Ticks missed while busy are caught up in a burst. Returns when every
/// request has been answered or has failed.
pub async fn load<F>(rps: u32, duration: Duration, mut request: F) -> LoadReport
where
    F: FnMut(u64) -> Request<Empty<Bytes>>,
{
    let client = client();
    let statuses = Arc::new(Mutex::new(BTreeMap::<u16, u64>::new()));
    let errors = Arc::new(AtomicU64::new(0));
    let total = (f64::from(rps) * duration.as_secs_f64()) as u64;
    let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rps.max(1))));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::with_capacity(total as usize);
    for n in 0..total {
        interval.tick().await;
        let request = request(n);
        let (client, statuses, errors) = (client.clone(), statuses.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            match send(&client, request).await {
                Some(status) => {
                    *statuses
                        .lock()
                        .expect("statuses")
                        .entry(status)
                        .or_default() += 1;
                }
                None => {
                    errors.fetch_add(1, Relaxed);
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let statuses = statuses.lock().expect("statuses").clone();
    LoadReport {
        sent: total,
        statuses,
        transport_errors: errors.load(Relaxed),
    }
}

/// Sends `total` requests one after another (each answered before the next is sent),
/// request number `n` built by `request(n)`.
pub async fn sequential<F>(total: u64, mut request: F) -> LoadReport
where
    F: FnMut(u64) -> Request<Empty<Bytes>>,
{
    let client = client();
    let mut report = LoadReport {
        sent: total,
        ..LoadReport::default()
    };
    for n in 0..total {
        match send(&client, request(n)).await {
            Some(status) => *report.statuses.entry(status).or_default() += 1,
            None => report.transport_errors += 1,
        }
    }
    report
}

fn client() -> LoadClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// The answer's status, after reading its body; `None` on a transport error or timeout.
async fn send(client: &LoadClient, request: Request<Empty<Bytes>>) -> Option<u16> {
    match tokio::time::timeout(REQUEST_TIMEOUT, client.request(request)).await {
        Ok(Ok(response)) => {
            let status = response.status().as_u16();
            let _ = response.into_body().collect().await;
            Some(status)
        }
        _ => None,
    }
}
