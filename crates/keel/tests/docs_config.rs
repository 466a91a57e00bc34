//! `docs/config.md` keeps up with the code: every default constant in
//! `keel-config/src/defaults.rs` and every key the config parser accepts is documented.

use std::collections::BTreeSet;

fn read(relative: &str) -> String {
    let path = format!("{}/../../{relative}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// Identifier-like words inside the document's `code spans`.
fn code_words(markdown: &str) -> BTreeSet<String> {
    markdown
        .split('`')
        .skip(1)
        .step_by(2)
        .flat_map(|span| {
            span.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| !w.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Names of the `pub const` items of a Rust source file.
fn constants(source: &str) -> Vec<String> {
    source
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("pub const "))
        .filter_map(|rest| rest.split(':').next())
        .map(|name| name.trim().to_string())
        .collect()
}

/// String literals of every key list in the parser: `deny_unknown(sink, &[...])` calls
/// and `..._KEYS: &[&str] = &[...]` constants.
fn parser_keys(source: &str) -> BTreeSet<String> {
    const CALL: &str = "deny_unknown(";
    const LIST: &str = "_KEYS: &[&str] = ";
    let mut keys = BTreeSet::new();
    let mut rest = source;
    loop {
        // The next key list: the `[` after a `deny_unknown(` call or a `_KEYS` constant.
        let next = [CALL, LIST]
            .iter()
            .filter_map(|marker| rest.find(marker).map(|at| at + marker.len()))
            .min();
        let Some(from) = next else { break };
        let after = &rest[from..];
        let Some(open) = after.find('[') else { break };
        if !after[..open].trim_end().ends_with('&') {
            // `deny_unknown(sink, ROUTE_KEYS)`: a named list, read at its definition.
            rest = after;
            continue;
        }
        let Some(close) = after[open..].find(']') else {
            break;
        };
        let list = &after[open..open + close];
        for literal in list.split('"').skip(1).step_by(2) {
            keys.insert(literal.to_string());
        }
        rest = &after[open + close..];
    }
    keys
}

#[test]
fn every_default_constant_is_documented() {
    let docs = read("docs/config.md");
    let words = code_words(&docs);
    let defaults = read("crates/keel-config/src/defaults.rs");
    let names = constants(&defaults);
    assert!(names.len() > 20, "found too few constants: {names:?}");
    let missing: Vec<&String> = names.iter().filter(|n| !words.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "constants of defaults.rs missing from docs/config.md: {missing:?}"
    );
}

#[test]
fn every_config_key_is_documented() {
    let docs = read("docs/config.md");
    let words = code_words(&docs);
    let mut keys = BTreeSet::new();
    for file in [
        "mod.rs",
        "sections.rs",
        "pools.rs",
        "routes.rs",
        "policies.rs",
        "tests_intents.rs",
    ] {
        keys.extend(parser_keys(&read(&format!(
            "crates/keel-config/src/parse/{file}"
        ))));
    }
    assert!(keys.len() > 50, "found too few keys: {keys:?}");
    for key in [
        "listeners",
        "max_idle_per_backend",
        "promote_steps",
        "hash_key",
    ] {
        assert!(keys.contains(key), "the key scan missed `{key}`");
    }
    let missing: Vec<&String> = keys.iter().filter(|k| !words.contains(*k)).collect();
    assert!(
        missing.is_empty(),
        "config keys missing from docs/config.md: {missing:?}"
    );
}
