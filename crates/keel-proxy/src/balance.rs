//! Choosing a backend: smooth weighted round robin, least request with two random
//! choices, and a consistent-hash ring.
//!
//! All three are lock-free. Round robin precomputes nginx's smooth weighted sequence
//! once per pool and walks it with one atomic cursor. Least request draws two
//! candidates at random, each with probability proportional to its weight, and takes
//! the one with fewer requests in flight (the first on a tie): idle, the shares follow
//! the weights; loaded, a slow backend gets less. The ring is `keel_route::Ring`,
//! shared with the blast-radius replay. Backends that are not eligible (unhealthy,
//! misidentified, ejected) or already tried by this request are skipped.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use keel_config::Balance;
use keel_route::Ring;

use crate::backend::Backend;

/// Longest precomputed round-robin sequence; larger weight sums are scaled down (10,000 picks).
const MAX_SEQUENCE: u64 = 10_000;

/// Backends a request already tried, as a bit set over pool positions (the first 64).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Tried(u64);

impl Tried {
    pub(crate) fn add(&mut self, index: usize) {
        if index < 64 {
            self.0 |= 1 << index;
        }
    }

    fn contains(self, index: usize) -> bool {
        index < 64 && self.0 & (1 << index) != 0
    }
}

/// The selection state of one pool.
#[derive(Debug)]
pub(crate) enum Balancer {
    RoundRobin {
        sequence: Box<[u32]>,
        cursor: AtomicUsize,
    },
    LeastRequest {
        /// Running sum of the weights, for weight-proportional draws.
        cumulative: Box<[u64]>,
    },
    ConsistentHash {
        ring: Ring,
        fallback: Box<Balancer>,
    },
}

impl Balancer {
    pub(crate) fn new(balance: &Balance, backends: &[Arc<Backend>]) -> Self {
        match balance {
            Balance::RoundRobin => round_robin(backends),
            Balance::LeastRequest => Balancer::LeastRequest {
                cumulative: backends
                    .iter()
                    .scan(0u64, |sum, b| {
                        *sum += u64::from(b.weight);
                        Some(*sum)
                    })
                    .collect(),
            },
            Balance::ConsistentHash(_) => Balancer::ConsistentHash {
                ring: Ring::new(backends.iter().map(|b| (b.addr, b.weight))),
                fallback: Box::new(round_robin(backends)),
            },
        }
    }

    /// A backend index for a request, or `None` when no eligible backend is left.
    /// `key_hash` is the request's hash-key hash (consistent hashing only).
    #[inline]
    pub(crate) fn pick(
        &self,
        backends: &[Arc<Backend>],
        key_hash: Option<u64>,
        tried: Tried,
    ) -> Option<usize> {
        let usable = |i: usize| !tried.contains(i) && backends[i].is_eligible();
        match self {
            Balancer::RoundRobin { sequence, cursor } => {
                if sequence.is_empty() {
                    return None;
                }
                // Skipping advances the shared cursor too, so the remaining backends keep
                // their relative weights instead of the next one absorbing the skipped share.
                (0..sequence.len())
                    .map(|_| sequence[cursor.fetch_add(1, Relaxed) % sequence.len()] as usize)
                    .find(|i| usable(*i))
            }
            Balancer::LeastRequest { cumulative } => least_request(backends, cumulative, usable),
            Balancer::ConsistentHash { ring, fallback } => match key_hash {
                Some(hash) => ring.lookup_eligible(hash, usable),
                None => fallback.pick(backends, None, tried),
            },
        }
    }
}

fn round_robin(backends: &[Arc<Backend>]) -> Balancer {
    let weights: Vec<u64> = backends.iter().map(|b| u64::from(b.weight)).collect();
    Balancer::RoundRobin {
        sequence: smooth_sequence(&weights).into_boxed_slice(),
        cursor: AtomicUsize::new(0),
    }
}

/// nginx's smooth weighted round robin, unrolled into one period: each step adds every
/// weight to its current value, picks the largest, and subtracts the total from it.
/// Weights are reduced by their gcd and scaled so the period stays under [`MAX_SEQUENCE`].
pub(crate) fn smooth_sequence(weights: &[u64]) -> Vec<u32> {
    let divisor = weights
        .iter()
        .copied()
        .filter(|w| *w > 0)
        .fold(0, gcd)
        .max(1);
    let mut reduced: Vec<u64> = weights.iter().map(|w| w / divisor).collect();
    let total: u64 = reduced.iter().sum();
    if total > MAX_SEQUENCE {
        reduced = reduced
            .iter()
            .map(|w| {
                if *w == 0 {
                    0
                } else {
                    (w * MAX_SEQUENCE / total).max(1)
                }
            })
            .collect();
    }
    let total: i64 = reduced.iter().map(|w| *w as i64).sum();
    let mut current = vec![0i64; reduced.len()];
    let mut sequence = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for (i, weight) in reduced.iter().enumerate() {
            current[i] += *weight as i64;
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        sequence.push(best as u32);
    }
    sequence
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Power of two choices: of two usable backends drawn in proportion to their weights
/// (distinct when possible), the one with fewer requests in flight (the first drawn on
/// a tie, so idle shares follow the weights).
fn least_request(
    backends: &[Arc<Backend>],
    cumulative: &[u64],
    usable: impl Fn(usize) -> bool,
) -> Option<usize> {
    let total = cumulative.last().copied().unwrap_or(0);
    if total == 0 {
        return None;
    }
    let draw = || {
        let roll = fastrand::u64(..total);
        cumulative.partition_point(|sum| *sum <= roll)
    };
    let first = draw();
    // Two distinct candidates when there are two: with replacement, a two-backend pool
    // would compare a backend with itself a quarter of the time. A few redraws bound
    // the cost when one weight dwarfs the rest.
    let mut second = draw();
    for _ in 0..3 {
        if second != first || backends.len() < 2 {
            break;
        }
        second = draw();
    }
    match (usable(first), usable(second)) {
        (true, true) => Some(
            if backends[second].in_flight() < backends[first].in_flight() {
                second
            } else {
                first
            },
        ),
        (true, false) => Some(first),
        (false, true) => Some(second),
        // Both draws unusable: the least loaded usable backend with weight, if any.
        (false, false) => (0..backends.len())
            .filter(|i| usable(*i) && backends[*i].weight > 0)
            .min_by_key(|i| backends[*i].in_flight()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smooth_sequence_interleaves_by_weight() {
        assert_eq!(smooth_sequence(&[5, 1, 1]), vec![0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(smooth_sequence(&[2, 4]), vec![1, 0, 1]);
        assert_eq!(smooth_sequence(&[1, 0]), vec![0]);
        assert!(smooth_sequence(&[0, 0]).is_empty());
    }

    #[test]
    fn huge_weights_keep_their_ratio_in_a_bounded_period() {
        let sequence = smooth_sequence(&[9_999, 10_000, 1]);
        assert!(sequence.len() as u64 <= MAX_SEQUENCE + 3);
        let count = |b: u32| sequence.iter().filter(|x| **x == b).count();
        assert!(count(2) >= 1);
        assert!((count(0) as i64 - count(1) as i64).abs() <= 2);
    }

    #[test]
    fn tried_backends_are_remembered() {
        let mut tried = Tried::default();
        tried.add(3);
        tried.add(100);
        assert!(tried.contains(3));
        assert!(!tried.contains(2));
        assert!(!tried.contains(100));
    }
}
