//! What one response meant to the shopper: ok, an HTTP error, a transport error, an answer
//! from the wrong application, or a cart that lost its items.
//!
//! The rule that matters is identity: the path says which service must answer
//! ([`ServiceKind::owning`]); a response whose `x-service` names another one is
//! [`Outcome::WrongApplication`] even when its status is 200 — the March-15 failure, where
//! the wrong servers answered politely.

use http::{HeaderValue, StatusCode};
use serde::Deserialize;

use crate::shop::{CartLine, ServiceKind};

/// Classes of response, as a shopper experiences them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The right service answered with a success, and a viewed cart held what was added.
    Ok,
    /// The right service (or the proxy itself) answered 4xx.
    ClientError,
    /// The right service (or the proxy itself) answered 5xx.
    ServerError,
    /// No answer: refused or reset connection, timeout, unreadable or oversized body.
    TransportError,
    /// Another application answered (or a success came with no identity at all).
    WrongApplication,
    /// The cart service answered, but without the items this shopper had added: the
    /// session broke (typically a non-sticky route to a cart backend that never saw it).
    LostCart,
}

impl Outcome {
    /// Every outcome, in counter order.
    pub const ALL: [Outcome; 6] = [
        Outcome::Ok,
        Outcome::ClientError,
        Outcome::ServerError,
        Outcome::TransportError,
        Outcome::WrongApplication,
        Outcome::LostCart,
    ];

    /// Position in [`Outcome::ALL`].
    pub const fn index(self) -> usize {
        match self {
            Outcome::Ok => 0,
            Outcome::ClientError => 1,
            Outcome::ServerError => 2,
            Outcome::TransportError => 3,
            Outcome::WrongApplication => 4,
            Outcome::LostCart => 5,
        }
    }

    /// Short label for views and logs.
    pub const fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::ClientError => "4xx",
            Outcome::ServerError => "5xx",
            Outcome::TransportError => "transport error",
            Outcome::WrongApplication => "wrong application",
            Outcome::LostCart => "lost cart",
        }
    }

    /// Whether this response makes its shopper an affected one.
    pub const fn is_bad(self) -> bool {
        !matches!(self, Outcome::Ok)
    }
}

/// Who answered a request, from its `x-service` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Answerer {
    /// One of the shop's services.
    Service(ServiceKind),
    /// No `x-service` header (the proxy itself, or an application that does not say).
    Unidentified,
    /// An `x-service` value that names no shop service.
    Unknown,
}

/// Number of distinct [`Answerer`] counters.
pub const ANSWERER_SLOTS: usize = ServiceKind::ALL.len() + 2;

impl Answerer {
    /// Read the `x-service` header value.
    pub fn from_header(value: Option<&HeaderValue>) -> Answerer {
        match value {
            None => Answerer::Unidentified,
            Some(value) => value
                .to_str()
                .ok()
                .and_then(ServiceKind::from_name)
                .map_or(Answerer::Unknown, Answerer::Service),
        }
    }

    /// Counter position: services first, then unidentified, then unknown.
    pub const fn index(self) -> usize {
        match self {
            Answerer::Service(service) => service.index(),
            Answerer::Unidentified => ServiceKind::ALL.len(),
            Answerer::Unknown => ServiceKind::ALL.len() + 1,
        }
    }

    /// The answerer at counter position `index`.
    pub fn from_index(index: usize) -> Answerer {
        match ServiceKind::ALL.get(index) {
            Some(service) => Answerer::Service(*service),
            None if index == ServiceKind::ALL.len() => Answerer::Unidentified,
            None => Answerer::Unknown,
        }
    }

    /// Label for views: the service name, `(none)` or `(unknown)`.
    pub const fn name(self) -> &'static str {
        match self {
            Answerer::Service(service) => service.name(),
            Answerer::Unidentified => "(none)",
            Answerer::Unknown => "(unknown)",
        }
    }
}

