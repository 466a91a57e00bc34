//! One cart backend's memory: carts by cart id, bounded, and the `cart_id` cookie.
//!
//! Each `cart` backend owns its own [`CartStore`]: a cart created on `cart-1` does not
//! exist on `cart-2`. That is the point: only a route that keeps a shopper on one
//! backend (consistent hash on `cookie:cart_id`) keeps the cart.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use http::HeaderMap;
use http::header::COOKIE;
use serde::{Deserialize, Serialize};

use super::service::CART_COOKIE;

/// Carts one backend keeps (20,000); the oldest is forgotten past this.
pub const MAX_CARTS_PER_BACKEND: usize = 20_000;
/// Distinct SKUs one cart may hold (50 lines).
pub const MAX_LINES_PER_CART: usize = 50;
/// Largest quantity of one line (99 units).
pub const MAX_QTY: u32 = 99;
/// Longest accepted cart id (64 bytes).
pub const MAX_CART_ID_LEN: usize = 64;

/// One line of a cart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartLine {
    /// The item's SKU.
    pub sku: String,
    /// Units of it.
    pub qty: u32,
}

/// Why an item could not be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CartError {
    /// The cart already holds [`MAX_LINES_PER_CART`] distinct SKUs.
    #[error("cart is full ({MAX_LINES_PER_CART} lines)")]
    Full,
    /// The line would exceed [`MAX_QTY`] units.
    #[error("quantity over {MAX_QTY}")]
    TooMany,
}

/// The carts of one backend.
#[derive(Debug, Default)]
pub(crate) struct CartStore {
    inner: Mutex<Carts>,
}

#[derive(Debug, Default)]
struct Carts {
    by_id: HashMap<String, Vec<CartLine>>,
    /// Creation order, to forget the oldest cart when full.
    created: VecDeque<String>,
}

impl CartStore {
    /// The lines of cart `cart_id`; empty if this backend never saw it.
    pub(crate) fn lines(&self, cart_id: &str) -> Vec<CartLine> {
        let carts = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        carts.by_id.get(cart_id).cloned().unwrap_or_default()
    }

    /// Add `qty` of `sku` to cart `cart_id` (creating it) and return its lines.
    pub(crate) fn add(
        &self,
        cart_id: &str,
        sku: &str,
        qty: u32,
    ) -> Result<Vec<CartLine>, CartError> {
        let mut carts = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !carts.by_id.contains_key(cart_id) {
            if carts.created.len() >= MAX_CARTS_PER_BACKEND
                && let Some(oldest) = carts.created.pop_front()
            {
                carts.by_id.remove(&oldest);
            }
            carts.created.push_back(cart_id.to_owned());
            carts.by_id.insert(cart_id.to_owned(), Vec::new());
        }
        let Some(lines) = carts.by_id.get_mut(cart_id) else {
            return Ok(Vec::new());
        };
        match lines.iter_mut().find(|line| line.sku == sku) {
            Some(line) => {
                let total = line.qty.saturating_add(qty);
                if total > MAX_QTY {
                    return Err(CartError::TooMany);
                }
                line.qty = total;
            }
            None => {
                if lines.len() >= MAX_LINES_PER_CART {
                    return Err(CartError::Full);
                }
                if qty > MAX_QTY {
                    return Err(CartError::TooMany);
                }
                lines.push(CartLine {
                    sku: sku.to_owned(),
                    qty,
                });
            }
        }
        Ok(lines.clone())
    }

    /// Number of carts held.
    pub(crate) fn len(&self) -> usize {
        let carts = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        carts.by_id.len()
    }
}

/// The `cart_id` cookie of a request, if present and well-formed
/// (1 to [`MAX_CART_ID_LEN`] bytes of `[A-Za-z0-9_-]`).
pub(crate) fn cart_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == CART_COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|value| is_valid_cart_id(value))
}

fn is_valid_cart_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_CART_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(cookie: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::from_str(cookie).expect("test cookie"));
        headers
    }

    #[test]
    fn reads_the_cart_cookie_among_others() {
        assert_eq!(cart_id(&headers("a=1; cart_id=abc-1; b=2")), Some("abc-1"));
        assert_eq!(cart_id(&headers("cart_id=x_9")), Some("x_9"));
        assert_eq!(cart_id(&headers("cart_idx=abc")), None);
        assert_eq!(cart_id(&headers("cart_id=")), None);
        assert_eq!(cart_id(&headers("cart_id=a b")), None);
        assert_eq!(
            cart_id(&headers(&format!("cart_id={}", "a".repeat(65)))),
            None
        );
        assert_eq!(cart_id(&HeaderMap::new()), None);
    }

    #[test]
    fn adding_twice_sums_and_bounds_hold() {
        let store = CartStore::default();
        assert!(store.lines("c1").is_empty());
        store.add("c1", "sku-0001", 2).expect("first add");
        let lines = store.add("c1", "sku-0001", 3).expect("second add");
        assert_eq!(
            lines,
            vec![CartLine {
                sku: "sku-0001".into(),
                qty: 5
            }]
        );
        assert_eq!(
            store.add("c1", "sku-0001", MAX_QTY),
            Err(CartError::TooMany)
        );
        assert!(store.lines("c2").is_empty());
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn a_full_cart_refuses_new_lines() {
        let store = CartStore::default();
        for i in 0..MAX_LINES_PER_CART {
            store
                .add("c", &format!("sku-{i:04}"), 1)
                .expect("room left");
        }
        assert_eq!(store.add("c", "sku-9999", 1), Err(CartError::Full));
    }
}
