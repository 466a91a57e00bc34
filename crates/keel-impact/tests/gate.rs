//! The apply gate: refuses above `max_shift` or on a broken intent, accepts below, and
//! its refusal text carries the movement matrix.

mod common;

use common::{SHOP, assert_close, config, edit, sample};
use keel_impact::{GateReason, blast_radius, gate, gate_change};

/// The March-15 edit through the pool only: 37 % of shop.example.com changes service.
fn to_legacy(extra: &str) -> keel_config::Config {
    let text = SHOP
        .replace(
            "path_prefix = \"/checkout\"\nservice = \"checkout\"\npool = \"checkout-v2\"",
            "path_prefix = \"/checkout\"\nservice = \"checkout\"\npool = \"legacy\"",
        )
        .replace(
            "path_prefix = \"/cart\"\nservice = \"checkout\"\npool = \"checkout-v2\"",
            "path_prefix = \"/cart\"\nservice = \"checkout\"\npool = \"legacy\"",
        );
    config(&format!("{text}\n{extra}"))
}

const CHECKOUT_INTENT: &str = r#"
[[intents]]
host = "shop.example.com"
path_prefix = "/checkout"
service = "checkout"
min_share = 0.9
"#;

#[test]
fn refuses_above_the_threshold_with_the_matrix_in_the_text() {
    let report = blast_radius(&config(SHOP), &to_legacy(""), &sample()).expect("report");
    let verdict = gate(&report, 0.25, &[]);
    assert!(!verdict.allowed);
    assert_eq!(verdict.reasons.len(), 1);
    let GateReason::HostShift {
        host, share, flows, ..
    } = &verdict.reasons[0]
    else {
        panic!("expected a host shift, got {:?}", verdict.reasons[0]);
    };
    assert_eq!(host, "shop.example.com");
    assert_close(*share, 0.37);
    assert_eq!(flows[0].to.pool, "legacy");
    let text = verdict.render_human();
    assert!(text.starts_with("REFUSED"), "{text}");
    assert!(text.contains("limit [safety] max_shift = 25.0%"), "{text}");
    assert!(
        text.contains(
            "37.0% of requests to shop.example.com would move from checkout (pool checkout-v2) \
             to legacy-web (pool legacy)"
        ),
        "{text}"
    );
    assert!(text.contains("Movement matrix"), "{text}");
    let json = verdict.to_json();
    assert_eq!(json["schema_version"], 1);
    assert_eq!(json["allowed"], false);
    assert_eq!(json["reasons"][0]["kind"], "host_shift");
    assert_eq!(json["reasons"][0]["host"], "shop.example.com");
}

#[test]
fn accepts_at_and_below_the_threshold() {
    let report = blast_radius(&config(SHOP), &to_legacy(""), &sample()).expect("report");
    assert!(gate(&report, 0.5, &[]).allowed);
    // "More than max_shift" refuses: exactly at the limit passes.
    assert!(gate(&report, 0.37, &[]).allowed);
    assert!(!gate(&report, 0.369, &[]).allowed);
    let verdict = gate(&report, 0.5, &[]);
    assert!(verdict.reasons.is_empty());
    assert!(verdict.render_human().starts_with("ACCEPTED"));
}

#[test]
fn a_change_inside_one_service_passes_any_threshold() {
    let canary = edit(
        "name = \"web\"\nservice = \"web\"\npool = \"web\"",
        "name = \"web\"\nservice = \"web\"\n\
         split = [{ pool = \"web\", weight = 1 }, { pool = \"web-canary\", weight = 1 }]",
    );
    let report = blast_radius(&config(SHOP), &canary, &sample()).expect("report");
    assert!(report.moved.requests > 0.0);
    assert!(gate(&report, 0.0, &[]).allowed);
}

#[test]
fn refuses_a_broken_intent_even_under_the_shift_limit() {
    let new = to_legacy(CHECKOUT_INTENT);
    let report = blast_radius(&config(SHOP), &new, &sample()).expect("report");
    let verdict = gate(&report, 1.0, &new.intents);
    assert!(!verdict.allowed);
    let GateReason::Intent {
        share,
        old_share,
        requests,
        ..
    } = &verdict.reasons[0]
    else {
        panic!("expected an intent, got {:?}", verdict.reasons[0]);
    };
    assert_eq!((*share, *old_share, *requests), (0.0, 1.0, 25));
    assert!(
        verdict.render_human().contains(
            "at least 90.0% of requests to shop.example.com/checkout must reach service checkout"
        ),
        "{}",
        verdict.render_human()
    );
    assert_eq!(verdict.to_json()["reasons"][0]["kind"], "intent");

    // The same intent holds when the change leaves checkout alone.
    let fine = edit(
        "[[routes]]\nname = \"web\"",
        &format!("{CHECKOUT_INTENT}\n[[routes]]\nname = \"web\""),
    );
    let report = blast_radius(&config(SHOP), &fine, &sample()).expect("report");
    assert!(gate(&report, 0.25, &fine.intents).allowed);
}

#[test]
fn max_share_bounds_refuse_too() {
    let intent =
        "[[intents]]\nhost = \"shop.example.com\"\nservice = \"legacy-web\"\nmax_share = 0.1\n";
    let new = to_legacy(intent);
    let report = blast_radius(&config(SHOP), &new, &sample()).expect("report");
    let verdict = gate(&report, 1.0, &new.intents);
    assert!(!verdict.allowed);
    assert!(verdict.render_human().contains("at most 10.0%"));
}

