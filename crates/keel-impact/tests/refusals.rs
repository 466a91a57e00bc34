//! Policies in the blast radius: a new `deny` and a too-low rate limit are replayed on
//! sampled requests that carry their client address and arrival time, reported per
//! host, and refused by the gate above `max_shift`.

mod common;

use keel_config::Config;
use keel_impact::{GateReason, blast_radius, gate_change};
use keel_route::RequestShape;

fn config(route_extra: &str) -> Config {
    common::two_routes("[safety]\nmax_shift = 0.1\n\n", route_extra)
}

/// 50 requests to shop.example.com, 19 of them from 10.0.0.0/8, one every 10 ms; and
/// 10 to another host.
fn sample() -> Vec<RequestShape> {
    let mut out = Vec::new();
    for i in 0..50u64 {
        let mut request = RequestShape::new("GET", "shop.example.com", "/");
        let client = if i < 19 {
            format!("10.0.0.{i}")
        } else {
            format!("192.0.2.{i}")
        };
        request.client = client.parse().ok();
        request.at_ms = Some(1_000_000 + i * 10);
        out.push(request);
    }
    for i in 0..10u64 {
        let mut request = RequestShape::new("GET", "other.example.com", "/");
        request.client = "10.9.9.9".parse().ok();
        request.at_ms = Some(1_000_000 + i);
        out.push(request);
    }
    out
}

#[test]
fn a_new_deny_is_replayed_on_sampled_clients_and_refused_by_the_gate() {
    let (old, new) = (config(""), config("deny = [\"10.0.0.0/8\"]"));
    let report = blast_radius(&old, &new, &sample()).expect("report");
    assert_eq!(report.refusals.len(), 1, "only shop.example.com is refused");
    let refused = &report.refusals[0];
    assert_eq!((refused.newly_refused, refused.requests), (19, 50));
    assert_eq!(refused.by, ["route `shop`'s deny list"]);
    let text = report.render_human();
    assert!(
        text.contains(
            "the new policies would refuse 38.0% of sampled requests to shop.example.com (19 of 50"
        ),
        "{text}"
    );
    let verdict = gate_change(&report, &old, &new);
    assert!(!verdict.allowed);
    assert!(
        verdict
            .reasons
            .iter()
            .any(|r| matches!(r, GateReason::PolicyRefusals { refusals, .. } if refusals.host == "shop.example.com")),
        "{:#?}",
        verdict.reasons
    );
    // Removing the rule refuses nothing new; a narrow rule stays under max_shift.
    assert!(
        blast_radius(&new, &old, &sample())
            .expect("report")
            .refusals
            .is_empty()
    );
    let narrow = config("deny = [\"10.0.0.3\"]");
    let verdict = gate_change(
        &blast_radius(&old, &narrow, &sample()).expect("r"),
        &old,
        &narrow,
    );
    assert!(verdict.allowed, "{}", verdict.render_human());
}

#[test]
fn a_too_low_rate_limit_is_replayed_in_arrival_order() {
    let old = config("");
    // The whole route may take 1 request per second after a burst of 5: of 50 requests
    // within half a second, 45 are refused.
    let new = config("rate_limit = { requests = 1, per = \"1s\", burst = 5, key = \"route\" }");
    let report = blast_radius(&old, &new, &sample()).expect("report");
    let refused = &report.refusals[0];
    assert_eq!((refused.newly_refused, refused.requests), (45, 50));
    assert_eq!(refused.by, ["route `shop`'s rate limit"]);
    assert!(!gate_change(&report, &old, &new).allowed);
    // Per client, every client sends once: nothing is refused.
    let per_client = config("rate_limit = { requests = 1, per = \"1s\", key = \"client_ip\" }");
    assert!(
        blast_radius(&old, &per_client, &sample())
            .expect("r")
            .refusals
            .is_empty()
    );
}

/// [`config`] with an intent bounding refusals on shop.example.com, and a `max_shift`
/// high enough that only the intent can refuse.
fn bounded(route_extra: &str, max_refused: f64) -> Config {
    let text = format!(
        "[listeners.web]\naddr = \"127.0.0.1:8080\"\n\n[services.web]\n\n\
         [pools.web]\nservice = \"web\"\nbackends = [\"127.0.0.1:9001\"]\n\n\
         [safety]\nmax_shift = 0.9\n\n\
         [[routes]]\nname = \"shop\"\nhost = \"shop.example.com\"\nservice = \"web\"\npool = \"web\"\n{route_extra}\n\n\
         [[routes]]\nname = \"rest\"\nservice = \"web\"\npool = \"web\"\n\n\
         [[intents]]\nhost = \"shop.example.com\"\nmax_refused = {max_refused}\n"
    );
    let parsed = keel_config::parse(&text);
    assert!(!parsed.has_errors(), "{:#?}", parsed.diagnostics);
    parsed.config
}

#[test]
fn an_intent_bounds_the_share_of_its_requests_the_policies_refuse() {
    let old = bounded("", 0.01);
    let new = bounded("deny = [\"10.0.0.0/8\"]", 0.01);
    let report = blast_radius(&old, &new, &sample()).expect("report");
    let scope = &report.intent_refusals[0];
    assert_eq!(
        (scope.refused, scope.old_refused, scope.requests),
        (19, 0, 50)
    );
    assert_eq!(scope.by, ["route `shop`'s deny list"]);
    assert_eq!(scope.witnesses.len(), keel_impact::MAX_SCOPE_WITNESSES);
    let verdict = gate_change(&report, &old, &new);
    assert!(!verdict.allowed);
    let text = verdict.render_human();
    assert!(
        text.contains("policies may refuse at most 1.0% of requests to shop.example.com; with the new config they refuse 38.0% of the 50 sampled ones (was 0.0%), by route `shop`'s deny list; e.g. `GET shop.example.com/`"),
        "{text}"
    );
    // Under max_shift (0.9) alone the same change passes: the intent is what refused it.
    let loose = bounded("deny = [\"10.0.0.0/8\"]", 0.5);
    let verdict = gate_change(
        &blast_radius(&bounded("", 0.5), &loose, &sample()).expect("r"),
        &bounded("", 0.5),
        &loose,
    );
    assert!(verdict.allowed, "{}", verdict.render_human());
    // The old config's intent still binds a change that deletes it.
    let mut unbounded = new.clone();
    unbounded.intents.clear();
    let verdict = gate_change(
        &blast_radius(&old, &unbounded, &sample()).expect("r"),
        &old,
        &unbounded,
    );
    assert!(
        verdict.reasons.iter().any(
            |r| matches!(r, GateReason::RefusalIntent { max_refused, .. } if *max_refused == 0.01)
        ),
        "{:#?}",
        verdict.reasons
    );
}
