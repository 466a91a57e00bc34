
#[test]
fn a_rate_limit_reads_its_rule_with_defaults_and_reports_mistakes() {
    let forward = "service = \"s\"\npool = \"p\"\n";
    let parsed = parse(&with_route(&format!(
        "{forward}rate_limit = {{ requests = 100, per = \"1m\", burst = 50, key = \"cookie:session\" }}"
    )));
    assert!(parsed.diagnostics.is_empty(), "{:#?}", parsed.diagnostics);
    let limit = &parsed.config.routes[0].rate_limit.as_ref().expect("limit").value;
    assert_eq!((limit.requests, limit.burst), (100, 50));
    assert_eq!(limit.per, std::time::Duration::from_secs(60));
    assert_eq!(limit.key, keel_config::RateKey::Cookie("session".into()));
    assert_eq!(limit.describe(), "100/1m burst 50 by cookie:session");

    let parsed = parse(&with_route(&format!("{forward}rate_limit = {{ requests = 10 }}")));
    let limit = &parsed.config.routes[0].rate_limit.as_ref().expect("limit").value;
    assert_eq!(limit.burst, 10, "the burst defaults to one period's requests");
    assert_eq!(limit.per, defaults::RATE_LIMIT_PER);
    assert_eq!(limit.key, keel_config::RateKey::ClientIp);

    for (rule, at) in [
        ("{ requests = 0 }", "0"),
        ("{ requests = 5, per = \"0s\" }", "\"0s\""),
        ("{ requests = 5, key = \"ip\" }", "\"ip\""),
        ("{ requests = 5, key = \"header:a b\" }", "\"header:a b\""),
    ] {
        let source = with_route(&format!("{forward}rate_limit = {rule}"));
        let parsed = parse(&source);
        let found = parsed
            .diagnostics
            .iter()
            .find(|d| d.code == codes::INVALID_VALUE)
            .unwrap_or_else(|| panic!("{rule}: {:#?}", parsed.diagnostics));
        let span = found.span.expect("a position");
        assert_eq!(&source[span.start..span.end], at, "{rule}");
    }
    assert!(parse(&with_route(&format!("{forward}rate_limit = {{ per = \"1s\" }}"))).has_errors());
}
