//! The consistent-hash ring: where a sticky key lands among a pool's backends.
//!
//! This is the one definition of placement for `balance = "consistent_hash"` pools,
//! shared by the data plane and the blast-radius replay. The data plane must build its rings with [`Ring::new`] and look keys up with
//! [`Ring::lookup`] (or [`Ring::lookup_eligible`] to skip unhealthy backends), so that
//! the blast-radius report's "sticky sessions that change backend" is exactly what
//! serving does. It is pure and deterministic: same backends and key, same answer, on
//! every node and after every restart.
//!
//! The algorithm:
//! 1. Backends with weight 0 place no points. The remaining weights are divided by their
//!    greatest common divisor (weights 100/200 place like 1/2: same ratios, a hundred
//!    times fewer points).
//! 2. Each backend places `weight × VNODES_PER_WEIGHT` points; point `i` of backend
//!    `addr` is `xxh3_64_with_seed("{addr}#{i}", RING_SEED)`, `addr` written as Rust
//!    prints a `SocketAddr` (`127.0.0.1:9001`, `[::1]:9001`).
//! 3. If that is more than [`MAX_RING_POINTS`] points in all, every backend's count is
//!    scaled down in proportion (at least one point each), bounding memory.
//! 4. Points are sorted by hash, ties by address, so the order backends are listed in
//!    does not change placement.
//! 5. A key is hashed with the same seed; it lands on the first point whose hash is
//!    `>=` the key's hash, wrapping around to the first point.

use std::fmt::Write as _;
use std::net::SocketAddr;

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Seed of every ring hash, points and keys alike: the ASCII bytes of "keelring".
pub const RING_SEED: u64 = 0x6b65_656c_7269_6e67;
/// Ring points per unit of (GCD-reduced) backend weight (100 points).
pub const VNODES_PER_WEIGHT: u32 = 100;
/// Most points one ring holds, 16 bytes each (1,000,000 points, 16 MB).
pub const MAX_RING_POINTS: u64 = 1_000_000;

/// A consistent-hash ring over a pool's backends, identified by their index in the
/// list given to [`Ring::new`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ring {
    /// (point hash, backend index), sorted by hash then address.
    points: Box<[(u64, u32)]>,
}

impl Ring {
    /// Builds the ring for backends given as (address, weight), in pool order.
    pub fn new(backends: impl IntoIterator<Item = (SocketAddr, u32)>) -> Self {
        let backends: Vec<(SocketAddr, u32)> = backends.into_iter().collect();
        let divisor = backends
            .iter()
            .map(|(_, w)| *w)
            .filter(|w| *w > 0)
            .fold(0, gcd)
            .max(1);
        let wanted: u64 = backends
            .iter()
            .map(|(_, w)| u64::from(w / divisor) * u64::from(VNODES_PER_WEIGHT))
            .sum();
        let mut points =
            Vec::with_capacity(usize::try_from(wanted.min(MAX_RING_POINTS)).unwrap_or(0));
        let mut label = String::with_capacity(64);
        for (index, (addr, weight)) in backends.iter().enumerate() {
            let mut count = u64::from(weight / divisor) * u64::from(VNODES_PER_WEIGHT);
            if wanted > MAX_RING_POINTS && count > 0 {
                count = (count * MAX_RING_POINTS / wanted).max(1);
            }
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            label.clear();
            // Writing to a String cannot fail.
            let _ = write!(label, "{addr}#");
            let prefix = label.len();
            for i in 0..count {
                label.truncate(prefix);
                let _ = write!(label, "{i}");
                points.push((xxh3_64_with_seed(label.as_bytes(), RING_SEED), index));
            }
        }
        points.sort_unstable_by(|(ha, ia), (hb, ib)| {
            ha.cmp(hb)
                .then_with(|| backends[*ia as usize].0.cmp(&backends[*ib as usize].0))
        });
        Self {
            points: points.into_boxed_slice(),
        }
    }

    /// The ring of a configured pool (every backend, whatever its health).
    pub fn of_pool(pool: &keel_config::Pool) -> Self {
        Self::new(pool.backends.iter().map(|b| (b.addr.value, b.weight)))
    }

    /// Hash of a request's sticky key, with [`RING_SEED`].
    #[inline]
    pub fn hash_key(key: &[u8]) -> u64 {
        xxh3_64_with_seed(key, RING_SEED)
    }

    /// The backend index a key hash lands on; `None` when no backend has weight.
    #[inline]
    pub fn lookup(&self, hash: u64) -> Option<usize> {
        let start = self.points.partition_point(|(h, _)| *h < hash);
        let (_, backend) = self.points.get(start).or_else(|| self.points.first())?;
        Some(*backend as usize)
    }

