//! Serving on dedicated threads (`DataPlane::serve_on` with `ServingThreads`, as
//! `keel serve` does): client connections handed out over several single-threaded
//! runtimes, or accepted by the only one, are all answered, with keep-alive, and
//! shutdown drains them all.

mod support;

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use keel_proxy::{DataPlane, DataPlaneOptions, ListenerLimits, ServingThreads};
use support::*;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

#[tokio::test]
async fn connections_spread_over_serving_threads_are_answered_and_drained() {
    serve_and_drain(2).await;
}

#[tokio::test]
async fn a_single_serving_thread_accepts_answers_and_drains() {
    serve_and_drain(1).await;
}

/// Four connections over `count` serving threads, five keep-alive requests on each,
/// then a shutdown that must end `serve_on` cleanly and close the listener.
async fn serve_and_drain(count: usize) {
    let backend = TestBackend::start("a", None).await;
    let config = Arc::new(config(&with_listener(&format!(
        "[services.web]\n\n{}\n[[routes]]\nname = \"web\"\nservice = \"web\"\npool = \"web\"\n",
        pool("web", "web", &[&backend], "")
    ))));
    let plane = DataPlane::new(DataPlaneOptions::from_config(&config)).expect("data plane");
    let generation = plane.compile(1, config.clone()).expect("compile");
    generation.first_probes(WAIT).await;
    plane.activate(generation);
    let threads =
        Arc::new(ServingThreads::start(count, config.server.idle_spin).expect("serving threads"));
    assert_eq!(threads.len(), count);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn({
        let (plane, threads) = (plane.clone(), threads.clone());
        let limits = ListenerLimits::from_server(&config.server);
        async move {
            plane
                .serve_on(
                    listener,
                    limits,
                    async move { drop(stopped.await) },
                    &threads,
                )
                .await
        }
    });

    for _ in 0..4 {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(connection);
        for _ in 0..5 {
            let request = Request::get("/")
                .header("host", "shop")
                .body(Full::new(Bytes::new()))
                .expect("request");
            let response = tokio::time::timeout(WAIT, sender.send_request(request))
                .await
                .expect("answer in time")
                .expect("answer");
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(response.headers()["x-backend"], "a");
            let body = response.into_body().collect().await.expect("body");
            assert!(!body.to_bytes().is_empty());
        }
    }
    assert_eq!(backend.requests(), 20);

    let _ = stop.send(());
    let result = tokio::time::timeout(WAIT, served).await;
    assert!(
        matches!(result, Ok(Ok(Ok(())))),
        "serve_on did not end cleanly: {result:?}"
    );
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener still accepts after shutdown"
    );
}
