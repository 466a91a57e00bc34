//! K106: two listeners, or a listener and the admin API, that cannot both bind.
//!
//! Two addresses conflict when their ports are equal (and not 0, which asks the kernel
//! for a free port) and their IPs are equal, or one is the unspecified address of a
//! family that covers the other (`0.0.0.0` covers every IPv4 address; `[::]` covers
//! every address on a dual-stack host, which is Linux's default).

use std::net::{IpAddr, SocketAddr};

use keel_config::{Config, Diagnostic, Span, codes};

/// True when both addresses cannot be bound at once.
pub(crate) fn conflict(a: SocketAddr, b: SocketAddr) -> bool {
    if a.port() != b.port() || a.port() == 0 {
        return false;
    }
    let covers =
        |wide: IpAddr, other: IpAddr| wide.is_unspecified() && (wide.is_ipv6() || other.is_ipv4());
    a.ip() == b.ip() || covers(a.ip(), b.ip()) || covers(b.ip(), a.ip())
}

pub(super) fn check(config: &Config, out: &mut Vec<Diagnostic>) {
    let mut seen: Vec<(String, SocketAddr, Span)> = Vec::new();
    let admin = (
        "the admin API".to_string(),
        config.admin.addr.value,
        config.admin.addr.span,
    );
    let listeners = config
        .listeners
        .values()
        .map(|l| (format!("listener `{}`", l.name), l.addr.value, l.addr.span));
    for (what, addr, span) in std::iter::once(admin).chain(listeners) {
        if let Some((other, other_addr, other_span)) =
            seen.iter().find(|(_, a, _)| conflict(*a, addr))
        {
            let mut diagnostic = Diagnostic::error(
                codes::LISTENER_CONFLICT,
                format!("{what} on {addr} conflicts with {other} on {other_addr}"),
            )
            .at(span, "cannot bind: address already taken")
            .with_help("give each listener and the admin API its own port");
            // The default admin address has no place in the file.
            if *other_span != Span::default() {
                diagnostic = diagnostic.with_related(*other_span, format!("{other} binds here"));
            } else {
                diagnostic = diagnostic.with_note(format!(
                    "{other} uses the default address {other_addr}; set [admin] addr to move it"
                ));
            }
            out.push(diagnostic);
        }
        seen.push((what, addr, span));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("address")
    }

    #[test]
    fn conflicts_follow_bind_rules() {
        assert!(conflict(addr("127.0.0.1:80"), addr("127.0.0.1:80")));
        assert!(conflict(addr("0.0.0.0:80"), addr("127.0.0.1:80")));
        assert!(conflict(addr("[::]:80"), addr("127.0.0.1:80")));
        assert!(!conflict(addr("0.0.0.0:80"), addr("[::1]:80")));
        assert!(!conflict(addr("127.0.0.1:80"), addr("127.0.0.2:80")));
        assert!(!conflict(addr("127.0.0.1:0"), addr("127.0.0.1:0")));
        assert!(!conflict(addr("127.0.0.1:80"), addr("127.0.0.1:81")));
    }

    #[test]
    fn a_listener_on_the_admin_port_is_reported() {
        let parsed = keel_config::parse(
            "[listeners.web]\naddr = \"127.0.0.1:9901\"\n[listeners.b]\naddr = \"0.0.0.0:8080\"\n[listeners.c]\naddr = \"127.0.0.1:8080\"\n",
        );
        assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
        let mut out = Vec::new();
        check(&parsed.config, &mut out);
        assert_eq!(out.len(), 2, "{out:#?}");
        assert!(out[0].message.contains("the admin API"));
        assert!(out[1].message.contains("listener `b`"));
    }
}
