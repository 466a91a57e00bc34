//! K219 on one config: its rate limits replayed on a sample with arrival times. A limit
//! below the observed rate is a warning at the limit, with the refused share; a limit
//! above it, clients its address rule refuses first, and a limit the sample cannot key
//! are not.

mod common;

use keel_config::{Config, Severity, codes};
use keel_impact::rate_limit_findings;
use keel_route::RequestShape;

fn config(route_extra: &str) -> Config {
    common::two_routes("", route_extra)
}

/// 40 requests to shop.example.com one every 10 ms (20 from 10.0.0.1, 20 from
/// 192.0.2.1, interleaved), and 40 to another host at the same pace.
fn sample() -> Vec<RequestShape> {
    let mut out = Vec::new();
    for i in 0..40u64 {
        let mut request = RequestShape::new("GET", "shop.example.com", "/");
        let client = if i % 2 == 0 { "10.0.0.1" } else { "192.0.2.1" };
        request.client = client.parse().ok();
        request.at_ms = Some(1_000_000 + i * 10);
        out.push(request);
        let mut other = RequestShape::new("GET", "other.example.com", "/");
        other.client = "10.0.0.1".parse().ok();
        other.at_ms = Some(1_000_000 + i * 10);
        out.push(other);
    }
    out
}

#[test]
fn a_limit_below_the_sampled_rate_is_a_warning_at_the_limit_with_the_refused_share() {
    let line = "rate_limit = { requests = 5, per = \"1s\", burst = 5, key = \"client_ip\" }";
    let config = config(line);
    let findings = rate_limit_findings(&config, &sample());
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let finding = &findings[0];
    assert_eq!(
        (finding.code, finding.severity),
        (codes::RATE_LIMIT_BELOW_TRAFFIC, Severity::Warning)
    );
    // Each client: 20 requests in 380 ms against a bucket of 5 refilled at 5/s, so 5
    // served at once and 1 more refilled (at 200 ms): 14 of 20 refused each.
    assert!(
        finding.message.contains(
            "route `shop`'s rate limit (5/1s burst 5 by client_ip) would have answered 429 to \
             70.0% of its 40 sampled requests"
        ),
        "{}",
        finding.message
    );
    let limit = config.routes[0].rate_limit.as_ref().expect("limit");
    assert_eq!(finding.span, Some(limit.span), "points at the limit");
    assert_eq!(
        finding.data.as_ref().map(|d| d["refused"].clone()),
        Some(28.into())
    );
}

#[test]
fn a_limit_keyed_on_the_route_counts_every_client_together() {
    let config =
        config("rate_limit = { requests = 50, per = \"1s\", burst = 10, key = \"route\" }");
    let findings = rate_limit_findings(&config, &sample());
    assert_eq!(findings.len(), 1, "{findings:#?}");
    // One bucket of 10 for 40 requests in 390 ms refilled at 50/s: 10 + 19 served.
    assert!(
        findings[0].message.contains("to 27.5% of its 40"),
        "{}",
        findings[0].message
    );
}

#[test]
fn a_limit_above_the_sampled_rate_is_silent() {
    let config =
        config("rate_limit = { requests = 100, per = \"1s\", burst = 50, key = \"client_ip\" }");
    assert!(rate_limit_findings(&config, &sample()).is_empty());
}

#[test]
fn clients_the_address_rule_refuses_first_do_not_count() {
    // Only 192.0.2.1's 20 requests reach the limit, and its bucket refuses 14 of them
    // as above.
    let config = config(
        "deny = [\"10.0.0.0/8\"]\n\
         rate_limit = { requests = 5, per = \"1s\", burst = 5, key = \"client_ip\" }",
    );
    let findings = rate_limit_findings(&config, &sample());
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert!(
        findings[0].message.contains("70.0% of its 20 sampled"),
        "{}",
        findings[0].message
    );
}

#[test]
fn a_limit_the_sample_cannot_key_is_a_note_not_a_warning() {
    let config = config("rate_limit = { requests = 1, per = \"1s\", key = \"header:x-api-key\" }");
    let findings = rate_limit_findings(&config, &sample());
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].severity, Severity::Note);
    assert!(
        findings[0].message.contains("not replayed"),
        "{}",
        findings[0].message
    );
}

#[test]
fn requests_without_arrival_times_are_not_replayed() {
    let mut sample = sample();
    for request in &mut sample {
        request.at_ms = None;
    }
    let config = config("rate_limit = { requests = 1, per = \"1s\", burst = 1, key = \"route\" }");
    let findings = rate_limit_findings(&config, &sample);
    assert!(
        findings.iter().all(|f| f.severity == Severity::Note),
        "{findings:#?}"
    );
}
