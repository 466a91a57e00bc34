//! The game day: a simulated shop behind Keel, a shopper load, and the March-15 incident replayed as scenes.
//!
//! - [`shop`]: the simulated shop. Real HTTP/1.1 backends on loopback for the services `web`,
//!   `catalog`, `cart` and `checkout`, plus a `legacy-web` fleet that answers as another
//!   application. Every backend says who it is (`x-service`, `x-backend`) and has a `/healthz`.
//! - [`load`]: the shopper load. An open-loop, rate-capped stream of shopper journeys
//!   (browse, add to cart, check out) that classifies every response (ok, HTTP error,
//!   transport error, wrong application, lost cart) and keeps live per-second statistics,
//!   including the share of shoppers affected over any time window.
//!
//! Neither module knows about Keel: the load only sees HTTP responses, so what it reports
//! is what a shopper would have seen.

pub mod load;
pub mod shop;

pub use load::{LoadConfig, LoadError, LoadSnapshot, LoadStats, ShopperLoad};
pub use shop::{ServiceKind, Shop, ShopConfig, ShopError};