/// Classify a response by status and identity. `expected` is the service owning the
/// request's path (`None`: any answerer is accepted). The cart content is checked
/// separately, by [`verify_cart`].
pub fn classify(expected: Option<ServiceKind>, status: StatusCode, answerer: Answerer) -> Outcome {
    let by_status = if status.is_server_error() {
        Outcome::ServerError
    } else if status.is_client_error() {
        Outcome::ClientError
    } else {
        Outcome::Ok
    };
    let Some(expected) = expected else {
        return by_status;
    };
    match answerer {
        Answerer::Service(service) if service == expected => by_status,
        // An error without identity is the proxy speaking (no route, no healthy backend):
        // an error, not an impostor.
        Answerer::Unidentified if by_status != Outcome::Ok => by_status,
        _ => Outcome::WrongApplication,
    }
}

#[derive(Deserialize)]
struct CartBody {
    items: Vec<CartLine>,
}

/// Whether a `GET /cart` body holds at least `expected` (SKU, quantity) lines.
/// An unreadable body fails: the shopper could not see their cart.
pub fn verify_cart(body: &[u8], expected: &[(String, u32)]) -> bool {
    let Ok(cart) = serde_json::from_slice::<CartBody>(body) else {
        return false;
    };
    expected.iter().all(|(sku, qty)| {
        cart.items
            .iter()
            .any(|line| &line.sku == sku && line.qty >= *qty)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CART: Option<ServiceKind> = Some(ServiceKind::Cart);

    #[test]
    fn the_legacy_app_answering_the_cart_is_the_wrong_application() {
        let legacy = Answerer::from_header(Some(&HeaderValue::from_static("legacy-web")));
        assert_eq!(legacy, Answerer::Service(ServiceKind::LegacyWeb));
        assert_eq!(
            classify(CART, StatusCode::OK, legacy),
            Outcome::WrongApplication
        );
        assert_eq!(
            classify(CART, StatusCode::NOT_FOUND, legacy),
            Outcome::WrongApplication
        );
    }

    #[test]
    fn status_decides_when_the_right_service_answers() {
        let cart = Answerer::Service(ServiceKind::Cart);
        assert_eq!(classify(CART, StatusCode::OK, cart), Outcome::Ok);
        assert_eq!(
            classify(CART, StatusCode::BAD_REQUEST, cart),
            Outcome::ClientError
        );
        assert_eq!(
            classify(CART, StatusCode::INTERNAL_SERVER_ERROR, cart),
            Outcome::ServerError
        );
    }

    #[test]
    fn proxy_errors_are_errors_and_silent_successes_are_impostors() {
        let none = Answerer::from_header(None);
        assert_eq!(
            classify(CART, StatusCode::BAD_GATEWAY, none),
            Outcome::ServerError
        );
        assert_eq!(
            classify(CART, StatusCode::NOT_FOUND, none),
            Outcome::ClientError
        );
        assert_eq!(
            classify(CART, StatusCode::OK, none),
            Outcome::WrongApplication
        );
        let odd = Answerer::from_header(Some(&HeaderValue::from_static("billing")));
        assert_eq!(odd, Answerer::Unknown);
        assert_eq!(
            classify(CART, StatusCode::OK, odd),
            Outcome::WrongApplication
        );
        assert_eq!(classify(None, StatusCode::OK, odd), Outcome::Ok);
    }

    #[test]
    fn answerer_indexes_round_trip() {
        for index in 0..ANSWERER_SLOTS {
            assert_eq!(Answerer::from_index(index).index(), index);
        }
    }

    #[test]
    fn cart_verification_needs_every_added_line() {
        let body = br#"{"cart_id":"c","backend":"cart-1","items":[{"sku":"sku-0001","qty":2}]}"#;
        assert!(verify_cart(body, &[]));
        assert!(verify_cart(body, &[("sku-0001".into(), 2)]));
        assert!(!verify_cart(body, &[("sku-0001".into(), 3)]));
        assert!(!verify_cart(body, &[("sku-0002".into(), 1)]));
        assert!(!verify_cart(b"<HTML>ShopOld</HTML>", &[]));
    }
}
