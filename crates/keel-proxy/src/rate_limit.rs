//! Rate limits on the hot path: a route's `rate_limit` is a token bucket per key (the
//! client address, a header's or cookie's value, or the whole route), refilled at
//! `requests` per `per` up to `burst`. A request that finds its bucket empty is
//! answered `429 rate-limited` with `retry-after` (whole seconds until a token is back)
//! and never reaches a backend.
//!
//! Memory is bounded: each limited route of a generation holds a fixed table of
//! [`RATE_LIMIT_BUCKETS`] buckets (24 bytes each, 384 KiB), allocated on its first
//! request, in sets of [`WAYS`] behind [`SHARDS`] mutexes. A key is hashed to one set;
//! a key not in its set takes the bucket least recently used there, which starts full.
//! Worst case, then: a client rotating through more keys than the table holds, or
//! sharing a set with eight busier keys, is limited as a newcomer, with a full burst;
//! the limit holds exactly for keys that keep their bucket. Limits are per node (and
//! per generation: a new generation's buckets start full). Fleet-wide limits would need
//! shared state per request; they are not done.

use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use http::header::{COOKIE, HeaderName, HeaderValue, RETRY_AFTER};
use http::request::Parts;
use keel_config::defaults::RATE_LIMIT_BUCKETS;
use keel_config::{RateKey, RateLimit};
use keel_route::Ring;

use crate::request::ConnInfo;

/// Buckets per set: a key may live in any of them.
const WAYS: usize = 8;
/// Mutexes a table is split behind; requests of different sets seldom wait on each other.
const SHARDS: usize = 64;

#[derive(Clone, Copy, Default)]
struct Bucket {
    /// Hash of the key (0: empty).
    key: u64,
    tokens: f64,
    /// Microseconds since the limiter started, at the last refill.
    seen: u64,
}

/// A route's limiter: its rule and, once traffic came, its bucket table.
#[derive(Debug)]
pub(crate) struct Limiter {
    key: Key,
    burst: f64,
    /// Tokens per microsecond.
    rate: f64,
    started: Instant,
    shards: OnceLock<Box<[Shard]>>,
}

/// One mutex's share of a bucket table: whole sets of [`WAYS`] buckets.
type Shard = Mutex<Box<[Bucket]>>;

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bucket")
    }
}

#[derive(Debug)]
enum Key {
    ClientIp,
    Header(HeaderName),
    Cookie(Box<str>),
    Route,
}

/// Seconds a limited client is told to wait: a whole number, at least 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RetryAfter(pub(crate) u64);

impl RetryAfter {
    pub(crate) fn header(self) -> (HeaderName, HeaderValue) {
        (RETRY_AFTER, HeaderValue::from(self.0))
    }
}

impl Limiter {
    /// The limiter of a route's rule, or `None` when it has none.
    pub(crate) fn compile(rule: Option<&RateLimit>) -> Option<Box<Self>> {
        let rule = rule?;
        let key = match &rule.key {
            RateKey::ClientIp => Key::ClientIp,
            RateKey::Header(name) => Key::Header(HeaderName::from_bytes(name.as_bytes()).ok()?),
            RateKey::Cookie(name) => Key::Cookie(name.as_str().into()),
            RateKey::Route => Key::Route,
        };
        let micros = rule.per.as_micros().max(1) as f64;
        Some(Box::new(Self {
            key,
            burst: f64::from(rule.burst.max(1)),
            rate: f64::from(rule.requests) / micros,
            started: Instant::now(),
            shards: OnceLock::new(),
        }))
    }

    /// True when buckets belong to client addresses (`key = "client_ip"`).
    pub(crate) fn keys_by_client(&self) -> bool {
        matches!(self.key, Key::ClientIp)
    }

    /// Takes a token for this request, or says how long to wait for one. `client` is
    /// the address believed through trusted proxies, if any; else the TCP peer counts.
    pub(crate) fn admit(
        &self,
        parts: &Parts,
        conn: &ConnInfo,
        client: Option<std::net::IpAddr>,
    ) -> Result<(), RetryAfter> {
        let hash = match &self.key {
            Key::ClientIp => match client {
                Some(std::net::IpAddr::V4(v4)) => Ring::hash_key(&v4.octets()),
                Some(std::net::IpAddr::V6(v6)) => Ring::hash_key(&v6.octets()),
                None => Ring::hash_key(conn.peer_header.as_bytes()),
            },
            Key::Header(name) => {
                Ring::hash_key(parts.headers.get(name).map_or(&b""[..], |v| v.as_bytes()))
            }
            Key::Cookie(name) => Ring::hash_key(cookie(parts, name).unwrap_or(b"")),
            Key::Route => 0,
        };
        let now = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.take(hash, now)
    }

