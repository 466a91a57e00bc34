//! The one loader: parse, validate, lint, shadow analysis, route tests and intents.
//!
//! [`load`] is the only way a config becomes usable: `keel check`, `keel serve` and
//! `apply` all go through it. It returns a [`Loaded`] with the config (when usable)
//! and a [`keel_config::Report`] of every finding, each with a lint id documented in
//! `docs/lints.md`.
//!
//! The stages are public for tools that want one of them: [`shadow`] (shadowed routes
//! with witness requests, the catch-all check), [`route_tests`] (`[[tests]]`),
//! [`intents`] (traffic-share bounds over any weighted request set),
//! [`refusal_intents`] (`max_refused` on the static request space) and [`probe`]
//! (live backend probes for `keel check --probe`).

pub mod fleet;
pub mod intents;
mod lints;
mod loader;
mod policy_tests;
pub mod probe;
pub mod redirects;
pub mod refusal_intents;
pub mod route_tests;
pub mod shadow;

pub use loader::{Loaded, Pinned, check, is_hard, load, load_in, load_pinned, read_certificates};
