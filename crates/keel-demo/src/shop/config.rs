//! What the shop starts: how many backends per service and how slowly each answers.
//!
//! [`ShopConfig::default`] is the demo's shop with realistic latencies;
//! [`ShopConfig::fast`] is the same fleet answering at once, for tests.

use std::time::Duration;

use super::latency::LatencyModel;
use super::service::ServiceKind;

/// Median answer time of `web` (8 milliseconds).
pub const WEB_MEDIAN: Duration = Duration::from_millis(8);
/// Median answer time of `catalog` (12 milliseconds).
pub const CATALOG_MEDIAN: Duration = Duration::from_millis(12);
/// Median answer time of `cart` (6 milliseconds).
pub const CART_MEDIAN: Duration = Duration::from_millis(6);
/// Median answer time of `checkout` (25 milliseconds).
pub const CHECKOUT_MEDIAN: Duration = Duration::from_millis(25);
/// Median answer time of `legacy-web` (40 milliseconds): the old fleet is slow too.
pub const LEGACY_WEB_MEDIAN: Duration = Duration::from_millis(40);

/// Backends of `web` (3).
pub const WEB_BACKENDS: u32 = 3;
/// Backends of `catalog` (2).
pub const CATALOG_BACKENDS: u32 = 2;
/// Backends of `cart` (3): enough that a non-sticky route loses most carts.
pub const CART_BACKENDS: u32 = 3;
/// Backends of `checkout` (2).
pub const CHECKOUT_BACKENDS: u32 = 2;
/// Backends of `legacy-web` (3).
pub const LEGACY_WEB_BACKENDS: u32 = 3;
/// Most backends one service may have (16): the shop is a demo, not a fleet.
pub const MAX_BACKENDS_PER_SERVICE: u32 = 16;

/// One service's part of the shop.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetSpec {
    /// The service these backends run.
    pub service: ServiceKind,
    /// How many backends (`<service>-1` … `<service>-N`); 1 to [`MAX_BACKENDS_PER_SERVICE`].
    pub backends: u32,
    /// How long each answers.
    pub latency: LatencyModel,
}

/// The whole shop: one [`FleetSpec`] per service, started in this order.
#[derive(Debug, Clone, PartialEq)]
pub struct ShopConfig {
    /// The fleets. A service may be left out; listing one twice is an error at start.
    pub fleets: Vec<FleetSpec>,
}

impl Default for ShopConfig {
    fn default() -> Self {
        let fleet = |service, backends, median| FleetSpec {
            service,
            backends,
            latency: LatencyModel::around(median),
        };
        ShopConfig {
            fleets: vec![
                fleet(ServiceKind::Web, WEB_BACKENDS, WEB_MEDIAN),
                fleet(ServiceKind::Catalog, CATALOG_BACKENDS, CATALOG_MEDIAN),
                fleet(ServiceKind::Cart, CART_BACKENDS, CART_MEDIAN),
                fleet(ServiceKind::Checkout, CHECKOUT_BACKENDS, CHECKOUT_MEDIAN),
                fleet(
                    ServiceKind::LegacyWeb,
                    LEGACY_WEB_BACKENDS,
                    LEGACY_WEB_MEDIAN,
                ),
            ],
        }
    }
}

impl ShopConfig {
    /// The default fleet with no added latency: for tests.
    pub fn fast() -> ShopConfig {
        ShopConfig::default().with_latency(|_| LatencyModel::NONE)
    }

    /// Replace every fleet's latency model by `latency(service)`.
    pub fn with_latency(mut self, latency: impl Fn(ServiceKind) -> LatencyModel) -> ShopConfig {
        for fleet in &mut self.fleets {
            fleet.latency = latency(fleet.service);
        }
        self
    }

    /// Set how many backends `service` runs (adds the fleet with no latency if it was absent).
    pub fn with_backends(mut self, service: ServiceKind, backends: u32) -> ShopConfig {
        match self.fleets.iter_mut().find(|f| f.service == service) {
            Some(fleet) => fleet.backends = backends,
            None => self.fleets.push(FleetSpec {
                service,
                backends,
                latency: LatencyModel::NONE,
            }),
        }
        self
    }
}
