//! When an ACME certificate is renewed, when a failed attempt is retried, and when
//! failures become an alert. Pure functions of times in seconds, so they are tested
//! without a clock.
//!
//! A certificate is renewed once two thirds of its lifetime have passed
//! ([`RENEW_AT_LIFETIME_FRACTION`]; Let's Encrypt's 90 days leave 30 days of margin). A
//! failed attempt is retried after a delay that starts at a fiftieth of the lifetime
//! (bounded by [`RETRY_MIN`] and [`RETRY_MAX`]) and doubles with each failure. The
//! third failure in a row ([`ALERT_AFTER_FAILURES`]), or any failure once less than a
//! sixth of the lifetime is left, raises an alert: with the retry delays above, that is
//! weeks before a 90-day certificate expires.

use std::time::Duration;

/// Share of a certificate's lifetime after which it is renewed (2/3).
pub const RENEW_AT_LIFETIME_FRACTION: f64 = 2.0 / 3.0;
/// Shortest delay before retrying a failed renewal (1 second).
pub const RETRY_MIN: Duration = Duration::from_secs(1);
/// Longest delay before retrying a failed renewal (6 hours).
pub const RETRY_MAX: Duration = Duration::from_secs(6 * 3600);
/// First retry delay of a certificate never issued (10 minutes): it serves a
/// placeholder meanwhile, so sooner matters more than for a renewal, and ten minutes
/// stay within Let's Encrypt's failed-validation limit (5 per hour and name).
pub const FIRST_ORDER_RETRY: Duration = Duration::from_secs(600);
/// Failed renewals in a row that raise an alert (3 failures).
pub const ALERT_AFTER_FAILURES: u32 = 3;
/// Share of the lifetime left below which any failed renewal raises an alert (1/6).
pub const ALERT_BELOW_LIFETIME_FRACTION: f64 = 1.0 / 6.0;

/// A certificate's validity, seconds since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    /// Start of validity.
    pub not_before: i64,
    /// End of validity.
    pub not_after: i64,
}

impl Validity {
    /// Its lifetime in seconds (at least 1).
    pub fn lifetime(self) -> i64 {
        (self.not_after - self.not_before).max(1)
    }

    /// When it is due for renewal.
    pub fn renew_at(self) -> i64 {
        self.not_before + (self.lifetime() as f64 * RENEW_AT_LIFETIME_FRACTION) as i64
    }

    /// Whether `now` is less than [`ALERT_BELOW_LIFETIME_FRACTION`] of the lifetime
    /// before expiry.
    pub fn nearly_expired(self, now: i64) -> bool {
        (self.not_after - now) as f64 <= self.lifetime() as f64 * ALERT_BELOW_LIFETIME_FRACTION
    }
}

/// The delay before attempt `failures + 1`, after `failures` (≥ 1) failed in a row.
pub fn retry_delay(failures: u32, validity: Option<Validity>) -> Duration {
    let first = validity.map_or(FIRST_ORDER_RETRY.as_secs_f64(), |v| {
        (v.lifetime() as f64 / 50.0).clamp(RETRY_MIN.as_secs_f64(), RETRY_MAX.as_secs_f64())
    });
    let doubled = first * 2f64.powi(failures.saturating_sub(1).min(30) as i32);
    Duration::from_secs_f64(doubled.min(RETRY_MAX.as_secs_f64()))
}

/// Whether `failures` in a row at `now` are worth an alert.
pub fn alert_due(failures: u32, validity: Option<Validity>, now: i64) -> bool {
    failures >= ALERT_AFTER_FAILURES || validity.is_some_and(|v| v.nearly_expired(now))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 24 * 3600;

    #[test]
    fn a_ninety_day_certificate_renews_after_sixty_days() {
        let validity = Validity {
            not_before: 1_000,
            not_after: 1_000 + 90 * DAY,
        };
        assert_eq!(validity.renew_at(), 1_000 + 60 * DAY);
    }

    #[test]
    fn retries_double_from_a_fiftieth_of_the_lifetime_up_to_the_bound() {
        let validity = Some(Validity {
            not_before: 0,
            not_after: 100,
        });
        assert_eq!(retry_delay(1, validity), Duration::from_secs(2));
        assert_eq!(retry_delay(2, validity), Duration::from_secs(4));
        assert_eq!(retry_delay(1, None), FIRST_ORDER_RETRY);
        assert_eq!(retry_delay(40, None), RETRY_MAX);
    }

    #[test]
    fn failures_alert_on_the_third_or_near_expiry() {
        let validity = Some(Validity {
            not_before: 0,
            not_after: 90 * DAY,
        });
        assert!(!alert_due(1, validity, 61 * DAY));
        assert!(alert_due(3, validity, 61 * DAY));
        assert!(alert_due(1, validity, 76 * DAY));
    }
}
