//! The diff against pairs of small configs.

use super::*;

const BASE: &str = r#"
[listeners.web]
addr = "127.0.0.1:8080"
[services.web]
[services.checkout]
[pools.web]
service = "web"
backends = [{ addr = "127.0.0.1:9101" }, { addr = "127.0.0.1:9102" }]
[pools.checkout]
service = "checkout"
backends = [{ addr = "127.0.0.1:9001" }]
[[routes]]
name = "checkout"
host = "shop.example.com"
path_prefix = "/checkout"
service = "checkout"
pool = "checkout"
[[routes]]
name = "web"
service = "web"
pool = "web"
"#;

fn parse(text: &str) -> Config {
    let parsed = crate::parse(text);
    assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
    parsed.config
}

#[test]
fn identical_configs_have_no_changes_even_when_reformatted() {
    let a = parse(BASE);
    let b = parse(&BASE.replace("\n[[routes]]", "\n\n# a comment\n[[routes]]"));
    let diff = semantic_diff(&a, &b);
    assert!(diff.is_empty(), "{diff:?}");
    assert_eq!(diff.render_human(), "no semantic changes\n");
}

#[test]
fn backends_weights_and_targets_are_reported_by_name() {
    let a = parse(BASE);
    let changed = BASE
        .replace(
            r#"backends = [{ addr = "127.0.0.1:9101" }, { addr = "127.0.0.1:9102" }]"#,
            r#"backends = [{ addr = "127.0.0.1:9101", weight = 3 }, { addr = "127.0.0.1:9103" }]"#,
        )
        .replace(
            "pool = \"checkout\"\n",
            "split = [{ pool = \"checkout\", weight = 30 }, { pool = \"web\", weight = 70 }]\n",
        );
    let b = parse(&changed);
    let diff = semantic_diff(&a, &b);
    let pool = &diff.pools[0];
    assert_eq!(
        (pool.kind, pool.name.as_str()),
        (ChangeKind::Changed, "web")
    );
    let fields: Vec<(&str, Option<&str>, Option<&str>)> = pool
        .fields
        .iter()
        .map(|f| (f.field.as_str(), f.old.as_deref(), f.new.as_deref()))
        .collect();
    assert_eq!(
        fields,
        vec![
            ("backend 127.0.0.1:9101", Some("weight 1"), Some("weight 3")),
            ("backend 127.0.0.1:9103", None, Some("weight 1")),
            ("backend 127.0.0.1:9102", Some("weight 1"), None),
        ]
    );
    let route = &diff.routes[0];
    assert_eq!(route.name, "checkout");
    assert_eq!(route.fields[0].field, "target");
    assert_eq!(
        route.fields[0].new.as_deref(),
        Some("split checkout:30 (30%), web:70 (70%)")
    );
    let text = diff.render_human();
    assert!(text.contains("~ checkout"), "{text}");
    assert!(text.contains("target: pool checkout → split"), "{text}");
    assert_eq!(
        diff.to_json()["pools"][0]["fields"][1]["old"],
        serde_json::Value::Null
    );
}

#[test]
fn split_weights_added_removed_and_reordered_routes() {
    let with_split = BASE.replace(
        "pool = \"checkout\"\n",
        "split = [{ pool = \"checkout\", weight = 90 }, { pool = \"web\", weight = 10 }]\n",
    );
    let a = parse(&with_split);
    let reweighted = with_split
        .replace("weight = 90", "weight = 30")
        .replace("weight = 10 }", "weight = 70 }");
    let b = parse(&format!(
        "{}\n[[routes]]\nname = \"api\"\nhost = \"api.example.com\"\nservice = \"web\"\npool = \"web\"\n",
        reweighted
    ));
    let diff = semantic_diff(&a, &b);
    let checkout = diff.routes.iter().find(|r| r.name == "checkout");
    let fields = checkout.map(|r| r.fields.clone()).unwrap_or_default();
    assert_eq!(fields[0].field, "weight of checkout");
    assert_eq!(fields[0].old.as_deref(), Some("90 (90%)"));
    assert_eq!(fields[0].new.as_deref(), Some("30 (30%)"));
    let api = diff.routes.iter().find(|r| r.name == "api");
    assert_eq!(api.map(|r| r.kind), Some(ChangeKind::Added));

    // Swap the two routes: both are reported as moved, because first match wins.
    let swapped = parse(&format!(
        "{}\n[[routes]]\nname = \"checkout\"\nhost = \"shop.example.com\"\npath_prefix = \"/checkout\"\nservice = \"checkout\"\npool = \"checkout\"\n",
        BASE.split("[[routes]]\nname = \"checkout\"")
            .next()
            .unwrap_or_default()
            .to_string()
            + "[[routes]]\nname = \"web\"\nservice = \"web\"\npool = \"web\"\n"
    ));
    let moved = semantic_diff(&parse(BASE), &swapped);
    assert_eq!(moved.routes.len(), 2, "{moved:?}");
    assert!(
        moved
            .routes
            .iter()
            .all(|r| r.fields[0].field.starts_with("order"))
    );

    let removed = semantic_diff(&b, &a);
    let api = removed.routes.iter().find(|r| r.name == "api");
    assert_eq!(api.map(|r| r.kind), Some(ChangeKind::Removed));
    assert!(
        removed
            .render_human()
            .contains("- api: host api.example.com")
    );
}

