//! Small text helpers shared by the renderers: escaping for Markdown, HTML and the shell, and
//! human forms of shares and durations. Every string that came from a config, a store row or
//! the admin API passes through one of the escapes before it lands in a document.

/// `0.7` → `70.0%`.
pub(crate) fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

/// A duration in ms for people: `850 ms`, `4.2 s`, `12 min 5 s`, `2 h 0 min`.
pub(crate) fn duration_ms(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1_000 {
        return format!("{ms} ms");
    }
    if ms < 60_000 {
        return format!("{:.1} s", ms as f64 / 1_000.0);
    }
    let seconds = ms / 1_000;
    if seconds < 3_600 {
        return format!("{} min {} s", seconds / 60, seconds % 60);
    }
    format!("{} h {} min", seconds / 3_600, (seconds % 3_600) / 60)
}

/// `HH:MM:SS.mmm` (UTC) of an RFC 3339 time from `keel_store::rfc3339`.
pub(crate) fn time_of_day(rfc3339: &str) -> &str {
    rfc3339
        .split_once('T')
        .map_or(rfc3339, |(_, time)| time.trim_end_matches('Z'))
}

/// The date part (`2024-03-15`) of an RFC 3339 time.
pub(crate) fn date_part(rfc3339: &str) -> &str {
    rfc3339.split_once('T').map_or(rfc3339, |(date, _)| date)
}

/// Escapes text for a Markdown paragraph or table cell: no HTML, no emphasis, no table
/// breaks, no line breaks.
pub(crate) fn md(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '#' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}

/// Text inside a Markdown code span: backticks would end it, so they become quotes.
pub(crate) fn md_code(text: &str) -> String {
    format!("`{}`", text.replace('`', "'").replace(['\n', '\r'], " "))
}

/// Escapes text for HTML element content and attribute values.
pub(crate) fn html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Quotes a word for a POSIX shell only when it needs it, so the usual admin URL stays
/// readable (`http://127.0.0.1:9901`) and anything else is passed as one literal word.
pub(crate) fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:@%+=,".contains(&b));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The first line of a message, at most `max` characters (with `…` when cut).
pub(crate) fn headline(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    if line.chars().count() <= max {
        line.to_owned()
    } else {
        let cut: String = line.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration_ms(850), "850 ms");
        assert_eq!(duration_ms(4_200), "4.2 s");
        assert_eq!(duration_ms(725_000), "12 min 5 s");
        assert_eq!(duration_ms(7_200_000), "2 h 0 min");
        assert_eq!(duration_ms(-5), "0 ms");
    }

    #[test]
    fn escapes_neutralise_markup() {
        assert_eq!(md("a|b *c* <x>"), r"a\|b \*c\* \<x\>");
        assert_eq!(
            html("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(md_code("a`b"), "`a'b`");
    }

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(shell_word("http://127.0.0.1:9901"), "http://127.0.0.1:9901");
        assert_eq!(shell_word("http://h/x y"), "'http://h/x y'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word("$(rm -rf /)"), "'$(rm -rf /)'");
        assert_eq!(shell_word(""), "''");
    }

    #[test]
    fn times_split() {
        assert_eq!(time_of_day("2024-03-15T10:00:01.250Z"), "10:00:01.250");
        assert_eq!(date_part("2024-03-15T10:00:01.250Z"), "2024-03-15");
        assert_eq!(headline("first line\nsecond", 5), "firs…");
    }
}