#[test]
fn an_intent_no_request_matches_is_a_note_not_a_refusal() {
    let intent = "[[intents]]\nhost = \"api.example.com\"\nservice = \"web\"\nmin_share = 1.0\n";
    let new = edit(
        "[[routes]]\nname = \"web\"",
        &format!("{intent}\n[[routes]]\nname = \"web\""),
    );
    let report = blast_radius(&config(SHOP), &new, &sample()).expect("report");
    let verdict = gate(&report, 0.25, &new.intents);
    assert!(verdict.allowed);
    assert_eq!(verdict.notes.len(), 1);
    assert!(
        verdict.notes[0].contains("api.example.com"),
        "{:?}",
        verdict.notes
    );
}

#[test]
fn a_change_cannot_loosen_its_own_gate() {
    // The new config raises max_shift and deletes the intent in the same edit.
    let old = config(&format!(
        "{SHOP}\n[safety]\nmax_shift = 0.25\n{CHECKOUT_INTENT}"
    ));
    let new = to_legacy("[safety]\nmax_shift = 0.9\n");
    let report = blast_radius(&old, &new, &sample()).expect("report");
    let verdict = gate_change(&report, &old, &new);
    assert!(!verdict.allowed);
    assert_eq!(verdict.max_shift, 0.25);
    assert!(
        matches!(
            verdict.reasons.as_slice(),
            [GateReason::HostShift { .. }, GateReason::Intent { .. }, ..]
        ),
        "{:?}",
        verdict.reasons
    );
}

/// Issue 29 row 4: a widened `path_prefix` takes all of the `cart` route to legacy,
/// 12 % of its host (under `max_shift`): the host's average allows it, the route's
/// worst case does not, with witnesses.
#[test]
fn a_route_losing_its_traffic_to_another_service_is_refused_whatever_its_host_share() {
    let legacy_route = "[[routes]]\nname = \"cart-legacy\"\nhost = \"shop.example.com\"\npath_prefix = \"{prefix}\"\nservice = \"legacy-web\"\npool = \"legacy\"\n\n[[routes]]\nname = \"cart\"";
    let with = |prefix: &str| {
        edit(
            "[[routes]]\nname = \"cart\"",
            &legacy_route.replace("{prefix}", prefix),
        )
    };
    let (old, new) = (with("/cart-legacy"), with("/cart"));
    let report = blast_radius(&old, &new, &sample()).expect("report");
    assert_close(report.hosts[0].changes_service.share, 0.12);
    let verdict = gate_change(&report, &old, &new);
    assert!(!verdict.allowed, "{}", verdict.render_human());
    let text = verdict.render_human();
    assert!(
        text.contains("route cart: 100.0% of its 12 sampled requests would be answered by another service (cart-legacy / legacy / legacy-web)"),
        "{text}"
    );
    assert!(text.contains("e.g. GET shop.example.com/cart"), "{text}");
    assert!(
        verdict.reasons.iter().any(
            |r| matches!(r, GateReason::ServiceShift { service, .. } if service == "checkout")
        ),
        "{text}"
    );
}

/// A new route that takes a route's live traffic, even to the same pool, shadows it:
/// refused with the witness requests.
#[test]
fn a_route_newly_shadowed_while_it_had_traffic_is_refused_with_witnesses() {
    let new = edit(
        "[[routes]]\nname = \"cart\"",
        "[[routes]]\nname = \"sale\"\nhost = \"shop.example.com\"\npath_prefix = \"/cart\"\nservice = \"checkout\"\npool = \"checkout-v2\"\n\n[[routes]]\nname = \"cart\"",
    );
    let old = config(SHOP);
    let report = blast_radius(&old, &new, &sample()).expect("report");
    let verdict = gate_change(&report, &old, &new);
    let text = verdict.render_human();
    assert!(!verdict.allowed, "{text}");
    assert!(
        text.contains("route cart would be shadowed: 100.0% of its 12 sampled requests would match route sale instead; e.g. GET shop.example.com/cart"),
        "{text}"
    );
}

#[test]
fn an_empty_sample_is_accepted_with_a_note() {
    let report = blast_radius(&config(SHOP), &to_legacy(""), &[]).expect("report");
    let verdict = gate(&report, 0.25, &[]);
    assert!(verdict.allowed);
    assert!(verdict.notes[0].contains("empty"));
    assert!(report.render_human().contains("no traffic to replay"));
}

#[test]
fn a_limit_that_is_not_a_number_fails_closed() {
    let report = blast_radius(&config(SHOP), &to_legacy(""), &sample()).expect("report");
    assert!(!gate(&report, f64::NAN, &[]).allowed);
}

/// An identity rewritten in the edit: no request changes service *name*, yet the
/// service's traffic counts as changing application (issue 29, row 1).
#[test]
fn a_rewritten_identity_counts_the_services_traffic_as_changing_application() {
    let with_identity = |equals: &str| {
        config(&SHOP.replace(
            "[services.checkout]\n",
            &format!("[services.checkout]\nidentity = {{ header = \"x-service\", equals = \"{equals}\" }}\n"),
        ))
    };
    let (old, new) = (with_identity("checkout"), with_identity("legacy"));
    let report = blast_radius(&old, &new, &sample()).expect("report");
    assert_close(report.changes_service.share, 0.0);
    let verdict = gate_change(&report, &old, &new);
    assert!(!verdict.allowed, "{}", verdict.render_human());
    let GateReason::IdentityChange {
        service,
        identity,
        service_share,
        ..
    } = &verdict.reasons[0]
    else {
        panic!("expected an identity change, got {:?}", verdict.reasons[0]);
    };
    assert_eq!(service, "checkout");
    assert_eq!(
        identity,
        "x-service = \"checkout\" → x-service = \"legacy\""
    );
    assert_close(*service_share, 0.37);
    // The same identity on both sides: nothing to count.
    let same = blast_radius(&old, &old, &sample()).expect("report");
    assert!(gate_change(&same, &old, &old).allowed);
}