    /// Like [`Ring::lookup`], but walks on past backends for which `eligible` is false
    /// (unhealthy, ejected); `None` when no eligible backend is left.
    #[inline]
    pub fn lookup_eligible(
        &self,
        hash: u64,
        mut eligible: impl FnMut(usize) -> bool,
    ) -> Option<usize> {
        let len = self.points.len();
        let start = self.points.partition_point(|(h, _)| *h < hash);
        let mut refused = u32::MAX;
        for step in 0..len {
            let (_, backend) = self.points[(start + step) % len];
            if backend != refused {
                if eligible(backend as usize) {
                    return Some(backend as usize);
                }
                refused = backend;
            }
        }
        None
    }

    /// Number of points on the ring.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// True when no backend has weight.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(n: u16) -> Vec<SocketAddr> {
        (0..n)
            .map(|i| SocketAddr::from(([127, 0, 0, 1], 9000 + i)))
            .collect()
    }

    fn place(ring: &Ring, keys: u32) -> Vec<Option<usize>> {
        (0..keys)
            .map(|k| ring.lookup(Ring::hash_key(format!("cart-{k}").as_bytes())))
            .collect()
    }

    #[test]
    fn removing_one_of_n_moves_only_its_keys_about_one_nth() {
        let all = addrs(5);
        let full = Ring::new(all.iter().map(|a| (*a, 1)));
        let fewer = Ring::new(all[..4].iter().map(|a| (*a, 1)));
        let (before, after) = (place(&full, 10_000), place(&fewer, 10_000));
        let mut moved = 0;
        for (b, a) in before.iter().zip(&after) {
            if b != a {
                moved += 1;
                assert_eq!(*b, Some(4), "only keys of the removed backend may move");
            }
        }
        let share = f64::from(moved) / 10_000.0;
        assert!((0.15..0.25).contains(&share), "moved {share}");
    }

    #[test]
    fn weights_set_the_share_of_keys() {
        let all = addrs(2);
        let ring = Ring::new([(all[0], 1), (all[1], 3)]);
        let heavy = place(&ring, 20_000)
            .iter()
            .filter(|b| **b == Some(1))
            .count();
        let share = heavy as f64 / 20_000.0;
        assert!((0.70..0.80).contains(&share), "heavy backend got {share}");
    }

    #[test]
    fn proportional_weights_and_backend_order_place_identically() {
        let all = addrs(3);
        let small = Ring::new([(all[0], 1), (all[1], 2), (all[2], 3)]);
        let scaled = Ring::new([(all[2], 300), (all[0], 100), (all[1], 200)]);
        assert_eq!(small.len(), 600);
        assert_eq!(scaled.len(), 600);
        for k in 0..2_000u32 {
            let hash = Ring::hash_key(&k.to_le_bytes());
            let a = small.lookup(hash).map(|i| all[i]);
            let order = [all[2], all[0], all[1]];
            let b = scaled.lookup(hash).map(|i| order[i]);
            assert_eq!(a, b);
        }
    }

    #[test]
    fn huge_weights_are_bounded_and_empty_rings_find_nothing() {
        let all = addrs(3);
        let ring = Ring::new([(all[0], 10_000), (all[1], 9_999), (all[2], 0)]);
        assert!(ring.len() as u64 <= MAX_RING_POINTS);
        assert!(!ring.is_empty());
        assert_eq!(Ring::new([(all[0], 0)]).lookup(42), None);
        assert_eq!(Ring::new([]).lookup(42), None);
    }

    #[test]
    fn ineligible_backends_are_skipped() {
        let all = addrs(3);
        let ring = Ring::new(all.iter().map(|a| (*a, 1)));
        for k in 0..200u32 {
            let hash = Ring::hash_key(&k.to_le_bytes());
            let chosen = ring.lookup_eligible(hash, |b| b != 1);
            assert!(matches!(chosen, Some(0 | 2)));
            if ring.lookup(hash) != Some(1) {
                assert_eq!(chosen, ring.lookup(hash));
            }
        }
        assert_eq!(ring.lookup_eligible(7, |_| false), None);
    }

    #[test]
    fn placement_is_pinned() {
        // Changing any of these changes every sticky session on every node: this test
        // makes such a change deliberate.
        assert_eq!(RING_SEED, u64::from_be_bytes(*b"keelring"));
        let all = addrs(4);
        let ring = Ring::new(all.iter().map(|a| (*a, 1)));
        assert_eq!(Ring::hash_key(b"cart-0"), 9_941_476_431_489_964_812);
        let placed: Vec<usize> = place(&ring, 8).into_iter().flatten().collect();
        assert_eq!(placed, [1, 1, 1, 2, 3, 3, 2, 0]);
    }
}
