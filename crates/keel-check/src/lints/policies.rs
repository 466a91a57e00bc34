//! K213: a route's address rule that refuses every client (of a family); K215: a
//! trusted proxy outside loopback and private address space.
//!
//! `deny = ["0.0.0.0/0"]` or an empty `allow = []` parses, compiles and serves: it
//! just answers 403 to everyone, the kind of change that takes a shop down in one
//! apply. It is a warning, not an error: a maintenance cut-off can mean it.

use keel_config::{AccessMode, Config, Diagnostic, codes};

pub(super) fn check(config: &Config, out: &mut Vec<Diagnostic>) {
    public_trusted_proxies(config, out);
    for route in &config.routes {
        let Some(access) = &route.access else {
            continue;
        };
        let everything: Vec<_> = access
            .value
            .blocks
            .iter()
            .filter(|b| b.value.is_everything())
            .collect();
        let (message, span, label) = match access.value.mode {
            AccessMode::Allow if access.value.blocks.is_empty() => (
                format!(
                    "route `{}` allows no client: every request gets 403",
                    route.name.value
                ),
                access.span,
                "an empty allow list",
            ),
            AccessMode::Deny if let Some(first) = everything.first() => {
                let whom = if everything.len() > 1 {
                    "every client"
                } else if first.value.network.is_ipv4() {
                    "every IPv4 client"
                } else {
                    "every IPv6 client"
                };
                (
                    format!(
                        "route `{}` denies {whom}: they all get 403",
                        route.name.value
                    ),
                    first.span,
                    "matches every address",
                )
            }
            _ => continue,
        };
        out.push(
            Diagnostic::warning(codes::ACCESS_REFUSES_ALL, message)
                .at(span, label)
                .with_help("list the blocks you mean; to take a route out of service on purpose, say so in the change and expect the gate to count the refusals")
                .with_data(serde_json::json!({ "route": route.name.value })),
        );
    }
}

/// K215: anyone at a trusted address can write the client address every `allow`,
/// `deny` and `client_ip` rate limit judges. A public block is usually a mistake (a
/// CDN's published ranges are the exception), hence a warning.
fn public_trusted_proxies(config: &Config, out: &mut Vec<Diagnostic>) {
    for block in &config.server.trusted_proxies {
        if block.value.is_private() {
            continue;
        }
        out.push(
            Diagnostic::warning(
                codes::PUBLIC_TRUSTED_PROXY,
                format!(
                    "trusted proxy block {} is not a loopback or private range",
                    block.value
                ),
            )
            .at(block.span, "x-forwarded-for from here is believed")
            .with_note("a client at any address of this block can name any client address in x-forwarded-for, and address rules and rate limits will believe it")
            .with_help("list only the addresses of your own proxies or load balancers (a CDN's published ranges if it sits in front)")
            .with_data(serde_json::json!({ "block": block.value.to_string() })),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{codes, run_lint};
    use super::*;

    fn route(rule: &str) -> String {
        format!("[[routes]]\nname = \"r\"\nservice = \"web\"\npool = \"web\"\n{rule}\n")
    }

    #[test]
    fn deny_all_and_allow_none_are_reported() {
        for rule in [
            "deny = [\"0.0.0.0/0\"]",
            "deny = [\"10.0.0.0/8\", \"::/0\"]",
            "allow = []",
        ] {
            let out = run_lint(check, &route(rule));
            assert_eq!(codes(&out), [codes::ACCESS_REFUSES_ALL], "{rule}");
        }
        let both = run_lint(check, &route("deny = [\"0.0.0.0/0\", \"::/0\"]"));
        assert!(
            both[0].message.contains("every client"),
            "{}",
            both[0].message
        );
    }

    #[test]
    fn public_trusted_proxies_are_reported() {
        let config = |blocks: &str| format!("[server]\ntrusted_proxies = [{blocks}]\n");
        let out = run_lint(
            check,
            &config("\"127.0.0.1\", \"203.0.113.0/24\", \"fd00::/8\""),
        );
        assert_eq!(codes(&out), [codes::PUBLIC_TRUSTED_PROXY]);
        assert!(
            out[0].message.contains("203.0.113.0/24"),
            "{}",
            out[0].message
        );
        assert!(run_lint(check, &config("\"10.0.0.0/8\", \"::1\"")).is_empty());
    }

    #[test]
    fn narrower_rules_are_not() {
        for rule in [
            "deny = [\"10.0.0.0/8\"]",
            "allow = [\"0.0.0.0/0\"]",
            "allow = [\"10.0.0.0/8\"]",
            "",
        ] {
            assert!(run_lint(check, &route(rule)).is_empty(), "{rule}");
        }
    }
}
