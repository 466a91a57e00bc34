//! A redirect route in the blast radius: requests it newly takes land on Keel's own
//! `keel (redirect …)` destination, so they leave their service and the gate counts
//! them against `max_shift`; a redirect limited to the plain listener leaves the
//! requests sampled on the TLS listener where they were.

use keel_impact::{GateReason, blast_radius, gate_change};
use keel_route::RequestShape;

const BASE: &str = r#"
[listeners.http]
addr = "127.0.0.1:8080"
[listeners.https]
addr = "127.0.0.1:8443"
[safety]
max_shift = 0.1
[services.web]
allow_no_identity = true
[pools.web]
service = "web"
backends = ["127.0.0.1:9001"]
"#;

const SHOP: &str =
    "[[routes]]\nname = \"shop\"\nhost = \"shop.example.com\"\nservice = \"web\"\npool = \"web\"\n";

const TO_HTTPS: &str =
    "[[routes]]\nname = \"to-https\"\nlistener = \"http\"\nredirect = { scheme = \"https\" }\n";

fn config(routes: &str) -> keel_config::Config {
    let parsed = keel_config::parse(&format!("{BASE}{routes}"));
    assert!(parsed.diagnostics.is_empty(), "{:#?}", parsed.diagnostics);
    parsed.config
}

/// `plain` requests sampled on the plain listener and `tls` on the other one.
fn sample(plain: usize, tls: usize) -> Vec<RequestShape> {
    let on = |listener: &str| {
        let mut request = RequestShape::new("GET", "shop.example.com", "/cart");
        request.listener = Some(listener.to_string());
        request
    };
    std::iter::repeat_with(|| on("http"))
        .take(plain)
        .chain(std::iter::repeat_with(|| on("https")).take(tls))
        .collect()
}

#[test]
fn a_redirect_taking_sampled_requests_moves_them_away_from_their_service() {
    let (old, new) = (config(SHOP), config(&format!("{TO_HTTPS}{SHOP}")));
    let report = blast_radius(&old, &new, &sample(30, 70)).expect("report");
    let verdict = gate_change(&report, &old, &new);
    assert!(!verdict.allowed, "{}", verdict.render_human());
    let Some(GateReason::HostShift { host, share, .. }) = verdict.reasons.first() else {
        panic!("expected a host shift: {:?}", verdict.reasons);
    };
    assert_eq!(host, "shop.example.com");
    assert!(
        (share - 0.3).abs() < 1e-9,
        "only the plain listener's: {share}"
    );
    let text = verdict.render_human();
    assert!(text.contains("keel (redirect 308 to https://"), "{text}");

    // Sampled on the TLS listener only: the redirect takes nothing.
    let report = blast_radius(&old, &new, &sample(0, 50)).expect("report");
    assert!(gate_change(&report, &old, &new).allowed);
}
