//! A response body's idle bound as the client connection watchdog keeps it
//! ([`crate::watchdog`]): a bound in milliseconds or none at all, and the route's own
//! bound packed in one atomic word beside the listener's.

use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// How long a response body may go without moving a byte (a `body_idle_timeout`).
/// Ordered from the shortest bound to none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum BodyIdleBound {
    /// Cut after this many milliseconds.
    Ms(NonZeroU64),
    /// Never cut (a timeout of zero).
    Never,
}

impl BodyIdleBound {
    /// A configured `body_idle_timeout`: zero means never; anything else is at least 1 ms.
    pub(crate) fn of(bound: Duration) -> Self {
        if bound.is_zero() {
            return BodyIdleBound::Never;
        }
        let ms = u64::try_from(bound.as_millis()).unwrap_or(u64::MAX);
        // `u64::MAX` is `Never` packed (see `RouteBound`).
        NonZeroU64::new(ms.min(u64::MAX - 1))
            .map_or(BodyIdleBound::Ms(NonZeroU64::MIN), BodyIdleBound::Ms)
    }
}

/// The route's own [`BodyIdleBound`], if it set one, in one atomic word so that HTTP/2
/// streams can lengthen it with one `fetch_max`: none (the listener's bound applies) is
/// 0, [`BodyIdleBound::Never`] is `u64::MAX`, and a bound its milliseconds; their order
/// as numbers is their order as bounds.
#[derive(Debug)]
pub(crate) struct RouteBound(AtomicU64);

impl RouteBound {
    const LISTENERS: u64 = 0;
    const NEVER: u64 = u64::MAX;

    /// No route bound yet: the listener's applies.
    pub(crate) const fn listeners() -> Self {
        Self(AtomicU64::new(Self::LISTENERS))
    }

    fn pack(bound: BodyIdleBound) -> u64 {
        match bound {
            BodyIdleBound::Ms(ms) => ms.get(),
            BodyIdleBound::Never => Self::NEVER,
        }
    }

    #[inline]
    pub(crate) fn load(&self) -> Option<BodyIdleBound> {
        match self.0.load(Relaxed) {
            Self::LISTENERS => None,
            Self::NEVER => Some(BodyIdleBound::Never),
            ms => NonZeroU64::new(ms).map(BodyIdleBound::Ms),
        }
    }

    #[inline]
    pub(crate) fn clear(&self) {
        self.0.store(Self::LISTENERS, Relaxed);
    }

    #[inline]
    pub(crate) fn lengthen_to(&self, bound: BodyIdleBound) {
        self.0.fetch_max(Self::pack(bound), Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_order_from_shortest_to_never_packed_or_not() {
        let short = BodyIdleBound::of(Duration::from_millis(5));
        let long = BodyIdleBound::of(Duration::from_secs(60));
        let never = BodyIdleBound::of(Duration::ZERO);
        assert!(short < long && long < never);
        assert_eq!(never, BodyIdleBound::Never);
        assert_eq!(
            BodyIdleBound::of(Duration::from_micros(10)),
            BodyIdleBound::Ms(NonZeroU64::MIN)
        );
        let route = RouteBound::listeners();
        assert_eq!(route.load(), None);
        route.lengthen_to(long);
        route.lengthen_to(short);
        assert_eq!(route.load(), Some(long));
        route.lengthen_to(never);
        assert_eq!(route.load(), Some(BodyIdleBound::Never));
        route.clear();
        assert_eq!(route.load(), None);
    }
}
