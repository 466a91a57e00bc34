//! K216 (a route's `upgrades` aimed at an HTTP/2 pool, which cannot carry them) and K303 (a route to
//! an HTTP/2 pool without a gRPC content-type match: noted, not wrong).

use keel_config::{Config, Diagnostic, Pool, UpstreamProtocol, codes};

pub(super) fn check(config: &Config, out: &mut Vec<Diagnostic>) {
    for route in &config.routes {
        let pools: Vec<&Pool> = route
            .target_pools()
            .into_iter()
            .filter_map(|(name, _)| config.pools.get(name.value.as_str()))
            .collect();
        if let Some(upgrades) = &route.upgrades
            && !upgrades.value.is_empty()
        {
            // A TLS pool is fine: the upgrade's own connection is TLS too.
            for pool in pools.iter().filter(|p| p.protocol.value.is_h2()) {
                out.push(
                    Diagnostic::warning(
                        codes::UPGRADES_UNSERVABLE,
                        format!(
                            "route `{}` lets upgrades through to pool `{}`, but it speaks HTTP/2 to its backends",
                            route.name, pool.name
                        ),
                    )
                    .at(upgrades.span, "these upgrades")
                    .with_note("Keel relays an upgrade (a WebSocket) as HTTP/1.1 on a connection of its own; this pool's backends expect HTTP/2")
                    .with_help("send upgrades to a plain HTTP/1.1 pool (a route of their own, e.g. path_prefix = \"/live\"), or remove `upgrades`"),
                );
            }
        }
        let grpc_hint = route
            .headers
            .iter()
            .any(|h| h.value.0 == "content-type" && h.value.1.starts_with("application/grpc"));
        if !grpc_hint
            && let Some(pool) = pools
                .iter()
                .find(|p| p.protocol.value != UpstreamProtocol::Http1)
        {
            out.push(
                Diagnostic::note(
                    codes::GRPC_WITHOUT_HINT,
                    format!(
                        "route `{}` sends to HTTP/2 pool `{}` without matching gRPC's content type",
                        route.name, pool.name
                    ),
                )
                .at(route.name.span, "matches gRPC and other requests alike")
                .with_note("gRPC calls are told by content-type: application/grpc; Keel counts their grpc-status either way")
                .with_help("if this route is for gRPC, add headers = { \"content-type\" = \"application/grpc\" } so other traffic is routed (and counted) apart"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{codes as ids, run_lint};
    use super::*;

    fn run(extra: &str) -> Vec<Diagnostic> {
        run_lint(check, extra)
    }

    const GRPC_POOL: &str =
        "[pools.grpc]\nservice = \"api\"\nbackends = [\"127.0.0.1:9301\"]\nprotocol = \"h2c\"\n";

    #[test]
    fn upgrades_to_an_http2_pool_are_flagged() {
        let found = run(&format!(
            "{GRPC_POOL}[[routes]]\nname = \"live\"\nservice = \"api\"\npool = \"grpc\"\nupgrades = [\"websocket\"]\n"
        ));
        assert!(
            ids(&found).contains(&codes::UPGRADES_UNSERVABLE),
            "{found:#?}"
        );
        let plain = run(
            "[[routes]]\nname = \"live\"\nservice = \"web\"\npool = \"web\"\nupgrades = [\"websocket\"]\n",
        );
        assert!(
            !ids(&plain).contains(&codes::UPGRADES_UNSERVABLE),
            "{plain:#?}"
        );
        let tls = run(
            "[pools.secure]\nservice = \"web\"\nbackends = [\"127.0.0.1:9443\"]\ntls = { server_name = \"live.internal\" }\n\
             [[routes]]\nname = \"live\"\nservice = \"web\"\npool = \"secure\"\nupgrades = [\"websocket\"]\n",
        );
        assert!(
            !ids(&tls).contains(&codes::UPGRADES_UNSERVABLE),
            "a TLS pool carries upgrades: {tls:#?}"
        );
    }

    #[test]
    fn a_grpc_route_without_its_content_type_is_noted_once_hinted_not() {
        let found = run(&format!(
            "{GRPC_POOL}[[routes]]\nname = \"rpc\"\nservice = \"api\"\npool = \"grpc\"\n"
        ));
        assert!(
            ids(&found).contains(&codes::GRPC_WITHOUT_HINT),
            "{found:#?}"
        );
        let hinted = run(&format!(
            "{GRPC_POOL}[[routes]]\nname = \"rpc\"\nservice = \"api\"\npool = \"grpc\"\nheaders = {{ \"content-type\" = \"application/grpc\" }}\n"
        ));
        assert!(
            !ids(&hinted).contains(&codes::GRPC_WITHOUT_HINT),
            "{hinted:#?}"
        );
    }
}
