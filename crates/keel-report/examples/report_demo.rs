//! Writes the documents of the scripted scenario (apply 1, apply 2, identity alert on 2,
//! automatic rollback to 1) to a directory, for `docs/timeline-and-playbook.md` and for looking
//! at the rendered diagram:
//!
//! ```sh
//! cargo run -p keel-report --example report_demo -- /tmp/keel-report-demo
//! rsvg-convert -b white /tmp/keel-report-demo/topology.svg -o /tmp/keel-report-demo/topology.png
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;

use keel_report::{BackendHealth, LiveStates, LiveView, Playbook, Timeline};
use keel_store::{MemoryStore, Store};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "keel-report-demo".to_owned()),
    );
    std::fs::create_dir_all(&dir)?;
    let store = MemoryStore::new();
    common::march_15_scenario_paced(&store, [1_500, 1_200, 300, 150]);
    let timeline = Timeline::build(&store, None, None)?;
    // After the incident: a fixed generation 3 goes live, so the playbook has a rollback target.
    let fixed = common::shop_v2().replace(
        "backends = [{ addr = \"127.0.0.1:9101\" }, { addr = \"127.0.0.1:9102\" }]\n\n[[routes]]",
        "backends = [{ addr = \"127.0.0.1:9003\" }, { addr = \"127.0.0.1:9004\" }]\n\n[[routes]]",
    );
    store.record_apply(
        common::generation(&fixed, "bob", "checkout-v3 on the real checkout servers"),
        true,
    )?;
    std::fs::write(dir.join("timeline.md"), timeline.render_markdown())?;
    std::fs::write(
        dir.join("timeline.json"),
        serde_json::to_string_pretty(&timeline.to_json())?,
    )?;

    let mut states = LiveStates::new("GET http://127.0.0.1:9901/status");
    states.active_generation = Some(3);
    states.insert("web", "127.0.0.1:9101", BackendHealth::Healthy);
    states.insert("web", "127.0.0.1:9102", BackendHealth::Unhealthy);
    states.insert("checkout-v2", "127.0.0.1:9001", BackendHealth::Healthy);
    states.insert("checkout-v2", "127.0.0.1:9002", BackendHealth::Ejected);
    states.insert("checkout-v3", "127.0.0.1:9003", BackendHealth::Healthy);
    states.insert(
        "checkout-v3",
        "127.0.0.1:9004",
        BackendHealth::Misidentified,
    );
    let playbook = Playbook::from_store(&store, LiveView::Known(states), "http://127.0.0.1:9901")?;
    std::fs::write(
        dir.join("playbook.md"),
        playbook.render_markdown(Some("topology.svg")),
    )?;
    std::fs::write(dir.join("playbook.html"), playbook.render_html()?)?;
    if let Some(svg) = playbook.topology_svg()? {
        std::fs::write(dir.join("topology.svg"), svg)?;
    }
    println!("wrote {}", dir.display());
    Ok(())
}
