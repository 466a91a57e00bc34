//! A generated large config, shaped like a real fleet: many shops, each with many exact
//! hosts and path prefixes, wildcard routes per shop, header-gated canary splits, path
//! regexes, host-less legacy routes and a catch-all. Shared by the benchmark and the
//! test that checks its findings (`tests/synth.rs`) and `examples/synth_dump.rs`.

use std::fmt::Write;

/// Shops (`shopN.example.com` domains).
const SHOPS: usize = 20;
/// Exact hosts per shop.
const HOSTS_PER_SHOP: usize = 20;
/// Services (each with two pools).
const SERVICES: usize = 50;

/// A config with exactly `routes` routes (at least 1000), route tests and intents.
pub(crate) fn config(routes: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "[listeners.web]\naddr = \"127.0.0.1:8080\"\n");
    for s in 0..SERVICES {
        let _ = writeln!(
            out,
            "[services.svc{s}]\nidentity = {{ header = \"x-service\", equals = \"svc{s}\" }}\n"
        );
    }
    for s in 0..SERVICES {
        for (arm, legacy) in [("a", false), ("b", s % 7 == 0)] {
            let port = 10_000 + s * 2 + usize::from(arm == "b");
            let _ = writeln!(
                out,
                "[pools.svc{s}-{arm}]\nservice = \"svc{s}\"\nbackends = [\"127.0.0.1:{port}\", \"127.0.0.2:{port}\"]\nhealth = {{ path = \"/healthz\" }}\nlegacy = {legacy}\n"
            );
        }
    }
    let hosts = SHOPS * HOSTS_PER_SHOP;
    let tail = SHOPS * 3 + 40 + 1; // wildcard routes, host-less regex routes, catch-all
    let per_host = (routes.saturating_sub(tail)) / hosts;
    let mut written = 0;
    // Id of the first route of each shop's first host, for the route tests.
    let mut first_of_shop = Vec::with_capacity(SHOPS);
    for shop in 0..SHOPS {
        first_of_shop.push(written);
        for h in 0..HOSTS_PER_SHOP {
            let host = format!("h{h}.shop{shop}.example.com");
            let service = (shop * HOSTS_PER_SHOP + h) % SERVICES;
            let extra = usize::from(shop * HOSTS_PER_SHOP + h < (routes - tail) % hosts);
            for r in 0..per_host + extra {
                route(&mut out, written, &host, r, service);
                written += 1;
            }
        }
    }
    for shop in 0..SHOPS {
        let service = shop % SERVICES;
        for (k, path) in [
            "path_prefix = \"/assets\"",
            "path_prefix = \"/api\"\nmethods = [\"GET\", \"HEAD\"]",
            "path_regex = \"/p/[0-9]+\"",
        ]
        .iter()
        .enumerate()
        {
            let _ = writeln!(
                out,
                "[[routes]]\nname = \"wild{shop}-{k}\"\nhost = \"*.shop{shop}.example.com\"\n{path}\nservice = \"svc{service}\"\npool = \"svc{service}-a\"\nretries = 0\n"
            );
            written += 1;
        }
    }
    for k in 0..40 {
        let service = k % SERVICES;
        let _ = writeln!(
            out,
            "[[routes]]\nname = \"legacy{k}\"\npath_regex = \"/legacy/{k}/[a-z]+(/[0-9]+)?\"\nservice = \"svc{service}\"\npool = \"svc{service}-a\"\nretries = 0\n"
        );
        written += 1;
    }
    let _ = writeln!(
        out,
        "[[routes]]\nname = \"fallback\"\nservice = \"svc0\"\npool = \"svc0-a\"\nretries = 0\n"
    );
    written += 1;
    debug_assert_eq!(written, routes);
    for (shop, first) in first_of_shop.iter().enumerate() {
        let _ = writeln!(
            out,
            "[[tests]]\nrequest = \"GET https://h0.shop{shop}.example.com/api/v1/x\"\nexpect = {{ route = \"r{}\" }}\n",
            first
        );
        let _ = writeln!(
            out,
            "[[intents]]\nhost = \"h1.shop{shop}.example.com\"\npath_prefix = \"/api\"\nservice = \"svc{}\"\nmin_share = 0.5\n",
            (shop * HOSTS_PER_SHOP + 1) % SERVICES
        );
    }
    out
}

/// The `r`-th route of a host: API versions (some GET-only), static files, an exact
/// health path, item regexes and header-gated canary splits.
fn route(out: &mut String, id: usize, host: &str, r: usize, service: usize) {
    let condition = match r % 6 {
        0 => format!("path_prefix = \"/api/v{}\"", r / 6 + 1),
        1 => format!(
            "path_prefix = \"/static/{}\"\nmethods = [\"GET\", \"HEAD\"]",
            r / 6
        ),
        2 => format!("path = \"/status/{}\"", r / 6),
        3 => format!("path_regex = \"/items/{}/[0-9]+\"", r / 6),
        4 => format!(
            "path_prefix = \"/cart/{}\"\nheaders = {{ \"x-canary\" = \"1\" }}",
            r / 6
        ),
        _ => format!("path_prefix = \"/cart/{}\"", r / 6),
    };
    let target = if r % 6 == 4 {
        format!(
            "split = [{{ pool = \"svc{service}-a\", weight = 90 }}, {{ pool = \"svc{service}-b\", weight = 10 }}]"
        )
    } else {
        format!("pool = \"svc{service}-a\"")
    };
    let _ = writeln!(
        out,
        "[[routes]]\nname = \"r{id}\"\nhost = \"{host}\"\n{condition}\nservice = \"svc{service}\"\n{target}\nretries = 0\n"
    );
}
