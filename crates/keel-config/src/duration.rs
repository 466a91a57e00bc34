//! Human durations in the config: `"20us"`, `"250ms"`, `"2s"`, `"1m"`, `"1h"`, or a sum like
//! `"1m30s"`.

use std::time::Duration;

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The string was empty.
    #[error("empty duration")]
    Empty,
    /// A number was not followed by a unit.
    #[error("missing unit after `{0}` (use us, ms, s, m or h)")]
    MissingUnit(String),
    /// An unknown unit.
    #[error("unknown unit `{0}` (use us, ms, s, m or h)")]
    UnknownUnit(String),
    /// Something that is not a number where a number belongs.
    #[error("expected a number, found `{0}`")]
    NotANumber(String),
    /// The value does not fit.
    #[error("duration is too large")]
    Overflow,
}

/// Parses `"20us"`, `"250ms"`, `"2s"`, `"1m"`, `"1h"` and sums of them such as `"1m30s"`.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(DurationError::NotANumber(rest.to_string()));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| DurationError::Overflow)?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "" => return Err(DurationError::MissingUnit(number.to_string())),
            "us" => Duration::from_micros(number),
            "ms" => Duration::from_millis(number),
            "s" => Duration::from_secs(number),
            "m" => Duration::from_secs(number.checked_mul(60).ok_or(DurationError::Overflow)?),
            "h" => Duration::from_secs(number.checked_mul(3600).ok_or(DurationError::Overflow)?),
            other => return Err(DurationError::UnknownUnit(other.to_string())),
        };
        total = total.checked_add(part).ok_or(DurationError::Overflow)?;
    }
    Ok(total)
}

/// Formats a duration the way the config writes it (`"1m30s"`, `"250ms"`, `"20us"`).
pub fn format_duration(duration: Duration) -> String {
    let micros = duration.as_micros();
    if !micros.is_multiple_of(1000) {
        return format!("{micros}us");
    }
    let millis = duration.as_millis();
    if millis == 0 {
        return "0s".to_string();
    }
    if !millis.is_multiple_of(1000) {
        return format!("{millis}ms");
    }
    let mut secs = millis / 1000;
    let mut out = String::new();
    for (unit, size) in [("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_sums() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("20us"), Ok(Duration::from_micros(20)));
        assert_eq!(parse_duration("1ms500us"), Ok(Duration::from_micros(1500)));
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert_eq!(
            parse_duration("5"),
            Err(DurationError::MissingUnit("5".into()))
        );
        assert_eq!(
            parse_duration("5d"),
            Err(DurationError::UnknownUnit("d".into()))
        );
        assert_eq!(
            parse_duration("s"),
            Err(DurationError::NotANumber("s".into()))
        );
        assert_eq!(
            parse_duration("99999999999999999999s"),
            Err(DurationError::Overflow)
        );
    }

    #[test]
    fn formats_round_trip() {
        for text in ["20us", "1500us", "250ms", "2s", "1m30s", "1h", "0s"] {
            assert_eq!(
                format_duration(parse_duration(text).unwrap_or_default()),
                text
            );
        }
    }
}
