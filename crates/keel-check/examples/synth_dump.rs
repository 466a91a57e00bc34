//! Writes the generated benchmark config to stdout (`cargo run -p keel-check --example synth_dump > big.toml`).

#[path = "../benches/support/synth.rs"]
mod synth;

fn main() {
    let routes = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    print!("{}", synth::config(routes));
}