#[test]
fn settings_services_and_listeners() {
    let a = parse(BASE);
    let b = parse(&format!(
        "{}\n[safety]\nmax_shift = 0.5\n",
        BASE.replace("8080", "8081").replace(
            "[services.web]",
            "[services.web]\nidentity = { header = \"x-service\", equals = \"web\" }"
        )
    ));
    let diff = semantic_diff(&a, &b);
    assert_eq!(
        diff.listeners[0].fields[0].new.as_deref(),
        Some("127.0.0.1:8081")
    );
    assert_eq!(
        diff.services[0].fields[0].new.as_deref(),
        Some("header x-service = web")
    );
    assert_eq!(diff.settings[0].field, "[safety] max_shift");
    assert_eq!(diff.settings[0].new.as_deref(), Some("0.5"));
}

#[test]
fn the_summary_line_names_the_first_changes_and_counts_the_rest() {
    let a = parse(BASE);
    assert_eq!(semantic_diff(&a, &a).summary_line(), "no semantic changes");
    let retargeted = BASE.replace(
        "pool = \"checkout\"\n",
        "split = [{ pool = \"checkout\", weight = 30 }, { pool = \"web\", weight = 70 }]\n",
    );
    let line = semantic_diff(&a, &parse(&retargeted)).summary_line();
    assert!(line.starts_with("route checkout: "), "{line}");
    assert!(line.contains("→"), "{line}");
    assert!(!line.contains('\n'), "{line}");
    let many = format!(
        "{BASE}\n[[routes]]\nname = \"a\"\nservice = \"web\"\npool = \"web\"\n\
         [[routes]]\nname = \"b\"\nservice = \"web\"\npool = \"web\"\n\
         [[routes]]\nname = \"c\"\nservice = \"web\"\npool = \"web\"\n\
         [[routes]]\nname = \"d\"\nservice = \"web\"\npool = \"web\"\n\
         [[routes]]\nname = \"e\"\nservice = \"web\"\npool = \"web\"\n"
    );
    let line = semantic_diff(&a, &parse(&many)).summary_line();
    assert!(line.starts_with("+ route a; + route b"), "{line}");
    assert!(line.ends_with("and 1 more"), "{line}");
}

/// Issue 27 (7): values read as a config would write them, never as Rust `Debug`.
#[test]
fn changed_settings_are_written_as_a_config_writes_them() {
    let a = parse(BASE);
    let changed = BASE.replace(
        "[pools.web]\nservice = \"web\"\n",
        "[pools.web]\nservice = \"web\"\nbalance = \"consistent_hash\"\nhash_key = \"cookie:cart_id\"\n\
         health = { path = \"/healthz\" }\n",
    );
    let b = parse(&changed);
    let text = semantic_diff(&a, &b).render_human();
    assert!(
        text.contains("consistent hash on cookie:cart_id") && text.contains("GET /healthz every"),
        "{text}"
    );
    for leak in [
        "Some(",
        "None",
        "Cookie(",
        "ConsistentHash",
        "RoundRobin",
        "HealthCheck",
    ] {
        assert!(!text.contains(leak), "{leak:?} in {text}");
    }
}

#[test]
fn a_changed_read_token_is_a_change_that_does_not_show_the_token() {
    let with = |token: &str| {
        parse(&BASE.replace(
            "[services.web]",
            &format!("[admin]\nread_token = \"{token}\"\n[services.web]"),
        ))
    };
    let (none, first, second) = (parse(BASE), with("wall-secret-1"), with("wall-secret-2"));
    for (a, b) in [(&none, &first), (&first, &second), (&first, &none)] {
        let diff = semantic_diff(a, b);
        assert!(!diff.is_empty());
        let text = format!("{}{}", diff.render_human(), diff.to_json());
        assert!(text.contains("[admin] read_token"), "{text}");
        assert!(!text.contains("wall-secret"), "{text}");
    }
    assert!(semantic_diff(&first, &with("wall-secret-1")).is_empty());
}
