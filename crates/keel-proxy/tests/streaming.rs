//! Bodies stream through Keel in both directions, never buffered whole.
//!
//! Each test moves 100 MB. The first 4 MB go in lockstep: the sender sends 1 MB and
//! waits until the other end has *received* it before sending more. A proxy that
//! buffered a body before forwarding it would never deliver that first megabyte, and
//! the test would fail on its deadline. The resident memory of the whole test process
//! (client, Keel and backend) is sampled throughout and must stay far below 100 MB.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use support::*;
use tokio::sync::mpsc;

/// Total bytes per test (100 MiB).
const TOTAL: u64 = 100 * 1024 * 1024;
/// Frame size (64 KiB).
const FRAME: usize = 64 * 1024;
/// Bytes sent in lockstep at the start (4 MiB, in 1 MiB steps).
const LOCKSTEP: u64 = 4 * 1024 * 1024;
const STEP: u64 = 1024 * 1024;
/// Most the process may grow while streaming (48 MiB): a buffered body is 100 MiB.
const MAX_GROWTH: u64 = 48 * 1024 * 1024;

/// The byte expected at `offset`: a pattern that exposes lost, repeated or swapped frames.
fn pattern(offset: u64) -> u8 {
    (offset % 251) as u8
}

fn frame_at(offset: u64) -> Bytes {
    let len = (TOTAL - offset).min(FRAME as u64);
    (0..len).map(|i| pattern(offset + i)).collect()
}

/// Checks a received frame at `offset` (first, middle and last byte).
fn check(frame: &[u8], offset: u64) {
    for i in [0, frame.len() / 2, frame.len().saturating_sub(1)] {
        if let Some(byte) = frame.get(i) {
            assert_eq!(
                *byte,
                pattern(offset + i as u64),
                "wrong byte at {}",
                offset + i as u64
            );
        }
    }
}

/// Sends the pattern into `frames`; the first [`LOCKSTEP`] bytes one [`STEP`] at a time,
/// each only after `received` shows the previous one arrived at the far end.
async fn produce(frames: mpsc::Sender<Bytes>, received: Arc<AtomicU64>) {
    let mut offset = 0;
    while offset < TOTAL {
        if offset < LOCKSTEP && offset > 0 && offset % STEP == 0 {
            let want = offset;
            eventually(
                WAIT,
                "the far end received the first megabytes while we were still sending",
                || {
                    let received = received.clone();
                    async move { received.load(SeqCst) >= want }
                },
            )
            .await;
        }
        let frame = frame_at(offset);
        offset += frame.len() as u64;
        if frames.send(frame).await.is_err() {
            return;
        }
    }
}

/// Resident set size of this process, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Samples RSS until stopped; returns the peak.
fn watch_rss() -> (Arc<AtomicBool>, tokio::task::JoinHandle<u64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let task = tokio::spawn(async move {
        let mut peak = 0;
        while !stopped.load(SeqCst) {
            peak = peak.max(rss());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        peak.max(rss())
    });
    (stop, task)
}

fn one_pool(backend: &TestBackend) -> String {
    with_listener(&format!(
        "[services.web]\n\n{}\n[[routes]]\nname = \"web\"\nservice = \"web\"\npool = \"web\"\ntimeout = \"60s\"\n",
        pool("web", "web", &[backend], "")
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mb_upload_streams_through_with_bounded_memory() {
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let backend = TestBackend::with_handler("sink", move |request| {
        let counter = counter.clone();
        async move {
            let mut body = request.into_body();
            let mut offset = 0u64;
            while let Some(frame) = http_body_util::BodyExt::frame(&mut body).await {
                let Ok(frame) = frame else { break };
                if let Some(data) = frame.data_ref() {
                    check(data, offset);
                    offset += data.len() as u64;
                    counter.store(offset, SeqCst);
                }
            }
            Response::new(http_body_util::Full::new(Bytes::from(offset.to_string())))
        }
    })
    .await;
    let proxy = TestProxy::start(&one_pool(&backend)).await;
    let baseline = rss();
    let (stop, peak) = watch_rss();
    let (frames, source) = mpsc::channel(4);
    // No length announced: the upload is chunked end to end.
    let body = ChannelBody {
        frames: source,
        length: None,
    };
    let client: Client<_, ChannelBody> = Client::builder(TokioExecutor::new()).build_http();
    let request = Request::post(proxy.url("/upload"))
        .body(body)
        .expect("request");
    let producer = tokio::spawn(produce(frames, received.clone()));
    let response = tokio::time::timeout(Duration::from_secs(120), client.request(request))
        .await
        .expect("upload finished in time")
        .expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .expect("body")
        .to_bytes();
    producer.await.expect("producer");
    stop.store(true, SeqCst);
    let peak = peak.await.expect("rss watcher");
    assert_eq!(String::from_utf8_lossy(&body), TOTAL.to_string());
    let growth = peak.saturating_sub(baseline);
    assert!(
        growth < MAX_GROWTH,
        "the process grew by {} MiB while uploading",
        growth >> 20
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mb_download_streams_through_with_bounded_memory() {
    let received = Arc::new(AtomicU64::new(0));
    let progress = received.clone();
    let backend = TestBackend::with_handler("source", move |_request| {
        let progress = progress.clone();
        async move {
            let (frames, source) = mpsc::channel(4);
            tokio::spawn(produce(frames, progress));
            let body = ChannelBody {
                frames: source,
                length: Some(TOTAL),
            };
            let (parts, ()) = Response::new(()).into_parts();
            Response::from_parts(parts, body)
        }
    })
    .await;
    let proxy = TestProxy::start(&one_pool(&backend)).await;
    let baseline = rss();
    let (stop, peak) = watch_rss();
    let response = tokio::time::timeout(
        WAIT,
        client().get(proxy.url("/download").parse().expect("uri")),
    )
    .await
    .expect("head in time")
    .expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-length"],
        TOTAL.to_string().as_str()
    );
    let mut body = response.into_body();
    let mut offset = 0u64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while let Some(frame) =
        tokio::time::timeout_at(deadline, http_body_util::BodyExt::frame(&mut body))
            .await
            .expect("download finished in time")
    {
        let frame = frame.expect("frame");
        if let Some(data) = frame.data_ref() {
            check(data, offset);
            offset += data.len() as u64;
            received.store(offset, SeqCst);
        }
    }
    stop.store(true, SeqCst);
    let peak = peak.await.expect("rss watcher");
    assert_eq!(offset, TOTAL);
    let growth = peak.saturating_sub(baseline);
    assert!(
        growth < MAX_GROWTH,
        "the process grew by {} MiB while downloading",
        growth >> 20
    );
}
