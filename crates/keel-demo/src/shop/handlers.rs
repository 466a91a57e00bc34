//! What each service answers: the request handlers of `web`, `catalog`, `cart`,
//! `checkout` and `legacy-web`.
//!
//! Every response carries the backend's identity (`x-service`, `x-backend`). `/healthz`
//! answers at once; everything else waits the backend's sampled latency first, so the
//! latency a shopper sees is the backend's, not the handler's.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};

use super::backend::{BackendState, Body};
use super::cart::{self, CartLine};
use super::catalog;
use super::service::{BACKEND_HEADER, HEALTH_PATH, SERVICE_HEADER, ServiceKind};

/// Largest accepted request body (16 KiB): a cart line is a few dozen bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

const HTML: &str = "text/html; charset=utf-8";
const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";

/// Answer one request as `state`'s backend.
pub(crate) async fn handle(state: &BackendState, request: Request<Incoming>) -> Response<Body> {
    state.served.fetch_add(1, Ordering::Relaxed);
    if request.uri().path() == HEALTH_PATH {
        return if state.is_healthy() {
            respond(state, StatusCode::OK, TEXT, "ok")
        } else {
            respond(state, StatusCode::SERVICE_UNAVAILABLE, TEXT, "unhealthy")
        };
    }
    if !state.latency.is_instant() {
        let delay = state.latency.sample(&mut fastrand::Rng::new());
        tokio::time::sleep(delay).await;
    }
    if state.is_failing() {
        return respond(
            state,
            StatusCode::INTERNAL_SERVER_ERROR,
            TEXT,
            "backend failing",
        );
    }
    match state.service {
        ServiceKind::Web => web(state, &request),
        ServiceKind::Catalog => catalog_page(state, &request),
        ServiceKind::Cart => cart_page(state, request).await,
        ServiceKind::Checkout => checkout(state, &request),
        ServiceKind::LegacyWeb => legacy(state, &request),
    }
}

fn web(state: &BackendState, request: &Request<Incoming>) -> Response<Body> {
    if request.method() != Method::GET {
        return method_not_allowed(state, "GET");
    }
    let path = request.uri().path();
    if path == "/" {
        return respond(state, StatusCode::OK, HTML, STOREFRONT_PAGE);
    }
    match path.strip_prefix("/static/") {
        Some(asset) if asset.ends_with(".css") => respond(
            state,
            StatusCode::OK,
            "text/css",
            "body{font-family:sans-serif}",
        ),
        Some(asset) if asset.ends_with(".js") => respond(
            state,
            StatusCode::OK,
            "application/javascript",
            "document.title='Shop';",
        ),
        Some(_) => respond(state, StatusCode::OK, "application/octet-stream", "asset"),
        None => not_found(state),
    }
}

fn catalog_page(state: &BackendState, request: &Request<Incoming>) -> Response<Body> {
    if request.method() != Method::GET {
        return method_not_allowed(state, "GET");
    }
    let path = request.uri().path();
    if path == "/catalog" {
        return respond(state, StatusCode::OK, JSON, state.catalog_json.clone());
    }
    let item = path
        .strip_prefix("/catalog/items/")
        .and_then(|id| id.parse::<u32>().ok())
        .and_then(catalog::item);
    match item.and_then(|item| serde_json::to_vec(&item).ok()) {
        Some(body) => respond(state, StatusCode::OK, JSON, body),
        None => not_found(state),
    }
}

/// `POST /cart/items` body.
#[derive(Deserialize)]
struct AddItem {
    sku: String,
    qty: u32,
}

/// `GET /cart` and `POST /cart/items` answer.
#[derive(Serialize)]
struct CartView<'a> {
    cart_id: Option<&'a str>,
    backend: &'a str,
    items: Vec<CartLine>,
}

