//! A typed reader over the spanned TOML tree that keeps going after an error.
//!
//! serde's derive stops at the first problem; a config check must report every
//! problem at once. The reader takes each value from `toml`'s spanned `DeTable`,
//! converts it, and records a [`Diagnostic`] with the exact span when it cannot,
//! returning `None` so the caller carries on with the rest of the file.

use std::net::SocketAddr;
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::codes;
use crate::diagnostic::Diagnostic;
use crate::duration::parse_duration;
use crate::span::{Located, Span};

/// A spanned TOML value.
pub(crate) type Value<'i> = Spanned<DeValue<'i>>;

/// Collects findings while reading.
#[derive(Default)]
pub(crate) struct Sink {
    pub(crate) diagnostics: Vec<Diagnostic>,
}

impl Sink {
    pub(crate) fn push(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    pub(crate) fn invalid(
        &mut self,
        span: Span,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        let message = message.into();
        self.push(
            Diagnostic::error(codes::INVALID_VALUE, message.clone())
                .at(span, "invalid value")
                .with_help(help),
        );
    }
}

pub(crate) fn span_of<T>(value: &Spanned<T>) -> Span {
    value.span().into()
}

/// Name of a TOML type, for "expected a string, found an integer".
pub(crate) fn type_name(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

pub(crate) fn wrong_type(sink: &mut Sink, value: &Value<'_>, key: &str, expected: &str) {
    sink.push(
        Diagnostic::error(
            codes::WRONG_TYPE,
            format!(
                "`{key}` must be {expected}, found {}",
                type_name(value.get_ref())
            ),
        )
        .at(span_of(value), format!("expected {expected}")),
    );
}

/// A TOML table being read, with a description for messages ("pool `web`").
pub(crate) struct Table<'a, 'i> {
    entries: &'a DeTable<'i>,
    pub(crate) span: Span,
    pub(crate) what: String,
}

impl<'a, 'i> Table<'a, 'i> {
    /// Reads `value` as a table, or reports that it is not one.
    pub(crate) fn from_value(
        sink: &mut Sink,
        value: &'a Value<'i>,
        key: &str,
        what: impl Into<String>,
    ) -> Option<Self> {
        match value.get_ref() {
            DeValue::Table(entries) => Some(Self {
                entries,
                span: span_of(value),
                what: what.into(),
            }),
            _ => {
                wrong_type(sink, value, key, "a table");
                None
            }
        }
    }

    /// The root table of a document.
    pub(crate) fn root(entries: &'a DeTable<'i>, span: Span) -> Self {
        Self {
            entries,
            span,
            what: "the config".to_string(),
        }
    }

    /// Entries in file order: key, key span, value.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&'a str, Span, &'a Value<'i>)> + 'a {
        self.entries
            .iter()
            .map(|(k, v)| (k.get_ref().as_ref(), span_of(k), v))
    }

    pub(crate) fn get(&self, key: &str) -> Option<&'a Value<'i>> {
        self.entries.get(key)
    }

    /// Reports every key not in `allowed`, suggesting the closest allowed key.
    pub(crate) fn deny_unknown(&self, sink: &mut Sink, allowed: &[&str]) {
        for (key, span, _) in self.entries() {
            if allowed.contains(&key) {
                continue;
            }
            let mut diagnostic = Diagnostic::error(
                codes::UNKNOWN_KEY,
                format!("unknown key `{key}` in {}", self.what),
            )
            .at(span, "unknown key");
            let closest = allowed
                .iter()
                .map(|candidate| (strsim::jaro_winkler(key, candidate), *candidate))
                .filter(|(score, _)| *score > 0.8)
                .max_by(|a, b| a.0.total_cmp(&b.0));
            diagnostic = match closest {
                Some((_, candidate)) => {
                    diagnostic.with_help(format!("did you mean `{candidate}`?"))
                }
                None => diagnostic.with_help(format!("allowed keys here: {}", allowed.join(", "))),
            };
            sink.push(diagnostic);
        }
    }

    fn missing(&self, sink: &mut Sink, key: &str, help: &str) {
        sink.push(
            Diagnostic::error(
                codes::MISSING_KEY,
                format!("{} is missing `{key}`", self.what),
            )
            .at(self.span, format!("`{key}` is required here"))
            .with_help(help.to_string()),
        );
    }

    pub(crate) fn string(&self, sink: &mut Sink, key: &str) -> Option<Located<String>> {
        let value = self.get(key)?;
        match value.get_ref() {
            DeValue::String(s) => Some(Located::new(s.to_string(), span_of(value))),
            _ => {
                wrong_type(sink, value, key, "a string");
                None
            }
        }
    }

    pub(crate) fn required_string(
        &self,
        sink: &mut Sink,
        key: &str,
        help: &str,
    ) -> Option<Located<String>> {
        if self.get(key).is_none() {
            self.missing(sink, key, help);
            return None;
        }
        self.string(sink, key)
    }

    pub(crate) fn bool(&self, sink: &mut Sink, key: &str, default: bool) -> bool {
        match self.get(key) {
            None => default,
            Some(value) => match value.get_ref() {
                DeValue::Boolean(b) => *b,
                _ => {
                    wrong_type(sink, value, key, "true or false");
                    default
                }
            },
        }
    }

    /// An integer in `min..=max`.
    pub(crate) fn u32(
        &self,
        sink: &mut Sink,
        key: &str,
        default: u32,
        min: u32,
        max: u32,
    ) -> Located<u32> {
        let Some(value) = self.get(key) else {
            return Located::new(default, self.span);
        };
        let span = span_of(value);
        let parsed = match value.get_ref() {
            DeValue::Integer(i) => {
                i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()).ok()
            }
            _ => {
                wrong_type(sink, value, key, "an integer");
                return Located::new(default, span);
            }
        };
        match parsed
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| (min..=max).contains(n))
        {
            Some(n) => Located::new(n, span),
            None => {
                sink.invalid(
                    span,
                    format!("`{key}` must be between {min} and {max}"),
                    format!("use an integer from {min} to {max}"),
                );
                Located::new(default, span)
            }
        }
    }

    /// A number in `0.0..=1.0` (integers 0 and 1 are accepted too).
    pub(crate) fn fraction(&self, sink: &mut Sink, key: &str) -> Option<f64> {
        let value = self.get(key)?;
        let number = match value.get_ref() {
            DeValue::Float(f) => f.as_str().replace('_', "").parse::<f64>().ok(),
            DeValue::Integer(i) => i.as_str().replace('_', "").parse::<f64>().ok(),
            _ => {
                wrong_type(sink, value, key, "a number between 0 and 1");
                return None;
            }
        };
        match number.filter(|n| (0.0..=1.0).contains(n)) {
            Some(n) => Some(n),
            None => {
                sink.invalid(
                    span_of(value),
                    format!("`{key}` must be between 0 and 1"),
                    "write a share such as 0.25",
                );
                None
            }
        }
    }

    /// A positive number (a factor such as 3.0).
    pub(crate) fn positive(&self, sink: &mut Sink, key: &str, default: f64) -> f64 {
        let Some(value) = self.get(key) else {
            return default;
        };
        let number = match value.get_ref() {
            DeValue::Float(f) => f.as_str().replace('_', "").parse::<f64>().ok(),
            DeValue::Integer(i) => i.as_str().replace('_', "").parse::<f64>().ok(),
            _ => {
                wrong_type(sink, value, key, "a number");
                return default;
            }
        };
        match number.filter(|n| n.is_finite() && *n > 0.0) {
            Some(n) => n,
            None => {
                sink.invalid(
                    span_of(value),
                    format!("`{key}` must be a positive number"),
                    "write a number such as 3.0",
                );
                default
            }
        }
    }

    pub(crate) fn duration(
        &self,
        sink: &mut Sink,
        key: &str,
        default: Duration,
    ) -> Located<Duration> {
        let Some(text) = self.string(sink, key) else {
            return Located::new(default, self.get(key).map_or(self.span, span_of));
        };
        match parse_duration(&text.value) {
            Ok(d) => Located::new(d, text.span),
            Err(e) => {
                sink.invalid(
                    text.span,
                    format!("bad duration `{}` for `{key}`: {e}", text.value),
                    "write durations like \"20us\", \"250ms\", \"2s\", \"1m\" or \"1m30s\"",
                );
                Located::new(default, text.span)
            }
        }
    }

    pub(crate) fn addr(&self, sink: &mut Sink, key: &str) -> Option<Located<SocketAddr>> {
        let text = self.string(sink, key)?;
        match text.value.parse::<SocketAddr>() {
            Ok(addr) => Some(Located::new(addr, text.span)),
            Err(_) => {
                sink.invalid(
                    text.span,
                    format!("bad address `{}` for `{key}`", text.value),
                    "write an IP address and port, such as \"127.0.0.1:8080\" or \"[::1]:8080\" (host names are not resolved)",
                );
                None
            }
        }
    }

    pub(crate) fn table(
        &self,
        sink: &mut Sink,
        key: &str,
        what: impl Into<String>,
    ) -> Option<Table<'a, 'i>> {
        let value = self.get(key)?;
        Table::from_value(sink, value, key, what)
    }

    pub(crate) fn array(&self, sink: &mut Sink, key: &str) -> Option<(&'a [Value<'i>], Span)> {
        let value = self.get(key)?;
        match value.get_ref() {
            DeValue::Array(items) => Some((items.as_ref(), span_of(value))),
            _ => {
                wrong_type(sink, value, key, "an array");
                None
            }
        }
    }
}
