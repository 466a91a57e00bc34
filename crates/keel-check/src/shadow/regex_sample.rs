//! What the shadow analysis learns from a path regex: a few paths it matches (for
//! witnesses) and a literal every match starts with (for deciding prefixes).
//!
//! Both walk the regex-syntax HIR of the regex as written. Samples are candidates only:
//! callers keep those the compiled regex really matches, because look-arounds such as
//! `\b` are treated as empty here.

use regex_syntax::hir::{Class, Hir, HirKind};

/// Most samples kept per sub-expression (and returned).
const MAX_SAMPLES: usize = 8;
/// Longest sample built; longer candidates are dropped.
const MAX_SAMPLE_LEN: usize = 512;
/// Characters preferred when a class allows them, for readable witnesses.
const PREFERRED: [char; 6] = ['a', '0', 'x', '1', '-', '_'];

/// Up to [`MAX_SAMPLES`] strings the regex probably matches (none if it does not parse).
pub(crate) fn samples(source: &str) -> Vec<String> {
    match regex_syntax::Parser::new().parse(source) {
        Ok(hir) => walk(&hir)
            .into_iter()
            .filter(|s| s.len() <= MAX_SAMPLE_LEN)
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// A literal that every string the regex matches starts with (empty when unknown).
pub(crate) fn literal_prefix(source: &str) -> String {
    let Ok(hir) = regex_syntax::Parser::new().parse(source) else {
        return String::new();
    };
    let mut prefix = Vec::new();
    push_prefix(&hir, &mut prefix);
    // Literals hold whole characters, so the bytes are UTF-8; be safe anyway.
    String::from_utf8(prefix).unwrap_or_default()
}

/// Appends the guaranteed literal start of `hir`; returns true when the whole of `hir`
/// was a literal (so the caller may continue with what follows it).
fn push_prefix(hir: &Hir, out: &mut Vec<u8>) -> bool {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => true,
        HirKind::Literal(literal) => {
            out.extend_from_slice(&literal.0);
            true
        }
        HirKind::Capture(capture) => push_prefix(&capture.sub, out),
        HirKind::Concat(parts) => parts.iter().all(|part| push_prefix(part, out)),
        HirKind::Repetition(rep) if rep.min >= 1 => {
            push_prefix(&rep.sub, out);
            false
        }
        HirKind::Repetition(_) | HirKind::Class(_) | HirKind::Alternation(_) => false,
    }
}

fn walk(hir: &Hir) -> Vec<String> {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => vec![String::new()],
        HirKind::Literal(literal) => std::str::from_utf8(&literal.0)
            .map(|s| vec![s.to_string()])
            .unwrap_or_default(),
        HirKind::Class(class) => class_samples(class).into_iter().map(String::from).collect(),
        HirKind::Capture(capture) => walk(&capture.sub),
        HirKind::Repetition(rep) => {
            let subs = walk(&rep.sub);
            let min = rep.min as usize;
            let mut out = Vec::new();
            let mut counts = vec![min];
            if rep.max.is_none_or(|max| max as usize > min) {
                counts.push(min + 1);
            }
            for count in counts {
                for sub in &subs {
                    if sub.len().saturating_mul(count) <= MAX_SAMPLE_LEN {
                        push_unique(&mut out, sub.repeat(count));
                    }
                }
            }
            out
        }
        HirKind::Concat(parts) => {
            let mut acc = vec![String::new()];
            for part in parts {
                let subs = walk(part);
                let mut next = Vec::new();
                for prefix in &acc {
                    for sub in &subs {
                        if prefix.len() + sub.len() <= MAX_SAMPLE_LEN {
                            push_unique(&mut next, format!("{prefix}{sub}"));
                        }
                    }
                }
                acc = next;
            }
            acc
        }
        HirKind::Alternation(branches) => {
            let mut out = Vec::new();
            for branch in branches {
                for sample in walk(branch) {
                    push_unique(&mut out, sample);
                }
            }
            out
        }
    }
}

fn push_unique(out: &mut Vec<String>, sample: String) {
    if out.len() < MAX_SAMPLES && !out.contains(&sample) {
        out.push(sample);
    }
}

/// One or two characters of a class: a readable one if allowed, and the first
/// printable ASCII one (or, failing that, the first one at all).
fn class_samples(class: &Class) -> Vec<char> {
    let ranges: Vec<(u32, u32)> = match class {
        Class::Unicode(unicode) => unicode
            .ranges()
            .iter()
            .map(|r| (u32::from(r.start()), u32::from(r.end())))
            .collect(),
        // Byte classes only arise with Unicode off; keep the ASCII part, which is text.
        Class::Bytes(bytes) => bytes
            .ranges()
            .iter()
            .filter(|r| r.start() <= 0x7f)
            .map(|r| (u32::from(r.start()), u32::from(r.end().min(0x7f))))
            .collect(),
    };
    let contains = |c: u32| ranges.iter().any(|(start, end)| *start <= c && c <= *end);
    let mut out = Vec::new();
    if let Some(c) = PREFERRED.iter().copied().find(|c| contains(u32::from(*c))) {
        out.push(c);
    }
    let printable = ranges
        .iter()
        .map(|(start, end)| ((*start).max(0x21), (*end).min(0x7e)))
        .find(|(start, end)| start <= end)
        .map(|(start, _)| start);
    let first = printable.or_else(|| ranges.first().map(|(start, _)| *start));
    if let Some(c) = first.and_then(char::from_u32)
        && !out.contains(&c)
    {
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matching(source: &str) -> Vec<String> {
        let regex = regex::Regex::new(&format!("^(?:{source})$")).expect("valid");
        samples(source)
            .into_iter()
            .filter(|s| regex.is_match(s))
            .collect()
    }

    #[test]
    fn samples_match_their_regex() {
        for source in [
            "/items/[0-9]+",
            "/(a|b|c)/x",
            "/api/v[12]/.*",
            "/static/.+\\.(css|js)",
            "/u/\\d{3}",
            "(?i)/Admin",
            "/[^/]+/edit",
        ] {
            let got = matching(source);
            assert!(!got.is_empty(), "no sample for {source}");
        }
        assert_eq!(matching("/items/[0-9]+")[0], "/items/0");
    }

    #[test]
    fn empty_classes_give_no_sample() {
        assert!(matching("/[^\\s\\S]").is_empty());
    }

    #[test]
    fn literal_prefixes_stop_at_the_first_choice() {
        assert_eq!(literal_prefix("/items/[0-9]+"), "/items/");
        assert_eq!(literal_prefix("/api/(v1|v2)/x"), "/api/");
        assert_eq!(literal_prefix("(/a)+"), "/a");
        assert_eq!(literal_prefix("(/a)*"), "");
        assert_eq!(literal_prefix("(?i)/admin"), "/");
        assert_eq!(literal_prefix("^/x"), "/x");
        assert_eq!(literal_prefix("("), "");
    }
}
