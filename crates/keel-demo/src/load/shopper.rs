//! One simulated shopper: a cart cookie, a planned journey, and what they expect to find.
//!
//! Journey: `GET /` → `GET /catalog` → 1–3 × `GET /catalog/items/N` → 1–2 ×
//! `POST /cart/items` (items just viewed) → `GET /cart` → sometimes `POST /checkout`.
//! The shopper remembers what the shop confirmed adding, so `GET /cart` can tell a kept
//! session from a lost one.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method};

use crate::shop::{CART_COOKIE, CATALOG_SIZE, ServiceKind, sku_for};

use super::outcome::Outcome;

/// Most units of one item a shopper adds in one step (3).
const MAX_QTY_PER_ADD: u32 = 3;

/// One step of a journey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    Home,
    Catalog,
    Item(u32),
    AddToCart { item: u32, qty: u32 },
    ViewCart,
    Checkout,
}

impl Step {
    pub(crate) fn method(&self) -> Method {
        match self {
            Step::AddToCart { .. } | Step::Checkout => Method::POST,
            _ => Method::GET,
        }
    }

    pub(crate) fn path(&self) -> String {
        match self {
            Step::Home => "/".to_owned(),
            Step::Catalog => "/catalog".to_owned(),
            Step::Item(id) => format!("/catalog/items/{id}"),
            Step::AddToCart { .. } => "/cart/items".to_owned(),
            Step::ViewCart => "/cart".to_owned(),
            Step::Checkout => "/checkout".to_owned(),
        }
    }

    pub(crate) fn body(&self) -> Bytes {
        match self {
            Step::AddToCart { item, qty } => {
                let body = serde_json::json!({ "sku": sku_for(*item), "qty": qty });
                Bytes::from(body.to_string())
            }
            _ => Bytes::new(),
        }
    }

    /// The service that must answer this step.
    pub(crate) fn service(&self) -> ServiceKind {
        match self {
            Step::Home => ServiceKind::Web,
            Step::Catalog | Step::Item(_) => ServiceKind::Catalog,
            Step::AddToCart { .. } | Step::ViewCart => ServiceKind::Cart,
            Step::Checkout => ServiceKind::Checkout,
        }
    }
}

/// Per-shopper bookkeeping for the statistics: seen once per second at most.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Marks {
    pub(crate) last_active_second: Option<u32>,
    pub(crate) last_affected_second: Option<u32>,
    pub(crate) ever_affected: bool,
}

/// A shopper between two steps, or in one.
#[derive(Debug)]
pub(crate) struct Shopper {
    pub(crate) id: u64,
    /// `cart_id=<hex>`, sent with every request.
    pub(crate) cookie: HeaderValue,
    pub(crate) rng: fastrand::Rng,
    steps: VecDeque<Step>,
    /// Lines the cart service confirmed adding: (SKU, total quantity).
    pub(crate) expected_cart: Vec<(String, u32)>,
    pub(crate) marks: Marks,
    /// Not before this instant does the next step go out (think time).
    pub(crate) ready_at: Instant,
}

impl Shopper {
    /// A new shopper, its choices drawn from `seed` and `id`.
    pub(crate) fn new(id: u64, seed: u64, checkout_probability: f64, now: Instant) -> Shopper {
        // Spread ids over the seed space so neighbouring shoppers do not share choices.
        let mut rng = fastrand::Rng::with_seed(seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let cart_id = format!("{CART_COOKIE}={:016x}", rng.u64(..));
        let cookie = HeaderValue::from_str(&cart_id)
            .unwrap_or_else(|_| HeaderValue::from_static("cart_id=0"));
        let mut steps = VecDeque::from([Step::Home, Step::Catalog]);
        let viewed: Vec<u32> = (0..rng.u32(1..=3))
            .map(|_| rng.u32(1..=CATALOG_SIZE))
            .collect();
        steps.extend(viewed.iter().map(|&id| Step::Item(id)));
        for _ in 0..rng.u32(1..=2) {
            let item = viewed[rng.usize(..viewed.len())];
            steps.push_back(Step::AddToCart {
                item,
                qty: rng.u32(1..=MAX_QTY_PER_ADD),
            });
        }
        steps.push_back(Step::ViewCart);
        if rng.f64() < checkout_probability {
            steps.push_back(Step::Checkout);
        }
        Shopper {
            id,
            cookie,
            rng,
            steps,
            expected_cart: Vec::new(),
            marks: Marks::default(),
            ready_at: now,
        }
    }

    /// The next step, removed from the plan.
    pub(crate) fn next_step(&mut self) -> Option<Step> {
        self.steps.pop_front()
    }

    /// Whether the journey has steps left.
    pub(crate) fn has_steps(&self) -> bool {
        !self.steps.is_empty()
    }

    /// Remember what a step changed: a confirmed add is expected in the cart from now on.
    pub(crate) fn after(&mut self, step: &Step, outcome: Outcome) {
        if let (Step::AddToCart { item, qty }, Outcome::Ok) = (step, outcome) {
            let sku = sku_for(*item);
            match self.expected_cart.iter_mut().find(|(s, _)| *s == sku) {
                Some((_, total)) => *total += qty,
                None => self.expected_cart.push((sku, *qty)),
            }
        }
    }

    /// Draw the pause before the next step and set `ready_at`.
    pub(crate) fn think(&mut self, min: Duration, max: Duration, now: Instant) {
        let spread = max.saturating_sub(min).as_micros() as u64;
        let pause = min + Duration::from_micros(self.rng.u64(0..=spread));
        self.ready_at = now + pause;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journey_browses_adds_views_and_maybe_checks_out() {
        for id in 0..200 {
            let mut shopper = Shopper::new(id, 42, 0.5, Instant::now());
            let mut steps = Vec::new();
            while let Some(step) = shopper.next_step() {
                steps.push(step);
            }
            assert_eq!(steps[0], Step::Home);
            assert_eq!(steps[1], Step::Catalog);
            let items = steps.iter().filter(|s| matches!(s, Step::Item(_))).count();
            let adds = steps
                .iter()
                .filter(|s| matches!(s, Step::AddToCart { .. }))
                .count();
            assert!(
                (1..=3).contains(&items) && (1..=2).contains(&adds),
                "{steps:?}"
            );
            let view = steps.iter().position(|s| *s == Step::ViewCart);
            assert!(view.is_some_and(|v| v >= steps.len() - 2), "{steps:?}");
        }
    }

    #[test]
    fn only_confirmed_adds_are_expected_and_they_sum() {
        let mut shopper = Shopper::new(1, 1, 0.0, Instant::now());
        let add = Step::AddToCart { item: 5, qty: 2 };
        shopper.after(&add, Outcome::WrongApplication);
        assert!(shopper.expected_cart.is_empty());
        shopper.after(&add, Outcome::Ok);
        shopper.after(&add, Outcome::Ok);
        assert_eq!(shopper.expected_cart, vec![("sku-0005".to_owned(), 4)]);
    }

    #[test]
    fn same_seed_same_shopper() {
        let now = Instant::now();
        let a = Shopper::new(7, 9, 0.4, now);
        let b = Shopper::new(7, 9, 0.4, now);
        assert_eq!(a.cookie, b.cookie);
        assert_eq!(a.steps, b.steps);
        assert_ne!(a.cookie, Shopper::new(8, 9, 0.4, now).cookie);
    }
}
