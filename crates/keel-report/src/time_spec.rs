//! The `--since` / `--until` time forms of `keel timeline`.
//!
//! | form | example | means |
//! |---|---|---|
//! | RFC 3339 | `2024-03-15T10:00:00Z`, `2024-03-15T12:00:00+02:00` | that instant |
//! | date and time without offset | `2024-03-15T10:00`, `2024-03-15 10:00:30` | that time in UTC |
//! | date | `2024-03-15` | midnight UTC at the start of that day |
//! | `now` | `now` | the current time |
//! | relative, past | `2h ago`, `-30m`, `1h30m ago`, `90 seconds ago`, `30m` | that long before now |
//!
//! A relative form is one or more `<number><unit>` parts (spaces allowed between number and
//! unit and between parts), with either a leading `-` or a trailing `ago` (or neither: a bare
//! duration such as `30m` also means "30 minutes ago", since a future start is never what a
//! timeline reader means). Units: `s`/`sec`/`second(s)`, `m`/`min`/`minute(s)`, `h`/`hr`/
//! `hour(s)`, `d`/`day(s)`, `w`/`week(s)`. `ms` is not accepted: events are read at human
//! scale. RFC 3339 and dates are parsed by `jiff`; only the relative forms are parsed here.

use std::str::FromStr;

/// A `--since`/`--until` value that matches none of the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "cannot read time {input:?}: {reason} (expected RFC 3339 such as 2024-03-15T10:00:00Z, a date such as 2024-03-15, `now`, or a relative time such as \"2h ago\" or \"-30m\")"
)]
pub struct TimeSpecError {
    /// The text given.
    pub input: String,
    /// What was wrong with it.
    pub reason: String,
}

const MILLIS_PER_SECOND: i64 = 1_000;
const SECONDS_PER_MINUTE: i64 = 60;
const SECONDS_PER_HOUR: i64 = 3_600;
const SECONDS_PER_DAY: i64 = 86_400;
const SECONDS_PER_WEEK: i64 = 604_800;

/// Parses a time in one of the forms in the module doc into ms since the Unix epoch; `now_ms`
/// anchors the relative forms.
pub fn parse_time(text: &str, now_ms: i64) -> Result<i64, TimeSpecError> {
    let trimmed = text.trim();
    let error = |reason: &str| TimeSpecError {
        input: text.to_owned(),
        reason: reason.to_owned(),
    };
    if trimmed.is_empty() {
        return Err(error("it is empty"));
    }
    if trimmed.eq_ignore_ascii_case("now") {
        return Ok(now_ms);
    }
    if let Ok(timestamp) = jiff::Timestamp::from_str(trimmed) {
        return Ok(timestamp.as_millisecond());
    }
    if let Ok(datetime) = jiff::civil::DateTime::from_str(trimmed) {
        return utc_ms(datetime).map_err(|e| error(&e.to_string()));
    }
    if let Ok(date) = jiff::civil::Date::from_str(trimmed) {
        return utc_ms(date.at(0, 0, 0, 0)).map_err(|e| error(&e.to_string()));
    }
    let seconds = parse_relative(trimmed).map_err(|reason| error(&reason))?;
    seconds
        .checked_mul(MILLIS_PER_SECOND)
        .and_then(|ms| now_ms.checked_sub(ms))
        .ok_or_else(|| error("it is too far in the past"))
}

/// A civil date-time read as UTC.
fn utc_ms(datetime: jiff::civil::DateTime) -> Result<i64, jiff::Error> {
    jiff::tz::TimeZone::UTC
        .to_timestamp(datetime)
        .map(|timestamp| timestamp.as_millisecond())
}

