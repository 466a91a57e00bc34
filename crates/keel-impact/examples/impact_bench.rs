//! Blast-radius benchmark: generates two large configs (old, and new with realistic
//! edits) and a traffic sample, then times each stage of `keel diff` and prints the
//! numbers. Run in release mode through `bench/impact.sh`.
//!
//! ```text
//! impact_bench [--routes 10000] [--requests 10000] [--runs 5]
//! ```
//!
//! The old config has `routes` routes: 90 % exact-host routes (10 path prefixes on each
//! of `routes / 10` hosts, every tenth a 90/10 split), 9 % wildcard-host routes and 1 %
//! host-less regex routes (both on the router's linear fallback list, checked for every
//! request). The new config re-points 5 % of routes to another pool, turns 2 % of the
//! splits 50/50, adds 50 shadowing routes at the top, drops 20 routes and removes one
//! backend from a tenth of the consistent-hash pools. The sample sends 85 % of requests
//! to exact hosts, 10 % to wildcard hosts and 5 % to unknown hosts; 30 % carry a sticky key.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use keel_impact::{Compiled, blast_radius_compiled, gate};
use keel_route::RequestShape;
use keel_route::RouteTable;

const SERVICES: usize = 200;
const POOLS: usize = 500;
const PATHS_PER_HOST: usize = 10;

/// A small deterministic generator (xorshift64*), so every run replays the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

struct Shape {
    exact_hosts: usize,
    wildcard_routes: usize,
    regex_routes: usize,
}

impl Shape {
    fn new(routes: usize) -> Self {
        let regex_routes = (routes / 100).max(1);
        let wildcard_routes = (routes * 9 / 100).max(1);
        let exact_hosts = (routes - regex_routes - wildcard_routes) / PATHS_PER_HOST;
        Self {
            exact_hosts,
            wildcard_routes,
            regex_routes,
        }
    }
}

fn pool_section(out: &mut String, drop_backend: bool) {
    for s in 0..SERVICES {
        let _ = writeln!(out, "[services.svc{s}]");
    }
    for p in 0..POOLS {
        let _ = writeln!(out, "\n[pools.pool{p}]\nservice = \"svc{}\"", p % SERVICES);
        if p % 5 == 0 {
            out.push_str("balance = \"consistent_hash\"\nhash_key = \"cookie:session\"\n");
        }
        let backends = if drop_backend && p % 50 == 0 { 3 } else { 4 };
        let list: Vec<String> = (0..backends)
            .map(|b| format!("\"10.{}.{}.{b}:8080\"", p / 250, p % 250))
            .collect();
        let _ = writeln!(out, "backends = [{}]", list.join(", "));
    }
}

fn route(out: &mut String, name: &str, matcher: &str, pool: usize, split: Option<(usize, u32)>) {
    let _ = writeln!(
        out,
        "\n[[routes]]\nname = \"{name}\"\n{matcher}\nservice = \"svc{}\"",
        pool % SERVICES
    );
    match split {
        Some((other, weight)) => {
            let _ = writeln!(
                out,
                "split = [{{ pool = \"pool{pool}\", weight = {} }}, {{ pool = \"pool{other}\", weight = {weight} }}]",
                100 - weight
            );
        }
        None => {
            let _ = writeln!(out, "pool = \"pool{pool}\"");
        }
    }
}

/// The config text; `new` applies the edits described in the module doc.
fn config(shape: &Shape, new: bool) -> String {
    let mut rng = Rng(0x5eed_0000_0000_0001);
    let mut out = String::from("[listeners.web]\naddr = \"127.0.0.1:8080\"\n\n");
    pool_section(&mut out, new);
    if new {
        for i in 0..50 {
            let host = (i * 37) % shape.exact_hosts;
            let matcher = format!(
                "host = \"h{host}.example.com\"\npath_prefix = \"/p{}\"",
                i % PATHS_PER_HOST
            );
            route(
                &mut out,
                &format!("shadow{i}"),
                &matcher,
                (i * 7) % POOLS,
                None,
            );
        }
    }
    let mut index = 0;
    let mut emit = |out: &mut String, rng: &mut Rng, name: String, matcher: String| {
        let mut pool = rng.below(POOLS);
        let mut split = (index % 10 == 0).then(|| (rng.below(POOLS), 10));
        let (repoint, rebalance, dropped) =
            (rng.below(100) < 5, rng.below(100) < 20, rng.below(500) == 0);
        if new {
            if repoint {
                pool = (pool + 1) % POOLS;
            }
            if let Some((_, weight)) = &mut split
                && rebalance
            {
                *weight = 50;
            }
        }
        index += 1;
        if !(new && dropped) {
            route(out, &name, &matcher, pool, split);
        }
    };
    for h in 0..shape.exact_hosts {
        for p in 0..PATHS_PER_HOST {
            let matcher = format!("host = \"h{h}.example.com\"\npath_prefix = \"/p{p}\"");
            emit(&mut out, &mut rng, format!("r{h}-{p}"), matcher);
        }
    }
    for w in 0..shape.wildcard_routes {
        let matcher = format!("host = \"*.zone{w}.example.com\"");
        emit(&mut out, &mut rng, format!("wild{w}"), matcher);
    }
    for r in 0..shape.regex_routes {
        let matcher = format!("path_regex = \"/api/v{r}/items/[0-9]+\"");
        emit(&mut out, &mut rng, format!("re{r}"), matcher);
    }
    out
}

