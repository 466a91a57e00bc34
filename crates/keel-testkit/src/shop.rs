//! A small shop of identified backends, and a load that counts wrong answers per
//! service: the measure of a misroute that a status code does not show.
//!
//! Every backend answers `x-service: <service>` (see [`crate::Backend`]). A request of
//! the load names the service that must answer it; an answer is *wrong* when it is a
//! success (`2xx`) that another application gave (its `x-service` is not the expected
//! one). A proxy that refuses to pass on a wrong answer (`502`) is not counted wrong:
//! it is an error the client sees, not a silent misroute.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::backend::Backend;

/// How long one request may take before it counts as a transport error (5 seconds).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Most requests per second [`load_by_service`] sends, whatever it is asked (500).
pub const MAX_SHOP_RPS: u32 = 500;
/// Longest [`load_by_service`] runs, whatever it is asked (60 seconds).
pub const MAX_SHOP_LOAD: Duration = Duration::from_secs(60);

/// Backends of several services, each identified by its service's name.
#[derive(Clone, Debug, Default)]
pub struct IdentifiedShop {
    backends: BTreeMap<&'static str, Vec<SocketAddr>>,
}

impl IdentifiedShop {
    /// Starts `count` backends for each `(service, count)`.
    pub async fn start(services: &[(&'static str, usize)]) -> Self {
        let mut backends = BTreeMap::new();
        for (service, count) in services {
            let mut addrs = Vec::with_capacity(*count);
            for _ in 0..*count {
                addrs.push(Backend::new(service).start().await);
            }
            backends.insert(*service, addrs);
        }
        Self { backends }
    }

    /// The backends of `service` (empty when it has none).
    pub fn addrs(&self, service: &str) -> &[SocketAddr] {
        self.backends.get(service).map_or(&[], Vec::as_slice)
    }

    /// The backends of `service` as a TOML array of address strings.
    pub fn toml_addrs(&self, service: &str) -> String {
        toml_list(self.addrs(service))
    }
}

/// Addresses as a TOML array of strings: `["127.0.0.1:1", "127.0.0.1:2"]`.
pub fn toml_list(addrs: &[SocketAddr]) -> String {
    let quoted: Vec<String> = addrs.iter().map(|a| format!("\"{a}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

/// The answers one service's requests got.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceTally {
    /// Requests sent that this service must answer.
    pub sent: u64,
    /// Successes from this service.
    pub right: u64,
    /// Successes from another application (by `x-service`).
    pub wrong: u64,
    /// Answers that were not a success (any status outside 2xx).
    pub failed: u64,
    /// Requests without an answer.
    pub transport_errors: u64,
    /// Which application gave the wrong answers, and how many each.
    pub answered_by: BTreeMap<String, u64>,
}

/// Wrong answers per service of one load run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WrongAnswers {
    /// Tally per expected service.
    pub services: BTreeMap<&'static str, ServiceTally>,
}

impl WrongAnswers {
    /// Wrong answers to requests of `service`.
    pub fn wrong(&self, service: &str) -> u64 {
        self.services.get(service).map_or(0, |t| t.wrong)
    }

    /// Wrong answers in all.
    pub fn total_wrong(&self) -> u64 {
        self.services.values().map(|t| t.wrong).sum()
    }

    /// Requests of `service` answered by the right application.
    pub fn right(&self, service: &str) -> u64 {
        self.services.get(service).map_or(0, |t| t.right)
    }
}

/// Sends `rps` requests per second for `duration` (capped at [`MAX_SHOP_RPS`] and
/// [`MAX_SHOP_LOAD`]); request `n` and the service that must answer it come from
/// `request(n)`. Returns the wrong answers per service once every request has ended.
pub async fn load_by_service<F>(rps: u32, duration: Duration, mut request: F) -> WrongAnswers
where
    F: FnMut(u64) -> (Request<Empty<Bytes>>, &'static str),
{
    let rps = rps.clamp(1, MAX_SHOP_RPS);
    let duration = duration.min(MAX_SHOP_LOAD);
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let tally = Arc::new(Mutex::new(WrongAnswers::default()));
    let total = (f64::from(rps) * duration.as_secs_f64()) as u64;
    let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rps)));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::with_capacity(total as usize);
    for n in 0..total {
        interval.tick().await;
        let (request, expected) = request(n);
        let (client, tally) = (client.clone(), tally.clone());
        tasks.push(tokio::spawn(async move {
            let answer = match tokio::time::timeout(REQUEST_TIMEOUT, client.request(request)).await
            {
                Ok(Ok(response)) => {
                    let status = response.status().as_u16();
                    let service = response
                        .headers()
                        .get("x-service")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    let _ = response.into_body().collect().await;
                    Some((status, service))
                }
                _ => None,
            };
            let mut tally = tally.lock().expect("tally");
            let entry = tally.services.entry(expected).or_default();
            entry.sent += 1;
            match answer {
                None => entry.transport_errors += 1,
                Some((status, _)) if !(200..300).contains(&status) => entry.failed += 1,
                Some((_, Some(service))) if service != expected => {
                    entry.wrong += 1;
                    *entry.answered_by.entry(service).or_default() += 1;
                }
                Some(_) => entry.right += 1,
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    tally.lock().expect("tally").clone()
}