async fn cart_page(state: &BackendState, request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path();
    let cart_id = cart::cart_id(request.headers()).map(str::to_owned);
    match (request.method(), path) {
        (&Method::GET, "/cart") => {
            let items = cart_id
                .as_deref()
                .map(|id| state.carts.lines(id))
                .unwrap_or_default();
            cart_json(state, cart_id.as_deref(), items)
        }
        (&Method::POST, "/cart/items") => {
            let Some(cart_id) = cart_id else {
                return error(
                    state,
                    StatusCode::BAD_REQUEST,
                    "a cart_id cookie is required",
                );
            };
            let body = match Limited::new(request.into_body(), MAX_BODY_BYTES)
                .collect()
                .await
            {
                Ok(collected) => collected.to_bytes(),
                Err(_) => {
                    return error(
                        state,
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "body unreadable or too large",
                    );
                }
            };
            let add: AddItem = match serde_json::from_slice(&body) {
                Ok(add) => add,
                Err(_) => {
                    return error(
                        state,
                        StatusCode::BAD_REQUEST,
                        "expected {\"sku\":..,\"qty\":..}",
                    );
                }
            };
            if !catalog::is_known_sku(&add.sku) || add.qty == 0 {
                return error(
                    state,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "unknown sku or zero qty",
                );
            }
            match state.carts.add(&cart_id, &add.sku, add.qty) {
                Ok(items) => cart_json(state, Some(&cart_id), items),
                Err(reason) => error(state, StatusCode::UNPROCESSABLE_ENTITY, &reason.to_string()),
            }
        }
        (_, "/cart") => method_not_allowed(state, "GET"),
        (_, "/cart/items") => method_not_allowed(state, "POST"),
        _ => not_found(state),
    }
}

fn cart_json(state: &BackendState, cart_id: Option<&str>, items: Vec<CartLine>) -> Response<Body> {
    let view = CartView {
        cart_id,
        backend: &state.name,
        items,
    };
    match serde_json::to_vec(&view) {
        Ok(body) => respond(state, StatusCode::OK, JSON, body),
        Err(_) => error(
            state,
            StatusCode::INTERNAL_SERVER_ERROR,
            "cart not serializable",
        ),
    }
}

#[derive(Serialize)]
struct Order<'a> {
    order_id: String,
    cart_id: &'a str,
    backend: &'a str,
}

fn checkout(state: &BackendState, request: &Request<Incoming>) -> Response<Body> {
    if request.uri().path() != "/checkout" {
        return not_found(state);
    }
    if request.method() != Method::POST {
        return method_not_allowed(state, "POST");
    }
    let Some(cart_id) = cart::cart_id(request.headers()) else {
        return error(
            state,
            StatusCode::BAD_REQUEST,
            "a cart_id cookie is required",
        );
    };
    let number = state.orders.fetch_add(1, Ordering::Relaxed) + 1;
    let order = Order {
        order_id: format!("ord-{}-{number:06}", state.name),
        cart_id,
        backend: &state.name,
    };
    match serde_json::to_vec(&order) {
        Ok(body) => respond(state, StatusCode::OK, JSON, body),
        Err(_) => error(
            state,
            StatusCode::INTERNAL_SERVER_ERROR,
            "order not serializable",
        ),
    }
}

/// The retired storefront: happily answers 200 with its old page, whatever was asked —
/// except its API, which the new paths never existed in.
fn legacy(state: &BackendState, request: &Request<Incoming>) -> Response<Body> {
    if request.uri().path().starts_with("/api/") {
        return not_found(state);
    }
    respond(state, StatusCode::OK, HTML, LEGACY_PAGE)
}

/// The `GET /catalog` body, built once per backend.
pub(crate) fn catalog_listing() -> Bytes {
    #[derive(Serialize)]
    struct Listing {
        items: Vec<catalog::Item>,
    }
    serde_json::to_vec(&Listing {
        items: catalog::all_items(),
    })
    .map(Bytes::from)
    .unwrap_or_default()
}

fn respond(
    state: &BackendState,
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(SERVICE_HEADER, state.service_value.clone());
    headers.insert(BACKEND_HEADER, state.backend_value.clone());
    response
}

fn error(state: &BackendState, status: StatusCode, reason: &str) -> Response<Body> {
    let body = serde_json::json!({ "error": reason }).to_string();
    respond(state, status, JSON, body)
}

fn not_found(state: &BackendState) -> Response<Body> {
    error(state, StatusCode::NOT_FOUND, "not found")
}

fn method_not_allowed(state: &BackendState, allow: &'static str) -> Response<Body> {
    let mut response = error(state, StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    response
}

const STOREFRONT_PAGE: &str = "<!doctype html>\n<html><head><title>Shop</title>\
<link rel=\"stylesheet\" href=\"/static/app.css\"></head>\
<body><h1>Shop</h1><a href=\"/catalog\">Catalog</a> <a href=\"/cart\">Cart</a>\
<script src=\"/static/app.js\"></script></body></html>\n";

const LEGACY_PAGE: &str = "<HTML><HEAD><TITLE>ShopOld 2009 - Welcome!</TITLE></HEAD>\
<BODY BGCOLOR=\"#FFFFFF\"><CENTER><FONT FACE=\"Verdana\">\
<H1>Welcome to ShopOld!</H1><P>Best viewed in Internet Explorer 6 at 800x600.</P>\
</FONT></CENTER></BODY></HTML>\n";
