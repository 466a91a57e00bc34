//! The watcher outside applies, on real sockets: the Prometheus exposition, the
//! background watch, and webhook delivery with a retry.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use keel_watch::{Delivery, Detector, Phase, Watcher, names};
use support::{Backends, Proxy, Variant, eventually, load, shop_config};
use tokio::net::TcpListener;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_expose_requests_per_generation_backend_states_and_control_counters() {
    let backends = Backends::start().await;
    let config = shop_config(&backends, Variant::Good, false, None);
    let proxy = Proxy::start(&config).await;
    let first = proxy.compile(1, config.clone());
    proxy.plane.activate(first.clone());
    let (watcher, _) = Watcher::start(proxy.plane.clone(), &[]);
    load(proxy.addr, 100, Duration::from_secs(1)).await;
    // A canary generation serving half the requests.
    let second = proxy.compile(2, shop_config(&backends, Variant::Harmless, false, None));
    proxy.plane.set_canary(Some(keel_proxy::Canary {
        generation: second,
        permille: 500,
    }));
    load(proxy.addr, 100, Duration::from_secs(1)).await;
    watcher.metrics().record_apply();
    watcher
        .metrics()
        .record_rollback(keel_watch::RollbackTrigger::Automatic);
    watcher.metrics().record_rejection();

    let text = watcher.metrics_text();
    let web0 = backends.web[0].to_string();
    for expected in [
        format!(
            "keel_requests_total{{generation=\"1\",route=\"web\",pool=\"web\",backend=\"{web0}\",class=\"2xx\"}}"
        ),
        format!(
            "keel_requests_total{{generation=\"2\",route=\"web\",pool=\"web\",backend=\"{web0}\",class=\"2xx\"}}"
        ),
        "keel_request_duration_seconds_bucket{generation=\"1\",route=\"api\",pool=\"api\",le=\"0.001\"}"
            .to_string(),
        format!("keel_backend_state{{pool=\"web\",backend=\"{web0}\",state=\"unknown\"}} 1"),
        format!("keel_backend_state{{pool=\"web\",backend=\"{web0}\",state=\"misidentified\"}} 0"),
        "keel_active_generation 1".to_string(),
        "keel_canary_generation 2".to_string(),
        "keel_canary_permille 500".to_string(),
        "keel_applies_total 1".to_string(),
        "keel_rollbacks_total{trigger=\"automatic\"} 1".to_string(),
        "keel_rejections_total 1".to_string(),
        "keel_detector_firing{detector=\"share\"} 0".to_string(),
        "keel_unrouted_requests_total{generation=\"1\"} 0".to_string(),
        "keel_refused_requests_total{generation=\"1\"} 0".to_string(),
        "keel_stalled_responses_total 0".to_string(),
    ] {
        assert!(text.contains(&expected), "missing `{expected}` in:\n{text}");
    }
    if keel_proxy::listen::listen_overflows().is_some() {
        assert!(
            text.contains("\nkeel_listen_overflows_total "),
            "no listen overflows in:\n{text}"
        );
    }
    // Generation 1 served 100 requests, then about half of the next 100.
    let served: u64 = text
        .lines()
        .filter(|l| l.starts_with("keel_requests_total{generation=\"1\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!((120..=180).contains(&served), "{served}\n{text}");
}

#[test]
fn every_metric_name_is_documented() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/metrics.md"
    ))
    .expect("docs/metrics.md");
    for name in names::ALL {
        assert!(
            doc.contains(&format!("`{name}")),
            "{name} is not in docs/metrics.md"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_watch_alerts_on_a_failing_route_outside_any_apply() {
    let backends = Backends::start().await;
    let config = shop_config(&backends, Variant::BrokenApi, false, None);
    let proxy = Proxy::start(&config).await;
    proxy.plane.activate(proxy.compile(4, config));
    let (watcher, _) = Watcher::start(proxy.plane.clone(), &[]);
    watcher.note_change(4, "route api: pool api → api-broken");
    let traffic = tokio::spawn(load(proxy.addr, 200, Duration::from_secs(3)));
    let alerted = eventually(Duration::from_secs(5), || {
        !watcher.alerts().recent(1).is_empty()
    })
    .await;
    assert!(alerted, "no alert");
    let alert = watcher.alerts().recent(1).remove(0);
    assert_eq!(alert.detector, Detector::Errors);
    assert_eq!(alert.phase, Phase::Continuous);
    assert_eq!(alert.generation, 4);
    assert_eq!(
        alert.preceding_change.as_deref(),
        Some("route api: pool api → api-broken")
    );
    let json = watcher.alerts_json(10);
    assert_eq!(json["alerts"][0]["detector"], "errors");
    traffic.await.expect("load");
    // Repeats are suppressed: one alert per detector, subject and generation.
    assert_eq!(
        watcher
            .alerts()
            .recent(50)
            .iter()
            .filter(|a| a.subject == "route api")
            .count(),
        1
    );
    assert!(
        eventually(Duration::from_secs(2), || watcher.metrics_text().contains(
            "keel_alerts_total{detector=\"errors\",severity=\"critical\"} 1"
        ))
        .await
    );
}

/// No evidence is not good evidence: a harmless change swapped in when the load has
/// stopped gets no request on the routes that had traffic before. Its watch waits past
/// the clock, then ends `Unproven`, naming them, not `Clean`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_without_evidence_ends_unproven_naming_the_routes() {
    let backends = Backends::start().await;
    let config = shop_config(&backends, Variant::Good, false, None);
    let proxy = Proxy::start(&config).await;
    let before = proxy.compile(1, config);
    proxy.plane.activate(before.clone());
    let (watcher, _) = Watcher::start(proxy.plane.clone(), &[]);
    load(proxy.addr, 200, Duration::from_secs(1)).await;
    let after = proxy.compile(2, shop_config(&backends, Variant::Harmless, false, None));
    proxy.plane.activate(after.clone());
    let started = std::time::Instant::now();
    let verdict = watcher
        .watch_apply(keel_watch::WatchRequest {
            baseline: before,
            candidate: after,
            mode: keel_watch::WatchMode::Full,
            duration: Duration::from_millis(500),
            change: "route web: timeout changed".into(),
        })
        .await;
    let keel_watch::WatchVerdict::Unproven { waiting } = verdict else {
        panic!("{verdict:?}");
    };
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "ended by the clock"
    );
    assert!(
        waiting
            .iter()
            .any(|w| w.route == "web" && w.requests == 0 && w.needed == 20),
        "{waiting:?}"
    );
}

