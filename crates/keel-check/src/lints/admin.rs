//! K212: the admin API bound to an address other hosts can reach, without TLS.
//!
//! The admin API speaks plain HTTP (it has no TLS yet): bound beyond loopback, its
//! bearer token, every config applied and the live traffic sample cross the network
//! in clear text, and anyone who can reach the port can open connections to it. `keel
//! serve` logs the same warning at start.

use keel_config::{Config, Diagnostic, codes};

pub(super) fn check(config: &Config, out: &mut Vec<Diagnostic>) {
    let addr = &config.admin.addr;
    if addr.value.ip().is_loopback() {
        return;
    }
    out.push(
        Diagnostic::warning(
            codes::ADMIN_EXPOSED,
            format!(
                "the admin API listens on {} without TLS: its token and configs cross the network in clear text",
                addr.value
            ),
        )
        .at(addr.span, "not a loopback address")
        .with_help("bind [admin] addr to 127.0.0.1 (or [::1]) and reach it through an SSH tunnel or a TLS-terminating proxy")
        .with_note("the admin API has no TLS of its own yet; keel serve logs this warning at start too"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn findings(admin: &str) -> Vec<Diagnostic> {
        let parsed = keel_config::parse(&format!(
            "[listeners.web]\naddr = \"127.0.0.1:8080\"\n[admin]\naddr = \"{admin}\"\n"
        ));
        assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
        let mut out = Vec::new();
        check(&parsed.config, &mut out);
        out
    }

    #[test]
    fn only_a_non_loopback_admin_address_is_reported() {
        for exposed in ["0.0.0.0:9901", "[::]:9901", "10.0.0.5:9901"] {
            let out = findings(exposed);
            assert_eq!(out.len(), 1, "{exposed}: {out:?}");
            assert_eq!(out[0].code, codes::ADMIN_EXPOSED);
        }
        for private in ["127.0.0.1:9901", "127.0.0.2:9901", "[::1]:9901"] {
            assert!(findings(private).is_empty(), "{private}");
        }
    }
}
