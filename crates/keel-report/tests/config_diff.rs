//! The semantic change summary between two configs.

mod common;

use keel_report::{ItemChange, Subject, describe_config, diff_configs};

fn config(text: &str) -> keel_config::Config {
    let parsed = keel_config::parse(text);
    assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
    parsed.config
}

#[test]
fn identical_configs_have_no_change() {
    let a = config(common::SHOP_V1);
    let change = diff_configs(&a, &a);
    assert!(change.is_empty());
    assert_eq!(
        change.summary(),
        "no listener, service, pool or route changed"
    );
    assert_eq!(
        describe_config(&a),
        "1 listener, 2 routes, 2 pools, 4 backends"
    );
}

#[test]
fn backends_routes_listeners_and_order_are_named() {
    let old = config(common::SHOP_V1);
    let new_text = common::SHOP_V1
        .replace("127.0.0.1:8080", "127.0.0.1:8081")
        .replace(
            "{ addr = \"127.0.0.1:9102\" }",
            "{ addr = \"127.0.0.1:9103\" }",
        )
        .replace("weight = 2", "weight = 5")
        .replace("path_prefix = \"/checkout\"", "path_prefix = \"/pay\"")
        .replace(
            "pool = \"web\"\n",
            "split = [{ pool = \"web\", weight = 30 }, { pool = \"checkout-v2\", weight = 70 }]\n",
        );
    let change = diff_configs(&old, &config(&new_text));
    let described: Vec<String> = change.items.iter().map(|i| i.describe()).collect();
    assert_eq!(
        described,
        [
            "listener web: addr 127.0.0.1:8080 → 127.0.0.1:8081",
            "pool web: -backend 127.0.0.1:9102, +backend 127.0.0.1:9103",
            "pool checkout-v2: backend 127.0.0.1:9002 weight 2 → 5",
            "route checkout: path path_prefix = \"/checkout\" → path_prefix = \"/pay\"",
            "route web: pool web → split web:30, checkout-v2:70",
        ]
    );
    assert_eq!(
        change.summary().matches("; ").count(),
        4,
        "{}",
        change.summary()
    );
    assert!(change.summary().ends_with("and 1 more"));
}

#[test]
fn added_removed_and_reordered_routes() {
    let old = config(common::SHOP_V1);
    // Swap the two routes and add a third.
    let web = "[[routes]]\nname = \"web\"\nservice = \"web\"\npool = \"web\"\n";
    let without_web = common::SHOP_V1.replace(web, "");
    let reordered = without_web.replace(
        "[[routes]]\nname = \"checkout\"",
        &format!("{web}\n[[routes]]\nname = \"checkout\""),
    );
    let new_text = format!(
        "{reordered}\n[[routes]]\nname = \"api\"\nhost = \"api.example.com\"\nservice = \"web\"\npool = \"web\"\n"
    );
    let change = diff_configs(&old, &config(&new_text));
    let kinds: Vec<(Subject, &str, &ItemChange)> = change
        .items
        .iter()
        .map(|i| (i.subject, i.name.as_str(), &i.change))
        .collect();
    assert_eq!(kinds[0], (Subject::Route, "api", &ItemChange::Added));
    assert_eq!(kinds[1].0, Subject::RouteOrder);
    assert_eq!(
        change.items[1].describe(),
        "route order: checkout, web → web, checkout"
    );
    let back = diff_configs(&config(&new_text), &old);
    assert_eq!(back.items[0].describe(), "-route api");
}
