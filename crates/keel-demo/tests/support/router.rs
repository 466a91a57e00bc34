//! A stand-in for Keel in the load tests: forwards by path prefix to the shop's backends,
//! stamps `x-keel-generation`, and can replay the March-15 misroute for one generation.
//!
//! Test scaffolding only — no health checks, no retries, no limits beyond hyper's.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use http::header::COOKIE;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use keel_demo::shop::{ServiceKind, Shop};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

struct State {
    pools: HashMap<ServiceKind, Vec<SocketAddr>>,
    generation: AtomicU64,
    /// Under this generation, `web`, `cart` and `checkout` paths go to `legacy-web`.
    misrouted_generation: Option<u64>,
    sticky_carts: bool,
    round_robin: AtomicUsize,
    client: Client<HttpConnector, Full<Bytes>>,
}

pub(crate) struct Router {
    pub(crate) addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Router {
    /// Start forwarding to `shop` as generation 1.
    pub(crate) async fn start(
        shop: &Shop,
        sticky_carts: bool,
        misrouted_generation: Option<u64>,
    ) -> Router {
        let pools = ServiceKind::ALL
            .into_iter()
            .map(|service| (service, shop.addrs(service)))
            .collect();
        let state = Arc::new(State {
            pools,
            generation: AtomicU64::new(1),
            misrouted_generation,
            sticky_carts,
            round_robin: AtomicUsize::new(0),
            client: Client::builder(TokioExecutor::new()).build_http(),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind router");
        let addr = listener.local_addr().expect("router addr");
        let serving = Arc::clone(&state);
        let task = keel_testkit::serve(listener, move |request| {
            let state = Arc::clone(&serving);
            async move { forward(&state, request).await }
        });
        Router { addr, state, task }
    }

    /// Route every request from now on as generation `generation`.
    pub(crate) fn set_generation(&self, generation: u64) {
        self.state.generation.store(generation, Ordering::SeqCst);
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(state: &State, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let generation = state.generation.load(Ordering::SeqCst);
    let stamp = |mut response: Response<Full<Bytes>>| {
        response
            .headers_mut()
            .insert("x-keel-generation", HeaderValue::from(generation));
        response
    };
    let Some(mut service) = ServiceKind::owning(request.uri().path()) else {
        return stamp(status(StatusCode::NOT_FOUND));
    };
    if state.misrouted_generation == Some(generation)
        && matches!(
            service,
            ServiceKind::Web | ServiceKind::Cart | ServiceKind::Checkout
        )
    {
        service = ServiceKind::LegacyWeb;
    }
    let pool = &state.pools[&service];
    let index = if service == ServiceKind::Cart && state.sticky_carts {
        let mut hasher = DefaultHasher::new();
        cart_cookie(&request).hash(&mut hasher);
        hasher.finish() as usize % pool.len()
    } else {
        state.round_robin.fetch_add(1, Ordering::Relaxed) % pool.len()
    };
    let (mut parts, body) = request.into_parts();
    let Ok(body) = body.collect().await else {
        return stamp(status(StatusCode::BAD_REQUEST));
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = format!("http://{}{path}", pool[index])
        .parse()
        .expect("upstream uri");
    let upstream = Request::from_parts(parts, Full::new(body.to_bytes()));
    match state.client.request(upstream).await {
        Ok(response) => {
            let (parts, body) = response.into_parts();
            match body.collect().await {
                Ok(body) => stamp(Response::from_parts(parts, Full::new(body.to_bytes()))),
                Err(_) => stamp(status(StatusCode::BAD_GATEWAY)),
            }
        }
        Err(_) => stamp(status(StatusCode::BAD_GATEWAY)),
    }
}

fn cart_cookie(request: &Request<Incoming>) -> String {
    request
        .headers()
        .get(COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(';')
                .find_map(|pair| pair.trim().strip_prefix("cart_id="))
        })
        .unwrap_or("")
        .to_owned()
}

fn status(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}
