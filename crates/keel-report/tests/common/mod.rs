//! Shared fixtures: the shop configs and the scripted March-15-style scenario.
#![allow(dead_code, unreachable_pub)]

use keel_store::{NewEvent, NewGeneration, Store, kind, now_ms, origin};
use serde_json::json;

/// Generation 1: checkout on its own pool, everything else on web.
pub const SHOP_V1: &str = r#"
[listeners.web]
addr = "127.0.0.1:8080"

[services.web]
identity = { header = "x-service", equals = "web" }

[services.checkout]
identity = { header = "x-service", equals = "checkout" }
verify_responses = true

[pools.web]
service = "web"
backends = [{ addr = "127.0.0.1:9101" }, { addr = "127.0.0.1:9102" }]
health = { path = "/healthz", interval = "2s", timeout = "1s" }

[pools.checkout-v2]
service = "checkout"
backends = [{ addr = "127.0.0.1:9001" }, { addr = "127.0.0.1:9002", weight = 2 }]

[[routes]]
name = "checkout"
host = "shop.example.com"
path_prefix = "/checkout"
service = "checkout"
pool = "checkout-v2"

[[routes]]
name = "web"
service = "web"
pool = "web"
"#;

/// Generation 2: checkout moved to a new pool whose addresses are really the web servers.
pub fn shop_v2() -> String {
    SHOP_V1
        .replace(
            "[[routes]]\nname = \"checkout\"",
            "[pools.checkout-v3]\nservice = \"checkout\"\nbackends = [{ addr = \"127.0.0.1:9101\" }, { addr = \"127.0.0.1:9102\" }]\n\n[[routes]]\nname = \"checkout\"",
        )
        .replace("pool = \"checkout-v2\"", "pool = \"checkout-v3\"")
}

pub fn generation(text: &str, author: &str, message: &str) -> NewGeneration {
    NewGeneration {
        config_text: text.to_owned(),
        author: author.to_owned(),
        message: message.to_owned(),
        origin: origin::CLI.to_owned(),
        forced: false,
        check_report: json!({"version": 1, "errors": 0, "warnings": 0, "diagnostics": []}),
        impact_report: None,
        certificates: Default::default(),
    }
}

/// The scripted scenario: apply 1 (known-good), a health flip, apply 2, an identity flip and an
/// identity alert on 2, automatic rollback to 1. Returns the time just before it started.
pub fn march_15_scenario(store: &dyn Store) -> i64 {
    march_15_scenario_paced(store, [0; 4])
}

/// The scenario with pauses (ms) after apply 1, after apply 2, after the identity flip and after
/// the alert, so an example's timeline shows realistic gaps (the store stamps applies and
/// rollbacks with the wall clock).
pub fn march_15_scenario_paced(store: &dyn Store, pauses_ms: [u64; 4]) -> i64 {
    let pause = |i: usize| std::thread::sleep(std::time::Duration::from_millis(pauses_ms[i]));
    let start = now_ms();
    store
        .record_apply(generation(SHOP_V1, "alice", "initial shop config"), true)
        .expect("apply 1");
    store.mark_known_good(1).expect("known-good 1");
    store
        .append_event(
            NewEvent::new(kind::HEALTH, "backend 127.0.0.1:9002 of pool checkout-v2: unknown → healthy")
                .generation(1)
                .details(json!({"pool": "checkout-v2", "backend": "127.0.0.1:9002", "from": "unknown", "to": "healthy"})),
        )
        .expect("health");
    pause(0);
    let mut second = generation(
        &shop_v2(),
        "bob",
        "move checkout to the new servers\n\nTicket OPS-42",
    );
    second.impact_report = Some(json!({
        "schema_version": 1, "total": 400,
        "changes_service": {"requests": 0.0, "share": 0.0},
        "hosts": [{"host": "shop.example.com", "requests": 400, "changes_service": {"requests": 0.0, "share": 0.0}, "flows": []}]
    }));
    store.record_apply(second, true).expect("apply 2");
    pause(1);
    store
        .append_event(
            NewEvent::new(
                kind::IDENTITY,
                "generation 2: route checkout (pool checkout-v3) got a response from 127.0.0.1:9101 identifying as web instead of checkout",
            )
            .generation(2)
            .details(json!({"route": "checkout", "pool": "checkout-v3", "backend": "127.0.0.1:9101", "expected": "checkout", "seen": "web"})),
        )
        .expect("identity");
    pause(2);
    store
        .append_event(
            NewEvent::new(
                kind::ALERT,
                "identity detector: 70% of checkout answered by web (generation 2)",
            )
            .generation(2)
            .details(
                json!({"detector": "identity", "state": "firing", "share": 0.7, "requests": 412}),
            ),
        )
        .expect("alert");
    pause(3);
    store
        .record_rollback(2, 1, "guard", "identity alert on generation 2")
        .expect("rollback");
    // What the controller writes after a rollback: the generation's own counters.
    store
        .append_event(
            NewEvent::new(
                kind::TRAFFIC,
                "generation 2 served 500 requests until the rollback to 1",
            )
            .generation(2)
            .details(
                json!({"requests_served": 500, "misidentified": 97, "server_errors": 3,
                    "connect_failures": 0, "wrong_or_failed": 100, "affected_share": 0.2}),
            ),
        )
        .expect("traffic");
    start
}
