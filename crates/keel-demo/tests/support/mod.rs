//! Test scaffolding: a plain HTTP client for talking to one backend, keel-testkit's
//! bounded `eventually` under the name these suites use, and (in `router`) a minimal path-prefix forwarder that stands in
//! for Keel so the load can be tested end to end without the data plane.

#![allow(dead_code)]

pub(crate) mod router;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{COOKIE, HOST};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// One answer, read whole.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Reply {
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

pub(crate) fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Send one request to `addr` with `Host: shop.example.com`, the optional cart cookie and body.
pub(crate) async fn send(
    addr: SocketAddr,
    method: Method,
    path: &str,
    cart_id: Option<&str>,
    body: &str,
) -> Reply {
    let mut request = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header(HOST, keel_demo::shop::SHOP_HOST);
    if let Some(cart_id) = cart_id {
        request = request.header(COOKIE, format!("cart_id={cart_id}"));
    }
    let request = request
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("test request");
    let response = tokio::time::timeout(Duration::from_secs(5), client().request(request))
        .await
        .expect("answer within 5 s")
        .expect("answer");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

pub(crate) async fn get(addr: SocketAddr, path: &str) -> Reply {
    send(addr, Method::GET, path, None, "").await
}

/// `eventually(within, || condition)` in these suites: keel-testkit's
/// [`eventually_holds`](keel_testkit::eventually_holds).
#[allow(unused_imports)] // not every suite uses every helper
pub(crate) use keel_testkit::eventually_holds as eventually;
