//! The consistent-hash ring shared by the data plane and the blast-radius replay, so a
//! report's "sticky sessions that change backend" is exactly what serving would do.
//!
//! Each backend contributes `weight × VNODES_PER_WEIGHT` points, the xxh3-64 hash (with
//! the fixed seed [`RING_SEED`]) of `"{addr}#{i}"`. A key hashes with the same seed and
//! lands on the first point at or after its hash, wrapping around. Fixed seed and inputs
//! make placement identical across processes, restarts and Keel nodes.

use std::net::SocketAddr;

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Seed of every ring hash: the ASCII bytes of "keelring".
pub const RING_SEED: u64 = 0x6b65_656c_7269_6e67;
/// Ring points per unit of backend weight (100 points).
pub const VNODES_PER_WEIGHT: u32 = 100;
/// Most points one backend may place, whatever its weight (10,000 points).
const MAX_POINTS_PER_BACKEND: u32 = 10_000;

/// A consistent-hash ring over backend indexes.
#[derive(Clone, Debug, Default)]
pub struct Ring {
    points: Box<[(u64, u32)]>,
}

impl Ring {
    /// Builds the ring for backends given as (address, weight); index = position.
    pub fn new<'a>(backends: impl IntoIterator<Item = (&'a SocketAddr, u32)>) -> Self {
        let mut points = Vec::new();
        for (index, (addr, weight)) in backends.into_iter().enumerate() {
            let count = weight
                .saturating_mul(VNODES_PER_WEIGHT)
                .min(MAX_POINTS_PER_BACKEND);
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            for i in 0..count {
                let label = format!("{addr}#{i}");
                points.push((xxh3_64_with_seed(label.as_bytes(), RING_SEED), index));
            }
        }
        points.sort_unstable();
        Self {
            points: points.into_boxed_slice(),
        }
    }

    /// Hash of a request key, with the ring's seed.
    #[inline]
    pub fn hash_key(key: &[u8]) -> u64 {
        xxh3_64_with_seed(key, RING_SEED)
    }

    /// The first backend at or after `hash` (wrapping) for which `eligible` holds.
    #[inline]
    pub fn lookup(&self, hash: u64, mut eligible: impl FnMut(usize) -> bool) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        let start = self.points.partition_point(|(h, _)| *h < hash);
        let len = self.points.len();
        let mut last_refused = u32::MAX;
        for step in 0..len {
            let (_, backend) = self.points[(start + step) % len];
            if backend == last_refused {
                continue;
            }
            if eligible(backend as usize) {
                return Some(backend as usize);
            }
            last_refused = backend;
        }
        None
    }

    /// True when the ring has no points (no backend with weight).
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(n: u16) -> Vec<SocketAddr> {
        (0..n)
            .map(|i| SocketAddr::from(([127, 0, 0, 1], 9000 + i)))
            .collect()
    }

    #[test]
    fn removing_one_of_n_moves_about_one_nth_of_keys() {
        let all = addrs(5);
        let full = Ring::new(all.iter().map(|a| (a, 1)));
        let fewer = Ring::new(all[..4].iter().map(|a| (a, 1)));
        let keys = 10_000;
        let mut moved = 0;
        for k in 0..keys {
            let hash = Ring::hash_key(format!("cart-{k}").as_bytes());
            let before = full.lookup(hash, |_| true);
            let after = fewer.lookup(hash, |_| true);
            if before != after {
                moved += 1;
                assert_eq!(before, Some(4), "only keys of the removed backend may move");
            }
        }
        let share = f64::from(moved) / f64::from(keys);
        assert!((0.12..0.28).contains(&share), "moved {share}");
    }

    #[test]
    fn ineligible_backends_are_skipped() {
        let all = addrs(3);
        let ring = Ring::new(all.iter().map(|a| (a, 1)));
        for k in 0..100u32 {
            let hash = Ring::hash_key(&k.to_le_bytes());
            assert_ne!(ring.lookup(hash, |b| b != 1), Some(1));
        }
        assert_eq!(ring.lookup(7, |_| false), None);
    }
}