    fn take(&self, hash: u64, now: u64) -> Result<(), RetryAfter> {
        let key = hash.max(1);
        let shards = self.shards.get_or_init(|| {
            let per_shard = RATE_LIMIT_BUCKETS / SHARDS;
            (0..SHARDS)
                .map(|_| Mutex::new(vec![Bucket::default(); per_shard].into_boxed_slice()))
                .collect()
        });
        let sets = RATE_LIMIT_BUCKETS / WAYS;
        let set = (key % sets as u64) as usize;
        let shard = &shards[set % SHARDS];
        // A poisoned shard only means another request panicked mid-update; its buckets
        // are plain numbers, still usable.
        let mut buckets = shard.lock().unwrap_or_else(|p| p.into_inner());
        let start = (set / SHARDS) * WAYS;
        let ways = &mut buckets[start..start + WAYS];
        let slot = match ways.iter().position(|b| b.key == key) {
            Some(found) => found,
            None => {
                let oldest = ways
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, b)| b.seen)
                    .map_or(0, |(i, _)| i);
                ways[oldest] = Bucket {
                    key,
                    tokens: self.burst,
                    seen: now,
                };
                oldest
            }
        };
        let bucket = &mut ways[slot];
        let elapsed = now.saturating_sub(bucket.seen) as f64;
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.seen = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait_micros = (1.0 - bucket.tokens) / self.rate.max(f64::MIN_POSITIVE);
        Err(RetryAfter((wait_micros / 1e6).ceil().max(1.0) as u64))
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a [u8]> {
    parts.headers.get_all(COOKIE).iter().find_map(|header| {
        header.as_bytes().split(|b| *b == b';').find_map(|pair| {
            let pair = pair.trim_ascii();
            let rest = pair.strip_prefix(name.as_bytes())?;
            rest.strip_prefix(b"=")
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limiter(requests: u32, per: Duration, burst: u32) -> Box<Limiter> {
        Limiter::compile(Some(&RateLimit {
            requests,
            per,
            burst,
            key: RateKey::Route,
        }))
        .expect("a limiter")
    }

    #[test]
    fn a_bucket_gives_its_burst_then_refills_at_the_rate() {
        let limiter = limiter(10, Duration::from_secs(1), 3);
        for _ in 0..3 {
            assert_eq!(limiter.take(7, 0), Ok(()));
        }
        assert_eq!(limiter.take(7, 0), Err(RetryAfter(1)));
        // 10 per second: one token back after 100 ms.
        assert_eq!(limiter.take(7, 99_000), Err(RetryAfter(1)));
        assert_eq!(limiter.take(7, 100_000), Ok(()));
        // Another key has its own bucket.
        assert_eq!(limiter.take(8, 100_000), Ok(()));
    }

    #[test]
    fn retry_after_counts_whole_seconds_to_the_next_token() {
        let limiter = limiter(1, Duration::from_secs(60), 1);
        assert_eq!(limiter.take(1, 0), Ok(()));
        assert_eq!(limiter.take(1, 0), Err(RetryAfter(60)));
        assert_eq!(limiter.take(1, 30_000_000), Err(RetryAfter(30)));
    }

    #[test]
    fn the_table_stays_bounded_and_evicts_the_least_recent_key_of_a_set() {
        let limiter = limiter(1, Duration::from_secs(3600), 1);
        let sets = (RATE_LIMIT_BUCKETS / WAYS) as u64;
        // WAYS + 1 keys of one set: the first one, least recently seen, loses its bucket.
        for i in 0..=WAYS as u64 {
            assert_eq!(limiter.take(5 + i * sets, i), Ok(()));
        }
        assert_eq!(limiter.take(5 + sets, 100), Err(RetryAfter(3600)), "kept");
        assert_eq!(limiter.take(5, 100), Ok(()), "evicted: starts full again");
        let held: usize = limiter.shards.get().map_or(0, |s| {
            s.iter().map(|m| m.lock().map_or(0, |b| b.len())).sum()
        });
        assert_eq!(held, RATE_LIMIT_BUCKETS);
    }
}
