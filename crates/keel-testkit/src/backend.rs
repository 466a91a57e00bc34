//! A real HTTP backend on loopback that says which service it is.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use tokio::net::TcpListener;

use crate::serve::serve;

/// The status a [`Backend`] answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// 200 OK.
    Ok,
    /// 500 Internal Server Error.
    ServerError,
    /// Any other status code (e.g. 404).
    Status(u16),
}

impl Answer {
    fn status(self) -> StatusCode {
        match self {
            Answer::Ok => StatusCode::OK,
            Answer::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            Answer::Status(code) => {
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }
}

/// A backend to start on `127.0.0.1:0`, described builder-style.
///
/// By default it answers every request with 200, the header `x-service: <service>` and
/// the service's name as the body, at once.
#[derive(Clone, Copy, Debug)]
pub struct Backend {
    service: &'static str,
    answer: Answer,
    identify: bool,
    body: Option<&'static str>,
    delay: Duration,
    jitter: Duration,
    healthz: Option<u16>,
}

impl Backend {
    /// A backend of `service`: 200, `x-service: <service>`, body `<service>`.
    pub fn new(service: &'static str) -> Self {
        Self {
            service,
            answer: Answer::Ok,
            identify: true,
            body: None,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            healthz: None,
        }
    }

    /// Answers with `answer` instead of 200.
    pub fn answer(mut self, answer: Answer) -> Self {
        self.answer = answer;
        self
    }

    /// Answers with `body` instead of the service's name.
    pub fn body(mut self, body: &'static str) -> Self {
        self.body = Some(body);
        self
    }

    /// Leaves out the `x-service` header: an anonymous backend (the body still names it).
    pub fn anonymous(mut self) -> Self {
        self.identify = false;
        self
    }

    /// Waits `delay` before every answer.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Waits a random time below `max` (whole microseconds) before every answer, on top
    /// of any [`Backend::delay`].
    pub fn jitter(mut self, max: Duration) -> Self {
        self.jitter = max;
        self
    }

    /// Answers `GET /healthz` with `status` (the other answer settings apply to every
    /// other path).
    pub fn healthz(mut self, status: u16) -> Self {
        self.healthz = Some(status);
        self
    }

    /// Binds `127.0.0.1:0`, serves in the background for the rest of the runtime's life,
    /// and returns the address.
    pub async fn start(self) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind backend");
        let addr = listener.local_addr().expect("backend addr");
        let jitter_micros = u64::try_from(self.jitter.as_micros()).unwrap_or(u64::MAX);
        serve(listener, move |request| {
            let status = match self.healthz {
                Some(health) if request.uri().path() == "/healthz" => {
                    Answer::Status(health).status()
                }
                _ => self.answer.status(),
            };
            async move {
                let wait = if jitter_micros > 0 {
                    self.delay + Duration::from_micros(fastrand::u64(0..jitter_micros))
                } else {
                    self.delay
                };
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                let mut response = Response::builder().status(status);
                if self.identify {
                    response = response.header("x-service", self.service);
                }
                let body = self.body.unwrap_or(self.service);
                response
                    .body(Full::new(Bytes::from_static(body.as_bytes())))
                    .expect("static response")
            }
        });
        addr
    }
}

/// Starts a backend of `service` answering `answer` (see [`Backend`] for more settings).
pub async fn start(service: &'static str, answer: Answer) -> SocketAddr {
    Backend::new(service).answer(answer).start().await
}
