//! Prints how long the timeline and the playbook take on a store of realistic size: GENERATIONS
//! applies of a ROUTES-route config (each changing one route), EVENTS health/alert events, in a
//! real SQLite store in a temporary directory.
//!
//! ```sh
//! cargo run --release -p keel-report --example report_scale -- 200 1000 5000
//! ```

use std::time::Instant;

use keel_report::{LiveView, Playbook, Timeline};
use keel_store::{NewEvent, NewGeneration, SqliteStore, Store, kind, origin};
use serde_json::json;

fn config(routes: usize, variant: usize) -> String {
    let mut text = String::from("[listeners.web]\naddr = \"127.0.0.1:8080\"\n[services.web]\n");
    for p in 0..20 {
        text.push_str(&format!(
            "[pools.p{p}]\nservice = \"web\"\nbackends = [{{ addr = \"127.0.{p}.1:80\" }}, {{ addr = \"127.0.{p}.2:80\" }}]\n"
        ));
    }
    for r in 0..routes {
        let pool = if r == variant % routes {
            (r + variant) % 20
        } else {
            r % 20
        };
        text.push_str(&format!(
            "[[routes]]\nname = \"r{r}\"\nhost = \"h{}.example.com\"\npath_prefix = \"/p{r}\"\nservice = \"web\"\npool = \"p{pool}\"\n",
            r % 50
        ));
    }
    text
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = |i: usize, default: usize| {
        std::env::args()
            .nth(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or(default)
    };
    let (generations, routes, events) = (arg(1, 200), arg(2, 1_000), arg(3, 5_000));
    let dir = tempfile::tempdir()?;
    let store = SqliteStore::open(dir.path())?;
    let started = Instant::now();
    for g in 0..generations {
        store.record_apply(
            NewGeneration {
                config_text: config(routes, g),
                author: "bench".into(),
                message: format!("change {g}"),
                origin: origin::CLI.into(),
                forced: false,
                check_report: json!({"errors": 0, "warnings": 0, "diagnostics": []}),
                impact_report: None,
                certificates: Default::default(),
            },
            true,
        )?;
    }
    let last = u64::try_from(generations).unwrap_or(u64::MAX);
    for e in 0..events {
        let kind = if e % 10 == 0 {
            kind::ALERT
        } else {
            kind::HEALTH
        };
        store.append_event(NewEvent::new(kind, format!("event {e}")).generation(last))?;
    }
    println!(
        "filled: {generations} generations of {routes} routes, {events} events in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let timeline = Timeline::build(&store, None, None)?;
    let built = started.elapsed();
    let markdown = timeline.render_markdown();
    println!(
        "timeline: {} entries built in {:.0} ms, Markdown {} KiB rendered in {:.0} ms",
        timeline.entries.len(),
        built.as_secs_f64() * 1e3,
        markdown.len() / 1024,
        (started.elapsed() - built).as_secs_f64() * 1e3
    );
    let started = Instant::now();
    let playbook = Playbook::from_store(
        &store,
        LiveView::Unknown {
            reason: "bench".into(),
        },
        "http://127.0.0.1:9901",
    )?;
    let built = started.elapsed();
    let svg = playbook.topology_svg()?.unwrap_or_default();
    println!(
        "playbook: built in {:.0} ms, topology SVG {} KiB laid out in {:.0} ms",
        built.as_secs_f64() * 1e3,
        svg.len() / 1024,
        (started.elapsed() - built).as_secs_f64() * 1e3
    );
    Ok(())
}