/// Seconds before now of a relative form (`2h ago`, `-30m`, `1h30m`).
fn parse_relative(text: &str) -> Result<i64, String> {
    let lower = text.to_ascii_lowercase();
    let (body, leading_minus) = match lower.strip_prefix('-') {
        Some(rest) => (rest.trim_start(), true),
        None => (lower.as_str(), false),
    };
    let (body, trailing_ago) = match body.strip_suffix("ago") {
        Some(rest) => (rest.trim_end(), true),
        None => (body, false),
    };
    if leading_minus && trailing_ago {
        return Err("use either a leading '-' or a trailing 'ago', not both".to_owned());
    }
    if body.starts_with('+') {
        return Err("a time in the future is not accepted".to_owned());
    }
    let mut rest = body.trim_start();
    if rest.is_empty() {
        return Err("no duration before 'ago'".to_owned());
    }
    let mut total: i64 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("expected a number at {rest:?}"));
        }
        let amount: i64 = rest[..digits]
            .parse()
            .map_err(|_| "the number is too large".to_owned())?;
        rest = rest[digits..].trim_start();
        let letters = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..letters];
        let seconds_per_unit = unit_seconds(unit).ok_or_else(|| {
            if unit.is_empty() {
                format!("the number {amount} has no unit (s, m, h, d or w)")
            } else {
                format!("unknown unit {unit:?} (use s, m, h, d or w)")
            }
        })?;
        total = amount
            .checked_mul(seconds_per_unit)
            .and_then(|part| total.checked_add(part))
            .ok_or_else(|| "the duration is too large".to_owned())?;
        rest = rest[letters..].trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    Ok(total)
}

fn unit_seconds(unit: &str) -> Option<i64> {
    Some(match unit {
        "s" | "sec" | "secs" | "second" | "seconds" => 1,
        "m" | "min" | "mins" | "minute" | "minutes" => SECONDS_PER_MINUTE,
        "h" | "hr" | "hrs" | "hour" | "hours" => SECONDS_PER_HOUR,
        "d" | "day" | "days" => SECONDS_PER_DAY,
        "w" | "week" | "weeks" => SECONDS_PER_WEEK,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_710_500_400_000; // 2024-03-15T11:00:00Z

    #[test]
    fn absolute_forms() {
        assert_eq!(
            parse_time("2024-03-15T10:00:00Z", NOW),
            Ok(1_710_496_800_000)
        );
        assert_eq!(
            parse_time("2024-03-15T12:00:00+02:00", NOW),
            Ok(1_710_496_800_000)
        );
        assert_eq!(parse_time("2024-03-15T10:00", NOW), Ok(1_710_496_800_000));
        assert_eq!(
            parse_time("2024-03-15 10:00:00", NOW),
            Ok(1_710_496_800_000)
        );
        assert_eq!(parse_time("2024-03-15", NOW), Ok(1_710_460_800_000));
        assert_eq!(parse_time(" now ", NOW), Ok(NOW));
    }

    #[test]
    fn relative_forms() {
        let hour = 3_600_000;
        assert_eq!(parse_time("2h ago", NOW), Ok(NOW - 2 * hour));
        assert_eq!(parse_time("-30m", NOW), Ok(NOW - 30 * 60_000));
        assert_eq!(parse_time("30m", NOW), Ok(NOW - 30 * 60_000));
        assert_eq!(parse_time("1h30m ago", NOW), Ok(NOW - 90 * 60_000));
        assert_eq!(parse_time("1h 30m ago", NOW), Ok(NOW - 90 * 60_000));
        assert_eq!(parse_time("90 seconds ago", NOW), Ok(NOW - 90_000));
        assert_eq!(parse_time("2 Days Ago", NOW), Ok(NOW - 48 * hour));
        assert_eq!(parse_time("1w", NOW), Ok(NOW - 168 * hour));
        assert_eq!(parse_time("- 5s", NOW), Ok(NOW - 5_000));
    }

    #[test]
    fn bad_forms_are_explained() {
        for (bad, needle) in [
            ("", "empty"),
            ("ago", "no duration"),
            ("-2h ago", "not both"),
            ("2 fortnights ago", "unknown unit"),
            ("30", "no unit"),
            ("+2h", "future"),
            ("yesterday", "expected a number"),
            ("2024-13-45", "no unit"),
            ("99999999999999999999h ago", "too large"),
            ("99999999999999w ago", "too large"),
            ("9999999999999w ago", "too far in the past"),
        ] {
            let error = parse_time(bad, NOW).err();
            let text = error.map(|e| e.to_string()).unwrap_or_default();
            assert!(text.contains(needle), "{bad:?}: {text}");
            assert!(text.contains("RFC 3339"), "{bad:?}: {text}");
        }
    }
}
