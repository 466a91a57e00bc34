//! The game day: a simulated shop behind Keel, a shopper load, and the March-15 incident
//! replayed as scenes (`keel demo`).
//!
//! - [`shop`]: the simulated shop. Real HTTP/1.1 backends on loopback for the services `web`,
//!   `catalog`, `cart` and `checkout`, plus a `legacy-web` fleet that answers as another
//!   application. Every backend says who it is (`x-service`, `x-backend`) and has a `/healthz`.
//! - [`load`]: the shopper load. An open-loop, rate-capped stream of shopper journeys
//!   (browse, add to cart, check out) that classifies every response (ok, HTTP error,
//!   transport error, wrong application, lost cart) and keeps live per-second statistics,
//!   including the share of shoppers affected over any time window.
//! - [`config`]: the demo's `keel.toml`, generated from the real addresses, and the
//!   March-15 edit of it.
//! - [`stand`]: Keel in front of the shop, in this process (controller, data plane,
//!   admin API, store in a temporary state directory).
//! - [`scenes`]: the warm-up and the three scenes, each with its expectations.
//! - [`dashboard`], [`view`], [`narration`]: what the person watching sees.
//! - [`game`]: the whole run, from start to summary and exit status.
//!
//! The shop and the load do not know about Keel: the load only sees HTTP responses, so
//! what it reports is what a shopper would have seen.

pub mod config;
pub mod dashboard;
mod error;
pub mod game;
pub mod load;
pub mod log_tail;
pub mod narration;
pub mod scenes;
pub mod shop;
pub mod stand;
pub mod view;

pub use error::DemoError;
pub use game::{GameOptions, GameReport};
pub use load::{LoadConfig, LoadError, LoadSnapshot, LoadStats, ShopperLoad};
pub use log_tail::LogTail;
pub use shop::{ServiceKind, Shop, ShopConfig, ShopError};
