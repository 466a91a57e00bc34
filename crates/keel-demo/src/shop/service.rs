//! The shop's services, their names on the wire, and which service owns which path.
//!
//! Both sides use this: the backends answer with their service's name in
//! [`SERVICE_HEADER`], and the load decides from a request's path which service
//! *should* have answered it. A mismatch is a shopper talking to the wrong application,
//! the March-15 failure.

use std::fmt;

/// Virtual host every shop request carries.
pub const SHOP_HOST: &str = "shop.example.com";
/// Response header naming the application that answered (`x-service: cart`).
pub const SERVICE_HEADER: &str = "x-service";
/// Response header naming the backend instance that answered (`x-backend: cart-2`).
pub const BACKEND_HEADER: &str = "x-backend";
/// Cookie that carries a shopper's cart id; the cart service keys its state by it.
pub const CART_COOKIE: &str = "cart_id";
/// Health check path of every backend.
pub const HEALTH_PATH: &str = "/healthz";

/// One application of the simulated shop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceKind {
    /// The storefront: `/` and `/static/*`.
    Web,
    /// Product listing and item pages: `/catalog`, `/catalog/items/{id}`.
    Catalog,
    /// Per-shopper carts: `/cart`, `/cart/items`. State lives in one backend's memory.
    Cart,
    /// Orders: `POST /checkout`.
    Checkout,
    /// The retired storefront fleet: a different application that still answers 200.
    LegacyWeb,
}

impl ServiceKind {
    /// Every service, in the order the shop starts them and views list them.
    pub const ALL: [ServiceKind; 5] = [
        ServiceKind::Web,
        ServiceKind::Catalog,
        ServiceKind::Cart,
        ServiceKind::Checkout,
        ServiceKind::LegacyWeb,
    ];

    /// The name on the wire (`x-service` value) and in backend names (`cart-2`).
    pub const fn name(self) -> &'static str {
        match self {
            ServiceKind::Web => "web",
            ServiceKind::Catalog => "catalog",
            ServiceKind::Cart => "cart",
            ServiceKind::Checkout => "checkout",
            ServiceKind::LegacyWeb => "legacy-web",
        }
    }

    /// Position in [`ServiceKind::ALL`]; used to index fixed-size counter arrays.
    pub const fn index(self) -> usize {
        match self {
            ServiceKind::Web => 0,
            ServiceKind::Catalog => 1,
            ServiceKind::Cart => 2,
            ServiceKind::Checkout => 3,
            ServiceKind::LegacyWeb => 4,
        }
    }

    /// The service whose `x-service` value is `name`, if any.
    pub fn from_name(name: &str) -> Option<ServiceKind> {
        ServiceKind::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The service that owns `path` in the shop's URL space, or `None` for paths no
    /// current service owns. `legacy-web` owns nothing: any answer from it is wrong.
    pub fn owning(path: &str) -> Option<ServiceKind> {
        if path == "/" || path.starts_with("/static/") {
            Some(ServiceKind::Web)
        } else if under(path, "/catalog") {
            Some(ServiceKind::Catalog)
        } else if under(path, "/cart") {
            Some(ServiceKind::Cart)
        } else if under(path, "/checkout") {
            Some(ServiceKind::Checkout)
        } else {
            None
        }
    }
}

impl fmt::Display for ServiceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `path` is `prefix` itself or a sub-path of it (`/cart`, `/cart/items`, not `/cartoon`).
fn under(path: &str, prefix: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_belong_to_their_service() {
        assert_eq!(ServiceKind::owning("/"), Some(ServiceKind::Web));
        assert_eq!(
            ServiceKind::owning("/static/app.css"),
            Some(ServiceKind::Web)
        );
        assert_eq!(ServiceKind::owning("/catalog"), Some(ServiceKind::Catalog));
        assert_eq!(
            ServiceKind::owning("/catalog/items/7"),
            Some(ServiceKind::Catalog)
        );
        assert_eq!(ServiceKind::owning("/cart"), Some(ServiceKind::Cart));
        assert_eq!(ServiceKind::owning("/cart/items"), Some(ServiceKind::Cart));
        assert_eq!(
            ServiceKind::owning("/checkout"),
            Some(ServiceKind::Checkout)
        );
        assert_eq!(ServiceKind::owning("/cartoon"), None);
        assert_eq!(ServiceKind::owning("/api/v1/x"), None);
    }

    #[test]
    fn names_round_trip_and_index_matches_order() {
        for (i, service) in ServiceKind::ALL.into_iter().enumerate() {
            assert_eq!(ServiceKind::from_name(service.name()), Some(service));
            assert_eq!(service.index(), i);
        }
        assert_eq!(ServiceKind::from_name("legacy"), None);
    }
}