/// A webhook receiver that answers 500 to the first POST and 200 after, keeping bodies.
async fn receiver() -> (SocketAddr, Arc<Mutex<Vec<(StatusCode, serde_json::Value)>>>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind receiver");
    let addr = listener.local_addr().expect("receiver addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    keel_testkit::serve(listener, move |request: Request<Incoming>| {
        let log = log.clone();
        async move {
            let body = request
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let json: serde_json::Value =
                serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
            let mut log = log.lock().expect("log");
            let status = if log.is_empty() {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::OK
            };
            log.push((status, json));
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = status;
            response
        }
    });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_get_the_alert_as_json_and_are_retried_after_a_500() {
    let (hook, seen) = receiver().await;
    let backends = Backends::start().await;
    let config = shop_config(&backends, Variant::Good, true, Some(hook));
    let proxy = Proxy::start(&config).await;
    let good = proxy.compile(1, config.clone());
    proxy.plane.activate(good.clone());
    let (watcher, errors) = Watcher::start(proxy.plane.clone(), &config.alerts.webhooks);
    assert!(errors.is_empty(), "{errors:?}");
    load(proxy.addr, 200, Duration::from_secs(1)).await;
    let bad = proxy.compile(
        2,
        shop_config(&backends, Variant::Misroute, true, Some(hook)),
    );
    let traffic = tokio::spawn(load(proxy.addr, 200, Duration::from_secs(2)));
    // The detectors return a verdict; swapping is the controller's (keel-control), so
    // the test swaps by hand to create the misroute it watches.
    proxy.plane.activate(bad.clone());
    let verdict = watcher
        .watch_apply(keel_watch::WatchRequest {
            baseline: good.clone(),
            candidate: bad,
            mode: keel_watch::WatchMode::Full,
            duration: Duration::from_secs(5),
            change: "route web: pool web → split web 30 / legacy 70".into(),
        })
        .await;
    // What the controller's guard does on the verdict: swap the good generation back.
    proxy.plane.activate(good);
    assert!(
        matches!(verdict, keel_watch::WatchVerdict::Alarm { .. }),
        "{verdict:?}"
    );
    traffic.await.expect("load");
    let delivered = eventually(Duration::from_secs(5), || {
        watcher.metrics().deliveries(Delivery::Delivered) == 1
    })
    .await;
    assert!(delivered, "{:?}", seen.lock().expect("seen"));
    let seen = seen.lock().expect("seen").clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].0, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(seen[1].0, StatusCode::OK);
    assert_eq!(seen[0].1, seen[1].1, "a retry resends the same alert");
    let body = &seen[1].1;
    assert_eq!(body["alerts"][0]["labels"]["alertname"], "KeelIdentity");
    assert_eq!(body["alerts"][0]["labels"]["generation"], "2");
    assert_eq!(
        body["keel"]["preceding_change"],
        "route web: pool web → split web 30 / legacy 70"
    );
    assert!(
        body["text"]
            .as_str()
            .is_some_and(|t| t.contains("generation 2"))
    );
    assert_eq!(watcher.metrics().deliveries(Delivery::Retried), 1);
    assert_eq!(watcher.metrics().deliveries(Delivery::Failed), 0);
}
