//! What a shopper load does: where it sends, how fast, for how long, and how shoppers behave.
//!
//! Every bound has a default and a ceiling, both named here with their unit, so a demo
//! load can never grow without limit and never leaves loopback.

use std::net::SocketAddr;
use std::time::Duration;

use crate::shop::SHOP_HOST;

/// Target rate (200 requests per second): the rate of the March-15 replay.
pub const DEFAULT_RATE: u32 = 200;
/// Highest accepted rate (5,000 requests per second).
pub const MAX_RATE: u32 = 5_000;
/// How long a load runs unless told otherwise (60 seconds).
pub const DEFAULT_DURATION: Duration = Duration::from_secs(60);
/// Longest accepted run (1 hour): per-second statistics are kept for the whole run.
pub const MAX_DURATION: Duration = Duration::from_secs(3_600);
/// Requests awaiting an answer at once (256); a tick finding this many is skipped.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 256;
/// Shoppers in a journey at once (2,000); a tick needing a new shopper past this is skipped.
pub const DEFAULT_MAX_SHOPPERS: usize = 2_000;
/// Shortest pause between two steps of one shopper (100 milliseconds).
pub const DEFAULT_THINK_MIN: Duration = Duration::from_millis(100);
/// Longest pause between two steps of one shopper (600 milliseconds).
pub const DEFAULT_THINK_MAX: Duration = Duration::from_millis(600);
/// Chance that a shopper who viewed the cart checks out (0.4).
pub const DEFAULT_CHECKOUT_PROBABILITY: f64 = 0.4;
/// Time a request may take, headers and body, before it counts as a transport error (5 seconds).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest response body read (256 KiB); a longer one counts as a transport error.
pub const MAX_RESPONSE_BODY: usize = 256 * 1024;
/// Window of [`LoadSnapshot::affected_recent`](super::LoadSnapshot::affected_recent) (10 seconds).
pub const RECENT_WINDOW: Duration = Duration::from_secs(10);
/// Response header in which the proxy names the config generation that routed the request.
pub const GENERATION_HEADER: &str = "x-keel-generation";

/// Why a load could not start or finish.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A setting is out of its range; the message names it and the range.
    #[error("invalid load setting: {0}")]
    Invalid(String),
    /// The load's task panicked or was cancelled.
    #[error("the load task ended abnormally: {0}")]
    Task(String),
}

/// Settings of a [`ShopperLoad`](super::ShopperLoad).
#[derive(Debug, Clone, PartialEq)]
pub struct LoadConfig {
    /// Where requests go: the proxy's listener. Must be a loopback address.
    pub target: SocketAddr,
    /// `Host` header of every request ([`SHOP_HOST`]).
    pub host: String,
    /// Requests per second, 1 to [`MAX_RATE`]; never exceeded.
    pub rate: u32,
    /// How long new requests are sent, up to [`MAX_DURATION`]; answers still awaited at the
    /// end are collected (each is bounded by `request_timeout`).
    pub duration: Duration,
    /// Stop after this many requests, if set.
    pub max_requests: Option<u64>,
    /// See [`DEFAULT_MAX_IN_FLIGHT`].
    pub max_in_flight: usize,
    /// See [`DEFAULT_MAX_SHOPPERS`].
    pub max_shoppers: usize,
    /// Pause between two steps of one shopper, drawn uniformly from `think_min..=think_max`.
    pub think_min: Duration,
    /// See `think_min`.
    pub think_max: Duration,
    /// See [`DEFAULT_CHECKOUT_PROBABILITY`]; 0 to 1.
    pub checkout_probability: f64,
    /// See [`DEFAULT_REQUEST_TIMEOUT`].
    pub request_timeout: Duration,
    /// Seed of the shoppers' choices (cart ids, items, think times): same seed, same journeys.
    pub seed: u64,
}

impl LoadConfig {
    /// The default load against `target`.
    pub fn new(target: SocketAddr) -> LoadConfig {
        LoadConfig {
            target,
            host: SHOP_HOST.to_owned(),
            rate: DEFAULT_RATE,
            duration: DEFAULT_DURATION,
            max_requests: None,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            max_shoppers: DEFAULT_MAX_SHOPPERS,
            think_min: DEFAULT_THINK_MIN,
            think_max: DEFAULT_THINK_MAX,
            checkout_probability: DEFAULT_CHECKOUT_PROBABILITY,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            seed: 0x5EED_0315,
        }
    }

    /// Check every setting against its range.
    pub fn validate(&self) -> Result<(), LoadError> {
        let invalid = |what: String| Err(LoadError::Invalid(what));
        if !self.target.ip().is_loopback() {
            return invalid(format!("target {} is not a loopback address", self.target));
        }
        if http::HeaderValue::from_str(&self.host).is_err() || self.host.is_empty() {
            return invalid(format!("host {:?} is not a valid Host header", self.host));
        }
        if !(1..=MAX_RATE).contains(&self.rate) {
            return invalid(format!(
                "rate {} is outside 1..={MAX_RATE} requests/s",
                self.rate
            ));
        }
        if self.duration.is_zero() || self.duration > MAX_DURATION {
            return invalid(format!(
                "duration {:?} is outside (0, {MAX_DURATION:?}]",
                self.duration
            ));
        }
        if self.max_in_flight == 0 || self.max_shoppers == 0 {
            return invalid("max_in_flight and max_shoppers must be at least 1".to_owned());
        }
        if self.think_min > self.think_max {
            return invalid(format!(
                "think_min {:?} is above think_max {:?}",
                self.think_min, self.think_max
            ));
        }
        if !(0.0..=1.0).contains(&self.checkout_probability) {
            return invalid(format!(
                "checkout_probability {} is outside 0..=1",
                self.checkout_probability
            ));
        }
        if self.request_timeout.is_zero() {
            return invalid("request_timeout must be above zero".to_owned());
        }
        Ok(())
    }

    /// Seconds of per-second statistics the run can fill: the sending time plus the
    /// longest time its last answers may take, plus one partial second at each end.
    pub(crate) fn seconds_to_keep(&self) -> usize {
        let span = self.duration + self.request_timeout;
        span.as_secs() as usize + 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 8080))
    }

    #[test]
    fn the_default_is_valid() {
        assert!(LoadConfig::new(loopback()).validate().is_ok());
    }

    #[test]
    fn out_of_range_settings_are_refused() {
        let base = LoadConfig::new(loopback());
        let cases = [
            LoadConfig {
                target: SocketAddr::from(([10, 0, 0, 1], 80)),
                ..base.clone()
            },
            LoadConfig {
                rate: 0,
                ..base.clone()
            },
            LoadConfig {
                rate: MAX_RATE + 1,
                ..base.clone()
            },
            LoadConfig {
                duration: Duration::ZERO,
                ..base.clone()
            },
            LoadConfig {
                duration: MAX_DURATION * 2,
                ..base.clone()
            },
            LoadConfig {
                think_min: Duration::from_secs(2),
                ..base.clone()
            },
            LoadConfig {
                checkout_probability: 1.5,
                ..base.clone()
            },
            LoadConfig {
                host: "bad\nhost".into(),
                ..base.clone()
            },
            LoadConfig {
                max_in_flight: 0,
                ..base.clone()
            },
        ];
        for case in cases {
            assert!(
                matches!(case.validate(), Err(LoadError::Invalid(_))),
                "{case:?}"
            );
        }
    }
}
