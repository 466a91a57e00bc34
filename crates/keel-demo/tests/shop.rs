//! The simulated shop over real loopback sockets: identities, health, kill, cart state.

mod support;

use std::time::Duration;

use http::{Method, StatusCode};
use keel_demo::shop::{BACKEND_HEADER, SERVICE_HEADER, ServiceKind, Shop, ShopConfig, ShopError};
use support::{eventually, get, send};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn fast_shop() -> Shop {
    Shop::start(ShopConfig::fast()).await.expect("shop starts")
}

#[tokio::test]
async fn every_backend_names_itself_and_answers_healthz() {
    let shop = fast_shop().await;
    let backends = shop.backends();
    assert_eq!(
        backends.len(),
        13,
        "3 web, 2 catalog, 3 cart, 2 checkout, 3 legacy-web"
    );
    for service in ServiceKind::ALL {
        assert!(
            shop.addrs(service).len() >= 2,
            "{service} has two or more backends"
        );
    }
    for backend in &backends {
        let reply = get(backend.addr, "/healthz").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", backend.name);
        assert_eq!(&reply.body[..], b"ok");
        assert_eq!(reply.header(SERVICE_HEADER), backend.service.name());
        assert_eq!(reply.header(BACKEND_HEADER), backend.name);
        assert!(backend.addr.ip().is_loopback());
    }
}

