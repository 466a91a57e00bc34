//! DNS backends: `{ host, port, resolve }` and `{ srv, resolve }` parse into the pool's
//! `dns_backends`, each mistake is reported at its key, and the loader's expansion adds
//! one backend per address (SRV: with the record's port and weight) from the installed
//! source, or warns (K231) about a name without one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use keel_config::{
    DnsAddresses, DnsRecord, DnsTarget, codes, expand_dns_backends, install_dns_addresses, parse,
};

fn with_backends(backends: &str) -> String {
    format!(
        "[listeners.http]\naddr = \"127.0.0.1:8080\"\n[server]\nresolvers = [\"127.0.0.1:5353\"]\n\
         [services.web]\n[pools.web]\nservice = \"web\"\nbackends = {backends}\n\
         [[routes]]\nname = \"all\"\nservice = \"web\"\npool = \"web\"\n"
    )
}

#[test]
fn a_dns_backend_names_its_host_port_and_schedule() {
    let parsed = parse(&with_backends(
        r#"["127.0.0.1:9001", { host = "web.internal", port = 8080, resolve = "10s", weight = 2 }, { host = "api.internal", port = 81 }]"#,
    ));
    assert!(parsed.diagnostics.is_empty(), "{:#?}", parsed.diagnostics);
    let pool = &parsed.config.pools["web"];
    assert_eq!(pool.backends.len(), 1);
    let dns = &pool.dns_backends;
    assert_eq!(dns[0].host.value, "web.internal");
    assert_eq!(
        (dns[0].port, dns[0].resolve, dns[0].weight),
        (8080, Duration::from_secs(10), 2)
    );
    assert_eq!(dns[1].resolve, keel_config::defaults::DNS_RESOLVE_INTERVAL);
    assert_eq!(
        parsed.config.server.resolvers,
        ["127.0.0.1:5353".parse::<SocketAddr>().expect("addr")]
    );
}

#[test]
fn each_dns_backend_mistake_is_reported_where_it_is_written() {
    let cases = [
        (
            r#"[{ host = "web internal", port = 80 }]"#,
            "\"web internal\"",
        ),
        (r#"[{ host = "web.internal" }]"#, "{ host"),
        (r#"[{ host = "127.0.0.1", port = 80 }]"#, "\"127.0.0.1\""),
        (r#"[{ host = "web.internal", port = 0 }]"#, "0 }"),
        (
            r#"[{ host = "web.internal", port = 80, resolve = "10ms" }]"#,
            "\"10ms\"",
        ),
        (
            r#"[{ host = "web.internal", port = 80, addr = "127.0.0.1:80" }]"#,
            "addr",
        ),
        (r#"[{ srv = "web.internal" }]"#, "\"web.internal\""),
        (r#"[{ srv = "_http._udp.web.internal" }]"#, "\"_http._udp"),
        (
            r#"[{ srv = "_http._tcp.web.internal", port = 80 }]"#,
            "80 }",
        ),
        (
            r#"[{ srv = "_http._tcp.web.internal", weight = 2 }]"#,
            "2 }",
        ),
        (
            r#"[{ srv = "_http._tcp.web.internal", resolve = "1ms" }]"#,
            "\"1ms\"",
        ),
    ];
    for (backends, at) in cases {
        let source = with_backends(backends);
        let parsed = parse(&source);
        let error = parsed
            .diagnostics
            .iter()
            .find(|d| d.severity == keel_config::Severity::Error)
            .unwrap_or_else(|| panic!("no error for {backends}: {:#?}", parsed.diagnostics));
        let span = error.span.expect("a position");
        assert!(
            source[span.start..].starts_with(at),
            "{backends}: error at {:?}, expected at {at:?}",
            &source[span.start..span.end]
        );
    }
}

struct Answers;

impl DnsAddresses for Answers {
    fn addresses(
        &self,
        host: &str,
        port: u16,
        resolvers: &[SocketAddr],
    ) -> Result<Vec<SocketAddr>, String> {
        assert_eq!(resolvers.len(), 1);
        match host {
            "web.internal" => Ok(vec![
                SocketAddr::from(([10, 0, 0, 1], port)),
                SocketAddr::from(([10, 0, 0, 2], port)),
            ]),
            _ => Err("NXDOMAIN".into()),
        }
    }

    fn srv_targets(&self, name: &str, resolvers: &[SocketAddr]) -> Result<Vec<DnsTarget>, String> {
        assert_eq!(resolvers.len(), 1);
        match name {
            "_http._tcp.web.internal" => Ok(vec![
                DnsTarget {
                    addr: SocketAddr::from(([10, 0, 0, 3], 8081)),
                    weight: Some(3),
                },
                DnsTarget {
                    addr: SocketAddr::from(([10, 0, 0, 4], 8082)),
                    weight: Some(1),
                },
            ]),
            _ => Err("NXDOMAIN".into()),
        }
    }
}

#[test]
fn an_srv_backend_names_its_record_and_schedule() {
    let parsed = parse(&with_backends(
        r#"[{ srv = "_http._tcp.web.internal", resolve = "10s" }]"#,
    ));
    assert!(parsed.diagnostics.is_empty(), "{:#?}", parsed.diagnostics);
    let dns = &parsed.config.pools["web"].dns_backends;
    assert_eq!(dns[0].record, DnsRecord::Srv);
    assert_eq!(dns[0].host.value, "_http._tcp.web.internal");
    assert_eq!(dns[0].resolve, Duration::from_secs(10));
}

#[test]
fn the_loader_adds_each_srv_target_with_its_port_and_weight() {
    let mut config = parse(&with_backends(
        r#"[{ srv = "_http._tcp.web.internal" }, { srv = "_http._tcp.gone.internal" }]"#,
    ))
    .config;
    install_dns_addresses(Arc::new(Answers));
    let resolvers = config.server.resolvers.clone();
    let findings = expand_dns_backends(&mut config.pools, &resolvers);
    let backends: Vec<(String, u32)> = config.pools["web"]
        .backends
        .iter()
        .map(|b| (b.addr.value.to_string(), b.weight))
        .collect();
    assert_eq!(
        backends,
        [
            ("10.0.0.3:8081".to_string(), 3),
            ("10.0.0.4:8082".to_string(), 1)
        ]
    );
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].code, codes::DNS_UNRESOLVED);
    assert!(
        findings[0].message.contains("_http._tcp.gone.internal"),
        "{}",
        findings[0].message
    );
}

#[test]
fn the_loader_adds_a_backend_per_address_and_warns_about_a_name_without_one() {
    let mut config = parse(&with_backends(
        r#"[{ host = "web.internal", port = 8080 }, { host = "gone.internal", port = 80 }]"#,
    ))
    .config;
    install_dns_addresses(Arc::new(Answers));
    let resolvers = config.server.resolvers.clone();
    let findings = expand_dns_backends(&mut config.pools, &resolvers);
    let addrs: Vec<String> = config.pools["web"]
        .backends
        .iter()
        .map(|b| b.addr.value.to_string())
        .collect();
    assert_eq!(addrs, ["10.0.0.1:8080", "10.0.0.2:8080"]);
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0].code, codes::DNS_UNRESOLVED);
    assert!(
        findings[0].message.contains("gone.internal"),
        "{}",
        findings[0].message
    );
}