fn sample(shape: &Shape, requests: usize) -> Vec<RequestShape> {
    let mut rng = Rng(0xface_0000_0000_0002);
    (0..requests)
        .map(|i| {
            let roll = rng.below(100);
            let mut request = if roll < 85 {
                let path = format!("/p{}/item/{}", rng.below(PATHS_PER_HOST), rng.below(1000));
                RequestShape::new(
                    "GET",
                    &format!("h{}.example.com", rng.below(shape.exact_hosts)),
                    &path,
                )
            } else if roll < 95 {
                let host = format!("shop.zone{}.example.com", rng.below(shape.wildcard_routes));
                RequestShape::new("POST", &host, "/cart")
            } else {
                let path = format!("/api/v{}/items/{}", rng.below(shape.regex_routes * 2), i);
                RequestShape::new("GET", &format!("unknown{i}.example.org"), &path)
            };
            if rng.below(100) < 30 {
                request.hash_key = Some(format!("session-{}", rng.below(1_000_000)));
            }
            request
        })
        .collect()
}

fn arg(args: &[String], name: &str, default: usize) -> Result<usize, String> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{name} needs a number")),
    }
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let shape = Shape::new(arg(&args, "--routes", 10_000)?);
    let requests = arg(&args, "--requests", 10_000)?;
    let runs = arg(&args, "--runs", 5)?.max(1);

    let (old_text, new_text) = (config(&shape, false), config(&shape, true));
    let traffic = sample(&shape, requests);
    let (mut parse, mut compile, mut replay, mut output, mut total) =
        (vec![], vec![], vec![], vec![], vec![]);
    let mut last = None;
    let mut last_text = String::new();
    for _ in 0..runs {
        let start = Instant::now();
        let old = keel_config::parse(&old_text);
        let new = keel_config::parse(&new_text);
        if old.has_errors() || new.has_errors() {
            return Err(format!(
                "generated config has errors: {:?}",
                old.diagnostics.first()
            ));
        }
        let parsed = Instant::now();
        let old_table = RouteTable::compile(&old.config).map_err(|e| e.to_string())?;
        let new_table = RouteTable::compile(&new.config).map_err(|e| e.to_string())?;
        let compiled = Instant::now();
        let report = blast_radius_compiled(
            Compiled {
                config: &old.config,
                table: &old_table,
            },
            Compiled {
                config: &new.config,
                table: &new_table,
            },
            &traffic,
        );
        let replayed = Instant::now();
        let verdict = gate(&report, new.config.safety.max_shift, &new.config.intents);
        let text = verdict.render_human();
        let json = report.to_json().to_string();
        let done = Instant::now();
        parse.push(parsed - start);
        compile.push(compiled - parsed);
        replay.push(replayed - compiled);
        output.push(done - replayed);
        total.push(done - start);
        last_text = text.clone();
        last = Some((
            report,
            verdict.allowed,
            text.len(),
            json.len(),
            old.config.routes.len(),
            new.config.routes.len(),
        ));
    }
    let Some((report, allowed, text_len, json_len, old_routes, new_routes)) = last else {
        return Err("no run".into());
    };
    println!(
        "keel-impact bench: {old_routes} old routes, {new_routes} new routes, {} sampled requests, {runs} runs (median)",
        report.total
    );
    println!(
        "  parse both configs            {:>8.1} ms",
        ms(median(parse))
    );
    println!(
        "  compile both route tables     {:>8.1} ms",
        ms(median(compile))
    );
    println!(
        "  replay the sample             {:>8.1} ms",
        ms(median(replay))
    );
    println!(
        "  gate + render text + JSON     {:>8.1} ms",
        ms(median(output))
    );
    println!(
        "  total (keel diff end to end)  {:>8.1} ms",
        ms(median(total))
    );
    println!(
        "  result: {:.1}% moved, {:.1}% changed service, {} movements, max host shift {:.1}%, gate {}, text {} B, JSON {} B",
        report.moved.share * 100.0,
        report.changes_service.share * 100.0,
        report.movements.len(),
        report.max_host_shift() * 100.0,
        if allowed { "accepts" } else { "refuses" },
        text_len,
        json_len
    );
    if let Some(sticky) = &report.sticky {
        println!(
            "  sticky: {:.0} keyed requests, {:.1}% change backend",
            sticky.requests,
            sticky.changed.share * 100.0
        );
    }
    if std::env::var_os("IMPACT_BENCH_PRINT").is_some() {
        println!("{last_text}");
    }
    Ok(())
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