#[tokio::test]
async fn each_service_answers_its_own_paths() {
    let shop = fast_shop().await;
    let addr = |service| shop.addr(service, 1).expect("backend 1");

    let home = get(addr(ServiceKind::Web), "/").await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&home.body).contains("<h1>Shop</h1>"));
    let css = get(addr(ServiceKind::Web), "/static/app.css").await;
    assert_eq!(
        (css.status, css.header("content-type")),
        (StatusCode::OK, "text/css")
    );
    assert_eq!(
        get(addr(ServiceKind::Web), "/nope").await.status,
        StatusCode::NOT_FOUND
    );

    let listing = get(addr(ServiceKind::Catalog), "/catalog").await;
    assert_eq!(listing.json()["items"].as_array().map(Vec::len), Some(48));
    let item = get(addr(ServiceKind::Catalog), "/catalog/items/7").await;
    assert_eq!(item.json()["sku"], "sku-0007");
    assert_eq!(
        get(addr(ServiceKind::Catalog), "/catalog/items/999")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(addr(ServiceKind::Catalog), "/catalog/items/x")
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    let order = send(
        addr(ServiceKind::Checkout),
        Method::POST,
        "/checkout",
        Some("c1"),
        "",
    )
    .await;
    assert_eq!(order.status, StatusCode::OK);
    assert!(
        order.json()["order_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("ord-checkout-1-"))
    );
    let anonymous = send(
        addr(ServiceKind::Checkout),
        Method::POST,
        "/checkout",
        None,
        "",
    )
    .await;
    assert_eq!(anonymous.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        get(addr(ServiceKind::Checkout), "/checkout").await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[tokio::test]
async fn the_legacy_fleet_is_another_application_that_answers_200() {
    let shop = fast_shop().await;
    let legacy = shop.addr(ServiceKind::LegacyWeb, 2).expect("legacy-web-2");
    for (method, path) in [
        (Method::GET, "/"),
        (Method::GET, "/cart"),
        (Method::POST, "/cart/items"),
        (Method::POST, "/checkout"),
    ] {
        let reply = send(
            legacy,
            method,
            path,
            Some("c1"),
            r#"{"sku":"sku-0001","qty":1}"#,
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert_eq!(reply.header(SERVICE_HEADER), "legacy-web");
        assert_eq!(reply.header(BACKEND_HEADER), "legacy-web-2");
        assert!(String::from_utf8_lossy(&reply.body).contains("ShopOld"));
    }
    let api = get(legacy, "/api/v2/cart").await;
    assert_eq!(
        (api.status, api.header(SERVICE_HEADER)),
        (StatusCode::NOT_FOUND, "legacy-web")
    );
}

#[tokio::test]
async fn cart_state_lives_in_one_backend() {
    let shop = fast_shop().await;
    let cart1 = shop.addr(ServiceKind::Cart, 1).expect("cart-1");
    let cart2 = shop.addr(ServiceKind::Cart, 2).expect("cart-2");
    let add =
        |addr, body: &'static str| send(addr, Method::POST, "/cart/items", Some("shopper-1"), body);

    let added = add(cart1, r#"{"sku":"sku-0003","qty":2}"#).await;
    assert_eq!(added.status, StatusCode::OK);
    add(cart1, r#"{"sku":"sku-0003","qty":1}"#).await;

    let same = send(cart1, Method::GET, "/cart", Some("shopper-1"), "").await;
    assert_eq!(
        same.json()["items"],
        serde_json::json!([{ "sku": "sku-0003", "qty": 3 }])
    );
    assert_eq!(same.json()["backend"], "cart-1");
    let other = send(cart2, Method::GET, "/cart", Some("shopper-1"), "").await;
    assert_eq!(other.status, StatusCode::OK);
    assert_eq!(other.json()["items"], serde_json::json!([]));
    let stranger = send(cart1, Method::GET, "/cart", Some("shopper-2"), "").await;
    assert_eq!(stranger.json()["items"], serde_json::json!([]));
    assert_eq!(shop.carts_held(ServiceKind::Cart, 1).ok(), Some(1));
    assert_eq!(shop.carts_held(ServiceKind::Cart, 2).ok(), Some(0));
}

#[tokio::test]
async fn bad_cart_requests_get_clear_errors() {
    let shop = fast_shop().await;
    let cart = shop.addr(ServiceKind::Cart, 1).expect("cart-1");
    let post = |cart_id, body: String| async move {
        send(cart, Method::POST, "/cart/items", cart_id, &body)
            .await
            .status
    };
    assert_eq!(
        post(None, r#"{"sku":"sku-0001","qty":1}"#.into()).await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        post(Some("c"), "not json".into()).await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        post(Some("c"), r#"{"sku":"sku-9999","qty":1}"#.into()).await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        post(Some("c"), r#"{"sku":"sku-0001","qty":0}"#.into()).await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        post(Some("c"), "x".repeat(20_000)).await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_eq!(shop.carts_held(ServiceKind::Cart, 1).ok(), Some(0));
}

#[tokio::test]
async fn health_and_failure_switches_flip_at_runtime() {
    let shop = fast_shop().await;
    let web2 = shop.addr(ServiceKind::Web, 2).expect("web-2");

    shop.set_healthy(ServiceKind::Web, 2, false)
        .expect("web-2 exists");
    let sick = get(web2, "/healthz").await;
    assert_eq!(
        (sick.status, sick.header(BACKEND_HEADER)),
        (StatusCode::SERVICE_UNAVAILABLE, "web-2")
    );
    assert_eq!(
        get(web2, "/").await.status,
        StatusCode::OK,
        "traffic still answered"
    );
    assert_eq!(
        get(shop.addr(ServiceKind::Web, 1).expect("web-1"), "/healthz")
            .await
            .status,
        StatusCode::OK
    );
    shop.set_healthy(ServiceKind::Web, 2, true)
        .expect("web-2 exists");
    assert_eq!(get(web2, "/healthz").await.status, StatusCode::OK);

    shop.set_failing(ServiceKind::Web, 2, true)
        .expect("web-2 exists");
    assert_eq!(
        get(web2, "/").await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(get(web2, "/healthz").await.status, StatusCode::OK);
    assert_eq!(
        shop.served(ServiceKind::Web, 2).ok(),
        Some(5),
        "three health checks, two pages"
    );

    assert!(matches!(
        shop.set_healthy(ServiceKind::Cart, 9, false),
        Err(ShopError::NoSuchBackend { number: 9, .. })
    ));
}

#[tokio::test]
async fn kill_closes_the_port_and_open_connections() {
    let shop = fast_shop().await;
    let cart3 = shop.addr(ServiceKind::Cart, 3).expect("cart-3");
    // A keep-alive connection that has already been served once.
    let mut open = TcpStream::connect(cart3).await.expect("connect");
    open.write_all(b"GET /healthz HTTP/1.1\r\nhost: shop.example.com\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 512];
    let n = open.read(&mut buf).await.expect("read");
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));

    shop.kill(ServiceKind::Cart, 3)
        .await
        .expect("cart-3 exists");
    assert!(
        !shop
            .is_running(ServiceKind::Cart, 3)
            .expect("cart-3 exists")
    );
    assert!(
        TcpStream::connect(cart3).await.is_err(),
        "nothing listens on a killed backend"
    );
    // The open connection is closed by the kill (EOF or reset), within a bounded time.
    let closed = tokio::time::timeout(Duration::from_secs(2), open.read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");

    assert!(
        shop.is_running(ServiceKind::Cart, 1)
            .expect("cart-1 exists")
    );
    assert_eq!(
        get(shop.addr(ServiceKind::Cart, 1).expect("cart-1"), "/healthz")
            .await
            .status,
        StatusCode::OK
    );
    shop.kill(ServiceKind::Cart, 3)
        .await
        .expect("killing twice is harmless");
}

#[tokio::test]
async fn shutdown_closes_every_port() {
    let shop = fast_shop().await;
    let addrs: Vec<_> = shop.backends().into_iter().map(|b| b.addr).collect();
    shop.shutdown().await;
    for addr in addrs {
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "{addr} still listens"
        );
    }
}

#[tokio::test]
async fn dropping_the_shop_stops_it() {
    let shop = fast_shop().await;
    let addr = shop.addr(ServiceKind::Web, 1).expect("web-1");
    drop(shop);
    let closed = eventually(Duration::from_secs(2), || {
        std::net::TcpStream::connect(addr).is_err()
    })
    .await;
    assert!(closed, "web-1 still listens after the shop was dropped");
}

#[tokio::test]
async fn bad_fleets_are_refused() {
    let zero = ShopConfig::fast().with_backends(ServiceKind::Cart, 0);
    assert!(matches!(
        Shop::start(zero).await,
        Err(ShopError::FleetSize { backends: 0, .. })
    ));
    let mut twice = ShopConfig::fast();
    twice.fleets.push(twice.fleets[0].clone());
    assert!(matches!(
        Shop::start(twice).await,
        Err(ShopError::DuplicateFleet(ServiceKind::Web))
    ));
}
